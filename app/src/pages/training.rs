//! Training: start a job from a form (the API token is asked for and kept for the browser
//! session), the jobs of the server, and one job live (`?job=`): a progress bar with the stage,
//! epoch, step, running loss and time left, the loss and validation curves growing as epochs
//! end (Server-Sent Events), and cancel. A finished job's run opens from here and appears on
//! the Runs page.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;
use serde_json::json;
use shared::api::{EpochPoint, Job, JobEvent, JobRequest, JobStatus, Progress};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use super::{every, query, set_title};
use crate::api::{self, seg};
use crate::components::chart::EChart;
use crate::components::metrics::{duration, m3};
use crate::components::plots;

const TOKEN_KEY: &str = "perpeft-token";

fn session() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok()?
}

fn stored_token() -> String {
    session()
        .and_then(|s| s.get_item(TOKEN_KEY).ok()?)
        .unwrap_or_default()
}

fn store_token(t: &str) {
    if let Some(s) = session() {
        let _ = s.set_item(TOKEN_KEY, t);
    }
}

/// `/training`.
#[component]
pub fn TrainingPage() -> impl IntoView {
    set_title("Training");
    let token = RwSignal::new(stored_token());
    let tick = every(3);
    let fetched = LocalResource::new(move || {
        tick.get();
        api::jobs()
    });
    // redrawn only when the list changes, not on every poll
    let jobs = Memo::new(move |_| fetched.get());
    let job = query("job");
    view! {
        <h1>"Training"</h1>
        <p class="lead">
            "Jobs run one at a time on the server's device; each becomes a run when it finishes. "
            "Starting and cancelling need the API token the server printed when it started "
            "(the file runs/api-token)."
        </p>
        <div class="two">
            <section aria-labelledby="form-h">
                <h2 id="form-h">"Start a job"</h2>
                <JobForm token/>
            </section>
            <section aria-labelledby="jobs-h">
                <h2 id="jobs-h">"Jobs"</h2>
                {move || match jobs.get() {
                    None => view! { <p class="loading" role="status">"Loading the jobs…"</p> }.into_any(),
                    Some(Err(e)) => view! { <div class="error" role="alert"><p>{e.to_string()}</p></div> }.into_any(),
                    Some(Ok(all)) => view! {
                            <ul id="jobs" class="jobs">
                                {all.into_iter().rev().map(|j| view! {
                                    <li data-job=j.id data-status=j.status.name()>
                                        <A href=format!("/training?job={}", j.id)>{format!("Job {} · {}", j.id, j.run)}</A>
                                        <span class=format!("status {}", j.status.name())>{format!(" {}", j.status.name())}</span>
                                    </li>
                                }).collect_view()}
                            </ul>
                    }.into_any(),
                }}
            </section>
        </div>
        {move || job.get().and_then(|j| j.parse::<u64>().ok()).map(|id| view! { <JobLive id token tick/> })}
    }
}

#[component]
fn JobForm(token: RwSignal<String>) -> impl IntoView {
    let datasets = LocalResource::new(api::datasets);
    let name = RwSignal::new(String::new());
    let dataset = RwSignal::new("ml-100k".to_string());
    let method = RwSignal::new("perpeft".to_string());
    let adapter = RwSignal::new("iisan".to_string());
    let epochs = RwSignal::new("20".to_string());
    let global_epochs = RwSignal::new("10".to_string());
    let groups = RwSignal::new("8".to_string());
    let seed = RwSignal::new("42".to_string());
    let preset = RwSignal::new("recommended".to_string());
    let message = RwSignal::new(None::<(bool, String)>);
    let busy = RwSignal::new(false);
    let navigate = use_navigate();
    let peft = move || matches!(method.get().as_str(), "global-peft" | "perpeft");
    let perpeft = move || method.get() == "perpeft";
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let t = token.get();
        if t.trim().is_empty() {
            message.set(Some((false, "Enter the API token first: the server printed where it is when it started (runs/api-token).".into())));
            return;
        }
        store_token(&t);
        let num = |s: RwSignal<String>, what: &str| {
            s.get()
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("{what} must be a whole number"))
        };
        let config = (|| -> Result<serde_json::Value, String> {
            let mut c = json!({
                "preset": preset.get(),
                "method": method.get(),
                "epochs": num(epochs, "Epochs")?,
                "seed": num(seed, "Seed")?,
            });
            if peft() {
                c["peft.kind"] = json!(adapter.get());
            }
            if perpeft() {
                c["groups"] = json!(num(groups, "Groups")?);
                c["global_epochs"] = json!(num(global_epochs, "Global epochs")?);
            }
            Ok(c)
        })();
        let config = match config {
            Ok(c) => c,
            Err(e) => return message.set(Some((false, e))),
        };
        let req = JobRequest {
            run: name.get().trim().to_string(),
            dataset: dataset.get(),
            config,
            resume: false,
        };
        let navigate = navigate.clone();
        busy.set(true);
        leptos::task::spawn_local(async move {
            match api::submit_job(&req, &t).await {
                Ok(job) => {
                    message.set(Some((
                        true,
                        format!("Job {} queued: run {}.", job.id, job.run),
                    )));
                    navigate(&format!("/training?job={}", job.id), Default::default());
                }
                Err(e) => message.set(Some((false, e.to_string()))),
            }
            busy.set(false);
        });
    };
    view! {
        <form id="job-form" class="form" on:submit=submit>
            <label for="job-token">"API token"</label>
            <input id="job-token" type="password" autocomplete="off" bind:value=token
                placeholder="from runs/api-token"/>
            <label for="job-run">"Run name"</label>
            <input id="job-run" type="text" required bind:value=name placeholder="letters, digits, . _ -"/>
            <label for="job-dataset">"Dataset"</label>
            <select id="job-dataset" on:change=move |ev| dataset.set(event_target_value(&ev))>
                <Transition fallback=|| view! { <option value="ml-100k">"ml-100k"</option> }>
                    {move || Suspend::new(async move {
                        let list = match datasets.await {
                            Ok(list) if list.is_empty() => {
                                message.set(Some((false, "The server has no dataset to train on.".into())));
                                list
                            }
                            Ok(list) => list,
                            Err(e) => {
                                message.set(Some((false, format!("Could not list the datasets: {e}"))));
                                Vec::new()
                            }
                        };
                        // what the select shows is what a submit sends
                        if !list.iter().any(|d| d.name == dataset.get_untracked())
                            && let Some(first) = list.first()
                        {
                            dataset.set(first.name.clone());
                        }
                        list.into_iter().map(|d| {
                            let sel = d.name == dataset.get_untracked();
                            view! { <option value=d.name.clone() selected=sel>{d.name.clone()}</option> }
                        }).collect_view()
                    })}
                </Transition>
            </select>
            <label for="job-preset">"Recipe"</label>
            <select id="job-preset" on:change=move |ev| preset.set(event_target_value(&ev))>
                <option value="recommended" selected=true>"Recommended (all of each history, softmax, early stopping)"</option>
                <option value="reference">"PerPEFT reference (last window, BCE, batch 16)"</option>
            </select>
            <label for="job-method">"Method"</label>
            <select id="job-method" on:change=move |ev| method.set(event_target_value(&ev))>
                <option value="id-only">"ID-only SASRec"</option>
                <option value="frozen">"Frozen backbone"</option>
                <option value="global-peft">"Global PEFT"</option>
                <option value="perpeft" selected=true>"PerPEFT (one adapter per group)"</option>
            </select>
            <label for="job-adapter">"Adapter"</label>
            <select id="job-adapter" disabled=move || !peft() on:change=move |ev| adapter.set(event_target_value(&ev))>
                <option value="lora">"LoRA"</option>
                <option value="ia3">"(IA)³"</option>
                <option value="iisan" selected=true>"IISAN"</option>
            </select>
            <label for="job-epochs">{move || if perpeft() { "Per-group epochs" } else { "Epochs" }}</label>
            <input id="job-epochs" type="number" min="1" bind:value=epochs/>
            <label for="job-global-epochs">"Global epochs"</label>
            <input id="job-global-epochs" type="number" min="1" disabled=move || !perpeft() bind:value=global_epochs/>
            <label for="job-groups">"Groups"</label>
            <input id="job-groups" type="number" min="1" disabled=move || !perpeft() bind:value=groups/>
            <label for="job-seed">"Seed"</label>
            <input id="job-seed" type="number" min="0" bind:value=seed/>
            <button type="submit" id="job-submit" disabled=move || busy.get()>"Start training"</button>
            {move || message.get().map(|(ok, m)| view! {
                <p id="job-message" class=if ok { "ok" } else { "error" } role=if ok { "status" } else { "alert" }>{m}</p>
            })}
        </form>
    }
}

/// `new` epochs into `have`, one per epoch number (the later wins), in epoch order.
fn merge(have: &mut Vec<EpochPoint>, new: Vec<EpochPoint>) {
    for p in new {
        match have.iter_mut().find(|x| x.epoch == p.epoch) {
            Some(x) => *x = p,
            None => have.push(p),
        }
    }
    have.sort_by_key(|p| p.epoch);
}

/// Job `id`, live: its status, progress and epochs, from its Server-Sent Events.
#[component]
fn JobLive(
    id: u64,
    token: RwSignal<String>,
    /// Bumped when the job's status changes, so the job list follows at once.
    tick: RwSignal<u32>,
) -> impl IntoView {
    let job = RwSignal::new(None::<Job>);
    let status = RwSignal::new(None::<JobStatus>);
    let error = RwSignal::new(None::<String>);
    let progress = RwSignal::new(None::<Progress>);
    let epochs = RwSignal::new(Vec::<EpochPoint>::new());
    let failure = RwSignal::new(None::<String>);
    leptos::task::spawn_local(async move {
        match api::job(id).await {
            Ok(j) => {
                epochs.update(|e| merge(e, j.epochs.clone()));
                // the events may have overtaken this answer: it only fills in what they have
                // not said, or ends the job
                if status.get_untracked().is_none() || !j.status.is_live() {
                    if j.status.is_live() {
                        progress.set(j.progress.clone());
                    }
                    status.set(Some(j.status));
                    error.set(j.error.clone());
                }
                job.set(Some(j));
            }
            Err(e) => failure.set(Some(e.to_string())),
        }
    });
    let source = StoredValue::new_local(
        None::<(
            web_sys::EventSource,
            Closure<dyn Fn(web_sys::MessageEvent)>,
            Closure<dyn Fn(web_sys::Event)>,
        )>,
    );
    // shown while the stream is lost; the browser reconnects by itself unless it gave up
    let stream = RwSignal::new(None::<&'static str>);
    match web_sys::EventSource::new(&format!("/api/jobs/{id}/events")) {
        Err(_) => failure.set(Some(
            "This browser could not open the job's live updates.".into(),
        )),
        Ok(es) => {
            let es2 = es.clone();
            let on_event =
                Closure::<dyn Fn(web_sys::MessageEvent)>::new(move |ev: web_sys::MessageEvent| {
                    stream.set(None);
                    let Some(text) = ev.data().as_string() else {
                        return;
                    };
                    match serde_json::from_str::<JobEvent>(&text) {
                        Ok(JobEvent::Status {
                            status: s,
                            error: e,
                        }) => {
                            status.set(Some(s));
                            tick.update(|t| *t += 1);
                            error.set(e);
                            if !s.is_live() {
                                progress.set(None);
                                es2.close();
                            }
                            // the registry is the truth: epochs recorded before the stream opened (or
                            // while it reconnected) come from it
                            leptos::task::spawn_local(async move {
                                if let Ok(j) = api::job(id).await {
                                    epochs.update(|e| merge(e, j.epochs));
                                }
                            });
                        }
                        Ok(JobEvent::Progress(p)) => progress.set(Some(p)),
                        Ok(JobEvent::Epoch(p)) => epochs.update(|e| merge(e, vec![p])),
                        Err(e) => leptos::logging::error!("job event {text}: {e}"),
                    }
                });
            for kind in ["status", "progress", "epoch"] {
                let _ =
                    es.add_event_listener_with_callback(kind, on_event.as_ref().unchecked_ref());
            }
            let es3 = es.clone();
            let on_error = Closure::<dyn Fn(web_sys::Event)>::new(move |_: web_sys::Event| {
                if status.get_untracked().is_some_and(|s| !s.is_live()) {
                    return;
                }
                stream.set(Some(if es3.ready_state() == web_sys::EventSource::CLOSED {
                    "Live updates stopped: reload the page to follow the job again."
                } else {
                    "Live updates lost: reconnecting…"
                }));
            });
            let _ = es.add_event_listener_with_callback("error", on_error.as_ref().unchecked_ref());
            source.set_value(Some((es, on_event, on_error)));
        }
    }
    on_cleanup(move || {
        source.try_update_value(|s| {
            if let Some((es, _, _)) = s.take() {
                es.close();
            }
        });
    });
    let cancel = move |_| {
        let t = token.get();
        if t.trim().is_empty() {
            failure.set(Some(
                "Enter the API token in the form to cancel a job.".into(),
            ));
            return;
        }
        leptos::task::spawn_local(async move {
            if let Err(e) = api::cancel_job(id, &t).await {
                failure.set(Some(e.to_string()));
            }
        });
    };
    let fraction = move || match (status.get(), progress.get()) {
        (Some(JobStatus::Finished), _) => Some(1.0),
        (_, Some(p)) if p.steps > 0 => Some(p.step as f64 / p.steps as f64),
        _ => None,
    };
    view! {
        <section aria-labelledby="live-h" class="live" id="job-live" data-job=id
            data-status=move || status.get().map(JobStatus::name).unwrap_or("loading")>
            <h2 id="live-h">{move || match job.get() {
                Some(j) => format!("Job {id}: run {} on {}", j.run, j.dataset),
                None => format!("Job {id}"),
            }}</h2>
            {move || failure.get().map(|f| view! { <p class="error" role="alert">{f}</p> })}
            {move || stream.get().map(|m| view! { <p class="error" id="job-stream" role="alert">{m}</p> })}
            <p class="status-line" aria-live="polite">
                <span id="job-status">{move || status.get().map(JobStatus::name).unwrap_or("loading")}</span>
                {move || error.get().map(|e| format!(": {e}"))}
            </p>
            <label for="job-progress">"Progress of the stage"</label>
            <progress id="job-progress" max="1" value=move || fraction().unwrap_or(0.0).to_string()
                data-step=move || progress.get().map(|p| p.step.to_string()).unwrap_or_default()></progress>
            <p id="job-progress-text">{move || progress.get().map(|p| format!(
                "{} · epoch {} of {} · step {} of {} · running loss {:.4}{}",
                p.stage, p.epoch, p.last_epoch, p.step, p.steps, p.loss,
                p.eta_seconds.map(|s| format!(" · about {} left", duration(s))).unwrap_or_default()
            ))}</p>
            <p class="actions">
                {move || status.get().filter(|s| s.is_live()).map(|_| view! {
                    <button id="job-cancel" on:click=cancel>"Cancel job"</button>
                })}
                {move || (status.get() == Some(JobStatus::Finished)).then(|| job.get().map(|j| view! {
                    <A href=format!("/runs/{}", seg(&j.run)) attr:id="job-run-link">{format!("Open run {}", j.run)}</A>
                })).flatten()}
            </p>
            <p id="job-epoch-count" data-epochs=move || epochs.with(|e| e.len())>
                {move || epochs.with(|e| e.last().map(|p| format!(
                    "{} epochs evaluated; last: loss {:.4}, validation NDCG@20 {}", e.len(), p.loss, m3(p.valid.ndcg20)
                )).unwrap_or_else(|| "No epoch evaluated yet.".into()))}
            </p>
            <EChart id="job-curves" height=300
                label="Training loss and validation metrics of the job's epochs so far"
                chart=Signal::derive(move || plots::curves(&epochs.get(), "Epochs so far"))/>
        </section>
    }
}
