//! PerPEFT Studio front end: pick a run and a user, see their history, the server's
//! recommendations with their group's item table, and the same ranking recomputed in the
//! browser by the shared WASM scorer.

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

/// The whole page: the run picker in the header, the run's users, the selected user.
#[component]
fn App() -> impl IntoView {
    let run = RwSignal::new(None::<String>);
    let selected = RwSignal::new(None::<String>);
    view! {
        <Header run=run/>
        <main class="layout">
            {move || match run.get() {
                None => view! { <p class="hint">"Loading runs…"</p> }.into_any(),
                Some(r) => {
                    let list_run = r.clone();
                    view! {
                        <UserList run=list_run selected=selected/>
                        <section class="panel">
                            {move || match selected.get() {
                                None => view! { <p class="hint">"Choose a user to see their history and recommendations."</p> }.into_any(),
                                Some(id) => view! { <UserPanel run=r.clone() user_id=id/> }.into_any(),
                            }}
                        </section>
                    }.into_any()
                }
            }}
        </main>
    }
}
