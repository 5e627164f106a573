//! Progress lines for a local run: `[3/7] starting moto ... ok: http://127.0.0.1:PORT (0.4 s)`.

use std::io::Write;
use std::time::{Duration, Instant};

/// Numbered steps, printed as they start and finish.
pub struct Progress {
    total: usize,
    done: usize,
    quiet: bool,
}

/// One running step; finish it with [`Step::ok`] or [`Step::fail`].
pub struct Step {
    started: Instant,
    quiet: bool,
    /// The label ended its line: the result goes on a line of its own.
    own_line: bool,
}

impl Progress {
    pub fn new(total: usize) -> Self {
        Self {
            total,
            done: 0,
            quiet: false,
        }
    }

    /// Progress that prints nothing.
    pub fn quiet() -> Self {
        Self {
            total: 0,
            done: 0,
            quiet: true,
        }
    }

    /// Starts step `label`: prints `[n/total] label ... ` without a newline.
    pub fn step(&mut self, label: &str) -> Step {
        self.done += 1;
        if !self.quiet {
            print!("[{}/{}] {label} ... ", self.done, self.total.max(self.done));
            let _ = std::io::stdout().flush();
        }
        Step {
            started: Instant::now(),
            quiet: self.quiet,
            own_line: false,
        }
    }

    /// Starts a step whose work prints lines of its own: `[n/total] label` and a newline.
    pub fn section(&mut self, label: &str) -> Step {
        self.done += 1;
        if !self.quiet {
            println!("[{}/{}] {label}", self.done, self.total.max(self.done));
        }
        Step {
            started: Instant::now(),
            quiet: self.quiet,
            own_line: true,
        }
    }

    /// A line of its own (under the current step).
    pub fn note(&self, line: &str) {
        if !self.quiet {
            println!("      {line}");
        }
    }

    pub fn is_quiet(&self) -> bool {
        self.quiet
    }
}

impl Step {
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Ends the line: `ok (0.4 s)` or `ok: detail (0.4 s)`.
    pub fn ok(self, detail: &str) {
        if !self.quiet {
            let secs = seconds(self.started.elapsed());
            if self.own_line {
                print!("      ");
            }
            if detail.is_empty() {
                println!("ok ({secs})");
            } else {
                println!("ok: {detail} ({secs})");
            }
        }
    }

    /// Ends the line with `FAILED` and returns `why` for the caller to report.
    pub fn fail(self, why: String) -> String {
        if !self.quiet {
            if self.own_line {
                print!("      ");
            }
            println!("FAILED ({})", seconds(self.started.elapsed()));
        }
        why
    }
}

/// `0.4 s`, `12 s`, `2 min 05 s`.
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.1} s")
    } else if s < 120.0 {
        format!("{s:.0} s")
    } else {
        format!("{} min {:02} s", d.as_secs() / 60, d.as_secs() % 60)
    }
}
