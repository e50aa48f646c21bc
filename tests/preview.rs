//! Previews (`dry_run: true`) through the real binary against the sandbox:
//! what each kind of write would change, the decision it would get, an
//! audit row of its own kind — and nothing sent to Cloudflare.

mod common;

use common::{ServerProcess, call, text};
use serde_json::{Value, json};

const COM: &str = "023e105f4ecef8ad9ca31a8372d0c353";
const ORG: &str = "5a7805061c76ada191ed06f989cc3dac";
const ACCOUNT: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const WWW: &str = "8ce0e8a8a7b7b3c1d0e9f8a7b6c5d4e3";
const RULESET: &str = "2f2feab2026849078ba485f918791bdc";

const POLICY: &str = r#"
[[agent]]
id = "ops"
auth = "none"
zones = ["example.com"]
accounts = ["*"]
grants = { dns = "full", workers = "full", ssl = "full", cache = "full", firewall = "full" }
"#;

fn preview(result: &rmcp::model::CallToolResult) -> Value {
    assert_ne!(result.is_error, Some(true), "{}", text(result));
    let value = result.structured_content.clone().expect("structured");
    assert_eq!(value["preview"], true, "{value}");
    value
}

#[tokio::test]
async fn a_preview_shows_what_each_write_would_change_and_sends_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("ops.toml");
    std::fs::write(&policy, POLICY).expect("write");
    let server = ServerProcess::start(
        &["--sandbox", "--policies", policy.to_str().expect("utf-8")],
        &[],
    );
    let client = common::connect_http(&server.mcp_url, None).await;

    // Replace a record: the record now, and field by field what changes.
    let update = json!({"zone_id": COM, "dns_record_id": WWW, "type": "CNAME", "name": "www.example.com",
                        "content": "example.net", "ttl": 300, "dry_run": true});
    let shown = preview(&call(&client, "update_dns_record", update).await);
    assert_eq!(shown["decision"]["would_be"], "allowed", "{shown}");
    assert_eq!(shown["request"]["method"], "PUT");
    assert_eq!(
        shown["request"]["path"],
        format!("/zones/{COM}/dns_records/{WWW}")
    );
    assert_eq!(
        shown["current"]["object"]["content"], "example.com",
        "{shown}"
    );
    assert_eq!(
        shown["changes"]["content"],
        json!({"now": "example.com", "after": "example.net"})
    );
    assert!(
        shown["request"]["body"].get("dry_run").is_none(),
        "dry_run is never sent"
    );

    // Delete: what will be gone.
    let shown = preview(
        &call(
            &client,
            "delete_dns_record",
            json!({"zone_id": COM, "dns_record_id": WWW, "dry_run": true}),
        )
        .await,
    );
    assert_eq!(
        shown["changes"]["removed"]["name"], "www.example.com",
        "{shown}"
    );

    // Worker code: by size and SHA-256, old against new.
    let code = "export default { fetch() { return new Response('v2'); } };";
    let shown = preview(&call(&client, "put_worker_script", json!({"account_id": ACCOUNT, "script_name": "site-router", "script": code, "dry_run": true})).await);
    assert_eq!(shown["changes"]["code"]["changed"], true, "{shown}");
    assert_eq!(shown["changes"]["code"]["after"]["bytes"], code.len());
    assert!(
        !shown.to_string().contains("Response('v2')"),
        "code is never shown whole"
    );

    // A setting: now and after.
    let shown = preview(
        &call(
            &client,
            "update_universal_ssl_settings",
            json!({"zone_id": COM, "enabled": false, "dry_run": true}),
        )
        .await,
    );
    assert_eq!(
        shown["changes"]["enabled"],
        json!({"now": true, "after": false}),
        "{shown}"
    );

    // A ruleset: the rules that would be replaced, and their replacement.
    let rules = json!([{"action": "block", "expression": "(ip.src eq 192.0.2.66)", "description": "one bad host"}]);
    let shown = preview(
        &call(
            &client,
            "update_ruleset",
            json!({"zone_id": COM, "ruleset_id": RULESET, "rules": rules, "dry_run": true}),
        )
        .await,
    );
    let change = &shown["changes"]["rules"];
    assert_eq!(change["after"], rules, "{shown}");
    assert_eq!(change["now"].as_array().map(Vec::len), Some(2), "{shown}");

    // A purge has nothing to fetch; a create has nothing yet.
    let shown = preview(
        &call(
            &client,
            "purge_cache",
            json!({"zone_id": COM, "files": ["https://example.com/a.css"], "dry_run": true}),
        )
        .await,
    );
    assert_eq!(shown["current"]["known"], false, "{shown}");
    let shown = preview(&call(&client, "create_dns_record", json!({"zone_id": COM, "type": "A", "name": "new.example.com", "content": "192.0.2.7", "ttl": 1, "dry_run": true})).await);
    assert!(
        shown["current"]["why"]
            .as_str()
            .is_some_and(|w| w.contains("creates")),
        "{shown}"
    );

    // A call that would be refused says so, and why, as a refusal: the
    // decision alone.
    let refused = call(
        &client,
        "purge_cache",
        json!({"zone_id": ORG, "purge_everything": true, "dry_run": true}),
    )
    .await;
    assert_eq!(refused.is_error, Some(true), "{}", text(&refused));
    let shown = refused.structured_content.expect("structured");
    assert_eq!(shown["decision"]["would_be"], "denied", "{shown}");
    assert_eq!(shown["decision"]["kind"], "outside_scope");
    assert!(shown.get("request").is_none(), "{shown}");

    // A read takes no dry_run: an invalid argument, nothing sent.
    let refused = call(
        &client,
        "list_dns_records",
        json!({"zone_id": COM, "dry_run": true}),
    )
    .await;
    assert_eq!(refused.is_error, Some(true));

    // Nothing changed upstream: no write reached the sandbox, and the
    // record is as it was.
    let requests = server.sandbox_requests().await;
    let writes: Vec<_> = requests.iter().filter(|r| r.method != "GET").collect();
    assert!(writes.is_empty(), "{writes:?}");
    let record = call(
        &client,
        "get_dns_record",
        json!({"zone_id": COM, "dns_record_id": WWW}),
    )
    .await;
    assert_eq!(
        record.structured_content.expect("structured")["result"]["content"],
        "example.com"
    );

    // Each preview is a row of its own kind, in a chain that verifies.
    let rows = server.audit_rows();
    let previews: Vec<_> = rows.iter().filter(|r| r.decision == "preview").collect();
    assert_eq!(previews.len(), 8, "{rows:#?}");
    assert!(
        previews
            .iter()
            .all(|r| r.summary.contains("previewed") && r.status.is_none())
    );
    let verdict = common::verify(&server.audit_db);
    assert!(
        matches!(verdict, flaregate::audit::ChainVerdict::Valid { .. }),
        "{verdict:?}"
    );
}
