//! Runs: every run of the registry in a sortable table (the sort is in the URL), the best run
//! of each method on each dataset by validation NDCG@20 marked, and two or more picked to
//! compare. The list refreshes every few seconds, so runs appear as their jobs finish.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;
use std::collections::BTreeSet;

use shared::api::{RunStatus, RunSummary};
use shared::runs::{best_runs, sort_runs};

use super::{every, query, set_title};
use crate::api::{self, seg};
use crate::components::metrics::{duration, m3};

/// Columns: (key, heading, what a screen reader hears).
const COLUMNS: [(&str, &str, &str); 13] = [
    ("name", "Run", "run name"),
    ("method", "Method", "method"),
    ("adapter", "Adapter", "adapter"),
    ("dataset", "Dataset", "dataset"),
    ("seed", "Seed", "seed"),
    ("groups", "Groups", "user groups"),
    ("status", "Status", "status"),
    ("hr10", "HR@10", "test hit rate at 10"),
    ("ndcg10", "NDCG@10", "test NDCG at 10"),
    ("hr20", "HR@20", "test hit rate at 20"),
    ("ndcg20", "NDCG@20", "test NDCG at 20"),
    ("valid", "Valid NDCG@20", "validation NDCG at 20"),
    ("time", "Time", "training and evaluation time"),
];

/// `/`: the runs table.
#[component]
pub fn RunsPage() -> impl IntoView {
    set_title("Runs");
    let tick = every(5);
    let fetched = LocalResource::new(move || {
        tick.get();
        api::runs()
    });
    // redrawn only when the listing changes, not on every poll
    let runs = Memo::new(move |_| fetched.get());
    let sort = query("sort");
    let dir = query("dir");
    let picked = RwSignal::new(BTreeSet::<String>::new());
    let navigate = use_navigate();
    let set_sort = {
        let navigate = navigate.clone();
        move |key: &str| {
            let descending = sort.get_untracked().as_deref() == Some(key)
                && dir.get_untracked().as_deref() != Some("desc");
            let d = if descending { "desc" } else { "asc" };
            navigate(
                &format!("/?sort={key}&dir={d}"),
                leptos_router::NavigateOptions {
                    replace: true,
                    scroll: false,
                    ..Default::default()
                },
            );
        }
    };
    let compare = move |_| {
        let names: Vec<String> = picked.get().iter().map(|n| seg(n)).collect();
        navigate(
            &format!("/compare?runs={}", names.join(",")),
            Default::default(),
        );
    };
    view! {
        <h1>"Runs"</h1>
        <p class="lead">
            "Every run of the registry. Metrics are on the held-out test items at the epoch "
            "chosen by validation NDCG@20; "<span class="star" aria-hidden="true">"★"</span>
            " marks the best run of its method on its dataset by validation. Pick two or more "
            "finished runs to compare them."
        </p>
        <div class="toolbar">
            <button id="compare-runs" on:click=compare
                disabled=move || picked.with(|p| p.len() < 2)>
                {move || format!("Compare {} selected runs", picked.with(|p| p.len()))}
            </button>
        </div>
        {move || {
                let set_sort = set_sort.clone();
                match runs.get() {
                None => view! { <p class="loading" role="status">"Loading the runs…"</p> }.into_any(),
                Some(Err(e)) => view! { <div class="error" role="alert"><p>{e.to_string()}</p></div> }.into_any(),
                Some(Ok(mut all)) => {
                    let best = best_runs(&all);
                    let key = sort.get().unwrap_or_else(|| "name".into());
                    let desc = dir.get().as_deref() == Some("desc");
                    if sort.get().is_some() {
                        sort_runs(&mut all, &key, desc);
                    }
                    let headers = COLUMNS
                        .iter()
                        .map(|&(k, heading, spoken)| {
                            let set_sort = set_sort.clone();
                            let aria = if k == key && sort.get().is_some() {
                                if desc { "descending" } else { "ascending" }
                            } else {
                                "none"
                            };
                            view! {
                                <th scope="col" aria-sort=aria>
                                    <button class="sort" data-sort=k
                                        aria-label=format!("Sort by {spoken}")
                                        on:click=move |_| set_sort(k)>
                                        {heading}
                                        {match aria { "ascending" => " ▲", "descending" => " ▼", _ => "" }}
                                    </button>
                                </th>
                            }
                        })
                        .collect_view();
                    let rows = all
                        .into_iter()
                        .map(|r| {
                            let is_best = best.contains(&r.name);
                            run_row(r, is_best, picked)
                        })
                        .collect::<Vec<_>>();
                    view! {
                        <table id="runs" class="data">
                            <caption class="sr-only">"Runs, one per row"</caption>
                            <thead><tr><th scope="col">"Compare"</th>{headers}</tr></thead>
                            <tbody>{rows}</tbody>
                        </table>
                    }.into_any()
                }
                }
            }}
    }
}

fn run_row(r: RunSummary, is_best: bool, picked: RwSignal<BTreeSet<String>>) -> impl IntoView {
    let finished = r.status == RunStatus::Finished;
    let name = r.name.clone();
    let test = r.test;
    let cell = move |k: &str| {
        test.and_then(|m| m.by_name(k))
            .map(m3)
            .unwrap_or_else(|| "–".into())
    };
    let time = match (r.total_seconds, r.seconds_per_epoch) {
        (Some(t), Some(e)) => format!("{} ({:.1} s/epoch)", duration(t), e),
        _ => "–".into(),
    };
    let toggle = {
        let name = name.clone();
        move |_| {
            picked.update(|p| {
                if !p.remove(&name) {
                    p.insert(name.clone());
                }
            })
        }
    };
    let checked = {
        let name = name.clone();
        move || picked.with(|p| p.contains(&name))
    };
    view! {
        <tr data-run=r.name.clone() class:best=is_best>
            <td>
                <input type="checkbox" class="pick" disabled=!finished
                    aria-label=format!("Select {} to compare", r.name)
                    prop:checked=checked on:change=toggle/>
            </td>
            <th scope="row">
                {if finished {
                    let (label, href) = (r.name.clone(), format!("/runs/{}", seg(&r.name)));
                    view! { <A href=href>{label}</A> }.into_any()
                } else {
                    view! { <span>{r.name.clone()}</span> }.into_any()
                }}
                {is_best.then(|| view! {
                    <span class="star" title="Best validation NDCG@20 of its method on its dataset"
                        aria-label="best of its method">" ★"</span>
                })}
            </th>
            <td>{r.method.clone()}</td>
            <td>{r.adapter.clone().unwrap_or_else(|| "–".into())}</td>
            <td>{r.dataset.clone()}</td>
            <td class="num">{r.seed}</td>
            <td class="num">{r.groups}</td>
            <td><span class=format!("status {}", r.status.name())>
                {format!("{} ({}/{} epochs)", r.status.name(), r.epochs_done, r.epochs)}
            </span></td>
            <td class="num" data-metric="hr10">{cell("hr10")}</td>
            <td class="num" data-metric="ndcg10">{cell("ndcg10")}</td>
            <td class="num" data-metric="hr20">{cell("hr20")}</td>
            <td class="num" data-metric="ndcg20">{cell("ndcg20")}</td>
            <td class="num" data-metric="valid">{r.valid.map(|m| m3(m.ndcg20)).unwrap_or_else(|| "–".into())}</td>
            <td class="num">{time}</td>
        </tr>
    }
}
