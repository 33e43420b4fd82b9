//! Item lists: a user's history (newest first, with dates), and one recommendation list with
//! the held-out test item marked with its rank and the items it shares with other lists
//! highlighted (the item under the pointer is highlighted in every list at once).

use std::collections::HashMap;

use leptos::prelude::*;
use shared::api::{Interaction, Item, Recommendations};

use super::metrics::date;

/// The item under the pointer or keyboard focus, highlighted in every list of the page.
#[derive(Clone, Copy)]
pub struct Hovered(pub RwSignal<Option<u32>>);

impl Hovered {
    /// Provides one for the page's lists.
    pub fn provide() -> Self {
        let h = Self(RwSignal::new(None));
        provide_context(h);
        h
    }

    fn get() -> Option<Self> {
        use_context::<Self>()
    }
}

/// An item's categories, joined.
pub fn categories(i: &Item) -> String {
    i.categories.join(", ")
}

/// A user's history, newest first, each with its date.
#[component]
pub fn History(
    history: Vec<Interaction>,
    /// The held-out test item, shown apart.
    held_out: Option<Interaction>,
) -> impl IntoView {
    let n = history.len();
    view! {
        <p class="note">{format!("{n} interactions, newest first")}</p>
        {held_out.map(|h| view! {
            <p class="held-out-note" id="held-out">
                <span class="badge test">"test item"</span>
                {format!(" {} ", h.item.title)}
                {h.time.map(|t| view! { <time>{date(t)}</time> })}
                <span class="note">" (held out: what the user did next)"</span>
            </p>
        })}
        <ol id="history" class="history" reversed>
            {history
                .into_iter()
                .rev()
                .map(|i| view! {
                    <li data-item-id=i.item.id data-time=i.time.map(|t| t.to_string())>
                        <span class="title">{i.item.title.clone()}</span>
                        <span class="cats">{categories(&i.item)}</span>
                        {i.time.map(|t| view! { <time>{date(t)}</time> })}
                    </li>
                })
                .collect_view()}
        </ol>
    }
}

/// One list of recommendations. `counts` says in how many of the page's lists each item is
/// (an item in two or more is marked as shared).
#[component]
pub fn RecList(
    /// The list's heading.
    #[prop(into)]
    title: String,
    /// A line under the heading (the run and group it comes from).
    #[prop(into)]
    subtitle: String,
    /// The `id` of the `<ol>`.
    #[prop(into)]
    id: String,
    recs: Recommendations,
    #[prop(optional)] counts: Option<HashMap<u32, usize>>,
) -> impl IntoView {
    let counts = counts.unwrap_or_default();
    let hovered = Hovered::get();
    let held = recs.held_out.clone();
    let held_id = held.as_ref().map(|h| h.item.id);
    let items = recs
        .items
        .into_iter()
        .enumerate()
        .map(|(pos, r)| {
            let item = r.item.id;
            let lists = counts.get(&item).copied().unwrap_or(1);
            let is_held = held_id == Some(item);
            let lit = move || hovered.is_some_and(|h| h.0.get() == Some(item));
            view! {
                <li data-item-id=item class:shared={lists > 1} class:held-out=is_held class:lit=lit
                    on:mouseenter=move |_| { if let Some(h) = hovered { h.0.set(Some(item)) } }
                    on:mouseleave=move |_| { if let Some(h) = hovered { h.0.set(None) } }>
                    <span class="rank">{pos + 1}</span>
                    <span class="title">{r.item.title.clone()}</span>
                    {is_held.then(|| view! { <span class="badge test">"test item"</span> })}
                    {(lists > 1).then(|| view! {
                        <span class="badge shared" title="In this many of the lists on the page">
                            {format!("in {lists} lists")}
                        </span>
                    })}
                    <span class="cats">{categories(&r.item)}</span>
                    <span class="score" title="Score: inner product of the user's state and the item">
                        {format!("{:.3}", r.score)}
                    </span>
                </li>
            }
        })
        .collect_view();
    let held_line = held.map(|h| {
        let text = if h.in_list {
            format!("Test item “{}” is at rank {} here.", h.item.title, h.rank)
        } else {
            format!(
                "Test item “{}” ranks {} of all candidates (not in this list).",
                h.item.title, h.rank
            )
        };
        view! { <p class="held-rank" data-rank=h.rank>{text}</p> }
    });
    let label = title.clone();
    view! {
        <section class="list" aria-label=label>
            <h3>{title}</h3>
            <p class="note">{subtitle}</p>
            {held_line}
            <ol id=id class="recs">{items}</ol>
        </section>
    }
}

/// In how many of `lists` each item is.
pub fn list_counts<'a>(
    lists: impl IntoIterator<Item = &'a Recommendations>,
) -> HashMap<u32, usize> {
    let mut counts = HashMap::new();
    for l in lists {
        for r in &l.items {
            *counts.entry(r.item.id).or_default() += 1;
        }
    }
    counts
}
