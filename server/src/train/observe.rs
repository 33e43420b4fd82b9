//! What training reports while it runs: an [`Observer`] sees every step, the grouping and every
//! recorded epoch, and may stop the run (it then ends with [`crate::error::Error::Stopped`],
//! resumable like a killed run). The CLI shows progress bars ([`ProgressBars`]); tests watch
//! the batches and stop runs at chosen points.

use std::fmt;
use std::ops::ControlFlow;

use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{EpochRecord, Groups};
use crate::data::sampler::Batch;

/// The stage a step belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// PerPEFT's stage 1, global training (not evaluated).
    Global,
    /// The evaluated epochs: the whole run, or PerPEFT's per-group stage.
    Evaluated,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Global => "global stage",
            Self::Evaluated => "training",
        })
    }
}

/// One thing training did.
#[derive(Debug)]
pub enum Event<'a> {
    /// A stage starts with `steps` optimisation steps to go, over epochs `first..=last`.
    StageStarted {
        stage: Stage,
        first: usize,
        last: usize,
        steps: usize,
    },
    /// Step `step` of `steps` of `epoch` ran on `batch` with group `group`'s adapter and
    /// projector (0 without groups); `loss` is its loss.
    Step {
        stage: Stage,
        epoch: usize,
        step: usize,
        steps: usize,
        group: usize,
        batch: &'a Batch,
        loss: f64,
    },
    /// Users were grouped; `groups.json` and `global/` are saved.
    Grouped(&'a Groups),
    /// An evaluated epoch is recorded (registry, checkpoint, `run.json`).
    Epoch(&'a EpochRecord),
}

/// Watches training. `Break` stops it after the event.
pub trait Observer {
    fn on(&mut self, event: &Event<'_>) -> ControlFlow<()>;
}

/// Progress bars on stderr (hidden when stderr is not a terminal): one per stage, with the
/// epoch, the running mean loss and the ETA.
#[derive(Default)]
pub struct ProgressBars {
    bar: Option<ProgressBar>,
    epoch: usize,
    loss_sum: f64,
}

impl Observer for ProgressBars {
    fn on(&mut self, event: &Event<'_>) -> ControlFlow<()> {
        match *event {
            Event::StageStarted { steps, .. } => {
                if let Some(old) = self.bar.take() {
                    old.finish_and_clear();
                }
                let bar = ProgressBar::new(steps as u64);
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix} [{bar:30}] {pos}/{len} steps, loss {msg}, eta {eta}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                self.bar = Some(bar);
            }
            Event::Step {
                stage,
                epoch,
                step,
                loss,
                ..
            } => {
                if epoch != self.epoch || step == 1 {
                    self.epoch = epoch;
                    self.loss_sum = 0.0;
                }
                self.loss_sum += loss;
                if let Some(bar) = &self.bar {
                    bar.set_prefix(format!("{stage} epoch {epoch}"));
                    bar.set_message(format!("{:.4}", self.loss_sum / step as f64));
                    bar.inc(1);
                }
            }
            Event::Grouped(_) | Event::Epoch(_) => {}
        }
        ControlFlow::Continue(())
    }
}

impl Drop for ProgressBars {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
