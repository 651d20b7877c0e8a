//! `/metrics` in the Prometheus text exposition format: base units (seconds), outcomes as labels, one
//! series per fax server, and `faxhub_build_info`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A counter per set of label values (their names are given when it is rendered).
#[derive(Debug, Default)]
pub struct Labeled(Mutex<BTreeMap<Vec<String>, u64>>);

impl Labeled {
    pub fn add(&self, labels: &[&str], n: u64) {
        let key = labels.iter().map(|l| (*l).to_owned()).collect();
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default() += n;
    }

    fn render(&self, out: &mut String, name: &str, help: &str, label_names: &[&str]) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (values, n) in self.0.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "{name}{} {n}", labels(label_names, values));
        }
    }
}

/// `{a="x",b="y"}` with the values escaped as the exposition format wants (backslash, quote, newline).
pub fn labels<S: AsRef<str>>(names: &[&str], values: &[S]) -> String {
    let pairs: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| {
            let v = v
                .as_ref()
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{n}=\"{v}\"")
        })
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

/// Bucket bounds of the submit-to-dispatch latency histogram, milliseconds (rendered in seconds).
const LATENCY_BOUNDS_MS: [u64; 10] = [1, 2, 5, 10, 25, 50, 100, 250, 1000, 10000];

#[derive(Debug, Default)]
pub struct Metrics {
    pub submitted: Counter,
    pub dispatched: Counter,
    /// Jobs finished, by result (`sent`, `failed`).
    pub finished: Labeled,
    pub retried: Counter,
    /// Received faxes by fax server and whether they arrived whole.
    pub inbound: Labeled,
    /// Pages received, by fax server.
    pub pages_received: Labeled,
    /// Attempts ended, by fax server, result and failure reason.
    pub attempts: Labeled,
    /// Pages the receiver confirmed, by fax server.
    pub pages_sent: Labeled,
    /// Webhook delivery tries by result (`ok`, `failed`).
    pub webhook_deliveries: Labeled,
    latency_buckets: [Counter; 10],
    latency_count: Counter,
    latency_sum_ms: Counter,
}

/// A gauge with its series: label values (for `label_names`) and value.
pub struct Gauge<'a> {
    pub name: &'a str,
    pub help: &'a str,
    pub label_names: &'a [&'a str],
    pub series: Vec<(Vec<String>, f64)>,
}

impl Metrics {
    /// Records how long a job waited between becoming due and being offered.
    pub fn observe_dispatch_latency(&self, now_ms: i64, due_ms: i64) {
        let ms = u64::try_from(now_ms - due_ms).unwrap_or(0);
        for (bound, bucket) in LATENCY_BOUNDS_MS.iter().zip(&self.latency_buckets) {
            if ms <= *bound {
                bucket.inc();
            }
        }
        self.latency_count.inc();
        self.latency_sum_ms.add(ms);
    }

    pub fn render(&self, gauges: &[Gauge<'_>]) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP faxhub_build_info The running build.\n# TYPE faxhub_build_info gauge\nfaxhub_build_info{} 1",
            labels(&["version"], &[env!("CARGO_PKG_VERSION")])
        );
        let counters = [
            (
                "faxhub_jobs_submitted_total",
                "Jobs accepted through the API.",
                &self.submitted,
            ),
            (
                "faxhub_attempts_dispatched_total",
                "Attempts offered to fax servers.",
                &self.dispatched,
            ),
            (
                "faxhub_attempts_retried_total",
                "Failed attempts followed by a retry.",
                &self.retried,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.get()
            );
        }
        self.finished.render(
            &mut out,
            "faxhub_jobs_finished_total",
            "Jobs that ended, by result (sent, failed).",
            &["result"],
        );
        self.attempts.render(
            &mut out,
            "faxhub_attempts_ended_total",
            "Attempts that ended, by fax server, result and failure reason.",
            &["fax_server_id", "result", "reason"],
        );
        self.pages_sent.render(
            &mut out,
            "faxhub_pages_sent_total",
            "Pages the far end confirmed, by the fax server that sent them.",
            &["fax_server_id"],
        );
        self.inbound.render(
            &mut out,
            "faxhub_inbound_faxes_total",
            "Faxes received, by fax server and whether they arrived whole.",
            &["fax_server_id", "complete"],
        );
        self.pages_received.render(
            &mut out,
            "faxhub_pages_received_total",
            "Pages received, by fax server.",
            &["fax_server_id"],
        );
        self.webhook_deliveries.render(
            &mut out,
            "faxhub_webhook_deliveries_total",
            "Webhook delivery tries, by result (ok: answered 2xx; failed).",
            &["result"],
        );
        let name = "faxhub_dispatch_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from a job being due to its offer.\n# TYPE {name} histogram"
        );
        for (bound, bucket) in LATENCY_BOUNDS_MS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}\"}} {}",
                *bound as f64 / 1000.0,
                bucket.get()
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {}",
            self.latency_count.get()
        );
        let _ = writeln!(
            out,
            "{name}_sum {}\n{name}_count {}",
            self.latency_sum_ms.get() as f64 / 1000.0,
            self.latency_count.get()
        );
        for g in gauges {
            let _ = writeln!(out, "# HELP {} {}\n# TYPE {} gauge", g.name, g.help, g.name);
            for (values, v) in &g.series {
                let _ = writeln!(out, "{}{} {v}", g.name, labels(g.label_names, values));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(
            labels(&["a", "b"], &["x\"y", "back\\slash\nline"]),
            r#"{a="x\"y",b="back\\slash\nline"}"#
        );
        assert_eq!(labels::<&str>(&[], &[]), "");
    }

    #[test]
    fn the_exposition_has_base_units_labels_and_build_info() {
        let m = Metrics::default();
        m.finished.add(&["sent"], 2);
        m.attempts.add(&["fs_1", "failed", "busy"], 1);
        m.observe_dispatch_latency(1_500, 1_000);
        let text = m.render(&[Gauge {
            name: "faxhub_fax_server_up",
            help: "h",
            label_names: &["fax_server_id"],
            series: vec![(vec!["fs_1".into()], 1.0)],
        }]);
        for want in [
            "faxhub_build_info{version=\"",
            "faxhub_jobs_finished_total{result=\"sent\"} 2",
            "faxhub_attempts_ended_total{fax_server_id=\"fs_1\",result=\"failed\",reason=\"busy\"} 1",
            "faxhub_dispatch_latency_seconds_bucket{le=\"1\"} 1",
            "faxhub_dispatch_latency_seconds_bucket{le=\"0.25\"} 0",
            "faxhub_dispatch_latency_seconds_sum 0.5",
            "faxhub_fax_server_up{fax_server_id=\"fs_1\"} 1",
        ] {
            assert!(text.contains(want), "{want} missing in:\n{text}");
        }
    }
}
