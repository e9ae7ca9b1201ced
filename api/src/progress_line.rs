//! The operator commands' progress (`herald verify`, `export`,
//! `projections rebuild`) on stderr.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// A progress line on stderr: on a terminal a bar with rate and ETA,
/// redrawn in place; else a plain line at most every few seconds.
pub(crate) struct ProgressLine {
    terminal: bool,
    last: Option<Instant>,
    /// The latest state not yet shown (done, total, rate).
    unshown: Option<(u64, u64, f64)>,
    /// What the last line drawn said (done, total).
    drawn: Option<(u64, u64)>,
    /// The step under way, shown after the figures (a new one is drawn at
    /// once).
    step: &'static str,
}

impl ProgressLine {
    pub(crate) fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            last: None,
            unshown: None,
            drawn: None,
            step: "",
        }
    }

    /// `step` is under way: drawn with the next figures, at once if it is
    /// a new one.
    pub(crate) fn step(&mut self, step: &'static str) {
        if step != self.step {
            self.step = step;
            self.last = None;
            self.drawn = None;
        }
    }

    pub(crate) fn show(&mut self, done: u64, total: u64, rate: f64) {
        let every = if self.terminal {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(5)
        };
        if self.last.is_some_and(|l| l.elapsed() < every) || self.drawn == Some((done, total)) {
            self.unshown = Some((done, total, rate));
            return;
        }
        self.last = Some(Instant::now());
        self.draw(done, total, rate);
    }

    fn draw(&mut self, done: u64, total: u64, rate: f64) {
        self.unshown = None;
        self.drawn = Some((done, total));
        let percent = if total == 0 {
            100.0
        } else {
            done as f64 * 100.0 / total as f64
        };
        let eta = if rate > 0.0 {
            total.saturating_sub(done) as f64 / rate
        } else {
            0.0
        };
        let mut line =
            format!("{done}/{total} events ({percent:.1} %), {rate:.0} events/s, ETA {eta:.0} s");
        if !self.step.is_empty() {
            line.push_str(&format!(" [{}]", self.step));
        }
        let mut err = std::io::stderr();
        let _ = if self.terminal {
            write!(err, "\r\x1b[2K{} {line}", bar(percent))
        } else {
            writeln!(err, "{line}")
        };
    }

    /// Shows where it ended (if that was held back) and ends the line.
    pub(crate) fn finish(&mut self) {
        if let Some((done, total, rate)) = self.unshown
            && self.drawn != Some((done, total))
        {
            self.draw(done, total, rate);
        }
        if self.terminal {
            eprintln!();
        }
    }
}

/// `[#########-----------]`: 20 cells, one per 5 %.
fn bar(percent: f64) -> String {
    const CELLS: usize = 20;
    let full = ((percent.clamp(0.0, 100.0) / 100.0) * CELLS as f64).round() as usize;
    format!("[{}{}]", "#".repeat(full), "-".repeat(CELLS - full))
}
