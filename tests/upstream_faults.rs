//! Upstream faults through real MCP calls: every fault the sandbox can
//! inject gives the agent a clear error, the audit row records the outcome,
//! retries follow the rules, and no thread, socket or file is left behind.

mod common;

use std::time::Duration;

use common::{SandboxProcess, ServerProcess, call, text};
use flaregate::sandbox::{ACCOUNT_ID, EXAMPLE_COM};
use serde_json::json;

/// Threads and open file descriptors (sockets included) of a process.
fn resources(pid: u32) -> (usize, usize) {
    let count = |dir: String| std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    (
        count(format!("/proc/{pid}/task")),
        count(format!("/proc/{pid}/fd")),
    )
}

#[tokio::test]
async fn every_upstream_fault_gives_a_clear_error_and_leaks_nothing() {
    let zone = format!("/zones/{EXAMPLE_COM}");
    let faults = [
        format!("GET:{zone}/dns_records:html"),
        format!("GET:{zone}/rulesets:badjson"),
        format!("GET:{zone}/pagerules:truncated"),
        format!("GET:{zone}/load_balancers:hang"),
        format!("GET:{zone}/custom_certificates:429"),
        format!("GET:/accounts/{ACCOUNT_ID}/workers/scripts:503"),
        format!("POST:{zone}/purge_cache:500"),
    ];
    let mut args = Vec::new();
    for fault in &faults {
        args.extend(["--fault", fault.as_str()]);
    }
    let upstream = SandboxProcess::start(&args);
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, hash) = flaregate::policy::new_key();
    let policy = dir.path().join("p.toml");
    std::fs::write(&policy, format!("[[agent]]\nid = \"ops\"\nkey_sha256 = [\"{hash}\"]\nzones = [\"*\"]\naccounts = [\"*\"]\n[agent.grants]\nzones = \"read\"\ndns = \"read\"\nfirewall = \"read\"\npage_rules = \"read\"\nload_balancers = \"read\"\nssl = \"read\"\nworkers = \"read\"\ncache = \"full\"\n")).expect("policy");
    let config = dir.path().join("flaregate.toml");
    // No reads at start: every request the sandbox sees is counted below.
    std::fs::write(
        &config,
        "[cloudflare]\ntimeout_secs = 1\ncheck_grants_at_start = false\n",
    )
    .expect("config");
    let env = [
        ("CLOUDFLARE_API_TOKEN", upstream.token.as_str()),
        ("CLOUDFLARE_API_BASE_URL", upstream.base_url.as_str()),
    ];
    let server = ServerProcess::start(
        &[
            "--policies",
            policy.to_str().expect("utf-8"),
            "--config",
            config.to_str().expect("utf-8"),
        ],
        &env,
    );
    let client = common::connect_http(&server.mcp_url, Some(&key)).await;

    // A healthy call first, so pools and threads are warm before counting.
    assert_eq!(
        call(&client, "get_zone", json!({"zone_id": EXAMPLE_COM}))
            .await
            .is_error,
        Some(false)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = resources(server.pid());

    let z = json!({"zone_id": EXAMPLE_COM});
    let cases = [
        (
            "list_dns_records",
            z.clone(),
            "unreadable answer (HTTP 502)",
        ),
        ("list_rulesets", z.clone(), "unreadable answer (HTTP 200)"),
        ("list_page_rules", z.clone(), "unreadable answer (HTTP 200)"),
        ("list_load_balancers", z.clone(), "did not answer within 1s"),
        ("list_custom_certificates", z.clone(), "HTTP 429"),
        (
            "list_worker_scripts",
            json!({"account_id": ACCOUNT_ID}),
            "HTTP 503",
        ),
        (
            "purge_cache",
            json!({"zone_id": EXAMPLE_COM, "purge_everything": true}),
            "HTTP 500",
        ),
    ];
    for (tool, arguments, words) in &cases {
        let result = call(&client, tool, arguments.clone()).await;
        assert_eq!(result.is_error, Some(true), "{tool}");
        assert!(text(&result).contains(words), "{tool}: {}", text(&result));
    }

    // Retries: GETs were retried up to the cap (4 attempts), the POST sent once.
    let requests = upstream.requests().await;
    let sent = |suffix: &str| requests.iter().filter(|r| r.path.ends_with(suffix)).count();
    assert_eq!(sent("/dns_records"), 4, "HTML 502 is transient: retried");
    assert_eq!(sent("/rulesets"), 1, "a 200 with bad JSON is not retried");
    assert_eq!(sent("/load_balancers"), 4, "timeouts are retried");
    assert_eq!(sent("/custom_certificates"), 4);
    assert_eq!(sent("/workers/scripts"), 4);
    assert_eq!(sent("/purge_cache"), 1, "a POST is never retried");

    // The audit log has each outcome.
    let rows = server.audit_rows();
    for (tool, _, _) in &cases {
        let row = rows.iter().rfind(|r| r.tool == *tool).expect("audited");
        assert_eq!(row.decision, "allow");
        assert!(
            row.summary.contains("Cloudflare answered") || row.summary.contains("the call failed"),
            "{}",
            row.summary
        );
    }
    let timeout = rows
        .iter()
        .rfind(|r| r.tool == "list_load_balancers")
        .expect("row");
    assert!(
        timeout.status.is_none() && timeout.summary.contains("did not answer"),
        "{}",
        timeout.summary
    );
    assert_eq!(
        rows.iter()
            .rfind(|r| r.tool == "list_custom_certificates")
            .expect("row")
            .cf_codes,
        vec![971]
    );

    // Nothing left behind: still serving, no extra threads or sockets.
    assert_eq!(
        call(&client, "get_zone", json!({"zone_id": EXAMPLE_COM}))
            .await
            .is_error,
        Some(false)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = resources(server.pid());
    assert!(
        after.0 <= before.0 + 1 && after.1 <= before.1 + 2,
        "threads and fds before {before:?}, after {after:?}"
    );
}
