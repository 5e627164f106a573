//! Progress: a bar on a terminal, plain lines otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::failure::Outcome;

pub enum Progress {
    Bar(ProgressBar),
    /// Plain lines, on stderr when stdout carries JSON.
    Lines {
        stderr: bool,
    },
}

impl Progress {
    pub fn new(json: bool) -> Progress {
        if !json && std::io::stdout().is_terminal() {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            Progress::Bar(bar)
        } else {
            Progress::Lines { stderr: json }
        }
    }

    pub fn line(&self, text: &str) {
        match self {
            Progress::Bar(bar) => bar.println(text),
            Progress::Lines { stderr: true } => eprintln!("{text}"),
            Progress::Lines { stderr: false } => println!("{text}"),
        }
    }

    pub fn listing(&self, found: usize) {
        if let Progress::Bar(bar) = self {
            bar.set_message(format!("listing the organization's accounts: {found}"));
        }
    }

    pub fn reading(&self, done: usize, total: usize) {
        if let Progress::Bar(bar) = self {
            bar.set_message(format!("reading the ledger: {done}/{total} steps"));
        }
    }

    pub fn start_publishing(&self, total: usize) {
        if let Progress::Bar(bar) = self {
            bar.disable_steady_tick();
            bar.set_length(total as u64);
            bar.set_position(0);
            bar.set_message("");
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} published {msg} [{elapsed_precise}, {eta} left]",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
        }
    }

    pub fn published(&self, done: usize, total: usize, failed: usize, last: &str) {
        match self {
            Progress::Bar(bar) => {
                bar.set_position(done as u64);
                if failed > 0 {
                    bar.set_message(format!("({failed} failed)"));
                }
            }
            _ => self.line(&format!(
                "published {done}/{total}{} (last {last})",
                if failed > 0 {
                    format!(", {failed} failed")
                } else {
                    String::new()
                }
            )),
        }
    }

    pub fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }

    /// `result`, the bar cleared first when it is an error (the caller returns it).
    pub fn finish_on_error<T>(&self, result: Outcome<T>) -> Outcome<T> {
        if result.is_err() {
            self.finish();
        }
        result
    }
}
