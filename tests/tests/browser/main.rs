//! The app in a real headless Chromium (through WebDriver) on a server of real runs: every
//! page by its URL, and every interaction an analyst or a stakeholder has with it. Each test
//! compares what the page shows with the server's own answers and saves full-page screenshots
//! into `artifacts/browser` (`$PERPEFT_ARTIFACTS`), and one named `FAILED-<test>` when a wait
//! fails. `a11y.rs` checks labels on every page and works the site by keyboard.

mod harness;

mod a11y;
mod new_user;
mod run;
mod runs;
mod training;
mod user;
