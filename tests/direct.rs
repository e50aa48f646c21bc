//! Stateless 2026-07-28 `tools/call` requests are answered on flaregate's
//! direct path (`src/server/direct.rs`) instead of rmcp's per-request
//! service. The same request sent so that it goes to rmcp (a q-value in
//! `Accept`, which only rmcp weighs) must get the very same answer: status,
//! content type and body. And the operator's switch sends everything to
//! rmcp.

mod common;

use std::path::Path;

use common::ServerProcess;
use serde_json::{Value, json};

const COM: &str = "023e105f4ecef8ad9ca31a8372d0c353";

/// flaregate's own debug lines, which say when a call was answered directly.
const DEBUG: &[(&str, &str)] = &[("RUST_LOG", "flaregate=debug")];

/// Calls whose answers cover the path's outcomes: an allowed read, a list,
/// a refusal by policy, invalid arguments, a tool the agent cannot see,
/// and a write's preview.
fn calls() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("auditor", "get_zone", json!({"zone_id": COM})),
        ("auditor", "list_dns_records", json!({"zone_id": COM})),
        (
            "dns-editor",
            "list_dns_records",
            json!({"zone_id": "0".repeat(32)}),
        ),
        ("auditor", "get_zone", json!({"zone_id": 5})),
        (
            "auditor",
            "purge_cache",
            json!({"zone_id": COM, "purge_everything": true}),
        ),
        (
            "dns-editor",
            "create_dns_record",
            json!({
                "zone_id": COM, "type": "A", "name": "direct.example.com",
                "content": "192.0.2.7", "dry_run": true
            }),
        ),
    ]
}

fn request(id: u64, tool: &str, arguments: &Value) -> Value {
    json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": tool, "arguments": arguments, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "direct-test", "version": "1"}
        }}
    })
}

/// How many calls the server's log says it answered directly.
fn answered_directly(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .expect("server log")
        .lines()
        .filter(|l| l.contains("answered directly"))
        .count()
}

#[tokio::test]
async fn the_direct_path_answers_exactly_as_rmcp_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("server.log");
    let server = ServerProcess::start_logging_to(&["--sandbox"], DEBUG, &log);
    let through_rmcp = [("accept", "application/json;q=1, text/event-stream")];
    for (n, (agent, tool, arguments)) in calls().into_iter().enumerate() {
        let body = request(n as u64 + 1, tool, &arguments);
        let key = server.key(agent);
        let before = answered_directly(&log);
        let direct = common::modern_post(&server.mcp_url, key, &body, &[]).await;
        assert_eq!(answered_directly(&log), before + 1, "{tool} went directly");
        let rmcp = common::modern_post(&server.mcp_url, key, &body, &through_rmcp).await;
        assert_eq!(answered_directly(&log), before + 1, "{tool} went to rmcp");
        assert_eq!(
            (direct.0, &direct.1),
            (rmcp.0, &rmcp.1),
            "{tool}: status, type"
        );
        let parse = |text: &str| serde_json::from_str::<Value>(text).expect("JSON answer");
        assert_eq!(parse(&direct.2), parse(&rmcp.2), "{tool}: the same answer");
    }
    // Both paths audited every call, and the chain holds.
    assert_eq!(server.audit_rows().len(), 2 * calls().len());
    assert!(matches!(
        common::verify(&server.audit_db),
        flaregate::audit::ChainVerdict::Valid { .. }
    ));
}

#[tokio::test]
async fn requests_the_direct_path_does_not_take_get_rmcps_own_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("server.log");
    let server = ServerProcess::start_logging_to(&["--sandbox"], DEBUG, &log);
    let key = server.key("auditor");
    let body = request(1, "get_zone", &json!({"zone_id": COM}));
    // A name header that contradicts the body: rmcp's header mismatch.
    let (status, _, text) =
        common::modern_post(&server.mcp_url, key, &body, &[("mcp-name", "list_zones")]).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("does not match"), "{text}");
    // A foreign origin: rmcp's refusal.
    let origin = [("origin", "http://evil.example")];
    let (status, _, text) = common::modern_post(&server.mcp_url, key, &body, &origin).await;
    assert_eq!(status, 403, "{text}");
    // No key: refused before any path.
    let (status, _, _) = common::modern_post(&server.mcp_url, "wrong", &body, &[]).await;
    assert_eq!(status, 401);
    assert_eq!(answered_directly(&log), 0);
    assert!(
        server.audit_rows().is_empty(),
        "nothing refused at the protocol level reached the pipeline"
    );
}

#[tokio::test]
async fn the_operator_can_send_every_request_through_rmcp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("server.log");
    let server = ServerProcess::start_logging_to(
        &["--sandbox"],
        &[DEBUG[0], ("FLAREGATE_DIRECT_CALLS", "off")],
        &log,
    );
    let body = request(1, "get_zone", &json!({"zone_id": COM}));
    let (status, _, text) =
        common::modern_post(&server.mcp_url, server.key("auditor"), &body, &[]).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(COM), "{text}");
    assert_eq!(answered_directly(&log), 0);
}

#[tokio::test]
async fn a_client_that_hangs_up_does_not_cut_a_call_short() {
    // Cloudflare answers in 2 s; the client gives up after half a second.
    let upstream = common::SandboxProcess::start(&["--latency-ms", "2000"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, hash) = flaregate::policy::new_key();
    let policy = dir.path().join("reader.toml");
    std::fs::write(
        &policy,
        format!("[[agent]]\nid = \"reader\"\nkey_sha256 = [\"{hash}\"]\nzones = [\"*\"]\ngrants = {{ zones = \"read\" }}\n"),
    )
    .expect("policy");
    let server = ServerProcess::start(
        &["--policies", policy.to_str().expect("utf-8")],
        &[
            ("CLOUDFLARE_API_TOKEN", upstream.token.as_str()),
            ("CLOUDFLARE_API_BASE_URL", upstream.base_url.as_str()),
        ],
    );
    let body = request(1, "get_zone", &json!({"zone_id": COM}));
    let hang_up = std::time::Duration::from_millis(500);
    let gave_up = tokio::time::timeout(
        hang_up,
        common::modern_post(&server.mcp_url, &key, &body, &[]),
    )
    .await;
    assert!(gave_up.is_err(), "the client hung up before the answer");
    // The call runs to its end: Cloudflare's answer is in its row.
    let mut rows = server.audit_rows();
    for _ in 0..100 {
        if rows.first().is_some_and(|r| r.status.is_some()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        rows = server.audit_rows();
    }
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].status, Some(200), "{rows:?}");
}
