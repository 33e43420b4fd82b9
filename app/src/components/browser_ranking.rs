//! The ranking made in the browser: SASRec's state over a history and every item of the
//! catalogue scored with a group's table, in WASM, with exactly the code the server ranks with
//! (`shared`). "Not interested" drops an item and "Watched it" adds it to the history; each
//! change reranks the whole catalogue without a round trip, and the time it took is shown.

use std::rc::Rc;

use leptos::prelude::*;
use shared::api::Item;

use crate::api::{Scorer, now_ms};

/// Recommendations per list.
pub const K: usize = 20;

/// A ranking recomputed here, with how long it took.
#[derive(Clone, PartialEq)]
struct Ranked {
    items: Vec<shared::Scored>,
    ms: f64,
}

/// The top [`K`] for `history` with `scorer`'s group table, reranked in WASM on every change.
/// Items already in the history are never recommended, except `held_out` (as on the server).
#[component]
pub fn BrowserRanking(
    /// The group whose table `scorer` holds.
    group: usize,
    scorer: Rc<Scorer>,
    catalogue: Rc<Vec<Item>>,
    history: Vec<u32>,
    held_out: Option<u32>,
) -> impl IntoView {
    let items = scorer.items();
    let scorer = StoredValue::new_local(scorer);
    let catalogue = StoredValue::new_local(catalogue);
    let excluded: Vec<u32> = history
        .iter()
        .copied()
        .filter(|&i| Some(i) != held_out)
        .collect();
    let dismissed = RwSignal::new(Vec::<u32>::new());
    let added = RwSignal::new(Vec::<u32>::new());
    let ranked = Memo::new(move |_| {
        let mut seq = history.clone();
        seq.extend(added.get());
        let mut exclude = excluded.clone();
        exclude.extend(dismissed.get());
        exclude.extend(added.get());
        let start = now_ms();
        let items = scorer.with_value(|s| s.rank(&seq, &exclude, K));
        Ranked {
            items,
            ms: now_ms() - start,
        }
    });
    let title = move |id: u32| {
        catalogue.with_value(|c| {
            c.get(id as usize - 1)
                .map(|i| i.title.clone())
                .unwrap_or_else(|| format!("item {id}"))
        })
    };
    view! {
        <section class="list browser" aria-label="Reranked in your browser">
            <h3>"Reranked in your browser"</h3>
            <p class="note" id="browser-note">
                {move || format!(
                    "WASM, group {group}'s table · {} not interested · {} watched here",
                    dismissed.get().len(),
                    added.get().len()
                )}
            </p>
            <p class="note" id="rerank-time" data-ms=move || ranked.with(|r| r.ms.to_string())>
                {move || format!("{items} items reranked in {:.2} ms", ranked.with(|r| r.ms))}
            </p>
            <ol id="browser-recs" class="recs">
                <For each=move || ranked.get().items.into_iter().enumerate()
                    key=|(pos, s)| (*pos, s.item, s.score.to_bits()) let:entry>
                    {
                        let (pos, s) = entry;
                        let name = title(s.item);
                        view! {
                            <li data-item-id=s.item>
                                <span class="rank">{pos + 1}</span>
                                <span class="title">{name.clone()}</span>
                                <span class="score">{format!("{:.3}", s.score)}</span>
                                <span class="actions">
                                    <button class="add" aria-label=format!("Watched it: add {name} to the history")
                                        on:click=move |_| added.update(|a| a.push(s.item))>"Watched"</button>
                                    <button class="dismiss" aria-label=format!("Not interested in {name}")
                                        on:click=move |_| dismissed.update(|d| d.push(s.item))>"Hide"</button>
                                </span>
                            </li>
                        }
                    }
                </For>
            </ol>
        </section>
    }
}
