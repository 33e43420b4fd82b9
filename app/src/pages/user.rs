//! One user: their history (newest first, with dates) and their recommendations side by side:
//! this run with their own group's adapter, the same dataset's global-PEFT, frozen and ID-only
//! runs, and "as group …" for any other group (in the URL, `?as=`). The held-out test item is
//! marked with its rank in every list; items in several lists are marked, and the item under
//! the pointer is lit in all of them. A last column reranks in the browser.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;
use shared::api::{Recommendations, RunStatus, RunSummary, UserDetail};

use super::{param, query, set_title};
use crate::api::{self, ApiError, seg};
use crate::components::browser_ranking::{BrowserRanking, K};
use crate::components::items::{History, Hovered, RecList, list_counts};
use crate::components::loader::Loader;
use crate::components::nav::Breadcrumbs;

/// The runs to show beside `this`: of its dataset, finished, the latest of each other kind
/// (global PEFT, preferring this run's adapter; frozen; ID-only), in that order.
pub fn related(this: &RunSummary, runs: &[RunSummary]) -> Vec<RunSummary> {
    let pool: Vec<&RunSummary> = runs
        .iter()
        .filter(|r| {
            r.status == RunStatus::Finished && r.dataset == this.dataset && r.name != this.name
        })
        .collect();
    let latest = |pred: &dyn Fn(&RunSummary) -> bool| {
        pool.iter().rev().find(|r| pred(r)).map(|r| (*r).clone())
    };
    let mut out = Vec::new();
    if !this.method.starts_with("global-peft") {
        let same = latest(&|r| r.method.starts_with("global-peft") && r.adapter == this.adapter);
        if let Some(r) = same.or_else(|| latest(&|r| r.method.starts_with("global-peft"))) {
            out.push(r);
        }
    }
    for kind in ["frozen", "id-only"] {
        if this.method != kind
            && let Some(r) = latest(&|r| r.method == kind)
        {
            out.push(r);
        }
    }
    out
}

fn kind_title(r: &RunSummary) -> String {
    match r.method.as_str() {
        "id-only" => "ID-only SASRec".into(),
        "frozen" => "Frozen backbone".into(),
        m if m.starts_with("global-peft") => {
            format!("Global PEFT ({})", r.adapter.as_deref().unwrap_or(""))
        }
        m => m.to_string(),
    }
}

/// `/runs/:run/users/:user`.
#[component]
pub fn UserPage() -> impl IntoView {
    let run = param("run");
    let user = param("user");
    let detail = LocalResource::new(move || {
        let (r, u) = (run.get(), user.get());
        async move { api::user(&r, &u).await }
    });
    view! {
        {move || {
            let (r, u) = (run.get(), user.get());
            set_title(&format!("User {u} in {r}"));
            view! {
                <Breadcrumbs trail=vec![
                    ("Runs".into(), "/".into()),
                    (r.clone(), format!("/runs/{}", seg(&r))),
                    (format!("User {u}"), String::new()),
                ]/>
                <h1 id="selected-user">{format!("User {u}")}</h1>
            }
        }}
        <Loader what="the user">
            {move || Suspend::new(async move {
                let d = detail.await?;
                Ok::<_, ApiError>(view! { <UserView run=run.get() detail=d/> })
            })}
        </Loader>
    }
}

#[component]
fn UserView(run: String, detail: UserDetail) -> impl IntoView {
    Hovered::provide();
    let group = detail.group;
    let as_group = query("as");
    let (r, u) = (run.clone(), detail.id.clone());
    let lists = LocalResource::new(move || {
        let (r, u) = (r.clone(), u.clone());
        async move {
            let runs = api::runs().await?;
            let this =
                runs.iter()
                    .find(|x| x.name == r)
                    .cloned()
                    .ok_or_else(|| ApiError::Status {
                        status: 404,
                        message: format!("no run {r}"),
                    })?;
            let others = related(&this, &runs);
            let mut names = vec![this.name.clone()];
            names.extend(others.iter().map(|o| o.name.clone()));
            let lists = if names.len() >= 2 {
                api::compare(&u, &names, K).await?.lists
            } else {
                vec![api::recommendations(&r, &u, K, None).await?]
            };
            let mut kinds = vec![this.clone()];
            kinds.extend(others);
            Ok::<_, ApiError>((kinds, lists))
        }
    });
    let (r, u) = (run.clone(), detail.id.clone());
    let as_list = LocalResource::new(move || {
        let (r, u) = (r.clone(), u.clone());
        let g = as_group.get();
        async move {
            let g = g?;
            Some(match g.parse::<usize>() {
                Ok(g) => api::recommendations(&r, &u, K, Some(g))
                    .await
                    .map_err(|e| e.to_string()),
                Err(_) => Err(format!("\"{g}\" is not a group number")),
            })
        }
    });
    // the browser ranks with the group the lists are shown as: their own, or `?as=`
    let r = run.clone();
    let ranking = LocalResource::new(move || {
        let r = r.clone();
        let g = as_group
            .get()
            .and_then(|g| g.parse::<usize>().ok())
            .unwrap_or(group);
        async move {
            let scorer = api::scorer(&r, g).await?;
            let catalogue = api::catalogue(&r).await?;
            Ok::<_, ApiError>((g, scorer, catalogue))
        }
    });
    let history_ids: Vec<u32> = detail.history.iter().map(|i| i.item.id).collect();
    let held_id = detail.held_out.as_ref().map(|h| h.item.id);
    let navigate = use_navigate();
    view! {
        <p class="lead" id="user-group">
            {format!("In group {group} of run {run}. ")}
            <A href=format!("/runs/{}/groups/{group}", seg(&run))>{format!("See group {group}")}</A>
        </p>
        <div class="user-layout">
            <section class="history-col" aria-labelledby="history-h">
                <h2 id="history-h">"History"</h2>
                <History history=detail.history.clone() held_out=detail.held_out.clone()/>
            </section>
            <section class="lists-col" aria-labelledby="lists-h">
                <h2 id="lists-h">"Recommendations side by side"</h2>
                <Loader what="the recommendations">
                    {let (run, navigate) = (run.clone(), navigate.clone()); move || {
                        let (run, navigate) = (run.clone(), navigate.clone());
                        Suspend::new(async move {
                            let (kinds, lists) = lists.await?;
                            // a bad `?as=` costs its own column only
                            let (extra, extra_error): (Option<Recommendations>, _) = match as_list.await {
                                Some(Ok(l)) => (Some(l), None),
                                Some(Err(e)) => (None, Some(e)),
                                None => (None, None),
                            };
                            let groups = kinds[0].groups;
                            let mut all: Vec<&Recommendations> = lists.iter().collect();
                            all.extend(extra.iter());
                            let counts = list_counts(all);
                            let columns = kinds.iter().zip(&lists).enumerate().map(|(i, (k, l))| {
                                let title = if i == 0 {
                                    if groups > 1 { format!("Their group's adapter (group {})", l.group) } else { format!("This run ({})", k.method) }
                                } else {
                                    kind_title(k)
                                };
                                let id = if i == 0 { "list-own".to_string() } else { format!("list-{}", k.name) };
                                view! { <RecList title=title subtitle=format!("run {}", k.name) id=id recs=l.clone() counts=counts.clone()/> }
                            }).collect_view();
                            let extra = extra.map(|l| {
                                let title = format!("As group {}", l.group);
                                view! { <RecList title=title subtitle=format!("run {}, group {}'s adapter", l.run, l.group) id="list-as" recs=l counts=counts.clone()/> }
                            });
                            let switch = move |ev| {
                                let g = event_target_value(&ev);
                                let q = if g.is_empty() { String::new() } else { format!("?as={g}") };
                                navigate(
                                    &format!("/runs/{}/users/{}{q}", seg(&run), seg(&lists[0].user)),
                                    leptos_router::NavigateOptions { replace: true, scroll: false, ..Default::default() },
                                );
                            };
                            let chosen = as_group.get_untracked();
                            Ok::<_, ApiError>(view! {
                                {(groups > 1).then(|| view! {
                                    <p class="controls">
                                        <label for="as-group">"Also show this user as group"</label>
                                        <select id="as-group" on:change=switch>
                                            <option value="" selected=chosen.is_none()>"(none)"</option>
                                            {(0..groups).filter(|&g| g != group).map(|g| {
                                                let sel = chosen.as_deref() == Some(&g.to_string());
                                                view! { <option value=g selected=sel>{format!("Group {g}")}</option> }
                                            }).collect_view()}
                                        </select>
                                    </p>
                                })}
                                {extra_error.map(|e| view! {
                                    <p class="error" id="as-error" role="alert">{format!("Cannot show this user as that group: {e}")}</p>
                                })}
                                <div class="lists" id="lists">{columns}{extra}</div>
                            })
                        })
                    }}
                </Loader>
                <Loader what="the scorer for your browser">
                    {let history_ids = history_ids.clone(); move || {
                        let history_ids = history_ids.clone();
                        Suspend::new(async move {
                            let (group, scorer, catalogue) = ranking.await?;
                            Ok::<_, ApiError>(view! {
                                <BrowserRanking group scorer catalogue history=history_ids held_out=held_id/>
                            })
                        })
                    }}
                </Loader>
            </section>
        </div>
    }
}
