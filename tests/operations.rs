//! What an operator watches and alerts on: a reload that failed is shown
//! (`/ready`, `flaregate_policy_stale` with file and line) and, where the
//! operator chose, refuses calls until a good policy loads; flaregate's own
//! tools are counted under their names; the log's size against its cap and
//! the approvals waiting are gauges.

mod common;

use std::time::Duration;

use common::{ServerProcess, call, text, try_call};
use flaregate::sandbox::EXAMPLE_COM;
use serde_json::{Value, json};

/// One agent on a loopback listener (no key), finding its tools through
/// discovery, allowed to undo; `extra` goes into flaregate.toml.
fn serve(dir: &tempfile::TempDir, extra: &str) -> ServerProcess {
    std::fs::write(dir.path().join("policy.toml"), policy("read")).expect("policy");
    std::fs::write(dir.path().join("flaregate.toml"), extra).expect("config");
    ServerProcess::sandbox(&[
        "--policies",
        dir.path().join("policy.toml").to_str().expect("utf-8"),
        "--config",
        dir.path().join("flaregate.toml").to_str().expect("utf-8"),
        "--admin",
        "127.0.0.1:0",
    ])
}

fn policy(dns: &str) -> String {
    format!(
        "[[agent]]\nid = \"ops\"\nauth = \"none\"\nzones = [\"example.com\"]\ngrants = {{ dns = \"{dns}\" }}\ntool_mode = \"discover\"\nundo = true\napprove = [\"method:DELETE\"]\n"
    )
}

async fn get(admin: &str, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("{admin}{path}"))
        .await
        .expect("admin answers");
    (
        response.status().as_u16(),
        response.text().await.expect("text"),
    )
}

/// Breaks the policy file (line 3), then waits until the server says so.
async fn break_policy(dir: &tempfile::TempDir, admin: &str) -> String {
    std::fs::write(
        dir.path().join("policy.toml"),
        "[[agent]]\nid = \"ops\"\ngrants = { dns = \"everything\" }\n",
    )
    .expect("break");
    for _ in 0..100 {
        let (_, metrics) = get(admin, "/metrics").await;
        if metrics.contains("flaregate_policy_stale{") {
            return metrics;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the failed reload never showed");
}

/// Mends the policy file, then waits until it is in force again.
async fn mend_policy(dir: &tempfile::TempDir, admin: &str) {
    std::fs::write(dir.path().join("policy.toml"), policy("full")).expect("mend");
    for _ in 0..100 {
        if get(admin, "/metrics")
            .await
            .1
            .contains("flaregate_policy_stale 0")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the mended policy never loaded");
}

#[tokio::test]
async fn a_failed_reload_is_shown_and_its_own_tools_and_gauges_are_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(&dir, "");
    let admin = server.admin_url.clone().expect("admin");
    let client = common::connect_http(&server.mcp_url, None).await;
    call(&client, "search_api", json!({"query": "dns records"})).await;
    call(&client, "describe_api", json!({"name": "list_dns_records"})).await;
    let listed = call(
        &client,
        "call_api",
        json!({"name": "list_dns_records", "arguments": {"zone_id": EXAMPLE_COM}}),
    )
    .await;
    assert_eq!(listed.is_error, Some(false), "{}", text(&listed));
    let _ = call(&client, "undo_call", json!({"row": 1})).await;

    let (status, metrics) = get(&admin, "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "flaregate_own_tool_calls_total{agent=\"ops\",tool=\"search_api\"} 1",
        "flaregate_own_tool_calls_total{agent=\"ops\",tool=\"describe_api\"} 1",
        "flaregate_own_tool_calls_total{agent=\"ops\",tool=\"call_api\"} 1",
        "flaregate_own_tool_calls_total{agent=\"ops\",tool=\"undo_call\"} 1",
        "flaregate_approvals_pending 0",
        "flaregate_policy_stale 0",
        "flaregate_policy_seconds_since_load ",
        "flaregate_audit_bytes ",
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }

    // A broken edit: the older policy stays in force, and that shows.
    let metrics = break_policy(&dir, &admin).await;
    assert!(
        metrics.contains("flaregate_policy_stale{file=\"")
            && metrics.contains("policy.toml\",line=\"3\"} 1"),
        "{metrics}"
    );
    let (status, ready) = get(&admin, "/ready").await;
    assert_eq!(status, 200, "keep (the default) serves on: {ready}");
    let ready: Value = serde_json::from_str(&ready).expect("JSON");
    assert!(
        ready["policy_stale"]
            .as_str()
            .is_some_and(|s| s.contains("policy.toml:3")),
        "{ready}"
    );
    let still = call(
        &client,
        "call_api",
        json!({"name": "list_dns_records", "arguments": {"zone_id": EXAMPLE_COM}}),
    )
    .await;
    assert_eq!(still.is_error, Some(false), "{}", text(&still));
    mend_policy(&dir, &admin).await;
    assert!(
        get(&admin, "/ready")
            .await
            .1
            .contains("\"policy_stale\":null"),
        "mended"
    );
}

#[tokio::test]
async fn with_refuse_a_failed_reload_refuses_calls_until_a_policy_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(&dir, "[policy]\non_reload_error = \"refuse\"\n");
    let admin = server.admin_url.clone().expect("admin");
    let client = common::connect_http(&server.mcp_url, None).await;
    let list = || {
        try_call(
            &client,
            "call_api",
            json!({"name": "list_dns_records", "arguments": {"zone_id": EXAMPLE_COM}}),
        )
    };
    let before = list().await.expect("answered");
    assert_eq!(before.is_error, Some(false), "{}", text(&before));

    break_policy(&dir, &admin).await;
    let sent = server.sandbox_requests().await.len();
    let refused = list().await.expect("answered");
    assert_eq!(refused.is_error, Some(true));
    assert!(
        text(&refused).contains("policy did not reload")
            && text(&refused).contains("policy.toml:3"),
        "{}",
        text(&refused)
    );
    assert_eq!(server.sandbox_requests().await.len(), sent, "nothing sent");
    assert_eq!(get(&admin, "/ready").await.0, 503);

    mend_policy(&dir, &admin).await;
    let after = list().await.expect("answered");
    assert_eq!(after.is_error, Some(false), "{}", text(&after));
    assert_eq!(get(&admin, "/ready").await.0, 200);
    let rows = server.audit_rows();
    assert!(
        rows.iter()
            .any(|r| r.decision == "deny" && r.rule == "policy.on_reload_error"),
        "the refusal is a row of the log"
    );
}
