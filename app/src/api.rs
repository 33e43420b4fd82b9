//! Every call the app makes to the server, in one place.

use gloo_net::http::Request;
use serde::de::DeserializeOwned;
use shared::api::{ApiError, Recommendations, RunSummary, UserDetail, UsersPage};
use shared::bundle::ScorerBundle;

async fn get<T: DeserializeOwned>(url: &str) -> Result<T, String> {
    let resp = Request::get(url).send().await.map_err(|e| e.to_string())?;
    if !resp.ok() {
        let status = resp.status();
        return Err(match resp.json::<ApiError>().await {
            Ok(e) => format!("{status}: {}", e.error),
            Err(_) => format!("{status}"),
        });
    }
    resp.json::<T>().await.map_err(|e| e.to_string())
}

/// A name or id as one URL path segment (ids are free text in the plain data format).
fn seg(id: &str) -> String {
    String::from(js_sys::encode_uri_component(id))
}

/// `GET /api/runs`.
pub async fn runs() -> Result<Vec<RunSummary>, String> {
    get("/api/runs").await
}

/// `GET /api/runs/{run}/users`.
pub async fn users(run: &str, offset: usize, limit: usize) -> Result<UsersPage, String> {
    get(&format!(
        "/api/runs/{}/users?offset={offset}&limit={limit}",
        seg(run)
    ))
    .await
}

/// `GET /api/runs/{run}/users/{id}`.
pub async fn user(run: &str, id: &str) -> Result<UserDetail, String> {
    get(&format!("/api/runs/{}/users/{}", seg(run), seg(id))).await
}

/// `GET /api/runs/{run}/users/{id}/recommendations`.
pub async fn recommendations(run: &str, id: &str, k: usize) -> Result<Recommendations, String> {
    get(&format!(
        "/api/runs/{}/users/{}/recommendations?k={k}",
        seg(run),
        seg(id)
    ))
    .await
}

/// `GET /api/runs/{run}/groups/{g}/scorer?encoding=f32`: the group's scorer, bit-exact, so the
/// browser ranks exactly as the server does.
pub async fn bundle(run: &str, group: usize) -> Result<ScorerBundle, String> {
    get(&format!(
        "/api/runs/{}/groups/{group}/scorer?encoding=f32",
        seg(run)
    ))
    .await
}

/// `GET /api/runs/{run}/items`: the catalogue, by internal id.
pub async fn items(run: &str) -> Result<Vec<shared::api::Item>, String> {
    get(&format!("/api/runs/{}/items", seg(run))).await
}
