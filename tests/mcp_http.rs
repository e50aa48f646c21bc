//! The HTTP transport at the wire: authentication, sessions bound to their
//! agent, Host and Origin checks, unknown methods, body limits, and
//! `auth = "none"` only on loopback.

mod common;

use common::{BIN, ServerProcess, call, shipped};
use reqwest::StatusCode;
use serde_json::{Value, json};

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"wire-test","version":"1"}}}"#;

/// POSTs one JSON-RPC message; returns status, headers and the JSON-RPC
/// messages in the body (SSE or JSON).
async fn post(
    url: &str,
    key: Option<&str>,
    session: Option<&str>,
    body: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Vec<Value>) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .body(body.to_string());
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("server answers");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    let messages = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .chain(std::iter::once(text.as_str()))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .collect();
    (status, headers, messages)
}

/// Opens a 2025-06-18 session for `key`; returns its id.
async fn open_session(url: &str, key: Option<&str>) -> String {
    let (status, headers, _) = post(url, key, None, INITIALIZE, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let session = headers["mcp-session-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    let (status, _, _) = post(
        url,
        key,
        Some(&session),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    session
}

const LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#;

#[tokio::test]
async fn missing_garbled_and_unknown_keys_get_401_with_a_bearer_challenge() {
    let server = ServerProcess::sandbox(&[]);
    for header in [
        None,
        Some("Basic dXNlcjpwYXNz"),
        Some("Bearer"),
        Some("Bearer fgk_not-a-key"),
        Some("fgk_no_scheme"),
    ] {
        let mut request = reqwest::Client::new()
            .post(&server.mcp_url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(INITIALIZE);
        if let Some(value) = header {
            request = request.header("authorization", value);
        }
        let response = request.send().await.expect("answers");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{header:?}");
        assert!(
            response.headers()["www-authenticate"]
                .to_str()
                .expect("ascii")
                .starts_with("Bearer")
        );
    }
    let (status, _, _) = post(
        &server.mcp_url,
        Some(server.key("auditor")),
        None,
        INITIALIZE,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_session_belongs_to_the_agent_that_opened_it() {
    let server = ServerProcess::sandbox(&[]);
    let auditor = server.key("auditor");
    let session = open_session(&server.mcp_url, Some(auditor)).await;
    let (status, _, messages) =
        post(&server.mcp_url, Some(auditor), Some(&session), LIST, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        messages[0]["result"]["tools"].as_array().map(Vec::len),
        Some(19)
    );

    let (status, _, messages) = post(
        &server.mcp_url,
        Some(server.key("dns-editor")),
        Some(&session),
        LIST,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{messages:?}");
    assert!(messages.is_empty(), "no tool list leaks to the other agent");
    let (status, _, _) = post(&server.mcp_url, None, Some(&session), LIST, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, _, _) = post(&server.mcp_url, Some(auditor), Some(&session), LIST, &[]).await;
    assert_eq!(status, StatusCode::OK, "the owner keeps its session");

    // A made-up or guessed id is nobody's session.
    for made_up in ["0e8e0628-d623-4e84-82e7-672015bf38c3", "", "x"] {
        let (status, _, messages) =
            post(&server.mcp_url, Some(auditor), Some(made_up), LIST, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{made_up:?}: {messages:?}");
    }
}

#[tokio::test]
async fn spoofed_host_and_origin_are_refused() {
    let server = ServerProcess::sandbox(&[]);
    let key = Some(server.key("auditor"));
    let (status, _, _) = post(
        &server.mcp_url,
        key,
        None,
        INITIALIZE,
        &[("host", "evil.example")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = post(
        &server.mcp_url,
        key,
        None,
        INITIALIZE,
        &[("origin", "http://evil.example")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = post(
        &server.mcp_url,
        key,
        None,
        INITIALIZE,
        &[("origin", "http://localhost:3000")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_methods_get_a_json_rpc_error() {
    let server = ServerProcess::sandbox(&[]);
    let key = Some(server.key("auditor"));
    let session = open_session(&server.mcp_url, key).await;
    let (_, _, messages) = post(
        &server.mcp_url,
        key,
        Some(&session),
        r#"{"jsonrpc":"2.0","id":9,"method":"no/such/method","params":{}}"#,
        &[],
    )
    .await;
    assert_eq!(messages[0]["error"]["code"], -32601, "{messages:?}");
    let (_, _, messages) = post(
        &server.mcp_url,
        key,
        None,
        r#"{"jsonrpc":"2.0","id":10,"method":"server/discover","params":{}}"#,
        &[("mcp-protocol-version", "2026-07-28")],
    )
    .await;
    assert!(
        messages.iter().any(|m| m["id"] == 10),
        "server/discover is answered: {messages:?}"
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("flaregate.toml");
    std::fs::write(&config, "[http]\nmax_body_bytes = 4096\n").expect("write");
    let server = ServerProcess::start(
        &["--sandbox", "--config", config.to_str().expect("utf-8")],
        &[],
    );
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"2025-06-18","capabilities":{{}},"clientInfo":{{"name":"{}","version":"1"}}}}}}"#,
        "x".repeat(10_000)
    );
    let (status, _, _) = post(
        &server.mcp_url,
        Some(server.key("auditor")),
        None,
        &big,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

const OPEN_POLICY: &str =
    "[[agent]]\nid = \"local\"\nauth = \"none\"\nzones = [\"*\"]\ngrants = { zones = \"read\" }\n";

#[tokio::test]
async fn an_agent_without_auth_works_on_loopback_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("open.toml");
    std::fs::write(&policy, OPEN_POLICY).expect("write");
    let policies = policy.to_str().expect("utf-8");
    let server = ServerProcess::start(&["--sandbox", "--policies", policies], &[]);
    let session = open_session(&server.mcp_url, None).await;
    let (_, _, messages) = post(&server.mcp_url, None, Some(&session), LIST, &[]).await;
    assert_eq!(
        messages[0]["result"]["tools"].as_array().map(Vec::len),
        Some(2)
    );

    let refused = std::process::Command::new(BIN)
        .args([
            "serve",
            "--sandbox",
            "--http",
            "0.0.0.0:0",
            "--policies",
            policies,
        ])
        .args(["--catalog", shipped("catalog").to_str().expect("utf-8")])
        .args([
            "--audit-db",
            dir.path().join("a.db").to_str().expect("utf-8"),
        ])
        .output()
        .expect("runs");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(
            "agent local has auth = \"none\", which is only allowed on a loopback listener"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn many_agents_at_once() {
    let server = ServerProcess::sandbox(&[]);
    let mut tasks = Vec::new();
    for (agent, expected) in [("auditor", 19), ("site-deployer", 5), ("dns-editor", 8)] {
        for _ in 0..4 {
            let (url, key) = (server.mcp_url.clone(), server.key(agent).to_string());
            tasks.push(tokio::spawn(async move {
                let client = common::connect_http(&url, Some(&key)).await;
                let tools = client.list_all_tools().await.expect("tools");
                assert_eq!(tools.len(), expected, "{agent}");
                let zones = client
                    .call_tool(
                        rmcp::model::CallToolRequestParams::new("list_zones")
                            .with_arguments(json!({}).as_object().cloned().expect("object")),
                    )
                    .await;
                (agent, zones.is_ok())
            }));
        }
    }
    for task in tasks {
        let (agent, listed) = task.await.expect("task");
        assert_eq!(
            listed,
            agent != "site-deployer",
            "{agent}: list_zones is a protocol error only for agents without it"
        );
    }
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly_with_the_log_intact() {
    let mut server = ServerProcess::sandbox(&[]);
    let client = common::connect_http(&server.mcp_url, Some(server.key("auditor"))).await;
    common::call(&client, "list_zones", json!({})).await;
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    assert!(matches!(
        common::verify(&server.audit_db),
        flaregate::audit::ChainVerdict::Valid { rows: 1, .. }
    ));
}

#[tokio::test]
async fn the_admin_listener_reports_health_readiness_and_metrics_without_agent_keys() {
    let server = ServerProcess::sandbox(&["--admin", "127.0.0.1:0"]);
    let admin = server
        .admin_url
        .clone()
        .expect("the banner names the admin URL");
    let get = |path: &str| {
        let url = format!("{admin}{path}");
        async move {
            let response = reqwest::get(url).await.expect("admin answers");
            (
                response.status().as_u16(),
                response.text().await.expect("text"),
            )
        }
    };
    assert_eq!(get("/health").await, (200, "ok\n".to_string()));
    let (status, ready) = get("/ready").await;
    assert_eq!(status, 200, "{ready}");
    assert!(ready.contains("\"ready\":true"), "{ready}");

    let auditor = server.connect("auditor").await;
    call(&auditor, "list_zones", json!({})).await;
    call(&auditor, "get_zone", json!({"zone_id": "nope"})).await;
    let _ = common::try_call(&auditor, "made_up_tool_name", json!({})).await;
    let (status, metrics) = get("/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "flaregate_calls_total{agent=\"auditor\",tool=\"list_zones\",decision=\"allow\",kind=\"none\"} 1",
        "flaregate_calls_total{agent=\"auditor\",tool=\"get_zone\",decision=\"deny\",kind=\"invalid_arguments\"} 1",
        "flaregate_calls_total{agent=\"auditor\",tool=\"unknown\",decision=\"deny\",kind=\"unknown_tool\"} 1",
        "flaregate_upstream_responses_total{class=\"2xx\"} 1",
        "flaregate_call_duration_seconds_count 3",
        "flaregate_audit_queue_depth 0",
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
    assert!(
        !metrics.contains("made_up_tool_name"),
        "labels come from the catalog"
    );
    let count = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(
        count("flaregate_audit_commit_duration_seconds_count") > 0,
        "{metrics}"
    );
    assert!(
        count("flaregate_audit_fsync_duration_seconds_count") > 0,
        "{metrics}"
    );
    // Not served on the MCP listener.
    let mcp_root = server.mcp_url.trim_end_matches("/mcp");
    let status = reqwest::get(format!("{mcp_root}/metrics"))
        .await
        .expect("answers")
        .status();
    assert_ne!(status.as_u16(), 200);
}
