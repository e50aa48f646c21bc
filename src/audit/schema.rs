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
