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
    use super::*;
    use crate::audit::chain::{self, GENESIS, Verdict};
    use crate::audit::writer::{complete, insert};
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

    #[test]
    fn a_version_1_log_keeps_its_rows_and_its_chain_and_outcome_numbers_stay_unique() {
        let mut connection = Connection::open_in_memory().unwrap();
        connection.execute_batch(MIGRATIONS[0]).unwrap();
        connection.pragma_update(None, "user_version", 1).unwrap();
        // Rows as the writer writes them: a call with its outcome, one without.
        let tx = connection.transaction().unwrap();
        let (mut seq, mut prev) = (0, GENESIS.to_string());
        let first = insert(&tx, &mut seq, &mut prev, &record("auditor")).unwrap();
        let outcome = Outcome {
            status: Some(200),
            duration_ms: Some(12),
            text: "Cloudflare answered 200 in 12 ms.".into(),
            ..Outcome::default()
        };
        complete(&tx, &mut seq, &mut prev, first, &outcome).unwrap();
        insert(&tx, &mut seq, &mut prev, &record("site-deployer")).unwrap();
        tx.commit().unwrap();

        migrate(&mut connection).unwrap();

        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        assert_eq!(
            chain::verify(&connection).unwrap(),
            Verdict::Valid { rows: 2, events: 3 }
        );
        let tx = connection.transaction().unwrap();
        let last = insert(&tx, &mut seq, &mut prev, &record("auditor")).unwrap();
        assert!(
            tx.execute("UPDATE calls SET outcome_seq = 2 WHERE id = ?1", [last.id])
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
