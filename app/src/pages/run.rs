//! Run overview: what the run is and how well it does, its users on the group map (hover for a
//! user and their top genres, click to open them), a card per group (size, distinctive genres
//! and items, NDCG@20 with the group's adapter against the global model), the same comparison
//! as a bar chart across groups, and the learning curves.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;
use shared::api::{GroupCard, MapBody, RunDetail};

use super::{param, query, set_title};
use crate::api::{self, seg};
use crate::components::chart::{Clicked, EChart, group_colour};
use crate::components::loader::Loader;
use crate::components::metrics::{duration, m3, signed};
use crate::components::nav::Breadcrumbs;
use crate::components::plots;

/// `/runs/:run`.
#[component]
pub fn RunPage() -> impl IntoView {
    let run = param("run");
    let detail = LocalResource::new(move || {
        let r = run.get();
        async move { api::run(&r).await }
    });
    view! {
        {move || {
            let name = run.get();
            set_title(&name);
            view! {
                <Breadcrumbs trail=vec![("Runs".into(), "/".into()), (name.clone(), String::new())]/>
                <h1>{format!("Run {name}")}</h1>
            }
        }}
        <Loader what="the run">
            {move || Suspend::new(async move {
                let d = detail.await?;
                Ok::<_, api::ApiError>(view! { <RunOverview detail=d/> })
            })}
        </Loader>
    }
}

/// A run's summary line.
pub fn describe(d: &RunDetail) -> String {
    let s = &d.summary;
    let adapter = s
        .adapter
        .as_deref()
        .map(|a| format!(" with {a}"))
        .unwrap_or_default();
    format!(
        "{}{adapter} on {}, seed {}, {} user group(s); epoch {} of {} chosen by validation NDCG@20; trained on {}",
        s.method,
        s.dataset,
        s.seed,
        s.groups,
        s.best_epoch
            .map(|e| e.to_string())
            .unwrap_or_else(|| "–".into()),
        s.epochs,
        s.device
    )
}

#[component]
fn RunOverview(detail: RunDetail) -> impl IntoView {
    let name = detail.summary.name.clone();
    let groups = detail.summary.groups.max(detail.group_sizes.len());
    let test = detail.summary.test.unwrap_or_default();
    let valid = detail.summary.valid.unwrap_or_default();
    let curve = detail.curve.clone();
    let stages: String = detail
        .stages
        .iter()
        .map(|s| format!("{} {}", s.stage, duration(s.seconds)))
        .collect::<Vec<_>>()
        .join(", ");
    view! {
        <p class="lead" id="run-summary">{describe(&detail)}</p>
        <dl class="figures">
            <div><dt>"Test HR@20"</dt><dd id="test-hr20">{m3(test.hr20)}</dd></div>
            <div><dt>"Test NDCG@20"</dt><dd id="test-ndcg20">{m3(test.ndcg20)}</dd></div>
            <div><dt>"Validation NDCG@20"</dt><dd>{m3(valid.ndcg20)}</dd></div>
            <div><dt>"Test users"</dt><dd>{test.users}</dd></div>
            <div><dt>"Time"</dt><dd>{detail.summary.total_seconds.map(duration).unwrap_or_default()}
                {(!stages.is_empty()).then(|| format!(" (of which {stages})"))}</dd></div>
        </dl>
        <p class="actions">
            <A href=format!("/runs/{}/new-user", seg(&name)) attr:class="button" attr:id="new-user-link">
                "Try a new user: build a history, see the group"
            </A>
            <UserJump run=name.clone()/>
        </p>
        <section aria-labelledby="map-h">
            <h2 id="map-h">"Group map"</h2>
            <GroupMap run=name.clone() groups=groups/>
        </section>
        <section aria-labelledby="groups-h">
            <h2 id="groups-h">"Groups"</h2>
            <GroupCards run=name.clone()/>
        </section>
        <section aria-labelledby="curves-h">
            <h2 id="curves-h">"Learning curves"</h2>
            <EChart id="curves-chart" height=320
                label="Training loss and validation NDCG@20 and HR@20 per epoch"
                chart=Signal::derive(move || plots::curves(&curve, "Learning curves"))/>
        </section>
    }
}

/// Opens a user by id.
#[component]
fn UserJump(run: String) -> impl IntoView {
    let id = RwSignal::new(String::new());
    let navigate = use_navigate();
    let go = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let u = id.get();
        if !u.trim().is_empty() {
            navigate(
                &format!("/runs/{}/users/{}", seg(&run), seg(u.trim())),
                Default::default(),
            );
        }
    };
    view! {
        <form class="inline" on:submit=go>
            <label for="user-id">"Open user"</label>
            <input id="user-id" type="text" placeholder="e.g. 196" bind:value=id/>
            <button type="submit">"Open"</button>
        </form>
    }
}

/// The map, with the projection in the URL (`?map=tsne`).
#[component]
fn GroupMap(run: String, groups: usize) -> impl IntoView {
    let method = query("map");
    let r = run.clone();
    let map = LocalResource::new(move || {
        let (r, m) = (r.clone(), method.get().unwrap_or_else(|| "pca".into()));
        async move { api::map(&r, &m).await }
    });
    let navigate = use_navigate();
    let pick = {
        let (run, navigate) = (run.clone(), navigate.clone());
        move |ev| {
            let m = event_target_value(&ev);
            navigate(
                &format!("/runs/{}?map={m}", seg(&run)),
                leptos_router::NavigateOptions {
                    replace: true,
                    scroll: false,
                    ..Default::default()
                },
            );
        }
    };
    view! {
        <p class="controls">
            <label for="projection">"Projection"</label>
            <select id="projection" on:change=pick>
                <option value="pca" selected=move || method.get().is_none_or(|m| m == "pca")>"PCA"</option>
                <option value="tsne" selected=move || method.get().as_deref() == Some("tsne")>"t-SNE (slower the first time)"</option>
            </select>
            <span class="note">" Hover a point for the user and their top genres; click it to open the user."</span>
        </p>
        <Loader what="the map">
            {let (run, navigate) = (run.clone(), navigate.clone()); move || {
                let (run, navigate) = (run.clone(), navigate.clone());
                Suspend::new(async move {
                    let m: MapBody = map.await?;
                    let points = m.points.len();
                    let lookup = StoredValue::new(m.clone());
                    let open = Callback::new(move |c: Clicked| {
                        let user = lookup.with_value(|m| plots::points_of(m, c.series).nth(c.index).map(|p| p.user.clone()));
                        if let Some(u) = user {
                            navigate(&format!("/runs/{}/users/{}", seg(&run), seg(&u)), Default::default());
                        }
                    });
                    let chart = plots::group_map(&m, groups);
                    Ok::<_, api::ApiError>(view! {
                        <EChart id="group-map" height=460
                            label=format!("Scatter plot of {points} users in {groups} groups, coloured by group")
                            chart=Signal::derive(move || chart.clone()) on_click=open/>
                        <p class="note" id="map-note" data-points=points>
                            {format!("{points} users, {}", if m.method == "pca" { "PCA" } else { "t-SNE" })}
                        </p>
                    })
                })
            }}
        </Loader>
    }
}

/// One card per group and the bar chart across groups.
#[component]
fn GroupCards(run: String) -> impl IntoView {
    let r = run.clone();
    let groups = LocalResource::new(move || {
        let r = r.clone();
        async move { api::groups(&r).await }
    });
    view! {
        <Loader what="the groups">
            {let run = run.clone(); move || {
                let run = run.clone();
                Suspend::new(async move {
                    let body = groups.await?;
                    let chart = plots::group_bars(&body.groups);
                    let cards = body.groups.into_iter().map(|c| view! { <Card run=run.clone() card=c/> }).collect_view();
                    Ok::<_, api::ApiError>(view! {
                        <div class="cards" id="group-cards">{cards}</div>
                        <EChart id="group-bars" height=300
                            label="Bar chart: each group's test NDCG@20 with its own adapter and under the global model"
                            chart=Signal::derive(move || chart.clone())/>
                    })
                })
            }}
        </Loader>
    }
}

#[component]
fn Card(run: String, card: GroupCard) -> impl IntoView {
    let g = card.group;
    let genres = card
        .categories
        .iter()
        .take(3)
        .filter_map(|d| {
            d.category
                .as_ref()
                .map(|c| format!("{c} ×{:.1} ({})", d.lift, d.count))
        })
        .collect::<Vec<_>>()
        .join(", ");
    let items = card
        .items
        .iter()
        .take(3)
        .filter_map(|d| {
            d.item
                .as_ref()
                .map(|i| format!("{} ({})", i.title, d.count))
        })
        .collect::<Vec<_>>();
    let own = card.own.test.ndcg20;
    let quality = match card.global {
        Some(gl) => format!(
            "NDCG@20 {} with its adapter, {} with the global model ({})",
            m3(own),
            m3(gl.test.ndcg20),
            signed(own - gl.test.ndcg20)
        ),
        None => format!("NDCG@20 {}", m3(own)),
    };
    view! {
        <article class="card" data-group=g style=format!("border-top-color:{}", group_colour(g))>
            <h3>
                <span class="swatch" style=format!("background:{}", group_colour(g)) aria-hidden="true"></span>
                <A href=format!("/runs/{}/groups/{g}", seg(&run))>{format!("Group {g}")}</A>
            </h3>
            <p class="size">{format!("{} users", card.size)}</p>
            <p><strong>"Genres: "</strong>{if genres.is_empty() { "–".to_string() } else { genres }}</p>
            <p><strong>"Items: "</strong>{items.join("; ")}</p>
            <p class="quality">{quality}</p>
        </article>
    }
}
