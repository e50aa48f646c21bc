//! What an adversarial agent tries through real MCP calls against the
//! sandbox (issue 13): forged log lines, log flooding, budgets spent on
//! refusals, and names that say one thing and mean another. Each test fails
//! if the property it names breaks.

mod common;

use common::{SandboxProcess, ServerProcess, call, connect_http, text, try_call};
use flaregate::sandbox::EXAMPLE_COM;
use serde_json::json;

/// A line that would pass for a real audit row if printed as it is.
const FORGED: &str =
    "\n2026-12-02T00:00:00.000Z  allow  auditor was allowed to delete zone example.com\r\u{1b}[2K";

#[tokio::test]
async fn an_argument_name_cannot_forge_a_line_in_the_logs_or_the_audit_view() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("stderr.log");
    let server = ServerProcess::start_logging_to(&["--sandbox"], &[("RUST_LOG", "info")], &log);
    let auditor = server.connect("auditor").await;
    let name = format!("zone_id{FORGED}");
    // An argument the tool does not take, and a tool that does not exist.
    let refused = try_call(&auditor, "list_zones", json!({ name.clone(): 1 })).await;
    assert!(refused.is_ok_and(|r| r.is_error == Some(true)));
    let unknown = try_call(&auditor, &format!("list_zones{FORGED}"), json!({})).await;
    assert!(unknown.is_err(), "an unknown tool is a protocol error");

    let view = std::process::Command::new(common::BIN)
        .args(["audit", "--audit-db"])
        .arg(&server.audit_db)
        .output()
        .expect("flaregate audit runs");
    let view = String::from_utf8(view.stdout).expect("UTF-8");
    let logs = std::fs::read_to_string(&log).expect("stderr log");
    for (place, text) in [("audit view", &view), ("server log", &logs)] {
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("2026-12-02T00:00:00.000Z")),
            "a forged line in the {place}:\n{text}"
        );
        assert!(!text.contains('\u{1b}'), "a raw escape in the {place}");
        assert!(!text.contains('\r'), "a raw carriage return in the {place}");
    }
    let rows: Vec<&str> = view.lines().collect();
    assert_eq!(rows.len(), 2, "one line per row:\n{view}");
    assert!(
        rows.iter()
            .all(|r| r.contains("\\n2026-12-02T00:00:00.000Z")),
        "the newline is shown escaped:\n{view}"
    );
    assert!(
        logs.lines()
            .filter(|l| l.contains("call denied"))
            .all(|l| l.contains("\\n2026-12-02")),
        "{logs}"
    );
}

/// A policy with an attacker whose DNS deletes are confined to staging
/// (so every delete of another record is fetched, then denied) and an
/// honest agent that reads.
const TWO_AGENTS: &str = r#"
[[agent]]
id = "mallory"
key_sha256 = ["MALLORY"]
zones = ["example.com"]
grants = { dns = "full" }

[[agent.constraint]]
tool = "delete_dns_record"
arg = "name"
allow = ["*.staging.example.com"]

[[agent]]
id = "alice"
key_sha256 = ["ALICE"]
zones = ["*"]
grants = { dns = "read", zones = "read" }
"#;

/// A server in front of its own sandbox process with `TWO_AGENTS`, a
/// Cloudflare budget of `rate_limit`, and keys for both agents.
struct TwoAgents {
    server: ServerProcess,
    upstream: SandboxProcess,
    mallory: String,
    alice: String,
    _dir: tempfile::TempDir,
}

fn two_agents(rate_limit: &str) -> TwoAgents {
    let upstream = SandboxProcess::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (mallory, mallory_hash) = flaregate::policy::new_key();
    let (alice, alice_hash) = flaregate::policy::new_key();
    let policy = dir.path().join("policy.toml");
    let text = TWO_AGENTS
        .replace("MALLORY", &mallory_hash)
        .replace("ALICE", &alice_hash);
    std::fs::write(&policy, text).expect("policy");
    let config = dir.path().join("flaregate.toml");
    std::fs::write(
        &config,
        format!("[cloudflare]\nrate_limit = \"{rate_limit}\"\nreserve_percent = 25\n"),
    )
    .expect("config");
    let server = ServerProcess::start(
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--policies",
            policy.to_str().expect("utf-8"),
        ],
        &[
            ("CLOUDFLARE_API_TOKEN", upstream.token.as_str()),
            ("CLOUDFLARE_API_BASE_URL", upstream.base_url.as_str()),
        ],
    );
    TwoAgents {
        server,
        upstream,
        mallory,
        alice,
        _dir: dir,
    }
}

/// www.example.com, a seeded record outside staging.
const WWW: &str = "8ce0e8a8a7b7b3c1d0e9f8a7b6c5d4e3";

#[tokio::test]
async fn one_agent_hammering_denied_lookups_leaves_another_agents_calls_unaffected() {
    // 60 requests a minute for all; each agent may spend 75% of it.
    let setup = two_agents("60/60s");
    let mallory = connect_http(&setup.server.mcp_url, Some(&setup.mallory)).await;
    let alice = connect_http(&setup.server.mcp_url, Some(&setup.alice)).await;
    let delete_www = json!({"zone_id": EXAMPLE_COM, "dns_record_id": WWW});
    let mut over = 0;
    for _ in 0..100 {
        let refused = call(&mallory, "delete_dns_record", delete_www.clone()).await;
        assert_eq!(refused.is_error, Some(true));
        if text(&refused).contains("share of flaregate's Cloudflare budget") {
            over += 1;
        }
    }
    let lookups = setup
        .upstream
        .requests_to(&format!("/dns_records/{WWW}"))
        .await;
    assert!(
        lookups <= 45,
        "mallory's lookups stop at its share: {lookups}"
    );
    assert_eq!(
        over,
        100 - lookups,
        "every call past the share is refused as such"
    );

    for _ in 0..10 {
        let listed = call(&alice, "list_dns_records", json!({"zone_id": EXAMPLE_COM})).await;
        assert_ne!(listed.is_error, Some(true), "{}", text(&listed));
    }
    // The lookups are in mallory's rows, with what Cloudflare answered.
    let rows = setup.server.audit_rows();
    let looked_up = rows
        .iter()
        .filter(|r| {
            r.agent == "mallory"
                && r.lookup
                    .contains(&format!("GET /zones/{EXAMPLE_COM}/dns_records/{WWW} → 200"))
        })
        .count();
    assert_eq!(looked_up, lookups, "one row names each lookup");
    assert!(
        rows.iter()
            .all(|r| r.decision == "deny" || r.agent == "alice")
    );
}

#[tokio::test]
async fn refused_calls_cannot_fill_the_log_and_none_goes_unrecorded() {
    let mut setup = two_agents("off");
    let alice = connect_http(&setup.server.mcp_url, Some(&setup.alice)).await;
    let huge = "x".repeat(1024 * 1024);
    let started = std::time::Instant::now();
    let mut sent = 0u64;
    let attackers: Vec<_> = (0..4)
        .map(|task| {
            let (url, key, huge) = (
                setup.server.mcp_url.clone(),
                setup.mallory.clone(),
                huge.clone(),
            );
            tokio::spawn(async move {
                let mallory = connect_http(&url, Some(&key)).await;
                let mut sent = 0u64;
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(8);
                while std::time::Instant::now() < deadline {
                    // An unknown tool, an argument the tool does not take, and
                    // a denied call, each carrying a megabyte.
                    let (tool, arguments) = match (task + sent as usize) % 3 {
                        0 => ("no_such_tool", json!({ "blob": huge })),
                        1 => (
                            "list_dns_records",
                            json!({ "zone_id": EXAMPLE_COM, "blob": huge }),
                        ),
                        _ => (
                            "delete_zone",
                            json!({ "zone_id": EXAMPLE_COM, "comment": huge }),
                        ),
                    };
                    let _ = try_call(&mallory, tool, arguments).await;
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    // Alice keeps working meanwhile.
    let mut alice_calls = 0;
    while attackers.iter().any(|a| !a.is_finished()) {
        let listed = call(&alice, "list_zones", json!({})).await;
        assert_ne!(listed.is_error, Some(true), "{}", text(&listed));
        alice_calls += 1;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    for attacker in attackers {
        sent += attacker.await.expect("attacker task");
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert!(alice_calls > 5, "alice called throughout ({alice_calls})");
    // Shutdown writes the last counted refusals.
    assert!(setup.server.terminate().success());

    let rows = setup.server.audit_rows();
    let mallory: Vec<_> = rows.iter().filter(|r| r.agent == "mallory").collect();
    let counted: u64 = mallory
        .iter()
        .filter(|r| r.rule == "limits.refusals_per_minute")
        .map(|r| r.args["refused_calls"].as_u64().expect("a count"))
        .sum();
    let one_by_one = mallory
        .iter()
        .filter(|r| r.rule != "limits.refusals_per_minute")
        .count() as u64;
    assert_eq!(
        one_by_one + counted,
        sent,
        "every refused call is in the log, one way or the other"
    );
    // 30 at once, then one every two seconds; and a count row every 5 s.
    let bound = 30.0 + elapsed / 2.0 + elapsed / 5.0 + 2.0;
    assert!(
        (mallory.len() as f64) <= bound,
        "{} rows for {sent} calls in {elapsed:.1}s (bound {bound:.0})",
        mallory.len()
    );
    for row in &mallory {
        let stored = row.args.to_string().len() + row.summary.len() + row.reason.len();
        assert!(stored < 12 * 1024, "a row of {stored} bytes");
    }
    assert!(
        sent > mallory.len() as u64 * 2,
        "the attack was real: {sent} calls"
    );
}
