//! Snapshots and undo, end to end against the sandbox: each kind of write
//! is made by one agent and undone by the operator identity (`undo =
//! true`), and the object is read back exactly as it was (Worker code byte
//! for byte). An object changed again since is not undone without force;
//! undo is denied by default and checked like any call; a snapshot that
//! cannot be kept refuses the write when the policy requires it.

mod common;

use std::process::Command;

use common::{BIN, ServerProcess, call, text, try_call};
use serde_json::{Value, json};

const COM: &str = "023e105f4ecef8ad9ca31a8372d0c353";
const ACCOUNT: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const WWW: &str = "8ce0e8a8a7b7b3c1d0e9f8a7b6c5d4e3";
const MX: &str = "3d2c1b0a99887766554433221100ffee";
const RULESET: &str = "2f2feab2026849078ba485f918791bdc";
const PAGE_RULE: &str = "9a7806061c88ada191ed06f989cc3dac";
const POOL_PRIMARY: &str = "17b5962d775c646f3f9725cbc7a53df4";
const POOL_FALLBACK: &str = "9290f38c5d07c2e2f4df57b1f61d4196";

const POLICY: &str = r#"
[[agent]]
id = "editor"
zones = ["example.com"]
accounts = ["Example Corp"]
grants = { dns = "full", workers = "full", ssl = "full", firewall = "full", page_rules = "full", load_balancers = "full" }

[[agent]]
id = "operator"
zones = ["example.com"]
accounts = ["Example Corp"]
grants = { dns = "full", workers = "full", ssl = "full", firewall = "full", page_rules = "full", load_balancers = "full" }
undo = true

[[agent]]
id = "careful"
zones = ["example.com"]
grants = { dns = "full" }
undo = true
approve = ["delete_dns_record"]

[[agent]]
id = "outsider"
zones = ["example.org"]
grants = { dns = "full" }
undo = true

[[agent]]
id = "strict"
zones = ["example.com"]
accounts = ["Example Corp"]
grants = { workers = "full" }
snapshots = "required"
snapshot_max_kb = 0

[[agent]]
id = "lenient"
zones = ["example.com"]
accounts = ["Example Corp"]
grants = { workers = "full" }
snapshot_max_kb = 0
"#;

type Client = rmcp::service::RunningService<rmcp::RoleClient, ()>;

fn serve(dir: &tempfile::TempDir) -> ServerProcess {
    let policy = dir.path().join("undo.toml");
    std::fs::write(&policy, POLICY).expect("write");
    ServerProcess::start(
        &["--sandbox", "--policies", policy.to_str().expect("utf-8")],
        &[],
    )
}

/// A read's result object.
async fn read(client: &Client, tool: &str, args: Value) -> Value {
    let result = call(client, tool, args).await;
    assert_ne!(result.is_error, Some(true), "{tool}: {}", text(&result));
    result.structured_content.expect("a structured result")["result"].clone()
}

/// Makes a write; returns its audit row id.
async fn write(server: &ServerProcess, client: &Client, tool: &str, args: Value) -> i64 {
    let result = call(client, tool, args).await;
    assert_ne!(result.is_error, Some(true), "{tool}: {}", text(&result));
    last_row(server, tool)
}

fn last_row(server: &ServerProcess, tool: &str) -> i64 {
    server
        .audit_rows()
        .iter()
        .rev()
        .find(|r| r.tool == tool)
        .map(|r| r.id)
        .expect("a row")
}

async fn undo(client: &Client, row: i64, extra: Value) -> rmcp::model::CallToolResult {
    let mut args = json!({"row": row});
    for (k, v) in extra.as_object().into_iter().flatten() {
        args[k] = v.clone();
    }
    call(client, "undo_call", args).await
}

async fn undone(client: &Client, row: i64) {
    let result = undo(client, row, json!({})).await;
    assert_ne!(result.is_error, Some(true), "undo {row}: {}", text(&result));
}

/// The fields of a DNS record a person set.
fn record_fields(record: &Value) -> Value {
    json!({
        "type": record["type"], "name": record["name"], "content": record["content"],
        "ttl": record["ttl"], "proxied": record["proxied"], "priority": record["priority"],
        "tags": record["tags"]
    })
}

async fn records_named(client: &Client, name: &str) -> Vec<Value> {
    let listed = read(
        client,
        "list_dns_records",
        json!({"zone_id": COM, "name": name}),
    )
    .await;
    listed.as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn dns_writes_are_undone_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(&dir);
    let editor = server.connect("editor").await;
    let operator = server.connect("operator").await;
    let www = json!({"zone_id": COM, "dns_record_id": WWW});

    // A change: every field as it was.
    let before = read(&operator, "get_dns_record", www.clone()).await;
    let row = write(
        &server,
        &editor,
        "update_dns_record",
        json!({"zone_id": COM, "dns_record_id": WWW, "type": "CNAME", "name": "www.example.com",
               "content": "elsewhere.example.net", "ttl": 300, "proxied": false}),
    )
    .await;
    undone(&operator, row).await;
    let after = read(&operator, "get_dns_record", www.clone()).await;
    assert_eq!(record_fields(&after), record_fields(&before));

    // A delete: the record is back (with a new id).
    let mx = read(
        &operator,
        "get_dns_record",
        json!({"zone_id": COM, "dns_record_id": MX}),
    )
    .await;
    let row = write(
        &server,
        &editor,
        "delete_dns_record",
        json!({"zone_id": COM, "dns_record_id": MX}),
    )
    .await;
    undone(&operator, row).await;
    let name = mx["name"].as_str().expect("name");
    let back = records_named(&operator, name).await;
    assert!(
        back.iter().any(|r| record_fields(r) == record_fields(&mx)),
        "{back:?} / {mx}"
    );
    // Undoing it again would re-create it twice: refused, nothing sent.
    let again = undo(&operator, row, json!({"force": true})).await;
    assert_eq!(again.is_error, Some(true));
    assert!(
        text(&again).contains(&format!("row {row} was already undone by row")),
        "{}",
        text(&again)
    );
    assert_eq!(records_named(&operator, name).await.len(), back.len());

    // A create: removed again.
    let row = write(
        &server,
        &editor,
        "create_dns_record",
        json!({"zone_id": COM, "type": "TXT", "name": "undo-me.example.com", "content": "x", "ttl": 1}),
    )
    .await;
    assert_eq!(
        records_named(&operator, "undo-me.example.com").await.len(),
        1
    );
    undone(&operator, row).await;
    assert!(
        records_named(&operator, "undo-me.example.com")
            .await
            .is_empty()
    );

    // Each undo is a row of its own that names the row it undid, and the
    // chain (snapshots included) verifies.
    let rows = server.audit_rows();
    assert_eq!(
        rows.iter()
            .filter(|r| r.agent == "operator" && r.reason.contains("(undo of row "))
            .map(|r| r.decision.as_str())
            .collect::<Vec<_>>(),
        ["allow", "allow", "deny", "allow"]
    );
    let verdict = common::verify(&server.audit_db);
    assert!(
        matches!(verdict, flaregate::audit::ChainVerdict::Valid { .. }),
        "{verdict:?}"
    );
}

#[tokio::test]
async fn worker_code_comes_back_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(&dir);
    let editor = server.connect("editor").await;
    let operator = server.connect("operator").await;
    let code = |name: &str| {
        let operator = &operator;
        let name = name.to_string();
        async move {
            let result = call(
                operator,
                "get_worker_script",
                json!({"account_id": ACCOUNT, "script_name": name}),
            )
            .await;
            (result.is_error != Some(true))
                .then(|| result.structured_content.expect("code")["result"]["content"].clone())
        }
    };
    let router = code("site-router").await.expect("seeded");
    let row = write(
        &server,
        &editor,
        "put_worker_script",
        json!({"account_id": ACCOUNT, "script_name": "site-router",
               "script": "export default { fetch() { return new Response('new') } }"}),
    )
    .await;
    assert_ne!(code("site-router").await, Some(router.clone()));
    undone(&operator, row).await;
    assert_eq!(code("site-router").await, Some(router));

    let gateway = code("api-gateway").await.expect("seeded");
    let row = write(
        &server,
        &editor,
        "delete_worker_script",
        json!({"account_id": ACCOUNT, "script_name": "api-gateway"}),
    )
    .await;
    assert_eq!(code("api-gateway").await, None);
    undone(&operator, row).await;
    assert_eq!(code("api-gateway").await, Some(gateway));

    // A script that did not exist before the upload: removed.
    let row = write(
        &server,
        &editor,
        "put_worker_script",
        json!({"account_id": ACCOUNT, "script_name": "fresh",
               "script": "export default { fetch() { return new Response('hi') } }"}),
    )
    .await;
    undone(&operator, row).await;
    assert_eq!(code("fresh").await, None);

    // `audit show` prints the row and the code it replaced, by size and digest.
    let shown = Command::new(BIN)
        .args(["audit", "show", &row.to_string(), "--audit-db"])
        .arg(&server.audit_db)
        .output()
        .expect("runs");
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("put_worker_script") && shown.contains("before     it did not exist"),
        "{shown}"
    );
}

#[tokio::test]
async fn settings_rulesets_page_rules_and_load_balancers_are_undone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(&dir);
    let editor = server.connect("editor").await;
    let operator = server.connect("operator").await;

    let ssl = json!({"zone_id": COM});
    let before = read(&operator, "get_universal_ssl_settings", ssl.clone()).await;
    let row = write(
        &server,
        &editor,
        "update_universal_ssl_settings",
        json!({"zone_id": COM, "enabled": false}),
    )
    .await;
    undone(&operator, row).await;
    assert_eq!(
        read(&operator, "get_universal_ssl_settings", ssl).await,
        before
    );

    let ruleset = json!({"zone_id": COM, "ruleset_id": RULESET});
    let rules = |r: &Value| {
        r["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .map(|x| json!([x["action"], x["expression"], x["description"], x["enabled"]]))
            .collect::<Vec<_>>()
    };
    let before = read(&operator, "get_ruleset", ruleset.clone()).await;
    let row = write(
        &server,
        &editor,
        "update_ruleset",
        json!({"zone_id": COM, "ruleset_id": RULESET,
               "rules": [{"action": "block", "expression": "(ip.src eq 192.0.2.1)"}]}),
    )
    .await;
    undone(&operator, row).await;
    assert_eq!(
        rules(&read(&operator, "get_ruleset", ruleset).await),
        rules(&before)
    );

    let page_rule = json!({"zone_id": COM, "pagerule_id": PAGE_RULE});
    let before = read(&operator, "get_page_rule", page_rule.clone()).await;
    let row = write(&server, &editor, "delete_page_rule", page_rule).await;
    undone(&operator, row).await;
    let listed = read(&operator, "list_page_rules", json!({"zone_id": COM})).await;
    let listed = listed.as_array().cloned().unwrap_or_default();
    assert!(
        listed.iter().any(|r| r["targets"] == before["targets"]
            && r["actions"] == before["actions"]
            && r["status"] == before["status"]),
        "{listed:?}"
    );

    let balancers = || async {
        read(&operator, "list_load_balancers", json!({"zone_id": COM}))
            .await
            .as_array()
            .map_or(0, Vec::len)
    };
    let count = balancers().await;
    let row = write(
        &server,
        &editor,
        "create_load_balancer",
        json!({"zone_id": COM, "name": "undo.example.com", "default_pools": [POOL_PRIMARY],
               "fallback_pool": POOL_FALLBACK}),
    )
    .await;
    assert_eq!(balancers().await, count + 1);
    undone(&operator, row).await;
    assert_eq!(balancers().await, count);

    let row = write(
        &server,
        &editor,
        "create_page_rule",
        json!({"zone_id": COM,
               "targets": [{"target": "url", "constraint": {"operator": "matches", "value": "*example.com/tmp/*"}}],
               "actions": [{"id": "cache_level", "value": "bypass"}]}),
    )
    .await;
    undone(&operator, row).await;
    let listed = read(&operator, "list_page_rules", json!({"zone_id": COM})).await;
    let listed = listed.as_array().cloned().unwrap_or_default();
    assert!(
        !listed.iter().any(|r| r.to_string().contains("/tmp/")),
        "{listed:?}"
    );
}

#[tokio::test]
async fn an_object_changed_again_is_undone_only_with_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(&dir);
    let editor = server.connect("editor").await;
    let operator = server.connect("operator").await;
    let www = json!({"zone_id": COM, "dns_record_id": WWW});
    let original = read(&operator, "get_dns_record", www.clone()).await;
    let patch = |content: &str| json!({"zone_id": COM, "dns_record_id": WWW, "content": content});
    let first = write(
        &server,
        &editor,
        "patch_dns_record",
        patch("first.example.net"),
    )
    .await;
    let second = write(
        &server,
        &editor,
        "patch_dns_record",
        patch("second.example.net"),
    )
    .await;

    let puts = || async {
        server
            .sandbox_requests()
            .await
            .iter()
            .filter(|r| r.method == "PATCH" || r.method == "PUT")
            .count()
    };
    let sent = puts().await;
    let refused = undo(&operator, first, json!({})).await;
    assert_eq!(refused.is_error, Some(true));
    assert!(
        text(&refused).contains(&format!("changed again by row {second}"))
            && text(&refused).contains("force"),
        "{}",
        text(&refused)
    );
    assert_eq!(puts().await, sent, "nothing was sent");

    // A dry run shows the restoring call's preview and sends nothing.
    let preview = undo(&operator, first, json!({"force": true, "dry_run": true})).await;
    assert!(
        text(&preview).contains("\"preview\":true"),
        "{}",
        text(&preview)
    );
    assert_eq!(puts().await, sent);

    let forced = undo(&operator, first, json!({"force": true})).await;
    assert_ne!(forced.is_error, Some(true), "{}", text(&forced));
    let now = read(&operator, "get_dns_record", www).await;
    assert_eq!(now["content"], original["content"]);
}

#[tokio::test]
async fn undo_is_denied_by_default_and_checked_like_any_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(&dir);
    let editor = server.connect("editor").await;
    let outsider = server.connect("outsider").await;
    let row = write(
        &server,
        &editor,
        "patch_dns_record",
        json!({"zone_id": COM, "dns_record_id": WWW, "content": "changed.example.net"}),
    )
    .await;
    let writes = || async {
        server
            .sandbox_requests()
            .await
            .iter()
            .filter(|r| r.method != "GET")
            .count()
    };
    let sent = writes().await;

    // An agent the policy does not let undo neither sees nor calls it.
    let tools = editor.list_all_tools().await.expect("tools");
    assert!(!tools.iter().any(|t| t.name == "undo_call"));
    let refused = try_call(&editor, "undo_call", json!({"row": row})).await;
    assert!(refused.is_err_and(|e| e.contains("Unknown tool")));

    // One that may undo still needs to reach what the row changed, and is
    // told nothing more of it.
    let denied = undo(&outsider, row, json!({})).await;
    assert_eq!(denied.is_error, Some(true));
    assert_eq!(
        text(&denied),
        format!("Denied by flaregate policy: you may not act on row {row}.")
    );
    assert_eq!(writes().await, sent, "nothing was sent");

    // The command line speaks for the operator identity, by its key.
    let cli = |key: Option<&str>, extra: &[&str]| {
        let mut command = Command::new(BIN);
        command
            .args(["undo", &row.to_string(), "--url", &server.mcp_url])
            .args(extra)
            .env_remove("FLAREGATE_KEY");
        if let Some(key) = key {
            command.env("FLAREGATE_KEY", key);
        }
        command.output().expect("runs")
    };
    let without = cli(None, &[]);
    assert!(!without.status.success());
    let with_editor = cli(Some(server.key("editor")), &[]);
    assert!(!with_editor.status.success());
    assert!(
        String::from_utf8_lossy(&with_editor.stderr).contains("may not undo"),
        "{}",
        String::from_utf8_lossy(&with_editor.stderr)
    );
    assert_eq!(writes().await, sent);
    // Nobody to ask (stdin is not a terminal) and no --yes: the preview,
    // then nothing.
    let unasked = cli(Some(server.key("operator")), &[]);
    assert!(!unasked.status.success());
    assert!(
        String::from_utf8_lossy(&unasked.stderr).contains("give --yes"),
        "{}",
        String::from_utf8_lossy(&unasked.stderr)
    );
    assert_eq!(writes().await, sent);
    // A URL that is not flaregate's MCP endpoint is named in the error.
    let sandbox_api = server.sandbox_url.clone().expect("sandbox");
    let wrong = Command::new(BIN)
        .args(["undo", &row.to_string(), "--yes", "--url", &sandbox_api])
        .env("FLAREGATE_KEY", server.key("operator"))
        .output()
        .expect("runs");
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains(&sandbox_api),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    // (That POST reached the sandbox's API root, which counts it.)
    let sent = writes().await;
    let done = cli(Some(server.key("operator")), &["--yes"]);
    let said = String::from_utf8_lossy(&done.stdout);
    assert!(
        done.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(said.contains(&format!("Undo of row {row}")), "{said}");
    let (preview, undo) = said
        .split_once("\nUndo:")
        .expect("a preview, then the undo");
    assert!(
        preview.contains("\"preview\":true") && !undo.contains("\"preview\":true"),
        "{said}"
    );
    assert_eq!(writes().await, sent + 1);
}

#[tokio::test]
async fn a_write_whose_state_cannot_be_kept_is_refused_when_the_policy_requires_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(&dir);
    let strict = server.connect("strict").await;
    let lenient = server.connect("lenient").await;
    let upload = json!({"account_id": ACCOUNT, "script_name": "site-router",
                        "script": "export default { fetch() { return new Response('x') } }"});
    let refused = call(&strict, "put_worker_script", upload.clone()).await;
    assert_eq!(refused.is_error, Some(true));
    assert!(
        text(&refused).contains("could not be kept for undo"),
        "{}",
        text(&refused)
    );
    let puts = server
        .sandbox_requests()
        .await
        .iter()
        .filter(|r| r.method == "PUT")
        .count();
    assert_eq!(puts, 0, "nothing was sent");
    let allowed = call(&lenient, "put_worker_script", upload).await;
    assert_ne!(allowed.is_error, Some(true), "{}", text(&allowed));
}

#[tokio::test]
async fn an_edited_snapshot_breaks_the_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = serve(&dir);
    let editor = server.connect("editor").await;
    write(
        &server,
        &editor,
        "patch_dns_record",
        json!({"zone_id": COM, "dns_record_id": WWW, "content": "changed.example.net"}),
    )
    .await;
    server.terminate();
    let verdict = common::verify(&server.audit_db);
    assert!(
        matches!(verdict, flaregate::audit::ChainVerdict::Valid { .. }),
        "{verdict:?}"
    );
    // Someone with write access to the database swaps the kept state.
    let connection = rusqlite::Connection::open(&server.audit_db).expect("open");
    let forged = {
        use std::io::Write;
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        encoder
            .write_all(br#"{"content":"attacker.example"}"#)
            .expect("deflate");
        encoder.finish().expect("deflate")
    };
    connection
        .execute("UPDATE snapshots SET prior = ?1", [forged])
        .expect("update");
    let verdict = common::verify(&server.audit_db);
    assert!(
        matches!(&verdict, flaregate::audit::ChainVerdict::Broken { problem, .. } if problem.contains("snapshot")),
        "{verdict:?}"
    );
}

#[tokio::test]
async fn an_undo_whose_restoring_call_needs_approval_goes_through_with_the_approval_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(&dir);
    let careful = server.connect("careful").await;
    let args =
        json!({"zone_id": COM, "type": "A", "name": "careful.example.com", "content": "192.0.2.4"});
    let row = write(&server, &careful, "create_dns_record", args).await;

    // Undoing the create is a delete, which a person approves first.
    let asked = undo(&careful, row, json!({})).await;
    assert_eq!(asked.is_error, Some(true));
    let said = text(&asked);
    let at = said.find("approval ").expect("an approval id") + "approval ".len();
    let id = said[at..at + 32].to_string();
    assert_eq!(
        records_named(&careful, "careful.example.com").await.len(),
        1
    );

    // Approved by the operator, the same undo with the id goes through.
    let approved = Command::new(BIN)
        .args(["approve", &id, "--by", "alice", "--audit-db"])
        .arg(&server.audit_db)
        .output()
        .expect("runs");
    assert!(approved.status.success(), "{}", common::said(&approved));
    let done = undo(&careful, row, json!({"approval_id": id})).await;
    assert_ne!(done.is_error, Some(true), "{}", text(&done));
    assert!(
        records_named(&careful, "careful.example.com")
            .await
            .is_empty()
    );
    // Once: the id does not undo again.
    let twice = undo(&careful, row, json!({"approval_id": id})).await;
    assert_eq!(twice.is_error, Some(true));
}
