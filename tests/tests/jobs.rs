//! Training jobs over HTTP: mutations need the bearer token, bad requests are refused with the
//! status that names the problem, a job is followed over Server-Sent Events from queued to
//! finished and its run is then served, a cancelled job's run resumes with a new job, and jobs
//! a stopped server left queued or running are interrupted when a server starts on the root.

use std::time::{Duration, Instant};

use e2e::{ID_ONLY, TOKEN, server};
use serde_json::{Value, json};
use shared::api::{Job, JobEvent, JobStatus, Recommendations, RunStatus, RunSummary};

fn dist() -> std::path::PathBuf {
    e2e::stand_in_dist("jobs", "<html></html>")
}

fn url(path: &str) -> String {
    server(dist()).url(path)
}

async fn submit(body: Value, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(url("/api/jobs")).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// The tests that queue training jobs run one after the other (one worker serves them all).
async fn serialised() -> tokio::sync::MutexGuard<'static, ()> {
    static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    ONE.lock().await
}

async fn job(id: u64) -> Job {
    reqwest::get(url(&format!("/api/jobs/{id}")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn runs() -> Vec<RunSummary> {
    reqwest::get(url("/api/runs"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The events of job `id` from its SSE stream, until the stream ends or `until` accepts one.
async fn events(id: u64, until: impl Fn(&JobEvent) -> bool) -> Vec<JobEvent> {
    let mut resp = reqwest::get(url(&format!("/api/jobs/{id}/events")))
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let deadline = Instant::now() + Duration::from_secs(300);
    let (mut buffer, mut out) = (String::new(), Vec::new());
    while let Some(chunk) = tokio::time::timeout_at(deadline.into(), resp.chunk())
        .await
        .expect("the job's events stopped coming")
        .unwrap()
    {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let mut name = None;
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(n) = line.strip_prefix("event:") {
                    name = Some(n.trim().to_string());
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            let Some(name) = name else { continue }; // keep-alive comments
            let event: JobEvent = serde_json::from_str(&data).unwrap();
            assert_eq!(event.name(), name, "the SSE event name is the event's kind");
            let stop = until(&event);
            out.push(event);
            if stop {
                return out;
            }
        }
    }
    out
}

#[tokio::test]
async fn mutations_need_the_bearer_token() {
    let body = json!({ "run": "no-token", "dataset": "ml-100k" });
    let (status, err) = submit(body.clone(), None).await;
    assert_eq!(status, 401, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer")
    );
    let (status, _) = submit(body, Some("wrong")).await;
    assert_eq!(status, 401);
    let resp = reqwest::Client::new()
        .delete(url("/api/jobs/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    assert!(
        runs().await.iter().all(|r| r.name != "no-token"),
        "nothing was queued"
    );
}

#[tokio::test]
async fn bad_jobs_are_refused_with_the_reason() {
    let t = Some(TOKEN);
    for (body, status, want) in [
        (
            json!({ "run": "../escape", "dataset": "ml-100k" }),
            422,
            "run name",
        ),
        (
            json!({ "run": "x", "dataset": "../ml-100k" }),
            422,
            "dataset name",
        ),
        (
            json!({ "run": "x", "dataset": "no-such-data" }),
            422,
            "no-such-data",
        ),
        (
            json!({ "run": "x", "dataset": "ml-100k", "config": { "epoch": 3 } }),
            422,
            "\"epoch\"",
        ),
        (
            json!({ "run": "x", "dataset": "ml-100k", "config": { "cache_dir": "/tmp" } }),
            422,
            "set by the server",
        ),
        (
            json!({ "run": "x", "dataset": "ml-100k", "config": { "epochs": 0 } }),
            422,
            "epochs must be",
        ),
        (
            json!({ "run": "x", "dataset": "ml-100k", "config": { "epochs": "many" } }),
            422,
            "",
        ),
        (
            json!({ "run": ID_ONLY, "dataset": "ml-100k" }),
            409,
            "exists",
        ),
        (
            json!({ "run": "never-trained", "dataset": "ml-100k", "resume": true }),
            404,
            "to resume",
        ),
        (json!({ "dataset": "ml-100k" }), 422, "run"),
        (
            json!({ "run": "x", "dataset": "ml-100k", "config": { "preset": "best" } }),
            422,
            "preset must be",
        ),
        (
            json!({ "run": ID_ONLY, "dataset": "ml-100k", "config": { "preset": "reference" }, "resume": true }),
            422,
            "\"preset\"",
        ),
    ] {
        let (s, v) = submit(body.clone(), t).await;
        assert_eq!(s, status, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(want), "{body}: {v}");
    }
    let resp = reqwest::Client::new()
        .post(url("/api/jobs"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let huge = json!({ "run": "x", "dataset": "ml-100k", "config": { "pad": "x".repeat(70_000) } });
    assert_eq!(submit(huge, Some(TOKEN)).await.0, 413);
}

/// One job occupies the worker; the next one is seen queued, then running, its progress
/// (stage, step, loss, ETA) and each epoch, then finished; a third, still queued, is cancelled
/// and never runs.
#[tokio::test]
async fn a_job_is_followed_from_queued_to_finished_and_its_run_served() {
    let _one = serialised().await;
    let blocker = json!({ "run": "job-blocker", "dataset": "ml-100k", "config": { "preset": "reference", "epochs": 12 } });
    let (status, b) = submit(blocker, Some(TOKEN)).await;
    assert_eq!(status, 201, "{b}");
    let blocker = serde_json::from_value::<Job>(b).unwrap().id;
    let body = json!({ "run": "job-sse", "dataset": "ml-100k", "config": { "preset": "reference", "epochs": 3, "seed": 7 } });
    let (status, queued) = submit(body.clone(), Some(TOKEN)).await;
    assert_eq!(status, 201, "{queued}");
    let queued: Job = serde_json::from_value(queued).unwrap();
    assert_eq!(queued.status, JobStatus::Queued);
    assert_eq!(queued.config["epochs"], json!(3));
    // the reference preset: the last window, BCE, batch 16
    assert_eq!(
        (
            &queued.config["windows"],
            &queued.config["loss"],
            &queued.config["batch_size"]
        ),
        (&json!("last"), &json!("bce"), &json!(16))
    );
    // the same run cannot be queued twice
    let (status, err) = submit(body, Some(TOKEN)).await;
    assert_eq!(status, 409, "{err}");
    let doomed = json!({ "run": "job-never", "dataset": "ml-100k" });
    let (_, d) = submit(doomed, Some(TOKEN)).await;
    let doomed: Job = serde_json::from_value(d).unwrap();
    // no preset: the recommended one, as `perpeft train`
    assert_eq!(
        (
            &doomed.config["windows"],
            &doomed.config["loss"],
            &doomed.config["mode"]
        ),
        (&json!("all"), &json!("ce"), &json!("standard"))
    );
    let doomed = doomed.id;
    // cancelled while still queued (the blocker runs): it never starts
    let resp = reqwest::Client::new()
        .delete(url(&format!("/api/jobs/{doomed}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let cancelled: Job = resp.json().await.unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);

    let seen = events(queued.id, |_| false).await;
    let statuses: Vec<JobStatus> = seen
        .iter()
        .filter_map(|e| match e {
            JobEvent::Status { status, .. } => Some(*status),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        [JobStatus::Queued, JobStatus::Running, JobStatus::Finished],
        "{seen:?}"
    );
    let epochs: Vec<usize> = seen
        .iter()
        .filter_map(|e| match e {
            JobEvent::Epoch(p) => Some(p.epoch),
            _ => None,
        })
        .collect();
    assert_eq!(epochs, [1, 2, 3]);
    let progress: Vec<&shared::api::Progress> = seen
        .iter()
        .filter_map(|e| match e {
            JobEvent::Progress(p) => Some(p),
            _ => None,
        })
        .collect();
    assert!(!progress.is_empty(), "progress is reported");
    for p in &progress {
        assert_eq!((p.stage.as_str(), p.last_epoch), ("training", 3));
        assert!(p.step >= 1 && p.step <= p.steps && p.loss.is_finite() && p.loss > 0.0);
        assert!(p.eta_seconds.is_some_and(|s| s >= 0.0));
    }
    // the epoch events carry the metrics the registry records
    let done = job(queued.id).await;
    assert_eq!((done.status, done.epochs.len()), (JobStatus::Finished, 3));
    let recorded: Vec<shared::api::EpochPoint> = seen
        .iter()
        .filter_map(|e| match e {
            JobEvent::Epoch(p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(recorded, done.epochs);
    let run = runs()
        .await
        .into_iter()
        .find(|r| r.name == "job-sse")
        .unwrap();
    assert_eq!((run.status, run.epochs_done), (RunStatus::Finished, 3));
    let recs: Recommendations =
        reqwest::get(url("/api/runs/job-sse/users/196/recommendations?k=5"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(recs.items.len(), 5);
    // the blocker was done before job-sse ran; job-never, cancelled while queued, never ran
    assert_eq!(job(blocker).await.status, JobStatus::Finished);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(job(doomed).await.status, JobStatus::Cancelled);
    assert!(runs().await.iter().all(|r| r.name != "job-never"));
    // an ended job cannot be cancelled
    let resp = reqwest::Client::new()
        .delete(url(&format!("/api/jobs/{}", queued.id)))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 409);
}

#[tokio::test]
async fn a_cancelled_jobs_run_resumes_with_a_new_job() {
    let _one = serialised().await;
    let body = json!({ "run": "job-cancel", "dataset": "ml-100k", "config": { "preset": "reference", "epochs": 40 } });
    let (status, j) = submit(body, Some(TOKEN)).await;
    assert_eq!(status, 201, "{j}");
    let id = serde_json::from_value::<Job>(j).unwrap().id;
    // once an epoch is recorded, cancel
    events(id, |e| matches!(e, JobEvent::Epoch(_))).await;
    let resp = reqwest::Client::new()
        .delete(url(&format!("/api/jobs/{id}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let end = events(id, |_| false).await;
    assert!(
        matches!(
            end.last(),
            Some(JobEvent::Status {
                status: JobStatus::Cancelled,
                ..
            })
        ),
        "{end:?}"
    );
    let run = runs()
        .await
        .into_iter()
        .find(|r| r.name == "job-cancel")
        .unwrap();
    assert_eq!(run.status, RunStatus::Interrupted);
    assert!(run.epochs_done >= 1 && run.epochs_done < 40, "{run:?}");
    // not served while unfinished
    let resp = reqwest::get(url("/api/runs/job-cancel/groups"))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 409);

    // a resumed run keeps its configuration: only the epochs may change
    let other = json!({ "run": "job-cancel", "dataset": "ml-100k", "config": { "lr": 0.1 }, "resume": true });
    let (status, err) = submit(other, Some(TOKEN)).await;
    assert_eq!(status, 422, "{err}");
    assert!(err["error"].as_str().unwrap().contains("only \"epochs\""));
    let body = json!({ "run": "job-cancel", "dataset": "ml-100k", "resume": true });
    let (status, j) = submit(body, Some(TOKEN)).await;
    assert_eq!(status, 201, "{j}");
    let resumed = serde_json::from_value::<Job>(j).unwrap().id;
    events(resumed, |_| false).await;
    let done = job(resumed).await;
    assert_eq!(done.status, JobStatus::Finished);
    assert_eq!(
        done.epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(),
        (1..=40).collect::<Vec<_>>()
    );
    let run = runs()
        .await
        .into_iter()
        .find(|r| r.name == "job-cancel")
        .unwrap();
    assert_eq!((run.status, run.epochs_done), (RunStatus::Finished, 40));
}

/// The registry is the truth: jobs a stopped server left queued or running are interrupted
/// when a server starts on that runs root.
#[test]
fn a_server_starting_marks_its_predecessors_jobs_interrupted() {
    use perpeft::catalog::{Catalog, DataSource};
    use perpeft::jobs::{JobSettings, Jobs};
    use perpeft::store::Registry;
    let root = std::env::temp_dir().join(format!("perpeft-jobs-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let registry = Registry::open(&root).unwrap();
    let running = registry.create_job("a", "ml-100k", "{}", false).unwrap();
    registry
        .set_job_status(running, JobStatus::Running, None)
        .unwrap();
    let queued = registry.create_job("b", "ml-100k", "{}", false).unwrap();
    let finished = registry.create_job("c", "ml-100k", "{}", false).unwrap();
    registry
        .set_job_status(finished, JobStatus::Finished, None)
        .unwrap();
    let resolved = perpeft::device::DeviceChoice::Flex.resolve().unwrap();
    let data = DataSource {
        dir: e2e::data_dir(),
        format: perpeft::data::Format::Recbole,
    };
    let catalog = std::sync::Arc::new(Catalog::new(&root, data, resolved.device.clone()));
    let settings = JobSettings {
        device: resolved,
        weights_dir: root.join("weights"),
        cache_dir: root.join("cache"),
        clip_dir: None,
    };
    let jobs = Jobs::start(catalog, settings).unwrap();
    let status = |id: i64| jobs.get(id as u64).unwrap().status;
    assert_eq!(status(running), JobStatus::Interrupted);
    assert_eq!(status(queued), JobStatus::Interrupted);
    assert_eq!(status(finished), JobStatus::Finished);
    jobs.stop();
    std::fs::remove_dir_all(&root).unwrap();
}

/// Training yields the CPU to requests: the job worker and its training pool run under
/// `SCHED_IDLE` (policy 5) and at a lower niceness, the threads that serve requests under the
/// normal policy (Linux: read from /proc).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn training_threads_run_below_the_serving_threads() {
    let _ = url("/");
    let want = perpeft::jobs::TRAINING_NICENESS;
    // the worker and its pool lower their priority as they start: give them the time to
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let threads = loop {
        let threads = threads_and_niceness();
        let lowered = threads
            .iter()
            .filter(|(n, nice, policy)| n.starts_with("perpeft-") && *nice == want && *policy == 5)
            .count();
        if lowered >= 2 || std::time::Instant::now() > deadline {
            break threads;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let training: Vec<_> = threads
        .iter()
        .filter(|(n, _, _)| n == "perpeft-jobs" || n.starts_with("perpeft-train-"))
        .collect();
    assert!(
        training.iter().any(|(n, _, _)| n == "perpeft-jobs")
            && training
                .iter()
                .any(|(n, _, _)| n.starts_with("perpeft-train-")),
        "{threads:?}"
    );
    assert!(
        training
            .iter()
            .all(|(_, nice, policy)| *nice == want && *policy == 5),
        "{threads:?}"
    );
    let serving: Vec<_> = threads
        .iter()
        .filter(|(n, _, _)| n.starts_with("tokio-rt") || n.starts_with("tokio-runtime"))
        .collect();
    assert!(!serving.is_empty(), "{threads:?}");
    assert!(
        serving
            .iter()
            .all(|(_, nice, policy)| *nice == 0 && *policy == 0),
        "{threads:?}"
    );
}

/// Every thread of this process (the test server runs in it): its name, niceness and
/// scheduling policy.
#[cfg(target_os = "linux")]
fn threads_and_niceness() -> Vec<(String, i32, u32)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("stat")),
        ) else {
            continue;
        };
        // the fields after the command's closing parenthesis start at field 3; niceness is
        // field 19, the scheduling policy 41
        let after: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        let nice: i32 = after[19 - 3].parse().unwrap();
        let policy: u32 = after[41 - 3].parse().unwrap();
        threads.push((comm.trim().to_string(), nice, policy));
    }
    threads
}
