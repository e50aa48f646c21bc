//! What an adversarial agent tries through real MCP calls against the
//! sandbox (issue 13): forged log lines, log flooding, budgets spent on
//! refusals, and names that say one thing and mean another. Each test fails
//! if the property it names breaks.

mod common;

use common::{SandboxProcess, ServerProcess, call, connect_http, text, try_call};
use flaregate::sandbox::{EXAMPLE_COM, EXAMPLE_ORG};
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
        // The start-up check of the token's grants is flaregate's own and
        // spends from the same whole budget: off, so the shares are all
        // that is measured.
        format!(
            "[cloudflare]\nrate_limit = \"{rate_limit}\"\nreserve_percent = 25\ncheck_grants_at_start = false\n"
        ),
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
    let started = std::time::Instant::now();
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
    // The share is a bucket of 45 that refills at 45 a minute: a slow
    // machine running the loop for longer earns the refill, no more.
    let refilled = (started.elapsed().as_secs_f64() * 45.0 / 60.0).ceil() as usize;
    assert!(
        lookups <= 45 + refilled,
        "mallory's lookups stop at its share: {lookups} (refilled {refilled})"
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
                // A minute, as the review did it.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
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

#[tokio::test]
async fn a_scoped_list_reveals_nothing_outside_the_scope_through_its_page_information() {
    let server = ServerProcess::sandbox(&[]);
    // dns-editor holds example.com only; the sandbox has more zones.
    let editor = server.connect("dns-editor").await;
    let zones = call(&editor, "list_zones", json!({"per_page": 5})).await;
    let structured = zones.structured_content.clone().expect("structured");
    let names: Vec<&str> = structured["result"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|z| z["name"].as_str())
        .collect();
    assert_eq!(names, ["example.com"]);
    let info = &structured["result_info"];
    assert_eq!(
        (
            info["count"].as_u64(),
            info["total_count"].as_u64(),
            info["total_pages"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{info}"
    );
    // A filter naming a zone outside the scope finds nothing, and says so.
    for filter in [
        json!({"name": "example.org"}),
        json!({"status": "active", "per_page": 50}),
    ] {
        let found = call(&editor, "list_zones", filter.clone()).await;
        let s = found.structured_content.expect("structured");
        assert!(!s.to_string().contains("example.org"), "{filter}: {s}");
        assert!(
            s["result_info"]["total_count"].as_u64() <= Some(1),
            "{filter}: {s}"
        );
    }
}

/// One agent that may read only staging records, one that may delete them
/// without being able to read DNS at all.
const STAGING_ONLY: &str = r#"
[[agent]]
id = "reader"
zones = ["example.com"]
grants = { dns = "read" }

[[agent.constraint]]
tool = "list_dns_records"
arg = "name"
allow = ["*.staging.example.com"]

[[agent.constraint]]
tool = "get_dns_record"
arg = "name"
allow = ["*.staging.example.com"]

[[agent]]
id = "janitor"
zones = ["example.com"]
tools = { delete_dns_record = "on" }

[[agent.constraint]]
tool = "delete_dns_record"
arg = "name"
allow = ["*.staging.example.com"]
"#;

fn staging_only() -> (ServerProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("staging.toml");
    std::fs::write(&policy, STAGING_ONLY).expect("policy");
    let server = ServerProcess::sandbox(&["--policies", policy.to_str().expect("utf-8")]);
    (server, dir)
}

#[tokio::test]
async fn a_constrained_list_returns_only_what_the_constraint_admits_whatever_the_filters() {
    let (server, _dir) = staging_only();
    let reader = server.connect("reader").await;
    for filter in [
        json!({"zone_id": EXAMPLE_COM}),
        json!({"zone_id": EXAMPLE_COM, "type": "CNAME"}),
        // "any": Cloudflare ORs the filters, so the CNAME www would match.
        json!({"zone_id": EXAMPLE_COM, "name": "x.staging.example.com", "type": "CNAME", "match": "any"}),
        json!({"zone_id": EXAMPLE_COM, "search": "example", "per_page": 5}),
    ] {
        let listed = call(&reader, "list_dns_records", filter.clone()).await;
        assert_ne!(listed.is_error, Some(true), "{}", text(&listed));
        let s = listed.structured_content.expect("structured");
        for record in s["result"].as_array().expect("a list") {
            let name = record["name"].as_str().expect("a name");
            assert!(name.ends_with(".staging.example.com"), "{filter}: {name}");
        }
        let shown = s["result"].as_array().map_or(0, Vec::len) as u64;
        assert_eq!(
            s["result_info"]["total_count"].as_u64(),
            Some(shown),
            "{filter}: {s}"
        );
    }
    let outside = call(
        &reader,
        "list_dns_records",
        json!({"zone_id": EXAMPLE_COM, "name": "www.example.com"}),
    )
    .await;
    assert_eq!(
        outside.is_error,
        Some(true),
        "a filter outside the constraint is refused"
    );
    let www = call(
        &reader,
        "get_dns_record",
        json!({"zone_id": EXAMPLE_COM, "dns_record_id": WWW}),
    )
    .await;
    assert_eq!(www.is_error, Some(true));
    assert!(
        !text(&www).contains("192.0.2") && text(&www).contains("not among"),
        "{}",
        text(&www)
    );
    let staging = call(
        &reader,
        "get_dns_record",
        json!({"zone_id": EXAMPLE_COM, "dns_record_id": STAGING}),
    )
    .await;
    assert_ne!(staging.is_error, Some(true), "{}", text(&staging));
}

/// api.staging.example.com, a seeded record inside staging.
const STAGING: &str = "c0ffee00c0ffee00c0ffee00c0ffee00";

#[tokio::test]
async fn a_denial_discloses_nothing_an_agent_could_not_read() {
    let (server, _dir) = staging_only();
    let janitor = server.connect("janitor").await;
    let outside = call(
        &janitor,
        "delete_dns_record",
        json!({"zone_id": EXAMPLE_COM, "dns_record_id": WWW}),
    )
    .await;
    let missing = call(
        &janitor,
        "delete_dns_record",
        json!({"zone_id": EXAMPLE_COM, "dns_record_id": "0123456789abcdef0123456789abcdef"}),
    )
    .await;
    for refused in [&outside, &missing] {
        assert_eq!(refused.is_error, Some(true));
        assert_eq!(
            text(refused),
            "Denied by flaregate policy: you may not act on the object this call names.",
            "the same words whether the record is outside staging or missing"
        );
    }
    // The operator's log keeps the real reasons.
    let rows = server.audit_rows();
    assert!(
        rows.iter().any(|r| r.reason.contains("www.example.com")),
        "{rows:?}"
    );
    assert!(rows.iter().any(|r| r.reason.contains("404")), "{rows:?}");
    // An agent that may read DNS learns that the record does not exist.
    let reader = server.connect("reader").await;
    let gone = call(
        &reader,
        "get_dns_record",
        json!({"zone_id": EXAMPLE_COM, "dns_record_id": "0123456789abcdef0123456789abcdef"}),
    )
    .await;
    assert!(text(&gone).contains("no such object"), "{}", text(&gone));
}

/// An agent holding two zones whose DNS names are confined to staging of
/// example.com, and whose purges are confined to example.com's assets.
const TWO_ZONES: &str = r#"
[[agent]]
id = "editor"
zones = ["example.com", "example.org"]
grants = { dns = "full", cache = "full" }

[[agent.constraint]]
tool = "create_dns_record"
arg = "name"
allow = ["*.staging.example.com"]

[[agent.constraint]]
tool = "purge_cache"
arg = "files"
allow = ["https://www.example.com/assets/*"]
"#;

#[tokio::test]
async fn constraints_judge_names_and_urls_as_cloudflare_reads_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("two.toml");
    std::fs::write(&policy, TWO_ZONES).expect("policy");
    let server = ServerProcess::sandbox(&["--policies", policy.to_str().expect("utf-8")]);
    let editor = server.connect("editor").await;
    let create = |zone: &str, name: &str| json!({"zone_id": zone, "type": "A", "name": name, "content": "192.0.2.7", "ttl": 1});
    let before = server.sandbox_requests().await.len();

    // Refused: each names, for Cloudflare, a record outside staging.
    for (zone, name) in [
        (EXAMPLE_ORG, "evil.staging.example.com"),
        (EXAMPLE_ORG, "evil.staging.example.com."),
        (EXAMPLE_COM, "@"),
        (EXAMPLE_COM, "www"),
    ] {
        let refused = call(&editor, "create_dns_record", create(zone, name)).await;
        assert_eq!(refused.is_error, Some(true), "{name} in {zone}");
        assert!(
            text(&refused).contains("not among your allowed values"),
            "{name}: {}",
            text(&refused)
        );
    }
    // A name Cloudflare would refuse is refused before the policy is asked.
    for name in [
        "a..staging.example.com",
        "a b.staging.example.com",
        "a\u{7}.staging.example.com",
    ] {
        let refused = call(&editor, "create_dns_record", create(EXAMPLE_COM, name)).await;
        assert!(
            text(&refused).contains("Nothing was sent"),
            "{name:?}: {}",
            text(&refused)
        );
    }
    // Older SRV forms name the record through data: refused when names are limited.
    let srv = json!({"zone_id": EXAMPLE_COM, "type": "SRV", "name": "_sip._tcp.staging.example.com", "ttl": 1,
                     "data": {"service": "_sip", "proto": "_tcp", "name": "example.com", "priority": 1, "weight": 1, "port": 5060, "target": "sip.example.com"}});
    let refused = call(&editor, "create_dns_record", srv).await;
    assert!(
        text(&refused).contains("data.name would decide the record's name"),
        "{}",
        text(&refused)
    );
    // URLs: only one that reads as itself and as an asset.
    for url in [
        "https://www.example.com/assets/../admin",
        "https://www.example.com/assets/%2e%2e/admin",
        "https://www.example.com/assets/..%2fadmin",
        "HTTPS://WWW.EXAMPLE.COM/assets/app.css",
    ] {
        let refused = call(
            &editor,
            "purge_cache",
            json!({"zone_id": EXAMPLE_COM, "files": [url]}),
        )
        .await;
        assert_eq!(refused.is_error, Some(true), "{url}");
    }
    assert_eq!(
        server.sandbox_requests().await.len(),
        before,
        "nothing reached the sandbox"
    );

    // Allowed: a relative name inside staging is created under its full name.
    let created = call(
        &editor,
        "create_dns_record",
        create(EXAMPLE_COM, "new.Staging"),
    )
    .await;
    assert_ne!(created.is_error, Some(true), "{}", text(&created));
    let structured = created.structured_content.expect("structured");
    assert_eq!(structured["result"]["name"], "new.staging.example.com");
    let purged = call(
        &editor,
        "purge_cache",
        json!({"zone_id": EXAMPLE_COM, "files": ["https://www.example.com/assets/app.css"]}),
    )
    .await;
    assert_ne!(purged.is_error, Some(true), "{}", text(&purged));
}
