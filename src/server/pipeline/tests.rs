//! The stages with their services built by hand: the sandbox in this
//! process as Cloudflare, a SQLite log in a temporary folder, budgets in
//! memory. What reaches the sandbox is read from its request log.

use crate::oauth::{ScopeLevel, TokenAccess};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

use super::{Answer, CallRequest, Services};
use crate::audit::{AuditFiles, AuditLog, Database, Durability};
use crate::cloudflare::{Client, ClientConfig, Credential, RateSpec};
use crate::sandbox::{EXAMPLE_COM, EXAMPLE_ORG, RunningSandbox, SandboxConfig};

const WWW: &str = "8ce0e8a8a7b7b3c1d0e9f8a7b6c5d4e3";
const ORG_APEX: &str = "44ee33dd22cc11bb00aa99887766aa01";

/// One agent on example.com (by id: no names to resolve) with DNS.
const POLICY: &str = r#"
[[agent]]
id = "editor"
auth = "none"
zones = ["023e105f4ecef8ad9ca31a8372d0c353"]
grants = { dns = "full" }
"#;

struct Fixture {
    services: Services,
    sandbox: RunningSandbox,
    _dir: tempfile::TempDir,
}

/// The services over the shipped catalog, `POLICY`, and each agent's share
/// of the Cloudflare budget `share`.
async fn fixture(share: RateSpec) -> Fixture {
    let catalog = Arc::new(crate::catalog::builtin());
    let policy = crate::policy::compile(
        &[(PathBuf::from("policy.toml"), POLICY.to_string())],
        catalog.clone(),
    )
    .expect("policy");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let sandbox = crate::sandbox::spawn(listener, SandboxConfig::new()).expect("sandbox");
    let credential = Credential::Token(sandbox.token.clone());
    let client = Client::new(ClientConfig::new(sandbox.base_url(), credential)).expect("client");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::Sqlite(dir.path().join("audit.db"));
    let audit = AuditLog::open_with(&AuditFiles::beside(&db), Durability::Full, None).expect("log");
    let services = Services {
        catalog,
        engine: crate::policy::Engine::unresolved(policy, None),
        client,
        audit,
        audit_db: db,
        budgets: Arc::new(crate::budget::InProcess::new(share)),
        metrics: Default::default(),
        approvals: None,
        sandbox: true,
        tracer: OnceLock::new(),
    };
    Fixture {
        services,
        sandbox,
        _dir: dir,
    }
}

impl Fixture {
    async fn run(&self, tool: &str, args: Value) -> Answer {
        self.run_as(TokenAccess::unlimited(), tool, args).await
    }

    /// As `run`, for a caller whose token's scopes allow `scopes`.
    async fn run_as(&self, scopes: TokenAccess, tool: &str, args: Value) -> Answer {
        let request = CallRequest {
            agent: "editor".into(),
            person: None,
            scopes,
            from_console: false,
            confirmed: false,
            tool: tool.into(),
            args: args.as_object().cloned().expect("an object"),
            asker: None,
            traceparent: None,
        };
        self.services.run(request).await.expect("an answer")
    }

    /// Requests the sandbox has received.
    async fn sent(&self) -> usize {
        let url = format!("http://{}/__sandbox/requests", self.sandbox.addr);
        let log: Vec<Value> = reqwest::get(url)
            .await
            .expect("log")
            .json()
            .await
            .expect("JSON");
        log.len()
    }
}

#[tokio::test]
async fn a_preview_the_policy_refuses_stops_at_its_decision() {
    let f = fixture(RateSpec::Off).await;
    let answer = f
        .run(
            "delete_dns_record",
            json!({"zone_id": EXAMPLE_ORG, "dns_record_id": ORG_APEX, "dry_run": true}),
        )
        .await;
    let Answer::Refused {
        shown: Some(shown), ..
    } = answer
    else {
        panic!("a refusal with its decision: {answer:?}");
    };
    assert_eq!(shown["decision"]["kind"], "outside_scope", "{shown}");
    assert!(shown.get("current").is_none(), "{shown}");
    assert_eq!(f.sent().await, 0, "nothing reached Cloudflare");
}

/// A token that may only read is refused a write (and an undo) at admission,
/// before any lookup or snapshot read, whatever the policy grants.
#[tokio::test]
async fn a_read_only_token_makes_no_write_and_reads_nothing_for_one() {
    let f = fixture(RateSpec::Off).await;
    let write = json!({"zone_id": EXAMPLE_COM, "dns_record_id": WWW, "content": "x.example.net"});
    let reader = || TokenAccess::new(Some(ScopeLevel::Read), &[]);
    let answer = f.run_as(reader(), "patch_dns_record", write).await;
    let Answer::Refused { text, .. } = &answer else {
        panic!("refused: {answer:?}");
    };
    assert!(text.contains("reading only"), "{text}");
    let undo = f.run_as(reader(), "undo_call", json!({"row": 1})).await;
    assert!(matches!(undo, Answer::Refused { .. }), "{undo:?}");
    assert_eq!(f.sent().await, 0, "nothing was read or sent for them");
    let read = f
        .run_as(
            reader(),
            "list_dns_records",
            json!({"zone_id": EXAMPLE_COM}),
        )
        .await;
    assert!(matches!(read, Answer::Result { .. }), "{read:?}");
}

/// A token scoped to one group (`flaregate:dns:write`) writes there and
/// is refused everywhere else, reads included, before anything is read.
#[tokio::test]
async fn a_token_scoped_to_one_group_acts_in_that_group_only() {
    let f = fixture(RateSpec::Off).await;
    // The policy grants DNS; a token for cache alone reaches none of it.
    let cache_only = TokenAccess::new(None, &[("cache", ScopeLevel::Write)]);
    let elsewhere = f
        .run_as(
            cache_only,
            "list_dns_records",
            json!({"zone_id": EXAMPLE_COM}),
        )
        .await;
    let Answer::Refused { text, .. } = &elsewhere else {
        panic!("refused: {elsewhere:?}");
    };
    assert!(text.contains("do not cover reading dns"), "{text}");
    assert_eq!(f.sent().await, 0, "nothing was read for it");
    let dns_only = TokenAccess::new(None, &[("dns", ScopeLevel::Write)]);
    let write = json!({"zone_id": EXAMPLE_COM, "dns_record_id": WWW, "content": "x.example.net"});
    let answer = f.run_as(dns_only, "patch_dns_record", write).await;
    assert!(matches!(answer, Answer::Result { .. }), "{answer:?}");
}

#[tokio::test]
async fn a_write_is_charged_for_its_snapshot_read_before_either_goes() {
    // A share of four requests: two writes, each a snapshot read and the write.
    let f = fixture("4/60s".parse().expect("rate")).await;
    let write = |n: u32| json!({"zone_id": EXAMPLE_COM, "dns_record_id": WWW, "content": format!("n{n}.example.net")});
    for n in 0..2 {
        let answer = f.run("patch_dns_record", write(n)).await;
        assert!(matches!(answer, Answer::Result { .. }), "{answer:?}");
    }
    assert_eq!(f.sent().await, 4);
    let answer = f.run("patch_dns_record", write(2)).await;
    let Answer::Refused { text, .. } = &answer else {
        panic!("refused: {answer:?}");
    };
    assert!(text.contains("share"), "{text}");
    assert_eq!(f.sent().await, 4, "neither the read nor the write went");
}

#[tokio::test]
#[should_panic(expected = "did not charge")]
async fn a_request_without_a_ticket_is_a_bug_caught_before_it_is_sent() {
    let f = fixture(RateSpec::Off).await;
    let endpoint = f.services.catalog.endpoint("list_zones").expect("tool");
    let request = crate::cloudflare::build(endpoint, &serde_json::Map::new()).expect("request");
    let mut empty = super::charge::Ticket::empty();
    let _ = f
        .services
        .send(&mut empty, &request, endpoint.response)
        .await;
}
