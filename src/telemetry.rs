//! OpenTelemetry traces, on request (`--otlp-endpoint`, `[telemetry]
//! otlp_endpoint`): a span per tool call, with a child span for each step
//! that waits (the audit log, Cloudflare), sent in batches as OTLP/HTTP
//! JSON to a collector. A client's W3C trace context (`traceparent` in the
//! request's `_meta`) makes the call a child of the client's span.
//!
//! Written here rather than with the opentelemetry crates: flaregate needs
//! one span shape and one exporter, and the SDK, its OTLP exporter and
//! their protobuf stack would be the heaviest part of a two-core build.
//! Spans are dropped (and counted) rather than ever slowing a call.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Spans waiting to be sent, at most; past it new ones are dropped.
const QUEUE: usize = 4096;
/// How often a batch goes out, and its largest size.
const EVERY: Duration = Duration::from_secs(1);
const BATCH: usize = 512;

/// Where spans go. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Tracer {
    spans: mpsc::Sender<Span>,
}

/// One finished span.
#[derive(Debug)]
struct Span {
    trace_id: String,
    span_id: String,
    parent: Option<String>,
    name: String,
    start_ns: u64,
    end_ns: u64,
    attributes: Vec<(&'static str, String)>,
    error: bool,
}

/// A call being traced: its ids, and the steps timed so far.
#[derive(Debug)]
pub struct CallTrace {
    trace_id: String,
    span_id: String,
    parent: Option<String>,
    start_ns: u64,
    steps: Mutex<Vec<(&'static str, u64, u64)>>,
}

impl Tracer {
    /// Starts the exporter that posts batches to `endpoint` (an OTLP/HTTP
    /// traces URL, e.g. `http://127.0.0.1:4318/v1/traces`).
    pub fn start(endpoint: String) -> Self {
        let (spans, inbox) = mpsc::channel(QUEUE);
        tokio::spawn(export(endpoint, inbox));
        Self { spans }
    }

    /// Begins a call's span, under the client's `traceparent` if it gave
    /// a valid one.
    pub fn begin(&self, traceparent: Option<&str>) -> CallTrace {
        let parent = traceparent.and_then(parse_traceparent);
        let (trace_id, parent) = match parent {
            Some((trace, span)) => (trace, Some(span)),
            None => (random_hex(16), None),
        };
        CallTrace {
            trace_id,
            span_id: random_hex(8),
            parent,
            start_ns: now_ns(),
            steps: Mutex::new(Vec::new()),
        }
    }

    /// Ends `call` and queues it, with its steps as child spans.
    pub fn end(
        &self,
        call: CallTrace,
        name: String,
        attributes: Vec<(&'static str, String)>,
        error: bool,
    ) {
        let end_ns = now_ns();
        let steps = call.steps.into_inner().unwrap_or_default();
        let mut spans = Vec::with_capacity(steps.len() + 1);
        for (step, start_ns, step_end) in steps {
            spans.push(Span {
                trace_id: call.trace_id.clone(),
                span_id: random_hex(8),
                parent: Some(call.span_id.clone()),
                name: step.to_string(),
                start_ns,
                end_ns: step_end,
                attributes: Vec::new(),
                error: false,
            });
        }
        spans.push(Span {
            trace_id: call.trace_id,
            span_id: call.span_id,
            parent: call.parent,
            name,
            start_ns: call.start_ns,
            end_ns,
            attributes,
            error,
        });
        for span in spans {
            if self.spans.try_send(span).is_err() {
                tracing::debug!("a trace span was dropped: the exporter is behind");
            }
        }
    }
}

impl CallTrace {
    /// Times one step that began at `start_ns` (see [`now_ns`]) and ends now.
    pub fn step(&self, name: &'static str, start_ns: u64) {
        if let Ok(mut steps) = self.steps.lock() {
            steps.push((name, start_ns, now_ns()));
        }
    }
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`, ids not all zero.
fn parse_traceparent(text: &str) -> Option<(String, String)> {
    let mut parts = text.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    let valid = version == "00"
        && parts.next().is_none()
        && hex(trace, 32)
        && hex(span, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && span.bytes().any(|b| b != b'0');
    valid.then(|| (trace.to_string(), span.to_string()))
}

fn random_hex(bytes: usize) -> String {
    let mut out = String::with_capacity(bytes * 2);
    for _ in 0..bytes {
        out.push_str(&format!("{:02x}", fastrand::u8(..)));
    }
    out
}

/// Sends batches until flaregate stops; a collector that is down costs
/// the spans of that batch, never a call.
async fn export(endpoint: String, mut inbox: mpsc::Receiver<Span>) {
    let client = reqwest::Client::new();
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let first = tokio::time::timeout(EVERY, inbox.recv()).await;
        match first {
            Ok(Some(span)) => batch.push(span),
            Ok(None) => return,
            Err(_) => {}
        }
        while batch.len() < BATCH {
            match inbox.try_recv() {
                Ok(span) => batch.push(span),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        let body = otlp(&batch);
        batch.clear();
        match client.post(&endpoint).json(&body).send().await {
            Ok(answer) if answer.status().is_success() => {}
            Ok(answer) => {
                tracing::warn!(status = %answer.status(), "the trace collector refused spans")
            }
            Err(error) => tracing::warn!(%error, "cannot send spans to the trace collector"),
        }
    }
}

/// A batch as OTLP/HTTP JSON (`ExportTraceServiceRequest`).
fn otlp(spans: &[Span]) -> Value {
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let attributes: Vec<Value> = s
                .attributes
                .iter()
                .map(|(k, v)| json!({"key": k, "value": {"stringValue": v}}))
                .collect();
            let mut span = json!({
                "traceId": s.trace_id,
                "spanId": s.span_id,
                "name": s.name,
                "kind": 2,
                "startTimeUnixNano": s.start_ns.to_string(),
                "endTimeUnixNano": s.end_ns.to_string(),
                "attributes": attributes,
                "status": {"code": if s.error { 2 } else { 1 }},
            });
            if let Some(parent) = &s.parent {
                span["parentSpanId"] = json!(parent);
            }
            span
        })
        .collect();
    json!({"resourceSpans": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "flaregate"}},
            {"key": "service.version", "value": {"stringValue": env!("CARGO_PKG_VERSION")}}
        ]},
        "scopeSpans": [{"scope": {"name": "flaregate"}, "spans": spans}]
    }]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_valid_traceparent_is_taken() {
        let given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            parse_traceparent(given),
            Some((
                "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                "00f067aa0ba902b7".into()
            ))
        );
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f35-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }
}
