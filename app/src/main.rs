//! PerPEFT Studio front end: pick a user, see their history, the server's recommendations and
//! the same ranking recomputed in the browser by the shared WASM scorer.

mod api;
mod components;

use leptos::prelude::*;

use components::header::Header;
use components::user_list::UserList;
use components::user_panel::UserPanel;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

/// The whole page.
#[component]
fn App() -> impl IntoView {
    let selected = RwSignal::new(None::<String>);
    let scorer: components::user_panel::ScorerResource = LocalResource::new(api::scorer);
    provide_context(scorer);
    view! {
        <Header/>
        <main class="layout">
            <UserList selected=selected/>
            <section class="panel">
                {move || match selected.get() {
                    None => view! { <p class="hint">"Choose a user to see their history and recommendations."</p> }.into_any(),
                    Some(id) => view! { <UserPanel user_id=id/> }.into_any(),
                }}
            </section>
        </main>
    }
}
