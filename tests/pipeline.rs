//! The pipeline's rule, end to end against the sandbox: nothing reaches
//! Cloudflare for an agent unless it is the lookup a decision needs
//! (charged and recorded) or the verdict allows it and the charge was
//! taken; nothing an agent may not read is put in its answer. Previews,
//! snapshots and undo's reads each meet it.

mod common;

use common::{ServerProcess, call, text};
use serde_json::json;

const COM: &str = "023e105f4ecef8ad9ca31a8372d0c353";
const ORG: &str = "5a7805061c76ada191ed06f989cc3dac";
const WWW: &str = "8ce0e8a8a7b7b3c1d0e9f8a7b6c5d4e3";
const ORG_APEX: &str = "44ee33dd22cc11bb00aa99887766aa01";

const POLICY: &str = r#"
[[agent]]
id = "staging-editor"
zones = ["example.com"]
grants = { dns = "full" }

[[agent.constraint]]
group = "dns"
arg = "name"
allow = ["*.staging.example.com"]

[[agent]]
id = "finder"
zones = ["example.com"]
grants = { dns = "full" }
tool_mode = "discover"

[[agent.constraint]]
group = "dns"
arg = "name"
allow = ["*.staging.example.com"]

[[agent]]
id = "editor"
zones = ["example.com"]
grants = { dns = "full" }

[[agent]]
id = "outsider"
zones = ["example.org"]
grants = { dns = "full" }
undo = true

[[agent]]
id = "operator"
zones = ["example.com"]
grants = { dns = "full" }
undo = true
"#;

fn serve(dir: &tempfile::TempDir, extra: &[&str]) -> ServerProcess {
    let policy = dir.path().join("pipeline.toml");
    std::fs::write(&policy, POLICY).expect("write");
    let mut args = vec!["--sandbox", "--policies", policy.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    ServerProcess::start(&args, &[])
}

/// How many requests the sandbox has received.
async fn sent(server: &ServerProcess) -> usize {
    server.sandbox_requests().await.len()
}

/// A denied preview: refused, with the decision and nothing of the object.
fn decision_alone(result: &rmcp::model::CallToolResult, kind: &str) {
    assert_eq!(result.is_error, Some(true), "{}", text(result));
    let shown = result.structured_content.clone().expect("structured");
    assert_eq!(shown["preview"], true, "{shown}");
    assert_eq!(shown["decision"]["would_be"], "denied", "{shown}");
    assert_eq!(shown["decision"]["kind"], kind, "{shown}");
    for key in ["current", "changes", "request"] {
        assert!(shown.get(key).is_none(), "{key} shown: {shown}");
    }
}

#[tokio::test]
async fn a_denied_preview_returns_the_decision_alone_and_reads_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(&dir, &[]);
    let editor = server.connect("staging-editor").await;
    let finder = server.connect("finder").await;

    // Outside its zones: judged on the path, nothing at all is sent.
    let before = sent(&server).await;
    let outside = json!({"zone_id": ORG, "dns_record_id": ORG_APEX, "dry_run": true});
    let denied = call(&editor, "delete_dns_record", outside.clone()).await;
    decision_alone(&denied, "outside_scope");
    assert!(!text(&denied).contains("198.51.100.1"), "{}", text(&denied));
    let through_discovery = call(
        &finder,
        "call_api",
        json!({"name": "delete_dns_record", "arguments": outside}),
    )
    .await;
    decision_alone(&through_discovery, "outside_scope");
    assert_eq!(sent(&server).await, before, "nothing was sent");

    // A name outside the constraint, in the arguments: nothing is sent.
    let create = json!({"zone_id": COM, "type": "A", "name": "evil.example.com", "content": "192.0.2.66", "ttl": 1, "dry_run": true});
    decision_alone(
        &call(&editor, "create_dns_record", create.clone()).await,
        "constraint",
    );
    decision_alone(
        &call(
            &finder,
            "call_api",
            json!({"name": "create_dns_record", "arguments": create}),
        )
        .await,
        "constraint",
    );
    assert_eq!(sent(&server).await, before, "nothing was sent");

    // A record named only by id: its lookup is the one read the decision
    // needs; the record is not shown, and nothing else is read.
    let patch = json!({"zone_id": COM, "dns_record_id": WWW, "content": "evil.example.net", "dry_run": true});
    let denied = call(&editor, "patch_dns_record", patch.clone()).await;
    decision_alone(&denied, "constraint");
    let via_api = call(
        &finder,
        "call_api",
        json!({"name": "patch_dns_record", "arguments": patch}),
    )
    .await;
    decision_alone(&via_api, "constraint");
    let reads: Vec<String> = server.sandbox_requests().await[before..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        reads,
        vec![format!("GET /zones/{COM}/dns_records/{WWW}"); 2],
        "the lookups only"
    );
    // Each lookup has its row, a denied preview.
    let rows = server.audit_rows();
    let previews: Vec<_> = rows
        .iter()
        .filter(|r| r.decision == "preview" && r.tool == "patch_dns_record")
        .collect();
    assert_eq!(previews.len(), 2, "{rows:#?}");
    assert!(
        previews
            .iter()
            .all(|r| r.lookup.contains(WWW) && r.reason.starts_with("would be denied")),
        "{previews:#?}"
    );
}

#[tokio::test]
async fn every_read_made_for_a_write_is_charged_and_has_its_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(&dir, &[]);
    let editor = server.connect("editor").await;
    let operator = server.connect("operator").await;
    let www = format!("/zones/{COM}/dns_records/{WWW}");

    // A preview reads the record: its row says so.
    let shown = call(
        &editor,
        "patch_dns_record",
        json!({"zone_id": COM, "dns_record_id": WWW, "content": "a.example.net", "dry_run": true}),
    )
    .await;
    assert_ne!(shown.is_error, Some(true), "{}", text(&shown));
    // The write reads it for its snapshot, then writes: one row with both.
    let written = call(
        &editor,
        "patch_dns_record",
        json!({"zone_id": COM, "dns_record_id": WWW, "content": "a.example.net"}),
    )
    .await;
    assert_ne!(written.is_error, Some(true), "{}", text(&written));
    let rows = server.audit_rows();
    let preview = rows
        .iter()
        .find(|r| r.decision == "preview")
        .expect("preview row");
    assert!(
        preview.lookup.contains(&format!("GET {www}")),
        "{preview:#?}"
    );
    let write = rows
        .iter()
        .find(|r| r.decision == "allow" && r.tool == "patch_dns_record")
        .expect("write row");
    assert!(write.lookup.contains(&format!("GET {www}")), "{write:#?}");

    // The undo reads the record to tell whether it changed since: that read
    // is in the undo's row.
    let undone = call(&operator, "undo_call", json!({"row": write.id})).await;
    assert_ne!(undone.is_error, Some(true), "{}", text(&undone));
    let rows = server.audit_rows();
    let undo = rows.last().expect("the undo's row");
    assert!(
        undo.reason.contains(&format!("undo of row {}", write.id)),
        "{undo:#?}"
    );
    assert!(undo.lookup.contains(&format!("GET {www}")), "{undo:#?}");

    // Every GET the sandbox saw for the record has a row that names it.
    let gets = server
        .sandbox_requests()
        .await
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with(&www))
        .count();
    let noted: usize = rows.iter().map(|r| r.lookup.matches(&www).count()).sum();
    assert!(gets >= 3, "{gets}");
    assert_eq!(gets, noted, "{rows:#?}");
}

#[tokio::test]
async fn an_agent_doing_only_writes_cannot_take_the_budget_below_its_reserve() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 40 requests a minute, half kept in reserve: each agent's share is 20.
    let config = dir.path().join("flaregate.toml");
    std::fs::write(
        &config,
        "[cloudflare]\nrate_limit = \"40/60s\"\nreserve_percent = 50\n",
    )
    .expect("config");
    let server = serve(&dir, &["--config", config.to_str().expect("utf-8")]);
    let editor = server.connect("editor").await;
    let operator = server.connect("operator").await;
    let before = sent(&server).await;
    let mut refused = None;
    for n in 0..30 {
        let answer = call(
            &editor,
            "patch_dns_record",
            json!({"zone_id": COM, "dns_record_id": WWW, "content": format!("n{n}.example.net")}),
        )
        .await;
        if answer.is_error == Some(true) {
            refused = Some(text(&answer));
            break;
        }
    }
    let refused = refused.expect("the writer's share ran out");
    assert!(refused.contains("share"), "{refused}");
    // Each write is two requests (its snapshot's read and the write), and
    // both were charged: the writer sent no more than its share.
    let by_writer = sent(&server).await - before;
    assert!(by_writer <= 20, "{by_writer} requests for a share of 20");
    // The reserve is still there for the others.
    let read = call(
        &operator,
        "get_dns_record",
        json!({"zone_id": COM, "dns_record_id": WWW}),
    )
    .await;
    assert_ne!(read.is_error, Some(true), "{}", text(&read));
}

#[tokio::test]
async fn undo_of_a_row_outside_the_agents_reach_says_only_that() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(&dir, &[]);
    let editor = server.connect("editor").await;
    let outsider = server.connect("outsider").await;
    let written = call(
        &editor,
        "patch_dns_record",
        json!({"zone_id": COM, "dns_record_id": WWW, "content": "secret-origin.example.net"}),
    )
    .await;
    assert_ne!(written.is_error, Some(true), "{}", text(&written));
    let row = server
        .audit_rows()
        .iter()
        .rev()
        .find(|r| r.tool == "patch_dns_record")
        .expect("row")
        .id;
    let before = sent(&server).await;
    for args in [
        json!({"row": row}),
        json!({"row": row, "dry_run": true}),
        json!({"row": row, "force": true}),
    ] {
        let denied = call(&outsider, "undo_call", args).await;
        assert_eq!(denied.is_error, Some(true));
        assert_eq!(
            text(&denied),
            format!("Denied by flaregate policy: you may not act on row {row}."),
        );
        assert!(denied.structured_content.is_none());
    }
    assert_eq!(sent(&server).await, before, "nothing was read or sent");
    // The refusals are in the log, with the row they were about.
    let rows = server.audit_rows();
    let refusals: Vec<&flaregate::audit::Entry> = rows
        .iter()
        .filter(|r| r.agent == "outsider" && r.decision == "deny")
        .collect();
    assert_eq!(refusals.len(), 3, "{rows:#?}");
    assert!(
        refusals
            .iter()
            .all(|r| r.reason.contains(&format!("undo of row {row}"))),
        "{refusals:#?}"
    );
}
