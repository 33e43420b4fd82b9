//! One group of a run: its quality with its own adapter against the global model, the genres
//! and items that set it apart (lift over the catalogue, with counts), what its adapter ranks
//! higher and lower than the global model, and its members (paged, each a link to the user).

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;
use shared::api::{Distinctive, GroupCard, Shift, Split};

use super::{param, query, set_title};
use crate::api::{self, seg};
use crate::components::chart::group_colour;
use crate::components::loader::Loader;
use crate::components::metrics::{m3, signed};
use crate::components::nav::Breadcrumbs;

/// Members per page.
const PAGE: usize = 50;

/// `/runs/:run/groups/:group`.
#[component]
pub fn GroupPage() -> impl IntoView {
    let run = param("run");
    let group = param("group");
    let groups = LocalResource::new(move || {
        let r = run.get();
        async move { api::groups(&r).await }
    });
    view! {
        {move || {
            let (r, g) = (run.get(), group.get());
            set_title(&format!("Group {g} of {r}"));
            view! {
                <Breadcrumbs trail=vec![
                    ("Runs".into(), "/".into()),
                    (r.clone(), format!("/runs/{}", seg(&r))),
                    (format!("Group {g}"), String::new()),
                ]/>
                <h1>
                    <span class="swatch" aria-hidden="true"
                        style=format!("background:{}", group_colour(g.parse().unwrap_or(0)))></span>
                    {format!("Group {g} of {r}")}
                </h1>
            }
        }}
        <Loader what="the group">
            {move || Suspend::new(async move {
                let body = groups.await?;
                let g = group.get();
                let n = body.groups.len();
                let card = g
                    .parse::<usize>()
                    .ok()
                    .and_then(|g| body.groups.into_iter().find(|c| c.group == g))
                    .ok_or_else(|| api::ApiError::Status {
                        status: 404,
                        message: format!("group {g} does not exist: the run has {n} group(s)"),
                    })?;
                Ok::<_, api::ApiError>(view! { <GroupView run=run.get() card=card n=n/> })
            })}
        </Loader>
    }
}

#[component]
fn GroupView(run: String, card: GroupCard, n: usize) -> impl IntoView {
    let g = card.group;
    let navigate = use_navigate();
    let switch = {
        let run = run.clone();
        move |ev| {
            let to = event_target_value(&ev);
            navigate(
                &format!("/runs/{}/groups/{to}", seg(&run)),
                Default::default(),
            );
        }
    };
    view! {
        <p class="controls">
            <label for="group-select">"Group"</label>
            <select id="group-select" on:change=switch>
                {(0..n).map(|i| view! { <option value=i selected=i == g>{format!("Group {i}")}</option> }).collect_view()}
            </select>
            <span class="note">{format!(" {} users", card.size)}</span>
        </p>
        <section aria-labelledby="quality-h">
            <h2 id="quality-h">"Quality"</h2>
            <QualityTable own=card.own global=card.global/>
        </section>
        <div class="two">
            <section aria-labelledby="genres-h">
                <h2 id="genres-h">"Distinctive genres"</h2>
                <LiftTable id="genre-lifts" rows=card.categories.clone()/>
            </section>
            <section aria-labelledby="items-h">
                <h2 id="items-h">"Distinctive items"</h2>
                <LiftTable id="item-lifts" rows=card.items.clone()/>
            </section>
        </div>
        {(!card.promoted.is_empty()).then(|| view! {
            <div class="two">
                <section aria-labelledby="up-h">
                    <h2 id="up-h">"Its adapter ranks higher than the global model"</h2>
                    <ShiftTable id="promoted" rows=card.promoted.clone()/>
                </section>
                <section aria-labelledby="down-h">
                    <h2 id="down-h">"… and lower"</h2>
                    <ShiftTable id="demoted" rows=card.demoted.clone()/>
                </section>
            </div>
        })}
        <section aria-labelledby="members-h">
            <h2 id="members-h">"Members"</h2>
            <Members run=run g=g/>
        </section>
    }
}

#[component]
fn QualityTable(own: Split, global: Option<Split>) -> impl IntoView {
    let row = |label: &'static str, s: Split| {
        view! {
            <tr>
                <th scope="row">{label}</th>
                <td class="num">{m3(s.valid.hr20)}</td><td class="num">{m3(s.valid.ndcg20)}</td>
                <td class="num">{m3(s.test.hr10)}</td><td class="num">{m3(s.test.ndcg10)}</td>
                <td class="num">{m3(s.test.hr20)}</td><td class="num">{m3(s.test.ndcg20)}</td>
            </tr>
        }
    };
    view! {
        <table class="data" id="group-quality">
            <thead><tr>
                <th scope="col">"Model"</th>
                <th scope="col">"Valid HR@20"</th><th scope="col">"Valid NDCG@20"</th>
                <th scope="col">"Test HR@10"</th><th scope="col">"Test NDCG@10"</th>
                <th scope="col">"Test HR@20"</th><th scope="col">"Test NDCG@20"</th>
            </tr></thead>
            <tbody>
                {row("Their group's adapter", own)}
                {global.map(|g| row("Global model (stage 1)", g))}
            </tbody>
        </table>
        {global.map(|g| view! {
            <p class="note" id="gain">{format!(
                "Personalisation gain on test NDCG@20: {}", signed(own.test.ndcg20 - g.test.ndcg20)
            )}</p>
        })}
    }
}

#[component]
fn LiftTable(#[prop(into)] id: String, rows: Vec<Distinctive>) -> impl IntoView {
    view! {
        <table class="data" id=id>
            <thead><tr>
                <th scope="col">"Name"</th><th scope="col">"Interactions"</th>
                <th scope="col">"Share in group"</th><th scope="col">"Share overall"</th>
                <th scope="col">"Lift"</th>
            </tr></thead>
            <tbody>
                {rows.into_iter().map(|d| {
                    let name = d.item.as_ref().map(|i| i.title.clone()).or(d.category.clone()).unwrap_or_default();
                    view! {
                        <tr>
                            <th scope="row">{name}</th>
                            <td class="num">{d.count}</td>
                            <td class="num">{format!("{:.2}%", d.group_share * 100.0)}</td>
                            <td class="num">{format!("{:.2}%", d.catalogue_share * 100.0)}</td>
                            <td class="num">{format!("×{:.2}", d.lift)}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn ShiftTable(#[prop(into)] id: String, rows: Vec<Shift>) -> impl IntoView {
    view! {
        <table class="data" id=id>
            <thead><tr>
                <th scope="col">"Item"</th><th scope="col">"Rank with its adapter"</th>
                <th scope="col">"Rank with the global model"</th>
            </tr></thead>
            <tbody>
                {rows.into_iter().map(|s| view! {
                    <tr data-item-id=s.item.id>
                        <th scope="row">{s.item.title}</th>
                        <td class="num">{s.group_rank}</td>
                        <td class="num">{s.global_rank}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}

/// The group's users, a page at a time (`?page=` in the URL).
#[component]
fn Members(run: String, g: usize) -> impl IntoView {
    let page = query("page");
    let at = Memo::new(move |_| {
        page.get()
            .and_then(|p| p.parse::<usize>().ok())
            .unwrap_or(1)
            .max(1)
    });
    let r = run.clone();
    let users = LocalResource::new(move || {
        let (r, offset) = (r.clone(), (at.get() - 1) * PAGE);
        async move { api::users(&r, Some(g), offset, PAGE).await }
    });
    view! {
        <Loader what="the members">
            {let run = run.clone(); move || {
                let run = run.clone();
                Suspend::new(async move {
                    let p = users.await?;
                    let pages = p.total.div_ceil(PAGE).max(1);
                    let here = at.get();
                    let base = format!("/runs/{}/groups/{g}", seg(&run));
                    Ok::<_, api::ApiError>(view! {
                        <ul class="members" id="members">
                            {p.users.into_iter().map(|u| view! {
                                <li>
                                    <A href=format!("/runs/{}/users/{}", seg(&run), seg(&u.id))>{format!("User {}", u.id)}</A>
                                    <span class="note">{format!(" {} interactions", u.interactions)}</span>
                                </li>
                            }).collect_view()}
                        </ul>
                        <nav class="pager" aria-label="Member pages">
                            {(here > 1).then(|| view! { <A href=format!("{base}?page={}", here - 1)>"‹ Previous"</A> })}
                            <span>{format!(" Page {here} of {pages} ({} users) ", p.total)}</span>
                            {(here < pages).then(|| view! { <A href=format!("{base}?page={}", here + 1)>"Next ›"</A> })}
                        </nav>
                    })
                })
            }}
        </Loader>
    }
}
