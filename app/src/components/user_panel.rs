//! One user of one run: their history, the server's top-k with their group's item table (and
//! where the held-out item landed), and the browser's own ranking with the same group's scorer
//! bundle: dismissing an item reranks locally, and adding an item to the history recomputes
//! the user's SASRec state in WASM and reranks, all without a round trip.

use leptos::prelude::*;
use shared::api::{Item, UserDetail};
use shared::bundle::ScorerBundle;
use shared::{ItemTable, top_k};

use crate::api;

/// Recommendations shown per list.
pub const K: usize = 20;

/// The selected user.
#[component]
pub fn UserPanel(run: String, user_id: String) -> impl IntoView {
    let (r, id) = (run.clone(), user_id.clone());
    let detail = LocalResource::new(move || {
        let (r, id) = (r.clone(), id.clone());
        async move { api::user(&r, &id).await }
    });
    let (r, id) = (run.clone(), user_id.clone());
    let recs = LocalResource::new(move || {
        let (r, id) = (r.clone(), id.clone());
        async move { api::recommendations(&r, &id, K).await }
    });
    // the user's own group's scorer: what the server ranks them with
    let r = run.clone();
    let bundle = LocalResource::new(move || {
        let r = r.clone();
        async move {
            let d = detail.await?;
            api::bundle(&r, d.group).await
        }
    });
    view! {
        <h2 id="selected-user">{format!("User {user_id}")}</h2>
        <div class="columns">
            <div class="column">
                <h3>"History (oldest first)"</h3>
                <Suspense fallback=|| view! { <p>"Loading history…"</p> }>
                    {move || Suspend::new(async move {
                        match detail.await {
                            Err(e) => view! { <p class="error">{e}</p> }.into_any(),
                            Ok(d) => view! {
                                <p class="note" id="user-group">{format!("group {}", d.group)}</p>
                                <ol id="history">
                                    {d.history.into_iter().map(|i| view! { <li data-item-id=i.id>{i.title}</li> }).collect_view()}
                                </ol>
                                {d.held_out.map(|h| view! {
                                    <p class="note" id="held-out">{format!("held out (the test item): {}", h.title)}</p>
                                })}
                            }.into_any(),
                        }
                    })}
                </Suspense>
            </div>
            <div class="column">
                <h3>"Recommended by the server"</h3>
                <Suspense fallback=|| view! { <p>"Loading recommendations…"</p> }>
                    {move || Suspend::new(async move {
                        match recs.await {
                            Err(e) => view! { <p class="error">{e}</p> }.into_any(),
                            Ok(r) => view! {
                                <ol id="server-recs">
                                    {r.items.into_iter().map(|r| view! {
                                        <li data-item-id=r.item.id>{r.item.title}<span class="score">{format!("{:.3}", r.score)}</span></li>
                                    }).collect_view()}
                                </ol>
                                {r.held_out.map(|h| view! {
                                    <p class="note" id="held-out-rank">{format!("held-out item ranked {} of all", h.rank)}</p>
                                })}
                            }.into_any(),
                        }
                    })}
                </Suspense>
            </div>
            <div class="column">
                <h3>"Reranked in your browser (WASM)"</h3>
                <Suspense fallback=|| view! { <p>"Loading scorer…"</p> }>
                    {move || Suspend::new(async move {
                        match (bundle.await, detail.await) {
                            (Ok(b), Ok(d)) => view! { <BrowserRanking bundle=b detail=d/> }.into_any(),
                            (Err(e), _) | (_, Err(e)) => view! { <p class="error">{e}</p> }.into_any(),
                        }
                    })}
                </Suspense>
            </div>
        </div>
    }
}

/// Ranks in WASM: the user's state from `shared::sasrec` over their history (plus what they
/// add here) with the group's table, then `shared::top_k`; "dismiss" hides an item, "+" adds
/// it to the history.
#[component]
fn BrowserRanking(bundle: ScorerBundle, detail: UserDetail) -> impl IntoView {
    let data = match bundle.table() {
        Ok(x) => x,
        Err(e) => return view! { <p class="error">{e}</p> }.into_any(),
    };
    let dim = bundle.scorer.hidden;
    let model = bundle.scorer;
    let titles = StoredValue::new(
        detail
            .history
            .iter()
            .chain(&detail.held_out)
            .map(|i: &Item| (i.id, i.title.clone()))
            .collect::<std::collections::HashMap<u32, String>>(),
    );
    let history: Vec<u32> = detail.history.iter().map(|i| i.id).collect();
    // as the server: the history is never recommended, the held-out item may be
    let held_out = detail.held_out.as_ref().map(|h| h.id);
    let excluded: Vec<u32> = history
        .iter()
        .copied()
        .filter(|&i| Some(i) != held_out)
        .collect();
    let dismissed = RwSignal::new(Vec::<u32>::new());
    let added = RwSignal::new(Vec::<u32>::new());
    let ranking = Memo::new(move |_| {
        let t = ItemTable::new(dim, &data).expect("checked by bundle.table()");
        let mut seq = history.clone();
        seq.extend(added.get());
        let vector = model.user_state(&t, &seq);
        let mut exclude = excluded.clone();
        exclude.extend(dismissed.get());
        exclude.extend(added.get());
        top_k(&vector, &t, &exclude, K)
    });
    let r = bundle.run.clone();
    let items = LocalResource::new(move || {
        let r = r.clone();
        async move { crate::api::items(&r).await }
    });
    view! {
        <p class="note" id="browser-note">
            {move || format!("{} dismissed · {} added to the history here", dismissed.get().len(), added.get().len())}
        </p>
        <Suspense fallback=|| view! { <p>"Loading titles…"</p> }>
            {move || Suspend::new(async move {
                let catalogue = items.await.unwrap_or_default();
                let title = move |id: u32| {
                    catalogue
                        .get(id as usize - 1)
                        .map(|i| i.title.clone())
                        .or_else(|| titles.with_value(|t| t.get(&id).cloned()))
                        .unwrap_or_else(|| format!("item {id}"))
                };
                view! {
                    <ol id="browser-recs">
                        <For each=move || ranking.get() key=|s| (s.item, s.score.to_bits()) let:s>
                            <li data-item-id=s.item>
                                {title(s.item)}
                                <span class="score">{format!("{:.3}", s.score)}</span>
                                <button class="add" title="Watched it: add to the history, recompute the state here"
                                    on:click=move |_| added.update(|a| a.push(s.item))>"+"</button>
                                <button class="dismiss" title="Not interested: rerank without it"
                                    on:click=move |_| dismissed.update(|d| d.push(s.item))>"✕"</button>
                            </li>
                        </For>
                    </ol>
                }
            })}
        </Suspense>
    }
    .into_any()
}
