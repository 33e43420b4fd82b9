//! The banner: product name and the served model's held-out quality.

use leptos::prelude::*;

use crate::api;

/// Title bar with the model summary from `/api/health`.
#[component]
pub fn Header() -> impl IntoView {
    let health = LocalResource::new(api::health);
    view! {
        <header class="banner">
            <h1>"PerPEFT Studio"</h1>
            <Suspense fallback=|| view! { <span class="model">"loading model…"</span> }>
                {move || Suspend::new(async move {
                    match health.await {
                        Ok(h) => view! {
                            <span class="model" id="model-info">
                                {format!(
                                    "{} · {} model (trained on {}) · test HR@10 {:.3} · NDCG@10 {:.3}",
                                    h.dataset, h.model.method, h.model.trained_on, h.model.test.hr10, h.model.test.ndcg10
                                )}
                            </span>
                        }.into_any(),
                        Err(e) => view! { <span class="error">{e}</span> }.into_any(),
                    }
                })}
            </Suspense>
        </header>
    }
}
