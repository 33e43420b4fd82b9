//! Training from the form: the token prompt, a job followed live to a finished run (the
//! progress bar seen moving, the curves growing), the run on the Runs page, and a cancel.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use e2e::TOKEN;
use shared::api::{Job, JobStatus, RunStatus, RunSummary};

use crate::harness::Page;

/// Fills the form for an ID-only run of `epochs` on ml-100k and submits it.
async fn submit(p: &Page, run: &str, epochs: usize) {
    p.type_into("#job-run", run).await;
    p.select("#job-dataset", "ml-100k").await;
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
    let p = Page::open().await;
    p.goto("/training").await;
    // adapter and group fields only apply to the methods that have them
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
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let status = p.text("#job-status").await;
        if status == "running"
            && let Some(v) = p.attr("#job-progress", "value").await
        {
            seen.insert(v);
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
        seen.len() >= 2,
        "the progress bar did not move while the job ran: {seen:?}"
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
