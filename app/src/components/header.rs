//! The banner: product name, the run picker and the chosen run's held-out quality.

use leptos::prelude::*;
use shared::api::{RunStatus, RunSummary};

use crate::api;

/// Title bar; sets `run` to the first finished run, then to the one picked.
#[component]
pub fn Header(run: RwSignal<Option<String>>) -> impl IntoView {
    let runs = LocalResource::new(api::runs);
    view! {
        <header class="banner">
            <h1>"PerPEFT Studio"</h1>
            <Suspense fallback=|| view! { <span class="model">"loading runs…"</span> }>
                {move || Suspend::new(async move {
                    match runs.await {
                        Ok(all) => {
                            let finished: Vec<RunSummary> = all
                                .into_iter()
                                .filter(|r| r.status == RunStatus::Finished)
                                .collect();
                            if run.get_untracked().is_none() {
                                run.set(finished.first().map(|r| r.name.clone()));
                            }
                            let summary = {
                                let finished = finished.clone();
                                move || {
                                    let name = run.get();
                                    finished
                                        .iter()
                                        .find(|r| Some(&r.name) == name.as_ref())
                                        .map(describe)
                                        .unwrap_or_default()
                                }
                            };
                            view! {
                                <select id="run-select"
                                    on:change=move |ev| run.set(Some(event_target_value(&ev)))>
                                    {finished.iter().map(|r| {
                                        let name = r.name.clone();
                                        let chosen = run.get_untracked().as_ref() == Some(&name);
                                        view! { <option value=name.clone() selected=chosen>{name.clone()}</option> }
                                    }).collect_view()}
                                </select>
                                <span class="model" id="model-info">{summary}</span>
                            }.into_any()
                        }
                        Err(e) => view! { <span class="error">{e}</span> }.into_any(),
                    }
                })}
            </Suspense>
        </header>
    }
}

fn describe(r: &RunSummary) -> String {
    let test = r.test.unwrap_or_default();
    format!(
        "{} · {} (trained on {}, epoch {} of {}) · test HR@10 {:.3} · NDCG@10 {:.3}",
        r.dataset,
        r.method,
        r.device,
        r.best_epoch.unwrap_or(0),
        r.epochs,
        test.hr10,
        test.ndcg10
    )
}
