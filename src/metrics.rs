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

/// flaregate's own tools, beside the catalog's: counted under their own
/// names (the call an undo or `call_api` makes is counted as well, under
/// its endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OwnTool {
    SearchApi,
    DescribeApi,
    CallApi,
    UndoCall,
}

impl OwnTool {
    pub fn as_str(self) -> &'static str {
        match self {
            OwnTool::SearchApi => "search_api",
            OwnTool::DescribeApi => "describe_api",
            OwnTool::CallApi => "call_api",
            OwnTool::UndoCall => "undo_call",
        }
    }
}

/// Why a sign-in (an OAuth token or a Cloudflare Access assertion) was
/// refused: a closed set, so an operator can alert on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SignInRefusal {
    /// Not a token, or a token that does not hold (signature, issuer,
    /// audience, times, algorithm, key).
    InvalidToken,
    /// The issuer's keys could not be had: refused, not let in.
    IssuerUnreachable,
    /// Valid, but with neither flaregate scope, or a write with the read one.
    InsufficientScope,
    /// Valid, but no agent's `[agent.oauth]` matches it, or several do.
    NoSingleAgent,
}

impl SignInRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            SignInRefusal::InvalidToken => "invalid_token",
            SignInRefusal::IssuerUnreachable => "issuer_unreachable",
            SignInRefusal::InsufficientScope => "insufficient_scope",
            SignInRefusal::NoSingleAgent => "no_single_agent",
        }
    }
}

/// Everything `/metrics` reports.
#[derive(Debug, Default)]
pub struct Metrics {
    calls: Mutex<BTreeMap<CallLabels, u64>>,
    own_tools: Mutex<BTreeMap<(String, OwnTool), u64>>,
    sign_in_refusals: Mutex<BTreeMap<SignInRefusal, u64>>,
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

    /// Counts a call of one of flaregate's own tools by `agent` (from the
    /// policy).
    pub fn own_tool(&self, agent: &str, tool: OwnTool) {
        *self
            .own_tools
            .lock()
            .expect("metrics lock: no panics inside")
            .entry((agent.to_string(), tool))
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

    /// Counts a refused sign-in.
    pub fn sign_in_refused(&self, why: SignInRefusal) {
        *self
            .sign_in_refusals
            .lock()
            .expect("metrics lock: no panics inside")
            .entry(why)
            .or_default() += 1;
    }

    pub fn reloaded(&self, ok: bool) {
        let counter = if ok {
            &self.reloads
        } else {
            &self.reload_failures
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Policy reloads since start: (done, failed).
    pub fn reload_counts(&self) -> (u64, u64) {
        (
            self.reloads.load(Ordering::Relaxed),
            self.reload_failures.load(Ordering::Relaxed),
        )
    }

    /// Cloudflare's answers since start, by class ("2xx", "429", "no_answer").
    pub fn upstream_counts(&self) -> BTreeMap<&'static str, u64> {
        self.upstream
            .lock()
            .expect("metrics lock: no panics inside")
            .clone()
    }

    /// The Prometheus text exposition, with what is read at scrape time.
    pub fn render(&self, now: &Scrape<'_>) -> String {
        let (audit_queue, audit) = (now.audit_queue, now.audit_times);
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
            "# HELP flaregate_own_tool_calls_total Calls of flaregate's own tools (discovery, undo) by agent and tool.\n# TYPE flaregate_own_tool_calls_total counter"
        );
        for ((agent, tool), n) in self
            .own_tools
            .lock()
            .expect("metrics lock: no panics inside")
            .iter()
        {
            let _ = writeln!(
                out,
                "flaregate_own_tool_calls_total{{agent=\"{}\",tool=\"{}\"}} {n}",
                label(agent),
                tool.as_str()
            );
        }
        let _ = writeln!(
            out,
            "# HELP flaregate_sign_in_refusals_total OAuth tokens and Access assertions refused, by reason.\n# TYPE flaregate_sign_in_refusals_total counter"
        );
        for (why, n) in self
            .sign_in_refusals
            .lock()
            .expect("metrics lock: no panics inside")
            .iter()
        {
            let _ = writeln!(
                out,
                "flaregate_sign_in_refusals_total{{reason=\"{}\"}} {n}",
                why.as_str()
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
        now.render(&mut out);
        out
    }
}

/// What `/metrics` reads when it is scraped, beside the counters: the
/// gauges an operator alerts on.
pub struct Scrape<'a> {
    /// Records waiting for the audit writer.
    pub audit_queue: usize,
    pub audit_times: &'a AuditTimes,
    /// A SQLite log's size and cap.
    pub audit_size: Option<crate::audit::LogSize>,
    /// Requests waiting for a person (`None`: they could not be counted).
    pub approvals_pending: Option<usize>,
    /// The failed reload the policy in force is older than.
    pub policy_stale: Option<crate::policy::ReloadFailure>,
    /// When the policy in force was loaded.
    pub policy_loaded_at: std::time::SystemTime,
}

impl Scrape<'_> {
    fn render(&self, out: &mut String) {
        if let Some(size) = self.audit_size {
            let _ = writeln!(
                out,
                "# HELP flaregate_audit_bytes The SQLite audit log's size (file and WAL).\n# TYPE flaregate_audit_bytes gauge\nflaregate_audit_bytes {}",
                size.bytes
            );
            if let Some(max) = size.max_bytes {
                let _ = writeln!(
                    out,
                    "# HELP flaregate_audit_max_bytes audit_max_mb: past it every call is refused.\n# TYPE flaregate_audit_max_bytes gauge\nflaregate_audit_max_bytes {max}"
                );
            }
        }
        if let Some(pending) = self.approvals_pending {
            let _ = writeln!(
                out,
                "# HELP flaregate_approvals_pending Calls waiting for a person's approval.\n# TYPE flaregate_approvals_pending gauge\nflaregate_approvals_pending {pending}"
            );
        }
        let since = self
            .policy_loaded_at
            .elapsed()
            .unwrap_or_default()
            .as_secs_f64();
        let _ = writeln!(
            out,
            "# HELP flaregate_policy_seconds_since_load Seconds since the policy in force was loaded.\n# TYPE flaregate_policy_seconds_since_load gauge\nflaregate_policy_seconds_since_load {since:.0}"
        );
        let _ = writeln!(
            out,
            "# HELP flaregate_policy_stale 1 while the last reload failed and an older policy is in force (file and line of the first problem).\n# TYPE flaregate_policy_stale gauge"
        );
        match &self.policy_stale {
            Some(failure) => {
                let _ = writeln!(
                    out,
                    "flaregate_policy_stale{{file=\"{}\",line=\"{}\"}} 1",
                    label(&failure.file),
                    failure.line
                );
            }
            None => {
                let _ = writeln!(out, "flaregate_policy_stale 0");
            }
        }
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
        let times = AuditTimes::default();
        let text = metrics.render(&Scrape {
            audit_queue: 0,
            audit_times: &times,
            audit_size: None,
            approvals_pending: None,
            policy_stale: None,
            policy_loaded_at: std::time::SystemTime::now(),
        });
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
