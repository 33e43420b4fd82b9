//! Runs side by side (`/compare?runs=a,b,…&user=`): their metrics in one table and one bar
//! chart, their validation curves overlaid, and, for a user, their lists next to each other
//! with what they share.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;
use shared::api::RunDetail;

use super::{query, set_title};
use crate::api::{self, ApiError, seg};
use crate::components::browser_ranking::K;
use crate::components::chart::EChart;
use crate::components::items::{Hovered, RecList, list_counts};
use crate::components::loader::Loader;
use crate::components::metrics::{duration, m3};
use crate::components::nav::Breadcrumbs;
use crate::components::plots;

/// `/compare`.
#[component]
pub fn ComparePage() -> impl IntoView {
    set_title("Compare runs");
    Hovered::provide();
    let runs = query("runs");
    let user = query("user");
    let names = Memo::new(move |_| {
        runs.get()
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect::<Vec<String>>()
    });
    let details = LocalResource::new(move || {
        let names = names.get();
        async move {
            if names.len() < 2 {
                return Err(ApiError::Status {
                    status: 400,
                    message: "pick two or more runs on the Runs page to compare them".into(),
                });
            }
            let mut out = Vec::new();
            for n in &names {
                out.push(api::run(n).await?);
            }
            Ok(out)
        }
    });
    let lists = LocalResource::new(move || {
        let (names, u) = (names.get(), user.get());
        async move {
            match u {
                Some(u) if names.len() >= 2 => api::compare(&u, &names, K).await.map(Some),
                _ => Ok(None),
            }
        }
    });
    let typed = RwSignal::new(user.get_untracked().unwrap_or_default());
    let navigate = use_navigate();
    let open_user = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let r: Vec<String> = names.get().iter().map(|n| seg(n)).collect();
        navigate(
            &format!(
                "/compare?runs={}&user={}",
                r.join(","),
                seg(typed.get().trim())
            ),
            Default::default(),
        );
    };
    view! {
        <Breadcrumbs trail=vec![("Runs".into(), "/".into()), ("Compare".into(), String::new())]/>
        <h1>"Compare runs"</h1>
        <Loader what="the runs">
            {move || Suspend::new(async move {
                let d = details.await?;
                Ok::<_, ApiError>(view! { <Side details=d/> })
            })}
        </Loader>
        <section aria-labelledby="user-lists-h">
            <h2 id="user-lists-h">"One user in every run"</h2>
            <form class="inline" on:submit=open_user>
                <label for="compare-user">"User id"</label>
                <input id="compare-user" type="text" placeholder="e.g. 196" bind:value=typed/>
                <button type="submit">"Show their lists"</button>
            </form>
            <Loader what="the lists">
                {move || Suspend::new(async move {
                    let c = lists.await?;
                    Ok::<_, ApiError>(c.map(|c| {
                        let counts = list_counts(&c.lists);
                        let overlaps = c.overlaps.iter().map(|o| format!("{} ∩ {}: {} items", o.a, o.b, o.shared)).collect::<Vec<_>>().join(" · ");
                        view! {
                            <p class="note" id="overlaps">{format!("Shared items in the top {}: {overlaps}", c.k)}</p>
                            <div class="lists" id="compare-lists">
                                {c.lists.into_iter().map(|l| {
                                    let title = l.run.clone();
                                    let id = format!("list-{}", l.run);
                                    view! { <RecList title=title subtitle=format!("group {}", l.group) id=id recs=l counts=counts.clone()/> }
                                }).collect_view()}
                            </div>
                        }
                    }))
                })}
            </Loader>
        </section>
    }
}

#[component]
fn Side(details: Vec<RunDetail>) -> impl IntoView {
    let summaries: Vec<_> = details.iter().map(|d| d.summary.clone()).collect();
    let bars = plots::run_bars(&summaries);
    let curves = plots::run_curves(&details);
    view! {
        <table class="data" id="compare-table">
            <thead><tr>
                <th scope="col">"Run"</th><th scope="col">"Method"</th><th scope="col">"Dataset"</th>
                <th scope="col">"Seed"</th><th scope="col">"Best epoch"</th>
                <th scope="col">"Valid NDCG@20"</th><th scope="col">"Test HR@10"</th>
                <th scope="col">"Test NDCG@10"</th><th scope="col">"Test HR@20"</th>
                <th scope="col">"Test NDCG@20"</th><th scope="col">"Time"</th>
            </tr></thead>
            <tbody>
                {summaries.into_iter().map(|s| {
                    let t = s.test.unwrap_or_default();
                    let (name, href) = (s.name.clone(), format!("/runs/{}", seg(&s.name)));
                    view! {
                        <tr data-run=s.name.clone()>
                            <th scope="row"><A href=href>{name}</A></th>
                            <td>{s.method.clone()}</td><td>{s.dataset.clone()}</td><td class="num">{s.seed}</td>
                            <td class="num">{s.best_epoch.map(|e| e.to_string()).unwrap_or_default()}</td>
                            <td class="num">{s.valid.map(|v| m3(v.ndcg20)).unwrap_or_default()}</td>
                            <td class="num">{m3(t.hr10)}</td><td class="num">{m3(t.ndcg10)}</td>
                            <td class="num">{m3(t.hr20)}</td><td class="num" data-metric="ndcg20">{m3(t.ndcg20)}</td>
                            <td class="num">{s.total_seconds.map(duration).unwrap_or_default()}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
        <div class="two">
            <EChart id="compare-bars" height=320 label="Bar chart of each run's test HR@20 and NDCG@20 and validation NDCG@20"
                chart=Signal::derive(move || bars.clone())/>
            <EChart id="compare-curves" height=320 label="Line chart of each run's validation NDCG@20 per epoch"
                chart=Signal::derive(move || curves.clone())/>
        </div>
    }
}
