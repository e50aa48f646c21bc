//! Traces on request: with `--otlp-endpoint`, every call sends a span to
//! the collector (OTLP/HTTP JSON), a child of the client's span when the
//! request's `_meta` carries a W3C `traceparent`, with the steps that
//! wait as child spans.

mod common;

use std::sync::{Arc, Mutex};

use common::ServerProcess;
use serde_json::{Value, json};

/// A collector on a free port that keeps every span it is sent.
async fn collector() -> (String, Arc<Mutex<Vec<Value>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let kept = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let kept = kept.clone();
            async move {
                for resource in body["resourceSpans"].as_array().into_iter().flatten() {
                    for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                        for span in scope["spans"].as_array().into_iter().flatten() {
                            kept.lock().expect("lock").push(span.clone());
                        }
                    }
                }
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/v1/traces", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, spans)
}

/// A stateless tools/call carrying `traceparent` in its `_meta`.
async fn traced_call(server: &ServerProcess, traceparent: &str) {
    let result = common::modern_call(
        &server.mcp_url,
        server.key("auditor"),
        ("list_zones", json!({})),
        json!({"traceparent": traceparent}),
        json!({}),
    )
    .await;
    assert_ne!(result["isError"], true, "{result}");
    assert!(result.to_string().contains("example.com"), "{result}");
}

fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)?["value"]["stringValue"]
        .as_str()
}

#[tokio::test]
async fn a_call_is_a_span_under_the_clients_trace_with_its_steps() {
    let (url, spans) = collector().await;
    let server = ServerProcess::sandbox(&["--otlp-endpoint", &url]);
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    traced_call(&server, &format!("00-{trace}-{parent}-01")).await;

    let mut found = Vec::new();
    for _ in 0..50 {
        found = spans.lock().expect("lock").clone();
        if found.iter().any(|s| s["name"] == "tools/call list_zones") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let call = found
        .iter()
        .find(|s| s["name"] == "tools/call list_zones")
        .unwrap_or_else(|| panic!("the call's span: {found:?}"));
    assert_eq!(call["traceId"], trace, "in the client's trace");
    assert_eq!(call["parentSpanId"], parent, "under the client's span");
    assert_eq!(attribute(call, "flaregate.agent"), Some("auditor"));
    assert_eq!(attribute(call, "flaregate.result"), Some("ok"));
    let steps: Vec<&str> = found
        .iter()
        .filter(|s| s["parentSpanId"] == call["spanId"])
        .filter_map(|s| s["name"].as_str())
        .collect();
    for step in ["audit.decision", "cloudflare", "audit.outcome"] {
        assert!(steps.contains(&step), "{step} in {steps:?}");
    }
    // No key or credential rides along.
    let sent = serde_json::to_string(&found).expect("json");
    assert!(!sent.contains(server.key("auditor")));
}
