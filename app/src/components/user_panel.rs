//! One user: history, the server's top-k, and the browser's own ranking with the shared code:
//! dismissing an item reranks locally, and adding an item to the history recomputes the user's
//! SASRec state in WASM and reranks, all without a round trip.

use leptos::prelude::*;
use shared::api::{Item, ItemTableBody, UserDetail, UserState};
use shared::codec::decode_f32;
use shared::sasrec::SasRec;
use shared::{ItemTable, top_k};

use crate::api;

/// Recommendations shown per list.
pub const K: usize = 20;

/// SASRec's inference weights, fetched once per page load and shared through context.
pub type ScorerResource = LocalResource<Result<SasRec, String>>;

/// The selected user.
#[component]
pub fn UserPanel(user_id: String) -> impl IntoView {
    let id = user_id.clone();
    let detail = LocalResource::new(move || {
        let id = id.clone();
        async move { api::user(&id).await }
    });
    let id = user_id.clone();
    let recs = LocalResource::new(move || {
        let id = id.clone();
        async move { api::recommendations(&id, K).await }
    });
    let id = user_id.clone();
    let state = LocalResource::new(move || {
        let id = id.clone();
        async move { api::user_state(&id).await }
    });
    // the user's own group's item table: what the server ranks them with
    let table = LocalResource::new(move || async move {
        match state.await {
            Ok(s) => api::item_table(s.group).await,
            Err(e) => Err(e),
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
                                <ol id="history">
                                    {d.history.into_iter().map(|i| view! { <li data-item-id=i.id>{i.title}</li> }).collect_view()}
                                </ol>
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
                            }.into_any(),
                        }
                    })}
                </Suspense>
            </div>
            <div class="column">
                <h3>"Reranked in your browser (WASM)"</h3>
                <Suspense fallback=|| view! { <p>"Loading scorer…"</p> }>
                    {move || Suspend::new(async move {
                        let scorer = expect_context::<ScorerResource>();
                        match (state.await, table.await, scorer.await, detail.await) {
                            (Ok(s), Ok(t), Ok(m), Ok(d)) => view! { <BrowserRanking state=s table=t model=m detail=d/> }.into_any(),
                            (Err(e), _, _, _) | (_, Err(e), _, _) | (_, _, Err(e), _) | (_, _, _, Err(e)) => {
                                view! { <p class="error">{e}</p> }.into_any()
                            }
                        }
                    })}
                </Suspense>
            </div>
        </div>
    }
}

/// Ranks in WASM: the user's state from `shared::sasrec` over their history (plus what they
/// add here), then `shared::top_k`; "dismiss" hides an item, "+" adds it to the history.
#[component]
fn BrowserRanking(
    state: UserState,
    table: ItemTableBody,
    model: SasRec,
    detail: UserDetail,
) -> impl IntoView {
    let data = match decode_f32(&table.data_b64) {
        Ok(x) => x,
        Err(e) => return view! { <p class="error">{e}</p> }.into_any(),
    };
    let dim = table.dim;
    let items = StoredValue::new(table.items);
    let history: Vec<u32> = detail.history.iter().map(|i| i.id).collect();
    let dismissed = RwSignal::new(Vec::<u32>::new());
    let added = RwSignal::new(Vec::<u32>::new());
    let ranking = Memo::new(move |_| {
        let t = ItemTable::new(dim, &data).expect("server sends whole rows");
        let mut seq = history.clone();
        seq.extend(added.get());
        let vector = model.user_state(&t, &seq);
        let mut exclude = state.exclude.clone();
        exclude.extend(dismissed.get());
        exclude.extend(added.get());
        top_k(&vector, &t, &exclude, K)
    });
    let title =
        move |id: u32| items.with_value(|items: &Vec<Item>| items[id as usize - 1].title.clone());
    view! {
        <p class="note" id="browser-note">
            {move || format!("{} dismissed · {} added to the history here", dismissed.get().len(), added.get().len())}
        </p>
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
    .into_any()
}
