//! Training from the form: the token prompt, a job followed live to a finished run (the
//! progress bar seen moving with its stage, loss and time left, the curves growing while the
//! job runs), the run on the Runs page, and a cancel. On a server of its own, so its runs do
//! not change what the other tests see.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use e2e::{TOKEN, TestServer, dist_dir, serve_root};
use shared::api::{Job, JobStatus, RunStatus, RunSummary};

use crate::harness::Page;

/// A server on an empty runs root (datasets as the shared one's).
fn own_server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let scratch =
            std::env::temp_dir().join(format!("perpeft-e2e-training-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(scratch.join("runs")).unwrap();
        serve_root(scratch.join("runs"), &scratch.join("cache"), dist_dir())
    })
}

/// Fills the form for an ID-only run of `epochs` on ml-100k and submits it.
async fn submit(p: &Page, run: &str, epochs: usize) {
    p.type_into("#job-run", run).await;
    p.select("#job-dataset", "ml-100k").await;
    p.select("#job-preset", "reference").await;
    p.select("#job-method", "id-only").await;
    p.type_into("#job-epochs", &epochs.to_string()).await;
    p.type_into("#job-seed", "7").await;
    p.click("#job-submit").await;
}

/// The job's id, once the page shows it live.
async fn live_job(p: &Page) -> u64 {
    p.until("the job's live view", async || {
        p.c.find(fantoccini::Locator::Css("#job-live"))
            .await
            .ok()?
            .attr("data-job")
            .await
            .ok()??
            .parse()
            .ok()
    })
    .await
}

#[tokio::test]
async fn a_job_started_from_the_form_is_followed_to_a_finished_run() {
    let p = Page::open_on(own_server()).await;
    p.goto("/training").await;
    // adapter and group fields only apply to the methods that have them
    p.select("#job-preset", "reference").await;
    p.select("#job-method", "id-only").await;
    assert_eq!(
        p.attr("#job-adapter", "disabled").await.as_deref(),
        Some("true")
    );
    assert_eq!(
        p.attr("#job-groups", "disabled").await.as_deref(),
        Some("true")
    );

    // without the token: the form asks for it and nothing is queued
    submit(&p, "e2e-form-run", 30).await;
    p.wait_text("#job-message", "API token").await;
    let jobs: Vec<Job> = p.api("/api/jobs").await;
    assert!(jobs.iter().all(|j| j.run != "e2e-form-run"));

    // with it: queued, followed live
    p.type_into("#job-token", TOKEN).await;
    p.click("#job-submit").await;
    let id = live_job(&p).await;
    p.wait_path(&format!("/training?job={id}")).await;
    // while it runs: the bar's values, the epochs on the curves, what the progress line said
    let (mut bar, mut curve_sizes, mut lines) = (BTreeSet::new(), BTreeSet::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let status = p.text("#job-status").await;
        if status == "running" {
            // only once a progress event has arrived (the bar starts at 0 without one)
            if p.attr("#job-progress", "data-step")
                .await
                .is_some_and(|s| !s.is_empty())
                && let Some(v) = p.attr("#job-progress", "value").await
            {
                bar.insert(v);
                // (empty if the job ended between the two reads)
                let line = p.text("#job-progress-text").await;
                if !line.is_empty() {
                    lines.push(line);
                }
            }
            if let Some(n) = p.attr("#job-epoch-count", "data-epochs").await {
                curve_sizes.insert(n.parse::<usize>().unwrap());
            }
        }
        if status == "finished" {
            break;
        }
        assert!(
            !["failed", "cancelled", "interrupted"].contains(&status.as_str()),
            "the job ended {status}"
        );
        assert!(Instant::now() < deadline, "the job did not finish in 300 s");
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    assert!(
        bar.len() >= 2,
        "the progress bar did not move while the job ran: {bar:?}"
    );
    // the curves grew from the epochs' events, before the job ended
    assert!(
        curve_sizes.iter().filter(|&&n| n > 0 && n < 30).count() >= 2,
        "the curves did not grow while the job ran: {curve_sizes:?}"
    );
    let line = lines
        .last()
        .expect("no progress line seen while the job ran");
    assert!(
        line.starts_with("training · epoch ")
            && line.contains(" of 30 · step ")
            && line.contains("running loss "),
        "{line}"
    );
    assert!(
        lines.iter().any(|l| l.ends_with(" left")),
        "no time left was shown: {lines:?}"
    );
    let job: Job = p.api(&format!("/api/jobs/{id}")).await;
    assert_eq!(job.status, JobStatus::Finished);
    p.wait_text("#job-epoch-count", "30 epochs evaluated").await;
    p.find("#job-curves canvas").await;
    p.check_accessible().await;
    p.screenshot("training").await;

    // the run opens from the job, and it is on the Runs page, finished
    p.click("#job-run-link").await;
    p.wait_path("/runs/e2e-form-run").await;
    p.wait_text("#run-summary", "id-only on ml-100k, seed 7")
        .await;
    p.goto("/").await;
    p.wait_text("#runs tr[data-run='e2e-form-run']", "finished")
        .await;
    let runs: Vec<RunSummary> = p.api("/api/runs").await;
    let run = runs.iter().find(|r| r.name == "e2e-form-run").unwrap();
    assert_eq!(
        (run.status, run.epochs_done, run.seed),
        (RunStatus::Finished, 30, 7)
    );

    // a long job, cancelled from its live view (the token is kept for the session)
    p.goto("/training").await;
    submit(&p, "e2e-form-cancel", 500).await;
    let id = live_job(&p).await;
    p.wait_text("#job-status", "running").await;
    p.click("#job-cancel").await;
    p.wait_text("#job-status", "cancelled").await;
    let job: Job = p.api(&format!("/api/jobs/{id}")).await;
    assert_eq!(job.status, JobStatus::Cancelled);
    p.close().await;
}
