//! Rows of the result table and their formatting.

use std::time::Duration;

use crate::load::Run;

/// One line of the table.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub scenario: String,
    pub conns: usize,
    pub calls: usize,
    /// Calls per second.
    pub throughput: Option<f64>,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    pub max: Option<Duration>,
    /// Throughput divided by the echo baseline's at the same connection count and sizes.
    pub ratio: Option<f64>,
    pub note: String,
}

impl Row {
    /// A row from a run; `throughput` is calls over wall time.
    pub fn from_run(scenario: impl Into<String>, conns: usize, run: &Run) -> Self {
        let mut lat = run.latencies_ns.clone();
        lat.sort_unstable();
        let secs = run.wall.as_secs_f64();
        let mut note = String::new();
        if run.errors > 0 {
            note = format!("{} error replies", run.errors);
        }
        Self {
            scenario: scenario.into(),
            conns,
            calls: lat.len(),
            throughput: (secs > 0.0).then(|| lat.len() as f64 / secs),
            p50: percentile(&lat, 0.50),
            p99: percentile(&lat, 0.99),
            max: lat.last().map(|n| Duration::from_nanos(*n)),
            ratio: None,
            note,
        }
    }

    pub fn note(mut self, note: impl AsRef<str>) -> Self {
        if !self.note.is_empty() {
            self.note.push_str("; ");
        }
        self.note.push_str(note.as_ref());
        self
    }
}

/// Nearest-rank percentile of sorted nanoseconds.
pub fn percentile(sorted_ns: &[u64], p: f64) -> Option<Duration> {
    if sorted_ns.is_empty() {
        return None;
    }
    let rank = ((p * sorted_ns.len() as f64).ceil() as usize).clamp(1, sorted_ns.len());
    Some(Duration::from_nanos(sorted_ns[rank - 1]))
}

pub fn fmt_duration(d: Option<Duration>) -> String {
    let Some(d) = d else { return "—".into() };
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

fn fmt_rate(r: Option<f64>) -> String {
    match r {
        None => "—".into(),
        Some(r) if r >= 100.0 => format!("{r:.0}/s"),
        Some(r) => format!("{r:.1}/s"),
    }
}

/// The table, as Markdown.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | conns | calls | throughput | p50 | p99 | max | vs echo | notes |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        let ratio = r.ratio.map_or("—".into(), |x| format!("{:.0}%", x * 100.0));
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.scenario,
            r.conns,
            r.calls,
            fmt_rate(r.throughput),
            fmt_duration(r.p50),
            fmt_duration(r.p99),
            fmt_duration(r.max),
            ratio,
            r.note,
        ));
    }
    out
}
