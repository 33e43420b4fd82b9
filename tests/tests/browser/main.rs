//! The app in a real headless Chromium (through WebDriver) on a server of real runs: every
//! page by its URL, and every interaction an analyst or a stakeholder has with it. Each test
//! compares what the page shows with the server's own answers, checks the page's controls by
//! keyboard and for labels, and saves a full-page screenshot into `artifacts/browser`.

mod harness;

mod a11y;
mod new_user;
mod run;
mod runs;
mod training;
mod user;
