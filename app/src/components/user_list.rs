//! The paged list of a run's users with their group; clicking one selects it.

use leptos::prelude::*;

use crate::api;

const PAGE: usize = 25;

/// The run's users, a page at a time.
#[component]
pub fn UserList(run: String, selected: RwSignal<Option<String>>) -> impl IntoView {
    let offset = RwSignal::new(0usize);
    let page = LocalResource::new(move || {
        let (run, at) = (run.clone(), offset.get());
        async move { api::users(&run, at, PAGE).await }
    });
    view! {
        <nav class="users">
            <h2>"Users"</h2>
            <Suspense fallback=|| view! { <p>"Loading users…"</p> }>
                {move || Suspend::new(async move {
                    match page.await {
                        Err(e) => view! { <p class="error">{e}</p> }.into_any(),
                        Ok(p) => {
                            let total = p.total;
                            view! {
                                <ul id="user-list">
                                    {p.users.into_iter().map(|u| {
                                        let id = u.id.clone();
                                        let is_selected = {
                                            let id = id.clone();
                                            move || selected.get().as_deref() == Some(id.as_str())
                                        };
                                        view! {
                                            <li>
                                                <button class="user" class:selected=is_selected
                                                    data-user-id=u.id.clone()
                                                    on:click=move |_| selected.set(Some(id.clone()))>
                                                    {format!("User {}", u.id)}
                                                    <span class="count">{format!("{} ratings · group {}", u.interactions, u.group)}</span>
                                                </button>
                                            </li>
                                        }
                                    }).collect_view()}
                                </ul>
                                <div class="pager">
                                    <button disabled=move || offset.get() == 0
                                        on:click=move |_| offset.update(|o| *o = o.saturating_sub(PAGE))>"‹ Prev"</button>
                                    <span>{move || format!("{}–{} of {}", offset.get() + 1, (offset.get() + PAGE).min(total), total)}</span>
                                    <button disabled=move || offset.get() + PAGE >= total
                                        on:click=move |_| offset.update(|o| *o += PAGE)>"Next ›"</button>
                                </div>
                            }.into_any()
                        }
                    }
                })}
            </Suspense>
        </nav>
    }
}
