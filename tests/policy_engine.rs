//! Zone and account names resolved through a sandbox at start and again
//! when a call misses.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{SandboxProcess, args, catalog, endpoint};
use flaregate::policy::{Engine, Verdict, compile};
use flaregate::sandbox::{ACCOUNT_ID, EXAMPLE_COM};
use serde_json::json;

const POLICY: &str = r#"
[[agent]]
id = "ops"
zones = ["example.com", "example.net"]
accounts = ["Example Corp"]
grants = { dns = "read", workers = "read" }
"#;

#[tokio::test]
async fn names_resolve_at_start_and_on_a_miss() {
    let sandbox = SandboxProcess::start(&[]);
    let catalog = Arc::new(catalog());
    let policy = compile(
        &[(PathBuf::from("p.toml"), POLICY.to_string())],
        catalog.clone(),
    )
    .expect("compiles");
    let engine = Engine::new(policy, Some(sandbox.client())).await;
    let policy = engine.policy();

    let decide = |tool: &'static str, call: serde_json::Value| {
        let (engine, policy) = (&engine, policy.clone());
        async move {
            engine
                .decide(
                    &policy,
                    policy.agent("ops").expect("agent"),
                    tool,
                    &args(call),
                )
                .await
        }
    };
    assert!(
        decide("list_dns_records", json!({"zone_id": EXAMPLE_COM}))
            .await
            .is_allowed()
    );
    assert!(
        decide("list_worker_scripts", json!({"account_id": ACCOUNT_ID}))
            .await
            .is_allowed()
    );

    // example.net does not exist yet: its name is unresolved, so its calls are denied.
    let created = sandbox
        .client()
        .call(
            endpoint(&catalog, "create_zone"),
            &args(json!({"name": "example.net", "account_id": ACCOUNT_ID})),
        )
        .await
        .expect("zone created");
    let new_id = created.result["id"].as_str().expect("id").to_string();
    let before = sandbox.requests().await.len();
    let decision = decide("list_dns_records", json!({"zone_id": new_id})).await;
    assert!(
        decision.is_allowed(),
        "the miss refreshed the directory: {decision:?}"
    );
    assert!(
        sandbox.requests().await.len() > before,
        "names were fetched again"
    );

    // A zone outside the scope stays denied, and a second miss within the
    // cool-down does not fetch again.
    let after = sandbox.requests().await.len();
    let other = decide(
        "list_dns_records",
        json!({"zone_id": "ffffffffffffffffffffffffffffffff"}),
    )
    .await;
    assert!(!other.is_allowed());
    assert_eq!(sandbox.requests().await.len(), after);
}

const EDITOR: &str = r#"
[[agent]]
id = "editor"
zones = ["example.com"]
grants = { dns = "full" }

[[agent.constraint]]
tool = "patch_dns_record"
arg = "name"
allow = ["*.staging.example.com"]

[[agent.constraint]]
tool = "delete_dns_record"
arg = "name"
allow = ["*.staging.example.com"]
"#;

/// A decision as the test reads it: allowed, and why.
#[derive(Debug)]
struct Decided {
    allowed: bool,
    reason: String,
}

/// The seeded records: www.example.com (CNAME) and api.staging.example.com (A).
const WWW: &str = "8ce0e8a8a7b7b3c1d0e9f8a7b6c5d4e3";
const STAGING: &str = "c0ffee00c0ffee00c0ffee00c0ffee00";

#[tokio::test]
async fn records_named_by_id_are_fetched_and_checked() {
    let sandbox = SandboxProcess::start(&[]);
    let policy = compile(
        &[(PathBuf::from("p.toml"), EDITOR.to_string())],
        Arc::new(catalog()),
    )
    .expect("compiles");
    let engine = Engine::new(policy, Some(sandbox.client())).await;
    let policy = engine.policy();
    let agent = policy.agent("editor").expect("agent");
    // As the pipeline does: decide, fetch the object when asked (through
    // the endpoint's lookup tool), decide again.
    let client = sandbox.client();
    let catalog = policy.catalog().clone();
    let decide = |tool: &'static str, call: serde_json::Value| {
        let (engine, policy, client, catalog) = (&engine, policy.clone(), &client, &catalog);
        async move {
            let call = args(call);
            let verdict = engine.decide(&policy, agent, tool, &call).await;
            if verdict != Verdict::NeedsLookup {
                return Decided {
                    allowed: verdict.is_allowed(),
                    reason: verdict.reason().to_string(),
                };
            }
            let lookup = catalog
                .endpoint(tool)
                .and_then(|e| e.lookup.as_ref())
                .expect("a lookup");
            let reader = catalog.endpoint(&lookup.tool).expect("its tool");
            let path: serde_json::Map<String, serde_json::Value> = reader
                .path
                .params()
                .filter_map(|p| call.get(p).map(|v| (p.to_string(), v.clone())))
                .collect();
            match client.call(reader, &path).await.map(|a| a.result) {
                Ok(serde_json::Value::Object(current)) => {
                    let verdict = engine.decide_with(&policy, agent, tool, &call, &current);
                    Decided {
                        allowed: verdict.is_allowed(),
                        reason: verdict.reason().to_string(),
                    }
                }
                Err(error) if error.status() == Some(404) => Decided {
                    allowed: false,
                    reason: "not found: 404".into(),
                },
                other => Decided {
                    allowed: false,
                    reason: format!("{other:?}"),
                },
            }
        }
    };

    let www = decide(
        "delete_dns_record",
        json!({"zone_id": EXAMPLE_COM, "dns_record_id": WWW}),
    )
    .await;
    assert!(
        !www.allowed
            && www
                .reason
                .contains("name \"www.example.com\" is not among your allowed values"),
        "{www:?}"
    );
    let staging = decide(
        "delete_dns_record",
        json!({"zone_id": EXAMPLE_COM, "dns_record_id": STAGING}),
    )
    .await;
    assert!(staging.allowed, "{staging:?}");

    // Renaming a record outside staging into staging is still touching it.
    let rename = decide(
        "patch_dns_record",
        json!({"zone_id": EXAMPLE_COM, "dns_record_id": WWW, "name": "x.staging.example.com"}),
    )
    .await;
    assert!(
        !rename.allowed && rename.reason.contains("www.example.com"),
        "{rename:?}"
    );

    // The type of a record cannot change in place (ended 2026-06-30).
    let retype = decide("update_dns_record", json!({"zone_id": EXAMPLE_COM, "dns_record_id": STAGING, "type": "AAAA", "name": "api.staging.example.com", "ttl": 1})).await;
    assert!(
        !retype.allowed
            && retype
                .reason
                .contains("would change type from \"A\" to \"AAAA\"")
            && retype
                .reason
                .contains("delete the record and create a new one"),
        "{retype:?}"
    );
    let same_type = decide("update_dns_record", json!({"zone_id": EXAMPLE_COM, "dns_record_id": STAGING, "type": "A", "name": "api.staging.example.com", "ttl": 1})).await;
    assert!(same_type.allowed, "{same_type:?}");

    let missing = decide(
        "delete_dns_record",
        json!({"zone_id": EXAMPLE_COM, "dns_record_id": "00000000000000000000000000000000"}),
    )
    .await;
    assert!(
        !missing.allowed && missing.reason.contains("404"),
        "{missing:?}"
    );

    let writes: Vec<String> = sandbox
        .requests()
        .await
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| r.path)
        .collect();
    assert!(writes.is_empty(), "deciding only reads: {writes:?}");
}
