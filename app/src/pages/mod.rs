//! The pages, one per route (see `main.rs`).

pub mod compare;
pub mod group;
pub mod new_user;
pub mod run;
pub mod runs;
pub mod training;
pub mod user;

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};

/// A path parameter of the current route (empty when absent).
pub fn param(name: &'static str) -> Memo<String> {
    let params = use_params_map();
    Memo::new(move |_| params.with(|p| p.get(name).unwrap_or_default()))
}

/// A query parameter of the current URL.
pub fn query(name: &'static str) -> Memo<Option<String>> {
    let q = use_query_map();
    Memo::new(move |_| q.with(|q| q.get(name)).filter(|v| !v.is_empty()))
}

/// A counter bumped every `seconds` while the calling page is shown: resources that read it
/// are fetched again.
pub fn every(seconds: u64) -> RwSignal<u32> {
    let tick = RwSignal::new(0u32);
    let handle = set_interval_with_handle(
        move || tick.update(|t| *t += 1),
        std::time::Duration::from_secs(seconds),
    )
    .ok();
    on_cleanup(move || {
        if let Some(h) = handle {
            h.clear();
        }
    });
    tick
}

/// Sets the document's title.
pub fn set_title(title: &str) {
    if let Some(d) = web_sys::window().and_then(|w| w.document()) {
        d.set_title(&format!("{title} · PerPEFT Studio"));
    }
}

/// Any URL no route matches.
#[component]
pub fn NotFound() -> impl IntoView {
    set_title("Not found");
    view! {
        <h1>"Not found"</h1>
        <p>"No page has this address. " <A href="/">"See every run"</A>"."</p>
    }
}
