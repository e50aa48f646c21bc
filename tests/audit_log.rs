//! The audit log on real SQLite files: rows and summaries, the hash chain
//! against edits and deletions, concurrency, and a writer killed mid-stream.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use flaregate::audit::{self, AuditLog, CallRecord, ChainVerdict, Outcome};
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
        decision: if allowed {
            audit::Decision::Allow
        } else {
            audit::Decision::Deny
        },
        reason: if allowed {
            "your DNS grant is read".into()
        } else {
            "your DNS grant is off".into()
        },
        rule: "grants.dns".into(),
        summary: format!(
            "{agent} was {} {tool} on example.com",
            if allowed { "allowed to run" } else { "denied" }
        ),
        lookup: String::new(),
        sandbox: false,
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
    // As at shutdown: every row durable, the head checkpointed.
    log.close().await.expect("closes");
}

/// Recomputes every hash of the log as someone who can write the file but
/// does not hold the audit key would: the chain's own formula (HMAC-SHA256
/// over the previous hash and the event as a JSON array) under a key of
/// their choosing.
fn rechain_without_the_key(db: &Path) {
    use hmac::Mac;
    let connection = sqlite(db);
    let mac = |prev: &str, content: &Value| {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"a guessed key").expect("key");
        mac.update(format!("{prev}\n{content}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    };
    let mut prev = "0".repeat(64);
    let ids: Vec<i64> = connection
        .prepare("SELECT id FROM calls ORDER BY seq")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("ids");
    for id in ids {
        let (decision, outcome): (Value, Value) = connection
            .query_row(
                "SELECT json_array('decision', seq, id, ts, ts_unix_ms, agent, tool, method, path, target, args, decision, reason, rule, summary, lookup, sandbox),
                        json_array('outcome', outcome_seq, id, seq, status, cf_codes, error, duration_ms, outcome)
                 FROM calls WHERE id = ?1",
                [id],
                |r| {
                    let parse = |text: String| serde_json::from_str(&text).expect("JSON");
                    Ok((parse(r.get(0)?), parse(r.get(1)?)))
                },
            )
            .expect("row");
        let hash = mac(&prev, &decision);
        connection
            .execute(
                "UPDATE calls SET prev_hash = ?1, hash = ?2 WHERE id = ?3",
                rusqlite::params![prev, hash, id],
            )
            .expect("rewrite");
        prev = hash;
        let hash = mac(&prev, &outcome);
        connection
            .execute(
                "UPDATE calls SET outcome_prev_hash = ?1, outcome_hash = ?2 WHERE id = ?3",
                rusqlite::params![prev, hash, id],
            )
            .expect("rewrite");
        prev = hash;
    }
}

/// Each forgery a writer of the database can try without the audit key,
/// and what `audit verify` says of it.
#[tokio::test]
async fn verify_reports_every_forgery_made_without_the_audit_key() {
    type Forgery = fn(&Path);
    let forgeries: [(&str, Forgery, &str); 6] = [
        (
            "edit and recompute the chain",
            |db| {
                sqlite(db)
                    .execute(
                        "UPDATE calls SET decision = 'allow', reason = 'fine' WHERE id = 3",
                        [],
                    )
                    .expect("edit");
                rechain_without_the_key(db);
            },
            "broken at row 1",
        ),
        (
            "delete a middle row and renumber",
            |db| {
                let c = sqlite(db);
                c.execute_batch(
                    "DELETE FROM calls WHERE id = 2;
                 UPDATE calls SET seq = seq - 2, outcome_seq = outcome_seq - 2 WHERE id > 2;
                 UPDATE calls SET id = id - 1 WHERE id > 2;",
                )
                .expect("delete");
                rechain_without_the_key(db);
            },
            "broken at row 1",
        ),
        (
            "delete the last rows",
            |db| {
                sqlite(db)
                    .execute("DELETE FROM calls WHERE id > 3", [])
                    .expect("delete");
            },
            "removed from the end",
        ),
        (
            "empty the table",
            |db| {
                sqlite(db).execute("DELETE FROM calls", []).expect("delete");
            },
            "removed from the end",
        ),
        (
            "change a row's id",
            |db| {
                sqlite(db)
                    .execute("UPDATE calls SET id = 99 WHERE id = 5", [])
                    .expect("renumber");
            },
            "broken at row 99",
        ),
        (
            "delete the head checkpoint",
            |db| {
                std::fs::remove_file(db.with_extension("head")).expect("delete");
            },
            "no head checkpoint",
        ),
    ];
    for (forgery, forge, expected) in forgeries {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("audit.db");
        fill(&db, 5).await;
        let (ok, out) = cli(&db, &["verify"]);
        assert!(ok && out.contains("all 5 rows verify"), "{out}");
        forge(&db);
        let (ok, out) = cli(&db, &["verify"]);
        assert!(!ok, "{forgery}: not detected:\n{out}");
        assert!(out.contains(expected), "{forgery}: {out}");
    }
}

#[tokio::test]
async fn a_head_saved_elsewhere_catches_a_rollback_of_the_checkpoint_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.db");
    fill(&db, 2).await;
    let old_checkpoint = std::fs::read(db.with_extension("head")).expect("checkpoint");
    fill(&db, 3).await;
    let (ok, head) = cli(&db, &["head"]);
    assert!(ok);
    let head = head.trim().to_string();
    assert!(head.starts_with("10:"), "5 rows, 10 events: {head}");
    let (ok, out) = cli(&db, &["verify", "--expect-head", &head]);
    assert!(ok, "{out}");

    // Cut the last three rows and put the older checkpoint back.
    sqlite(&db)
        .execute("DELETE FROM calls WHERE id > 2", [])
        .expect("delete");
    std::fs::write(db.with_extension("head"), old_checkpoint).expect("roll back");
    let (ok, out) = cli(&db, &["verify"]);
    assert!(ok, "the old checkpoint alone cannot tell: {out}");
    let (ok, out) = cli(&db, &["verify", "--expect-head", &head]);
    assert!(
        !ok && out.contains("the head you gave has event 10"),
        "{out}"
    );
    let (ok, _) = cli(&db, &["verify", "--expect-head", "10:nothex"]);
    assert!(!ok, "a malformed head is an error");
}

#[tokio::test]
async fn a_log_shorter_than_its_checkpoint_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.db");
    fill(&db, 3).await;
    sqlite(&db)
        .execute("DELETE FROM calls WHERE id = 3", [])
        .expect("delete");
    let error = AuditLog::open(&db).expect_err("refused");
    assert!(error.to_string().contains("rows were removed"), "{error}");
    std::fs::remove_file(db.with_extension("key")).expect("remove the key");
    let error = AuditLog::open(&db).expect_err("refused");
    assert!(error.to_string().contains("audit key"), "{error}");
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
            "UPDATE calls SET reason = 'your DNS grant is full' WHERE id = 3",
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
    assert!(matches!(
        common::verify(&db),
        ChainVerdict::Valid { rows: 10_000, head } if head.events == 20_000
    ));
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

    let ChainVerdict::Valid { rows, .. } = common::verify(&db) else {
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
    assert!(matches!(common::verify(&db), ChainVerdict::Valid { .. }));
}

#[tokio::test]
async fn audit_filters_by_zone_refuses_unknown_names_and_follows_new_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.db");
    fill(&db, 2).await;
    let (ok, by_name) = cli(&db, &["--json", "--zone", "example.com"]);
    assert!(ok && by_name.lines().count() == 2, "{by_name}");
    let (_, by_id) = cli(
        &db,
        &["--json", "--zone", "023e105f4ecef8ad9ca31a8372d0c353"],
    );
    assert_eq!(by_id.lines().count(), 2, "{by_id}");
    let (_, other) = cli(&db, &["--json", "--zone", "example.org"]);
    assert_eq!(other.lines().count(), 0);
    let row: Value = serde_json::from_str(by_id.lines().next().expect("a row")).expect("JSON");
    assert_eq!(
        (
            row["method"].as_str(),
            row["path"].as_str().map(|p| p.starts_with("/zones/"))
        ),
        (Some("GET"), Some(true))
    );

    for (filter, name) in [("--tool", "list_dns_recrods"), ("--agent", "audtor")] {
        let output = Command::new(common::BIN)
            .args([
                "audit",
                filter,
                name,
                "--audit-db",
                db.to_str().expect("utf-8"),
            ])
            .output()
            .expect("runs");
        assert!(!output.status.success(), "{filter} {name}");
        let error = String::from_utf8_lossy(&output.stderr);
        assert!(
            error.contains(&format!("there is no {} `{name}`", &filter[2..])),
            "{error}"
        );
    }

    let mut follow = Command::new(common::BIN)
        .args([
            "audit",
            "--follow",
            "--audit-db",
            db.to_str().expect("utf-8"),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("follow");
    let mut lines = BufReader::new(follow.stdout.take().expect("stdout")).lines();
    for _ in 0..2 {
        lines.next().expect("the rows so far").expect("a line");
    }
    let log = AuditLog::open(&db).expect("opens");
    log.record(
        record("dns-editor", "delete_dns_record", false, 99),
        Outcome::default(),
    )
    .await
    .expect("a new row");
    let fresh = lines.next().expect("the new row").expect("a line");
    assert!(
        fresh.contains("dns-editor was denied delete_dns_record"),
        "{fresh}"
    );
    let _ = follow.kill();
    let _ = follow.wait();
}
