//! `/metrics` in the Prometheus text exposition format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Bucket bounds of the submit-to-dispatch latency histogram, milliseconds.
const LATENCY_BOUNDS_MS: [u64; 10] = [1, 2, 5, 10, 25, 50, 100, 250, 1000, 10000];

#[derive(Debug, Default)]
pub struct Metrics {
    pub submitted: Counter,
    pub dispatched: Counter,
    pub sent: Counter,
    pub failed: Counter,
    pub retried: Counter,
    pub inbound: Counter,
    pub webhook_ok: Counter,
    pub webhook_failed: Counter,
    latency_buckets: [Counter; 10],
    latency_count: Counter,
    latency_sum_ms: Counter,
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
        self.latency_sum_ms.0.fetch_add(ms, Ordering::Relaxed);
    }

    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
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
            ("faxhub_jobs_sent_total", "Jobs confirmed sent.", &self.sent),
            (
                "faxhub_jobs_failed_total",
                "Jobs that failed for good.",
                &self.failed,
            ),
            (
                "faxhub_attempts_retried_total",
                "Failed attempts followed by a retry.",
                &self.retried,
            ),
            (
                "faxhub_inbound_faxes_total",
                "Faxes received from fax servers.",
                &self.inbound,
            ),
            (
                "faxhub_webhook_deliveries_ok_total",
                "Webhook deliveries answered 2xx.",
                &self.webhook_ok,
            ),
            (
                "faxhub_webhook_deliveries_failed_total",
                "Webhook delivery tries that failed.",
                &self.webhook_failed,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.get()
            );
        }
        let name = "faxhub_dispatch_latency_ms";
        let _ = writeln!(
            out,
            "# HELP {name} Time from a job being due to its offer.\n# TYPE {name} histogram"
        );
        for (bound, bucket) in LATENCY_BOUNDS_MS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", bucket.get());
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {}",
            self.latency_count.get()
        );
        let _ = writeln!(
            out,
            "{name}_sum {}\n{name}_count {}",
            self.latency_sum_ms.get(),
            self.latency_count.get()
        );
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}
