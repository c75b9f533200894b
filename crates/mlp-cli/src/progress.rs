//! What a training run prints while it works: a progress bar per epoch when stderr is a
//! terminal, a plain line per epoch always (so CI logs stay readable), nothing with --quiet.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::console::say;

pub struct Progress {
    quiet: bool,
    bar_on_terminal: bool,
    epochs: usize,
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(quiet: bool, epochs: usize) -> Self {
        Self {
            quiet,
            bar_on_terminal: !quiet && std::io::stderr().is_terminal(),
            epochs,
            bar: None,
        }
    }

    /// Shows a bar for `epoch` (counted from 1) of `batches` batches.
    pub fn start_epoch(&mut self, epoch: usize, batches: usize) {
        if !self.bar_on_terminal {
            return;
        }
        let bar = ProgressBar::new(batches as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:40.cyan/blue}] {pos}/{len} batches  {elapsed} elapsed, ETA {eta}  {msg}",
            )
            .expect("the template is valid")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{}", self.epochs));
        bar.enable_steady_tick(Duration::from_millis(200));
        self.bar = Some(bar);
    }

    pub fn batch_done(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            if Some(bar.position()) == bar.length() {
                // A GPU backend only queues its steps: the bar fills before the device is done.
                bar.set_message("waiting for the last steps and the validation pass");
            }
        }
    }

    /// Removes the bar and prints the epoch's line in its place.
    pub fn end_epoch(&mut self, line: &str) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if !self.quiet {
            say!("{line}");
        }
    }

    /// A line that --quiet keeps back.
    pub fn say(&self, line: &str) {
        if !self.quiet {
            say!("{line}");
        }
    }
}
