//! The site header: a skip link for keyboard users, the product name and the main sections.

use leptos::prelude::*;
use leptos_router::components::A;
use wasm_bindgen::JsCast;

/// Banner and main navigation (links mark the current section with `aria-current`).
#[component]
pub fn SiteHeader() -> impl IntoView {
    // the router would treat `#content` as a navigation: move the focus by hand
    let skip = |ev: leptos::ev::MouseEvent| {
        ev.prevent_default();
        if let Some(main) = document()
            .get_element_by_id("content")
            .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok())
        {
            let _ = main.focus();
        }
    };
    view! {
        <a class="skip" href="#content" on:click=skip>"Skip to content"</a>
        <header class="banner">
            <A href="/" attr:class="brand">"PerPEFT Studio"</A>
            <nav aria-label="Main">
                <ul>
                    <li><A href="/" exact=true>"Runs"</A></li>
                    <li><A href="/training">"Training"</A></li>
                    <li><a href="/api/openapi.json">"API"</a></li>
                </ul>
            </nav>
        </header>
    }
}

/// A page's trail of links back to the sections above it (`(label, href)`, the last is the
/// page itself).
#[component]
pub fn Breadcrumbs(trail: Vec<(String, String)>) -> impl IntoView {
    let last = trail.len().saturating_sub(1);
    view! {
        <nav aria-label="Breadcrumb" class="crumbs">
            <ol>
                {trail
                    .into_iter()
                    .enumerate()
                    .map(|(i, (label, href))| {
                        if i == last {
                            view! { <li><span aria-current="page">{label}</span></li> }.into_any()
                        } else {
                            view! { <li><A href=href>{label}</A></li> }.into_any()
                        }
                    })
                    .collect_view()}
            </ol>
        </nav>
    }
}
