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

    fn outcome_seqs(connection: &Connection) -> Vec<Option<i64>> {
        let mut statement = connection
            .prepare("SELECT outcome_seq FROM calls ORDER BY id")
            .unwrap();
        statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn insert(
        connection: &Connection,
        seq: i64,
        outcome_seq: Option<i64>,
    ) -> rusqlite::Result<usize> {
        connection.execute(
            "INSERT INTO calls (ts, ts_unix_ms, agent, tool, method, path, target, args, decision,
                                reason, rule, summary, seq, prev_hash, hash, outcome_seq)
             VALUES ('t', 1, 'a', 'list_zones', 'GET', '/zones', '', '{}', 'allow', 'r', 'g', 's', ?1, 'p', 'h', ?2)",
            rusqlite::params![seq, outcome_seq],
        )
    }

    #[test]
    fn a_version_1_log_keeps_its_rows_and_outcome_numbers_stay_unique() {
        let mut connection = Connection::open_in_memory().unwrap();
        connection.execute_batch(MIGRATIONS[0]).unwrap();
        connection.pragma_update(None, "user_version", 1).unwrap();
        insert(&connection, 1, Some(2)).unwrap();
        insert(&connection, 3, None).unwrap();

        migrate(&mut connection).unwrap();

        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        assert_eq!(outcome_seqs(&connection), vec![Some(2), None]);
        insert(&connection, 4, None).expect("many decisions await their outcome");
        assert!(
            insert(&connection, 5, Some(2)).is_err(),
            "an outcome number is used once"
        );
        assert!(
            insert(&connection, 3, None).is_err(),
            "a decision number is used once"
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
