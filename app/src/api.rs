//! Every call the app makes to the server, in one place.

use gloo_net::http::Request;
use serde::de::DeserializeOwned;
use shared::api::{
    ApiError, Health, ItemTableBody, Recommendations, UserDetail, UserState, UsersPage,
};

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

/// `GET /api/health`.
pub async fn health() -> Result<Health, String> {
    get("/api/health").await
}

/// `GET /api/users`.
pub async fn users(offset: usize, limit: usize) -> Result<UsersPage, String> {
    get(&format!("/api/users?offset={offset}&limit={limit}")).await
}

/// A user id as one URL path segment (ids are free text in the plain data format).
fn seg(id: &str) -> String {
    String::from(js_sys::encode_uri_component(id))
}

/// `GET /api/users/{id}`.
pub async fn user(id: &str) -> Result<UserDetail, String> {
    get(&format!("/api/users/{}", seg(id))).await
}

/// `GET /api/users/{id}/recommendations`.
pub async fn recommendations(id: &str, k: usize) -> Result<Recommendations, String> {
    get(&format!("/api/users/{}/recommendations?k={k}", seg(id))).await
}

/// `GET /api/users/{id}/state`.
pub async fn user_state(id: &str) -> Result<UserState, String> {
    get(&format!("/api/users/{}/state", seg(id))).await
}

/// `GET /api/scorer`: SASRec's inference weights.
pub async fn scorer() -> Result<shared::sasrec::SasRec, String> {
    get("/api/scorer").await
}

/// `GET /api/items/table?group=`: the item table of one user group.
pub async fn item_table(group: usize) -> Result<ItemTableBody, String> {
    get(&format!("/api/items/table?group={group}")).await
}
