//! One SQLite log, several processes: the README's stdio server beside an
//! HTTP server on the same `flaregate.toml` both append to one chain, and
//! `/ready` says 503 whenever the writer cannot write.

mod common;

use common::{ServerProcess, call, text};
use flaregate::sandbox::EXAMPLE_COM;
use serde_json::json;

async fn ready(admin: &str) -> reqwest::StatusCode {
    reqwest::get(format!("{admin}/ready"))
        .await
        .expect("admin answers")
        .status()
}

#[tokio::test]
async fn two_processes_append_to_one_sqlite_log_in_turn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("shared.db");
    let db_arg = db.to_str().expect("utf-8");
    let first = ServerProcess::sandbox(&["--audit-db", db_arg, "--admin", "127.0.0.1:0"]);
    let second = ServerProcess::sandbox(&["--audit-db", db_arg]);
    let (a, b) = (
        first.connect("auditor").await,
        second.connect("auditor").await,
    );
    for round in 0..3 {
        for (name, client) in [("first", &a), ("second", &b)] {
            let result = call(client, "get_zone", json!({"zone_id": EXAMPLE_COM})).await;
            assert_eq!(
                result.is_error,
                Some(false),
                "{name}, round {round}: {}",
                text(&result)
            );
        }
    }
    let admin = first.admin_url.as_deref().expect("admin listener");
    assert_eq!(ready(admin).await, reqwest::StatusCode::OK);
    let rows = first.audit_rows();
    assert_eq!(rows.len(), 6, "every call of both processes has its row");
    assert!(
        matches!(
            common::verify(&db),
            flaregate::audit::ChainVerdict::Valid { rows: 6, ref head } if head.events == 12
        ),
        "one chain: {:?}",
        common::verify(&db)
    );
}

#[tokio::test]
async fn ready_is_503_while_another_process_holds_the_log_and_200_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.db");
    let server = ServerProcess::sandbox(&[
        "--audit-db",
        db.to_str().expect("utf-8"),
        "--admin",
        "127.0.0.1:0",
    ]);
    let admin = server.admin_url.clone().expect("admin listener");
    assert_eq!(ready(&admin).await, reqwest::StatusCode::OK);

    // Another process takes SQLite's write lock and keeps it.
    let mut holder = rusqlite::Connection::open(&db).expect("opens");
    let lock = holder
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .expect("takes the write lock");
    assert_eq!(
        ready(&admin).await,
        reqwest::StatusCode::SERVICE_UNAVAILABLE,
        "the writer cannot write: not ready"
    );
    drop(lock);
    assert_eq!(ready(&admin).await, reqwest::StatusCode::OK);
}

/// `flaregate ARGS`; `serve` reads the shipped catalog and policies.
fn flaregate(args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(common::BIN);
    command.args(args);
    if args.first() == Some(&"serve") {
        command
            .arg("--catalog")
            .arg(common::shipped("catalog"))
            .arg("--policies")
            .arg(common::shipped("policies"));
    }
    command.output().expect("runs")
}

#[tokio::test]
async fn a_log_keeps_the_key_it_started_with_and_refuses_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, other) = (dir.path().join("a.db"), dir.path().join("b.db"));
    let (db_arg, other_arg) = (db.to_str().expect("utf-8"), other.to_str().expect("utf-8"));

    // The key is made first, once; a second init-key does not replace it.
    let made = flaregate(&["audit", "init-key", "--audit-db", db_arg]);
    let said = String::from_utf8_lossy(&made.stdout);
    assert!(
        made.status.success() && said.contains("fingerprint"),
        "{said}"
    );
    let again = flaregate(&["audit", "init-key", "--audit-db", db_arg]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("there already"));

    // The server writes the log with that key.
    let key_before = std::fs::read_to_string(dir.path().join("a.key")).expect("key");
    let mut server = ServerProcess::sandbox(&["--audit-db", db_arg]);
    let client = server.connect("auditor").await;
    call(&client, "get_zone", json!({"zone_id": EXAMPLE_COM})).await;
    assert!(server.terminate().success());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a.key")).expect("key"),
        key_before
    );

    // Another key in its place: refused at start, naming both fingerprints.
    assert!(
        flaregate(&["audit", "init-key", "--audit-db", other_arg])
            .status
            .success()
    );
    std::fs::copy(dir.path().join("b.key"), dir.path().join("a.key")).expect("swap");
    let refused = flaregate(&[
        "serve",
        "--sandbox",
        "--http",
        "127.0.0.1:0",
        "--audit-db",
        db_arg,
    ]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("is not the key the log") && stderr.contains("audit init-key"),
        "{stderr}"
    );
}

/// A call whose row waits for another process's SQLite lock must not hold
/// up the thread that serves the other sessions (`serve` runs one): the
/// wait belongs to the writer thread alone.
#[tokio::test]
async fn a_call_waiting_for_another_process_lock_holds_up_no_other_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.db");
    let server = ServerProcess::sandbox(&["--audit-db", db.to_str().expect("utf-8")]);
    let (caller, other) = (
        server.connect("auditor").await,
        server.connect("auditor").await,
    );
    call(&caller, "get_zone", json!({"zone_id": EXAMPLE_COM})).await;

    let mut holder = rusqlite::Connection::open(&db).expect("opens");
    let lock = holder
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .expect("takes the write lock");
    let waiting = tokio::spawn(async move {
        let result = call(&caller, "get_zone", json!({"zone_id": EXAMPLE_COM})).await;
        (caller, result)
    });
    // Give the call time to reach the log (it then waits for the lock).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // A thread waiting for the lock would sit out SQLite's 5 s busy
    // timeout before serving anything else; a list takes milliseconds.
    let listed = tokio::time::timeout(std::time::Duration::from_secs(4), other.list_all_tools())
        .await
        .expect("another session is served while the call waits for the lock")
        .expect("tools listed");
    assert!(!listed.is_empty());
    assert!(!waiting.is_finished(), "the call waits for its row");
    assert_eq!(
        server
            .sandbox_requests()
            .await
            .iter()
            .filter(|r| r.path == format!("/zones/{EXAMPLE_COM}"))
            .count(),
        1,
        "nothing is sent before its decision is written"
    );

    drop(lock);
    let (_caller, result) = waiting.await.expect("the call ends");
    assert_eq!(result.is_error, Some(false), "{}", text(&result));
    assert_eq!(server.audit_rows().len(), 2, "one row per call");
    assert!(matches!(
        common::verify(&db),
        flaregate::audit::ChainVerdict::Valid { rows: 2, .. }
    ));
}
