//! What an operator watches: calls by agent, tool, decision and refusal
//! kind; Cloudflare's answers by status class; latency of whole calls and
//! of Cloudflare alone; refusals for spent budgets; policy reloads. Kept in
//! memory (atomics and small maps, labels from closed sets or the policy
//! and catalog — never from what an agent sends) and written in
//! Prometheus's text format for `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::audit::AuditTimes;
use crate::histogram::Histogram;

/// One call's labels: the agent (from the policy), the tool (from the
/// catalog, or "unknown"), the decision, and the refusal kind.
type CallLabels = (String, String, &'static str, &'static str);

/// Everything `/metrics` reports.
#[derive(Debug, Default)]
pub struct Metrics {
    calls: Mutex<BTreeMap<CallLabels, u64>>,
    upstream: Mutex<BTreeMap<&'static str, u64>>,
    pub call_latency: Histogram,
    pub upstream_latency: Histogram,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    /// Whether Cloudflare answered the last request (any status).
    upstream_down: std::sync::atomic::AtomicBool,
}

impl Metrics {
    /// Counts a call. `tool` must be a catalog name (or "unknown");
    /// `kind` is the refusal kind, "none" for an allowed call.
    pub fn call(
        &self,
        agent: &str,
        tool: &str,
        decision: crate::audit::Decision,
        kind: &'static str,
    ) {
        let mut calls = self.calls.lock().expect("metrics lock: no panics inside");
        *calls
            .entry((agent.to_string(), tool.to_string(), decision.as_str(), kind))
            .or_default() += 1;
    }

    /// Counts an answer from Cloudflare (its HTTP status) or its absence.
    pub fn upstream(&self, status: Option<u16>, took: Duration) {
        let class = match status {
            Some(200..=299) => "2xx",
            Some(300..=399) => "3xx",
            Some(429) => "429",
            Some(400..=499) => "4xx",
            Some(_) => "5xx",
            None => "no_answer",
        };
        *self
            .upstream
            .lock()
            .expect("metrics lock: no panics inside")
            .entry(class)
            .or_default() += 1;
        self.upstream_down
            .store(status.is_none(), Ordering::Relaxed);
        self.upstream_latency.observe(took);
    }

    /// Whether the last request to Cloudflare got an answer (true before
    /// any was sent).
    pub fn upstream_reachable(&self) -> bool {
        !self.upstream_down.load(Ordering::Relaxed)
    }

    pub fn reloaded(&self, ok: bool) {
        let counter = if ok {
            &self.reloads
        } else {
            &self.reload_failures
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition; `audit_queue` is the audit writer's
    /// queue depth now, `audit` its commit and fsync times.
    pub fn render(&self, audit_queue: usize, audit: &AuditTimes) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP flaregate_calls_total Tool calls by agent, tool, decision and refusal kind.\n# TYPE flaregate_calls_total counter"
        );
        for ((agent, tool, decision, kind), n) in self
            .calls
            .lock()
            .expect("metrics lock: no panics inside")
            .iter()
        {
            let _ = writeln!(
                out,
                "flaregate_calls_total{{agent=\"{}\",tool=\"{}\",decision=\"{decision}\",kind=\"{kind}\"}} {n}",
                label(agent),
                label(tool)
            );
        }
        let _ = writeln!(
            out,
            "# HELP flaregate_upstream_responses_total Cloudflare's answers by status class.\n# TYPE flaregate_upstream_responses_total counter"
        );
        for (class, n) in self
            .upstream
            .lock()
            .expect("metrics lock: no panics inside")
            .iter()
        {
            let _ = writeln!(
                out,
                "flaregate_upstream_responses_total{{class=\"{class}\"}} {n}"
            );
        }
        self.call_latency.render(
            &mut out,
            "flaregate_call_duration_seconds",
            "Whole tool calls, from arrival to answer.",
        );
        self.upstream_latency.render(
            &mut out,
            "flaregate_upstream_duration_seconds",
            "Cloudflare alone, per call sent.",
        );
        audit.commit.render(
            &mut out,
            "flaregate_audit_commit_duration_seconds",
            "Audit log commits (a batch of rows each).",
        );
        audit.fsync.render(
            &mut out,
            "flaregate_audit_fsync_duration_seconds",
            "fsyncs of the audit log's WAL.",
        );
        let _ = writeln!(
            out,
            "# HELP flaregate_audit_queue_depth Records waiting for the audit writer.\n# TYPE flaregate_audit_queue_depth gauge\nflaregate_audit_queue_depth {audit_queue}"
        );
        let _ = writeln!(
            out,
            "# HELP flaregate_policy_reloads_total Policy reloads, by result.\n# TYPE flaregate_policy_reloads_total counter\nflaregate_policy_reloads_total{{result=\"ok\"}} {}\nflaregate_policy_reloads_total{{result=\"failed\"}} {}",
            self.reloads.load(Ordering::Relaxed),
            self.reload_failures.load(Ordering::Relaxed)
        );
        out
    }
}

/// A label value with `\`, `"` and newlines escaped, as the format asks.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let metrics = Metrics::default();
        metrics.call_latency.observe(Duration::from_micros(300));
        metrics.call_latency.observe(Duration::from_millis(30));
        metrics.call("a\"b", "list_zones", crate::audit::Decision::Allow, "none");
        let text = metrics.render(0, &AuditTimes::default());
        assert!(
            text.contains("flaregate_call_duration_seconds_bucket{le=\"0.0005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("flaregate_call_duration_seconds_bucket{le=\"0.05\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("flaregate_call_duration_seconds_count 2"),
            "{text}"
        );
        assert!(text.contains("agent=\"a\\\"b\""), "{text}");
    }
}
