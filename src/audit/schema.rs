//! The database schema, versioned with `PRAGMA user_version`; each
//! migration runs once, in order, in a transaction.

use rusqlite::Connection;

/// Migration N takes the schema from version N to N + 1.
const MIGRATIONS: &[&str] = &[
    // 1: the call log. A row is one decision; the outcome columns are
    // filled after the upstream call. Decisions and outcomes are events of
    // one hash chain (seq / outcome_seq number them).
    "CREATE TABLE calls (
        id INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        ts_unix_ms INTEGER NOT NULL,
        agent TEXT NOT NULL,
        tool TEXT NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        target TEXT NOT NULL,
        args TEXT NOT NULL,
        decision TEXT NOT NULL CHECK (decision IN ('allow', 'deny')),
        reason TEXT NOT NULL,
        rule TEXT NOT NULL,
        summary TEXT NOT NULL,
        seq INTEGER NOT NULL UNIQUE,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        status INTEGER,
        cf_codes TEXT,
        error TEXT,
        duration_ms INTEGER,
        outcome TEXT,
        outcome_seq INTEGER UNIQUE,
        outcome_prev_hash TEXT,
        outcome_hash TEXT
    );
    CREATE INDEX calls_by_time ON calls (ts_unix_ms);
    CREATE INDEX calls_by_agent ON calls (agent, ts_unix_ms);",
    // 2: outcome_seq unique only where it is set. A column UNIQUE indexes
    // the NULL of every new decision too: one more page written per call.
    // SQLite cannot drop a column constraint, so the table is rebuilt.
    "CREATE TABLE calls_v2 (
        id INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        ts_unix_ms INTEGER NOT NULL,
        agent TEXT NOT NULL,
        tool TEXT NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        target TEXT NOT NULL,
        args TEXT NOT NULL,
        decision TEXT NOT NULL CHECK (decision IN ('allow', 'deny')),
        reason TEXT NOT NULL,
        rule TEXT NOT NULL,
        summary TEXT NOT NULL,
        seq INTEGER NOT NULL UNIQUE,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        status INTEGER,
        cf_codes TEXT,
        error TEXT,
        duration_ms INTEGER,
        outcome TEXT,
        outcome_seq INTEGER,
        outcome_prev_hash TEXT,
        outcome_hash TEXT
    );
    INSERT INTO calls_v2 SELECT * FROM calls;
    DROP TABLE calls;
    ALTER TABLE calls_v2 RENAME TO calls;
    CREATE UNIQUE INDEX calls_by_outcome_seq ON calls (outcome_seq) WHERE outcome_seq IS NOT NULL;
    CREATE INDEX calls_by_time ON calls (ts_unix_ms);
    CREATE INDEX calls_by_agent ON calls (agent, ts_unix_ms);",
];

/// Brings the database to the current schema version.
pub fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        let tx = connection.transaction()?;
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// Opens (or creates) the database in WAL mode. Commits are not fsynced
/// (`synchronous = NORMAL`): the writer flushes the WAL itself, once for
/// many commits.
pub fn open(path: &std::path::Path, max_bytes: Option<u64>) -> rusqlite::Result<Connection> {
    let mut connection = Connection::open(path)?;
    // SQLite falls back to read-only when it cannot open the file for
    // writing; a log that cannot take rows must stop flaregate at start.
    if connection.is_readonly(rusqlite::MAIN_DB)? {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
            Some("the file cannot be written (read-only or immutable)".into()),
        ));
    }
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.busy_timeout(std::time::Duration::from_secs(5))?;
    migrate(&mut connection)?;
    if let Some(max_bytes) = max_bytes {
        let page_size: i64 = connection.query_row("PRAGMA page_size", [], |row| row.get(0))?;
        let pages = (max_bytes / page_size.max(1) as u64).max(1);
        connection.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
    }
    Ok(connection)
}

#[cfg(test)]
mod tests {
    use rusqlite::params;

    use super::*;
    use crate::audit::chain::{self, GENESIS, Verdict, decision_hash, outcome_hash};
    use crate::audit::{CallRecord, Outcome};

    fn record(agent: &str) -> CallRecord {
        CallRecord {
            ts: "2026-11-28T12:00:00.000Z".into(),
            ts_unix_ms: 1_764_331_200_000,
            agent: agent.into(),
            tool: "list_zones".into(),
            method: "GET".into(),
            path: "/zones".into(),
            target: String::new(),
            args: "{}".into(),
            allowed: true,
            reason: "its zones grant is read".into(),
            rule: "grants.zones".into(),
            summary: format!("{agent} was allowed to list zones."),
        }
    }

    /// A decision row as the writer stores it; its hash.
    fn decide(connection: &Connection, seq: i64, prev: &str, r: &CallRecord) -> String {
        let hash = decision_hash(prev, seq, r);
        connection
            .execute(
                "INSERT INTO calls (ts, ts_unix_ms, agent, tool, method, path, target, args, decision,
                                    reason, rule, summary, seq, prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'allow', ?9, ?10, ?11, ?12, ?13, ?14)",
                params![r.ts, r.ts_unix_ms, r.agent, r.tool, r.method, r.path, r.target, r.args,
                        r.reason, r.rule, r.summary, seq, prev, hash],
            )
            .expect("decision row");
        hash
    }

    /// The outcome of the decision numbered `decision_seq`; its hash.
    fn complete(connection: &Connection, seq: i64, prev: &str, decision_seq: i64) -> String {
        let o = Outcome {
            status: Some(200),
            cf_codes: Vec::new(),
            error: None,
            duration_ms: Some(12),
            text: "Cloudflare answered 200 in 12 ms.".into(),
        };
        let hash = outcome_hash(prev, seq, decision_seq, &o, "[]");
        connection
            .execute(
                "UPDATE calls SET status = ?1, cf_codes = '[]', duration_ms = ?2, outcome = ?3,
                                  outcome_seq = ?4, outcome_prev_hash = ?5, outcome_hash = ?6
                 WHERE seq = ?7",
                params![o.status, 12, o.text, seq, prev, hash, decision_seq],
            )
            .expect("outcome");
        hash
    }

    #[test]
    fn a_version_1_log_keeps_its_rows_and_its_chain_and_outcome_numbers_stay_unique() {
        let mut connection = Connection::open_in_memory().unwrap();
        connection.execute_batch(MIGRATIONS[0]).unwrap();
        connection.pragma_update(None, "user_version", 1).unwrap();
        let first = decide(&connection, 1, GENESIS, &record("auditor"));
        let done = complete(&connection, 2, &first, 1);
        decide(&connection, 3, &done, &record("site-deployer"));

        migrate(&mut connection).unwrap();

        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        assert_eq!(
            chain::verify(&connection).unwrap(),
            Verdict::Valid { rows: 2, events: 3 }
        );
        let last = decide(&connection, 4, &done, &record("auditor"));
        assert!(
            connection
                .execute("UPDATE calls SET outcome_seq = 2 WHERE hash = ?1", [last])
                .is_err(),
            "an outcome number is used once"
        );
    }

    #[test]
    fn the_chain_head_is_found_through_the_indexes() {
        let mut connection = Connection::open_in_memory().unwrap();
        migrate(&mut connection).unwrap();
        let plan: Vec<String> = connection
            .prepare(
                "EXPLAIN QUERY PLAN SELECT MAX(outcome_seq) FROM calls WHERE outcome_seq IS NOT NULL",
            )
            .unwrap()
            .query_map([], |row| row.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(
            plan.iter()
                .any(|step| step.contains("calls_by_outcome_seq")),
            "{plan:?}"
        );
    }
}
