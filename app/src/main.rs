//! PerPEFT Studio's front end: every run of the registry, a run's user groups on a map and as
//! cards, a group's members and what its adapter changes, one user's lists side by side across
//! runs and groups, a new user's history built by clicks and placed in a group in the browser,
//! and training jobs started and followed live. Every view has its own URL.

mod api;
mod components;
mod pages;

use leptos::prelude::*;
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;

use components::nav::SiteHeader;

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

/// The router: one page per URL.
#[component]
fn App() -> impl IntoView {
    view! {
        <Router>
            <SiteHeader/>
            <main id="content" tabindex="-1">
                <Routes fallback=|| view! { <pages::NotFound/> }>
                    <Route path=path!("/") view=pages::runs::RunsPage/>
                    <Route path=path!("/compare") view=pages::compare::ComparePage/>
                    <Route path=path!("/training") view=pages::training::TrainingPage/>
                    <Route path=path!("/runs/:run") view=pages::run::RunPage/>
                    <Route path=path!("/runs/:run/groups/:group") view=pages::group::GroupPage/>
                    <Route path=path!("/runs/:run/users/:user") view=pages::user::UserPage/>
                    <Route path=path!("/runs/:run/new-user") view=pages::new_user::NewUserPage/>
                </Routes>
            </main>
        </Router>
    }
}
