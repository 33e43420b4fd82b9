//! Loading and error states of an async view: a status line while it loads, and the error,
//! in words, when it fails.

use leptos::prelude::*;

/// `children` inside a `Transition` (a "Loading …" status while its resources first load; a
/// reload keeps the previous content until the new one is there) and an `ErrorBoundary` (the
/// errors, as an alert, when one fails).
#[component]
pub fn Loader(
    /// What is loading, for the status line ("the runs").
    #[prop(into)]
    what: String,
    children: ChildrenFn,
) -> impl IntoView {
    let fallback = move || {
        view! { <p class="loading" role="status">{format!("Loading {what}…")}</p> }
    };
    view! {
        <Transition fallback=fallback>
            <ErrorBoundary fallback=|errors| view! { <Errors errors/> }>
                {children()}
            </ErrorBoundary>
        </Transition>
    }
}

/// The errors of an `ErrorBoundary`, as an alert.
#[component]
pub fn Errors(errors: ArcRwSignal<Errors>) -> impl IntoView {
    view! {
        <div class="error" role="alert">
            {move || {
                errors
                    .get()
                    .into_iter()
                    .map(|(_, e)| view! { <p>{e.to_string()}</p> })
                    .collect_view()
            }}
        </div>
    }
}
