//! A new user: search the catalogue by title and build a history by clicking. With every click
//! the browser places the history in a group (the nearest centroid of its state under the run's
//! global model, the same `shared::groups` code the server assigns with) and reranks the whole
//! catalogue with that group's table, in WASM: no round trip once the group's scorer is loaded
//! (each group's is fetched once). The history is in the URL (`?h=` item ids), so the page can
//! be shared and reloaded.

use std::rc::Rc;

use leptos::prelude::*;
use leptos_router::hooks::use_navigate;
use shared::api::Item;

use super::{param, query, set_title};
use crate::api::{self, ApiError, Scorer, now_ms, seg};
use crate::components::browser_ranking::K;
use crate::components::chart::group_colour;
use crate::components::items::categories;
use crate::components::loader::Loader;
use crate::components::nav::Breadcrumbs;

/// Search results shown.
const RESULTS: usize = 12;

/// `/runs/:run/new-user`.
#[component]
pub fn NewUserPage() -> impl IntoView {
    let run = param("run");
    let base = LocalResource::new(move || {
        let r = run.get();
        async move {
            let grouping = api::grouping(&r).await?;
            let catalogue = api::catalogue(&r).await?;
            Ok::<_, ApiError>((grouping, catalogue))
        }
    });
    view! {
        {move || {
            let r = run.get();
            set_title(&format!("New user in {r}"));
            view! {
                <Breadcrumbs trail=vec![
                    ("Runs".into(), "/".into()),
                    (r.clone(), format!("/runs/{}", seg(&r))),
                    ("New user".into(), String::new()),
                ]/>
                <h1>"A new user"</h1>
                <p class="lead">
                    "Search the catalogue and click items to build a history. The group and the "
                    "recommendations are computed in your browser after every click."
                </p>
            }
        }}
        <Loader what="the catalogue and the groups">
            {move || Suspend::new(async move {
                let (grouping, catalogue) = base.await?;
                Ok::<_, ApiError>(view! { <Builder run=run.get() grouping catalogue/> })
            })}
        </Loader>
    }
}

/// The item ids of `?h=` that are in the catalogue, and the entries that are not.
fn parse_history(h: Option<String>, n_items: usize) -> (Vec<u32>, Vec<String>) {
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for x in h.unwrap_or_default().split(',').map(str::trim) {
        match x.parse::<u32>() {
            Ok(i) if i >= 1 && i as usize <= n_items => good.push(i),
            _ if x.is_empty() => {}
            _ => bad.push(x.to_string()),
        }
    }
    (good, bad)
}

#[component]
fn Builder(
    run: String,
    grouping: Rc<Option<shared::groups::Grouping>>,
    catalogue: Rc<Vec<Item>>,
) -> impl IntoView {
    let n_items = catalogue.len();
    let groups = grouping.as_ref().as_ref().map_or(1, |g| g.k());
    let grouping = StoredValue::new_local(grouping);
    let catalogue = StoredValue::new_local(catalogue);
    let (start, ignored) = parse_history(query("h").get_untracked(), n_items);
    let history = RwSignal::new(start);
    let search = RwSignal::new(String::new());
    // the URL follows the history
    let navigate = use_navigate();
    let path = format!("/runs/{}/new-user", seg(&run));
    Effect::new(move |_| {
        let h: Vec<String> = history.get().iter().map(|i| i.to_string()).collect();
        let q = if h.is_empty() {
            String::new()
        } else {
            format!("?h={}", h.join(","))
        };
        navigate(
            &format!("{path}{q}"),
            leptos_router::NavigateOptions {
                replace: true,
                scroll: false,
                ..Default::default()
            },
        );
    });
    // (group, squared distance to each centroid, ms), in WASM
    let placed = Memo::new(move |_| {
        let h = history.get();
        if h.is_empty() {
            return None;
        }
        let start = now_ms();
        let r = grouping.with_value(|g| match g.as_ref() {
            Some(g) => (g.assign(&h), g.distances(&h)),
            None => (0, Vec::new()),
        });
        Some((r.0, r.1, now_ms() - start))
    });
    let group = Memo::new(move |_| placed.get().map(|p| p.0));
    let r = run.clone();
    let scorer = LocalResource::new(move || {
        let (r, g) = (r.clone(), group.get());
        async move {
            match g {
                Some(g) => api::scorer(&r, g).await.map(Some),
                None => Ok(None),
            }
        }
    });
    let matches = Memo::new(move |_| {
        let q = search.get().trim().to_lowercase();
        if q.is_empty() {
            return Vec::new();
        }
        let h = history.get();
        catalogue.with_value(|c| {
            c.iter()
                .filter(|i| !h.contains(&i.id) && i.title.to_lowercase().contains(&q))
                .take(RESULTS)
                .cloned()
                .collect::<Vec<Item>>()
        })
    });
    let title = move |id: u32| {
        catalogue.with_value(|c| {
            c.get(id as usize - 1)
                .map(|i| i.title.clone())
                .unwrap_or_default()
        })
    };
    view! {
        {(!ignored.is_empty()).then(|| view! {
            <p class="error" id="history-ignored" role="alert">
                {format!("Left out of the history, not items of this catalogue: {}", ignored.join(", "))}
            </p>
        })}
        <div class="builder">
            <section aria-labelledby="search-h">
                <h2 id="search-h">"Catalogue"</h2>
                <label for="search">"Search titles"</label>
                <input id="search" type="search" placeholder="e.g. star wars" autocomplete="off"
                    bind:value=search/>
                <ul id="search-results" class="results" aria-live="polite">
                    <For each=move || matches.get() key=|i| i.id let:item>
                        <li>
                            <button class="add-item" data-item-id=item.id
                                aria-label=format!("Add {} to the history", item.title)
                                on:click=move |_| history.update(|h| h.push(item.id))>
                                <span class="title">{item.title.clone()}</span>
                                <span class="cats">{categories(&item)}</span>
                            </button>
                        </li>
                    </For>
                </ul>
                <h2>"History"</h2>
                <p class="note">{move || format!("{} items, oldest first", history.with(|h| h.len()))}</p>
                <ol id="new-history" class="history">
                    <For each=move || history.get().into_iter().enumerate() key=|(p, i)| (*p, *i) let:entry>
                        {
                            let (pos, id) = entry;
                            let name = title(id);
                            view! {
                                <li data-item-id=id>
                                    <span class="title">{name.clone()}</span>
                                    <button class="remove" aria-label=format!("Remove {name} from the history")
                                        on:click=move |_| history.update(|h| { if pos < h.len() { h.remove(pos); } })>"Remove"</button>
                                </li>
                            }
                        }
                    </For>
                </ol>
                <button id="clear-history" on:click=move |_| history.set(Vec::new())
                    disabled=move || history.with(|h| h.is_empty())>"Start again"</button>
            </section>
            <section aria-labelledby="placed-h">
                <h2 id="placed-h">"Group"</h2>
                <div id="assigned" aria-live="polite"
                    data-group=move || group.get().map(|g| g.to_string()).unwrap_or_default()>
                    {move || match placed.get() {
                        None => view! { <p class="note">"Add an item to place this user in a group."</p> }.into_any(),
                        Some((g, d, ms)) => view! {
                            <p class="placed">
                                <span class="swatch" aria-hidden="true" style=format!("background:{}", group_colour(g))></span>
                                {format!("Group {g} of {groups}")}
                                <span class="note">{format!(" (nearest centroid, found in {ms:.2} ms)")}</span>
                            </p>
                            {(!d.is_empty()).then(|| view! {
                                <table class="data" id="distances">
                                    <caption>"Squared distance of the history's state to each group's centroid"</caption>
                                    <thead><tr><th scope="col">"Group"</th><th scope="col">"Distance"</th></tr></thead>
                                    <tbody>
                                        {d.iter().enumerate().map(|(i, x)| view! {
                                            <tr class:nearest=i == g><th scope="row">{format!("Group {i}")}</th><td class="num">{format!("{x:.3}")}</td></tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            })}
                        }.into_any(),
                    }}
                </div>
            </section>
            <section aria-labelledby="recs-h">
                <h2 id="recs-h">"Recommendations"</h2>
                <Loader what="the group's scorer">
                    {move || Suspend::new(async move {
                        let s = scorer.await?;
                        Ok::<_, ApiError>(view! { <NewRecs scorer=s assigned=group history=history title/> })
                    })}
                </Loader>
            </section>
        </div>
    }
}

/// The top [`K`] for the history with the assigned group's scorer (none before the first click).
#[component]
fn NewRecs(
    scorer: Option<Rc<Scorer>>,
    /// The group the history is placed in now: while its table loads, `scorer` is the last
    /// group's, and nothing is ranked with it.
    assigned: Memo<Option<usize>>,
    history: RwSignal<Vec<u32>>,
    title: impl Fn(u32) -> String + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let Some(scorer) = scorer else {
        return view! { <p class="note">"Recommendations appear with the first item."</p> }
            .into_any();
    };
    let group = scorer.bundle.group;
    let items = scorer.items();
    let scorer = StoredValue::new_local(scorer);
    let ranked = Memo::new(move |_| {
        if assigned.get() != Some(group) {
            return None;
        }
        let h = history.get();
        let start = now_ms();
        let r = scorer.with_value(|s| s.rank(&h, &h, K));
        Some((r, now_ms() - start))
    });
    view! {
        {move || match ranked.with(|r| r.as_ref().map(|r| r.1)) {
            Some(ms) => view! {
                <p class="note" id="new-rerank-time" data-group=group data-ms=ms.to_string()>
                    {format!("Group {group}'s table · {items} items ranked in {ms:.2} ms")}
                </p>
            }.into_any(),
            None => view! {
                <p class="note" aria-live="polite">{move || format!("Loading group {}'s table…", assigned.get().unwrap_or_default())}</p>
            }.into_any(),
        }}
        <ol id="new-recs" class="recs">
            <For each=move || ranked.get().map(|r| r.0).unwrap_or_default().into_iter().enumerate()
                key=|(p, s)| (*p, s.item, s.score.to_bits()) let:entry>
                {
                    let (pos, s) = entry;
                    view! {
                        <li data-item-id=s.item>
                            <span class="rank">{pos + 1}</span>
                            <span class="title">{title(s.item)}</span>
                            <span class="score">{format!("{:.3}", s.score)}</span>
                        </li>
                    }
                }
            </For>
        </ol>
    }
    .into_any()
}
