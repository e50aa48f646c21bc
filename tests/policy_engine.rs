//! Zone and account names resolved through a sandbox at start and again
//! when a call misses.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{SandboxProcess, args, catalog, endpoint};
use flaregate::policy::{Engine, compile};
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
        None,
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
            .allowed
    );
    assert!(
        decide("list_worker_scripts", json!({"account_id": ACCOUNT_ID}))
            .await
            .allowed
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
        decision.allowed,
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
    assert!(!other.allowed);
    assert_eq!(sandbox.requests().await.len(), after);
}
