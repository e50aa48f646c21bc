//! Load and crashes: 100 sessions × 100 calls with exactly one audit row per
//! call, SIGKILL mid-load and a restart on the same database, and 100
//! policy reloads while calls flow.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{SandboxProcess, ServerProcess, try_call};
use flaregate::audit::{self, ChainVerdict, Filter};
use flaregate::sandbox::{ACCOUNT_ID, EXAMPLE_COM, EXAMPLE_ORG};
use serde_json::json;

/// A policy file for one agent with a fresh key: workers read, cache full on
/// example.com. Returns the key.
fn write_policy(path: &Path, cache: &str) -> String {
    let (key, hash) = flaregate::policy::new_key();
    write_policy_with(path, &hash, cache);
    key
}

/// One agent whose refusals are each written (a refusal budget far above
/// what the tests send), so every call has a row of its own.
fn write_policy_with(path: &Path, hash: &str, cache: &str) {
    std::fs::write(path, format!(
        "[[agent]]\nid = \"load\"\nkey_sha256 = [\"{hash}\"]\nzones = [\"example.com\"]\naccounts = [\"*\"]\ngrants = {{ workers = \"read\", cache = \"{cache}\" }}\nlimits = {{ refusals_per_minute = 1000000 }}\n"
    )).expect("policy");
}

/// `serve` in real-token mode against `upstream`, with `policy`, on `db`.
fn serve(upstream: &SandboxProcess, policy: &Path, db: &Path) -> ServerProcess {
    let config = policy.with_extension("config.toml");
    std::fs::write(
        &config,
        format!(
            "audit_db = \"{}\"\n[cloudflare]\nrate_limit = \"off\"\n",
            db.display()
        ),
    )
    .expect("config");
    let env = [
        ("CLOUDFLARE_API_TOKEN", upstream.token.as_str()),
        ("CLOUDFLARE_API_BASE_URL", upstream.base_url.as_str()),
    ];
    ServerProcess::start(
        &[
            "--policies",
            policy.to_str().expect("utf-8"),
            "--config",
            config.to_str().expect("utf-8"),
            "--audit-db",
            db.to_str().expect("utf-8"),
        ],
        &env,
    )
}

fn rows(db: &Path) -> Vec<audit::Entry> {
    audit::read(
        &db.into(),
        &Filter {
            limit: 1_000_000,
            ..Filter::default()
        },
    )
    .expect("audit log")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_sessions_of_a_hundred_calls_each_get_one_row_per_call() {
    let upstream = SandboxProcess::start(&["--rate-limit", "off"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("p.toml");
    let key = write_policy(&policy, "full");
    let db = dir.path().join("audit.db");
    let server = serve(&upstream, &policy, &db);
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (url, key) = (server.mcp_url.clone(), key.clone());
            tokio::spawn(async move {
                let client = common::connect_http(&url, Some(&key)).await;
                for i in 0..100 {
                    if i % 2 == 0 {
                        let result = try_call(
                            &client,
                            "list_worker_scripts",
                            json!({"account_id": ACCOUNT_ID}),
                        )
                        .await
                        .expect("answered");
                        assert_eq!(result.is_error, Some(false));
                    } else {
                        let result = try_call(
                            &client,
                            "purge_cache",
                            json!({"zone_id": EXAMPLE_ORG, "purge_everything": true}),
                        )
                        .await
                        .expect("answered");
                        assert_eq!(
                            result.is_error,
                            Some(true),
                            "example.org is outside the agent's zones"
                        );
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("session");
    }
    let rows = rows(&db);
    assert_eq!(rows.len(), 10_000, "exactly one row per call");
    let allowed = rows
        .iter()
        .filter(|r| r.decision == "allow" && r.status == Some(200))
        .count();
    let denied = rows
        .iter()
        .filter(|r| r.decision == "deny" && r.reason.contains("outside your zones"))
        .count();
    assert_eq!((allowed, denied), (5_000, 5_000));
    assert!(matches!(
        common::verify(&db),
        ChainVerdict::Valid { rows: 10_000, head } if head.events == 20_000
    ));
    assert_eq!(
        upstream.requests_to("/purge_cache").await,
        0,
        "no denied call reached the sandbox"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_load_loses_no_answered_call_and_the_server_restarts_cleanly() {
    let upstream = SandboxProcess::start(&["--rate-limit", "off"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("p.toml");
    let key = write_policy(&policy, "full");
    let db = dir.path().join("audit.db");
    let server = serve(&upstream, &policy, &db);
    let answered = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (url, key, answered) = (server.mcp_url.clone(), key.clone(), answered.clone());
            tokio::spawn(async move {
                let client = common::connect_http(&url, Some(&key)).await;
                // After the kill a call fails or never answers: either ends the session.
                let call = || {
                    try_call(
                        &client,
                        "list_worker_scripts",
                        json!({"account_id": ACCOUNT_ID}),
                    )
                };
                while let Ok(Ok(result)) =
                    tokio::time::timeout(Duration::from_secs(5), call()).await
                {
                    assert_eq!(result.is_error, Some(false));
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    while answered.load(Ordering::SeqCst) < 500 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.signal("KILL");
    let answered_before_kill = answered.load(Ordering::SeqCst);
    for task in tasks {
        let _ = task.await;
    }
    let answered = answered.load(Ordering::SeqCst);
    assert!(answered >= answered_before_kill);

    let ChainVerdict::Valid { rows: count, .. } = common::verify(&db) else {
        panic!("chain broken by the kill")
    };
    let completed = rows(&db).iter().filter(|r| r.status == Some(200)).count();
    assert!(
        completed >= answered,
        "every answered call has its outcome on disk: {completed} rows for {answered} answers"
    );
    drop(server);

    let restarted = serve(&upstream, &policy, &db);
    let client = common::connect_http(&restarted.mcp_url, Some(&key)).await;
    let result = try_call(
        &client,
        "list_worker_scripts",
        json!({"account_id": ACCOUNT_ID}),
    )
    .await
    .expect("serves after restart");
    assert_eq!(result.is_error, Some(false));
    let ChainVerdict::Valid { rows: after, .. } = common::verify(&db) else {
        panic!("chain broken after restart")
    };
    assert_eq!(after, count + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_reloads_while_calls_flow() {
    let upstream = SandboxProcess::start(&["--rate-limit", "off"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("p.toml");
    let (key, hash) = flaregate::policy::new_key();
    write_policy_with(&policy, &hash, "full");
    let db = dir.path().join("audit.db");
    let server = serve(&upstream, &policy, &db);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (url, key, done) = (server.mcp_url.clone(), key.clone(), done.clone());
            tokio::spawn(async move {
                let client = common::connect_http(&url, Some(&key)).await;
                let mut calls = 0;
                while !done.load(Ordering::SeqCst) {
                    // Allowed under one policy, unknown under the other: never anything else.
                    match try_call(
                        &client,
                        "purge_cache",
                        json!({"zone_id": EXAMPLE_COM, "purge_everything": true}),
                    )
                    .await
                    {
                        Ok(result) => assert_eq!(result.is_error, Some(false)),
                        Err(error) => {
                            assert!(error.contains("Unknown tool: purge_cache"), "{error}")
                        }
                    }
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    for i in 0..100 {
        write_policy_with(&policy, &hash, if i % 2 == 0 { "off" } else { "full" });
        server.signal("HUP");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done.store(true, Ordering::SeqCst);
    let mut calls = 0;
    for caller in callers {
        calls += caller.await.expect("caller");
    }
    assert!(calls > 0);
    // Reloads settle (two equal reads 50 ms apart) before they install:
    // give the last one a moment.
    let client = common::connect_http(&server.mcp_url, Some(&key)).await;
    let mut in_force = false;
    for _ in 0..50 {
        let tools = client.list_all_tools().await.expect("the server survived");
        in_force = tools.iter().any(|t| t.name == "purge_cache");
        if in_force {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(in_force, "the last policy (cache full) is in force");
    let ChainVerdict::Valid { rows: count, .. } = common::verify(&db) else {
        panic!("chain broken")
    };
    assert_eq!(count as usize, calls);
}
