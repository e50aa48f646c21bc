//! The audit log on real SQLite files: rows and summaries, the hash chain
//! against edits and deletions, concurrency, and a writer killed mid-stream.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use flaregate::audit::{self, AuditLog, CallRecord, Outcome, Verdict};
use serde_json::Value;

fn record(agent: &str, tool: &str, allowed: bool, n: usize) -> CallRecord {
    CallRecord {
        ts: audit::now_rfc3339(),
        ts_unix_ms: audit::now_unix_ms(),
        agent: agent.to_string(),
        tool: tool.to_string(),
        method: "GET".into(),
        path: "/zones/023e105f4ecef8ad9ca31a8372d0c353/dns_records".into(),
        target: "example.com".into(),
        args: format!("{{\"n\":{n}}}"),
        allowed,
        reason: if allowed {
            "its DNS grant is read".into()
        } else {
            "its DNS grant is off".into()
        },
        rule: "grants.dns".into(),
        summary: format!(
            "{agent} was {} {tool} on example.com",
            if allowed { "allowed to run" } else { "denied" }
        ),
    }
}

fn ok_outcome() -> Outcome {
    Outcome {
        status: Some(200),
        duration_ms: Some(12),
        text: "Cloudflare answered 200 in 12 ms".into(),
        ..Outcome::default()
    }
}

/// Runs `flaregate audit …` on a database; returns (success, stdout).
fn cli(db: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(common::BIN)
        .arg("audit")
        .args(args)
        .args(["--audit-db", db.to_str().expect("utf-8 path")])
        .output()
        .expect("flaregate runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn sqlite(db: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(db).expect("open for tampering")
}

#[tokio::test]
async fn rows_hold_the_decision_the_outcome_and_a_summary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.db");
    let log = AuditLog::open(&db).expect("opens");
    let (row, flushed) = log
        .begin(record("auditor", "list_dns_records", true, 1))
        .await
        .expect("begin");
    flushed.wait().await.expect("on disk");
    log.complete(row, ok_outcome()).await.expect("complete");
    log.record(
        record("dns-editor", "delete_dns_record", false, 2),
        Outcome::default(),
    )
    .await
    .expect("denial");
    let (pending, _) = log
        .begin(record("auditor", "get_zone", true, 3))
        .await
        .expect("begin only");
    assert!(pending.id > row.id);

    let (ok, out) = cli(&db, &["--json"]);
    assert!(ok);
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(rows.len(), 3);
    for field in [
        "ts", "agent", "tool", "decision", "reason", "status", "summary",
    ] {
        assert!(rows[0].get(field).is_some(), "field {field} in {}", rows[0]);
    }
    assert_eq!(rows[0]["status"], 200);
    assert_eq!(
        rows[0]["summary"],
        "auditor was allowed to run list_dns_records on example.com; Cloudflare answered 200 in 12 ms."
    );
    assert_eq!(
        (rows[1]["decision"].as_str(), rows[1]["status"].as_u64()),
        (Some("deny"), None)
    );
    assert_eq!(
        rows[1]["summary"],
        "dns-editor was denied delete_dns_record on example.com."
    );

    let (_, denied) = cli(&db, &["--json", "--decision", "deny"]);
    assert_eq!(denied.lines().count(), 1);
    let (_, by_agent) = cli(&db, &["--json", "--agent", "auditor", "--since", "1h"]);
    assert_eq!(by_agent.lines().count(), 2);
    let (_, by_tool) = cli(&db, &["--json", "--tool", "get_zone"]);
    assert_eq!(by_tool.lines().count(), 1);
    let (_, latest) = cli(&db, &["--json", "--limit", "1"]);
    assert!(latest.contains("get_zone"), "the newest row: {latest}");
    let (_, text) = cli(&db, &[]);
    assert!(
        text.contains("deny   dns-editor was denied delete_dns_record"),
        "{text}"
    );
}

async fn fill(db: &Path, n: usize) {
    let log = AuditLog::open(db).expect("opens");
    for i in 0..n {
        let (row, _flushed) = log
            .begin(record("auditor", "list_dns_records", true, i))
            .await
            .expect("begin");
        log.complete(row, ok_outcome()).await.expect("complete");
    }
}

#[tokio::test]
async fn verify_detects_an_edited_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.db");
    fill(&db, 5).await;
    let (ok, out) = cli(&db, &["verify"]);
    assert!(ok, "{out}");
    assert!(out.contains("all 5 rows verify"), "{out}");

    sqlite(&db)
        .execute(
            "UPDATE calls SET reason = 'its DNS grant is full' WHERE id = 3",
            [],
        )
        .expect("tamper");
    let (ok, out) = cli(&db, &["verify"]);
    assert!(!ok);
    assert!(
        out.contains("broken at row 3") && out.contains("edited"),
        "{out}"
    );
}

#[tokio::test]
async fn verify_detects_an_edited_outcome() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.db");
    fill(&db, 4).await;
    sqlite(&db)
        .execute("UPDATE calls SET status = 404 WHERE id = 2", [])
        .expect("tamper");
    let (ok, out) = cli(&db, &["verify"]);
    assert!(!ok && out.contains("row 2"), "{out}");
}

#[tokio::test]
async fn verify_detects_a_deleted_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.db");
    fill(&db, 5).await;
    sqlite(&db)
        .execute("DELETE FROM calls WHERE id = 2", [])
        .expect("tamper");
    let (ok, out) = cli(&db, &["verify"]);
    assert!(!ok);
    assert!(out.contains("deleted") && out.contains("row 3"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_decisions_from_fifty_tasks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.db");
    let log = AuditLog::open(&db).expect("opens");
    let tasks: Vec<_> = (0..50)
        .map(|t| {
            let log = log.clone();
            tokio::spawn(async move {
                for i in 0..200 {
                    let n = t * 200 + i;
                    if n % 3 == 0 {
                        log.record(
                            record("dns-editor", "delete_dns_record", false, n),
                            Outcome::default(),
                        )
                        .await
                        .expect("denial");
                    } else {
                        let (row, _flushed) = log
                            .begin(record("auditor", "list_dns_records", true, n))
                            .await
                            .expect("begin");
                        log.complete(row, ok_outcome()).await.expect("complete");
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task finished");
    }
    let rows: i64 = sqlite(&db)
        .query_row("SELECT COUNT(*) FROM calls", [], |r| r.get(0))
        .expect("count");
    assert_eq!(rows, 10_000);
    let distinct: i64 = sqlite(&db)
        .query_row("SELECT COUNT(DISTINCT args) FROM calls", [], |r| r.get(0))
        .expect("count");
    assert_eq!(distinct, 10_000, "every record is its own row");
    assert_eq!(
        audit::verify(&db).expect("verify"),
        Verdict::Valid {
            rows: 10_000,
            events: 20_000
        }
    );
}

/// The child half of the SIGKILL test: writes rows forever, printing the id
/// of each once the log has acknowledged it. Does nothing in a normal run.
#[tokio::test]
async fn child_writer_for_kill_test() {
    let Ok(db) = std::env::var("FLAREGATE_TEST_KILL_DB") else {
        return;
    };
    let log = AuditLog::open(Path::new(&db)).expect("opens");
    let mut tasks = Vec::new();
    for t in 0..8 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let (row, _flushed) = log
                    .begin(record(
                        "auditor",
                        "list_dns_records",
                        true,
                        t * 1_000_000 + i,
                    ))
                    .await
                    .expect("begin");
                println!("begun {}", row.id);
                log.complete(row, ok_outcome()).await.expect("complete");
                println!("done {}", row.id);
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

#[test]
fn a_writer_killed_mid_stream_leaves_a_valid_chain_with_every_acknowledged_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.db");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "child_writer_for_kill_test",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("FLAREGATE_TEST_KILL_DB", &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("child starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (mut begun, mut done) = (Vec::new(), Vec::new());
    while done.len() < 400 {
        let line = lines.next().expect("child is writing").expect("utf-8");
        if let Some(id) = line.strip_prefix("begun ") {
            begun.push(id.parse::<i64>().expect("id"));
        } else if let Some(id) = line.strip_prefix("done ") {
            done.push(id.parse::<i64>().expect("id"));
        }
    }
    child.kill().expect("SIGKILL"); // std's kill sends SIGKILL on Unix
    child.wait().expect("reaped");

    let Verdict::Valid { rows, .. } = audit::verify(&db).expect("verify") else {
        panic!("chain broken after kill");
    };
    assert!(rows as usize >= begun.len());
    let connection = sqlite(&db);
    for id in &begun {
        let found: i64 = connection
            .query_row("SELECT COUNT(*) FROM calls WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .expect("query");
        assert_eq!(found, 1, "acknowledged row {id} is on disk");
    }
    for id in &done {
        let status: Option<i64> = connection
            .query_row("SELECT status FROM calls WHERE id = ?1", [id], |r| r.get(0))
            .expect("query");
        assert_eq!(
            status,
            Some(200),
            "acknowledged outcome of row {id} is on disk"
        );
    }
    // And the log takes new rows after the crash.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(fill(&db, 3));
    assert!(matches!(
        audit::verify(&db).expect("verify"),
        Verdict::Valid { .. }
    ));
}
