//! The Prometheus text exposition format (version 0.0.4): `# HELP` and
//! `# TYPE` once per family, then its samples, label values escaped.

use std::fmt::Write as _;

use super::instruments::{CounterVec, HistogramSnapshot};

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// An exposition being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a family: its help line and type.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        write_labels(&mut self.out, labels, None);
        self.out.push(' ');
        write_value(&mut self.out, value);
        self.out.push('\n');
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// The samples of one histogram series of the current family.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        let bucket = format!("{name}_bucket");
        for (bound, count) in &h.buckets {
            let mut le = String::new();
            write_value(&mut le, *bound);
            self.out.push_str(&bucket);
            write_labels(&mut self.out, labels, Some(&le));
            let _ = writeln!(self.out, " {count}");
        }
        self.sample(&format!("{name}_sum"), labels, h.sum_seconds);
        self.sample(&format!("{name}_count"), labels, h.count as f64);
    }

    /// A whole counter family from a labelled counter.
    pub fn counter_vec<const N: usize>(&mut self, name: &str, help: &str, c: &CounterVec<N>) {
        self.family(name, Kind::Counter, help);
        let names = c.label_names();
        for (values, count) in c.snapshot() {
            let labels: Vec<(&str, &str)> = names.iter().copied().zip(values).collect();
            self.sample(name, &labels, count as f64);
        }
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    let le = le.map(|v| ("le", v));
    for (name, value) in labels.iter().copied().chain(le) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

fn write_value(out: &mut String, value: f64) {
    if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else if value.is_nan() {
        out.push_str("NaN");
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        let _ = write!(out, "{}", value as i64);
    } else {
        let _ = write!(out, "{value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::instruments::Histogram;
    use std::time::Duration;

    #[test]
    fn families_samples_and_escaped_labels() {
        let mut e = Exposition::new();
        e.family("herald_x_total", Kind::Counter, "Things.\nDone");
        e.sample("herald_x_total", &[("route", "/v1/\"a\"\\b")], 3.0);
        e.single("herald_y", Kind::Gauge, "Y.", 0.5);
        assert_eq!(
            e.finish(),
            "# HELP herald_x_total Things.\\nDone\n# TYPE herald_x_total counter\n\
             herald_x_total{route=\"/v1/\\\"a\\\"\\\\b\"} 3\n\
             # HELP herald_y Y.\n# TYPE herald_y gauge\nherald_y 0.5\n"
        );
    }

    #[test]
    fn a_histogram_has_buckets_sum_and_count() {
        let h = Histogram::new(&[0.1]);
        h.observe(Duration::from_millis(50));
        h.observe(Duration::from_millis(200));
        let mut e = Exposition::new();
        e.family("d_seconds", Kind::Histogram, "D.");
        e.histogram("d_seconds", &[("m", "GET")], &h.snapshot());
        let text = e.finish();
        assert!(
            text.contains("d_seconds_bucket{m=\"GET\",le=\"0.1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("d_seconds_bucket{m=\"GET\",le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("d_seconds_count{m=\"GET\"} 2\n"), "{text}");
        assert!(text.contains("d_seconds_sum{m=\"GET\"} 0.25"), "{text}");
    }
}
