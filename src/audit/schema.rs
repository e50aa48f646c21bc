//! The database schema, versioned with `PRAGMA user_version`; each
//! migration runs once, in order, in a transaction.

use rusqlite::Connection;

/// Migration N takes the schema from version N to N + 1: its parts, run in
/// order in one transaction (each table's own SQL where it has a module).
const MIGRATIONS: &[&[&str]] = &[
    // 1: the call log. A row is one decision; the outcome columns are
    // filled after the upstream call. Decisions and outcomes are events of
    // one hash chain (seq / outcome_seq number them).
    &["CREATE TABLE calls (
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
    CREATE INDEX calls_by_agent ON calls (agent, ts_unix_ms);"],
    // 2: outcome_seq unique only where it is set. A column UNIQUE indexes
    // the NULL of every new decision too: one more page written per call.
    // SQLite cannot drop a column constraint, so the table is rebuilt.
    &["CREATE TABLE calls_v2 (
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
    CREATE INDEX calls_by_agent ON calls (agent, ts_unix_ms);"],
    // 3: what was fetched to decide (lookups), whether the row was written
    // against the sandbox, and facts about the chain (is it keyed).
    &[
        "ALTER TABLE calls ADD COLUMN lookup TEXT NOT NULL DEFAULT '';
    ALTER TABLE calls ADD COLUMN sandbox INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE chain_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);",
    ],
    // 4: previews (dry runs) are a decision of their own. SQLite cannot
    // change a CHECK, so the table is rebuilt; rows and hashes are kept.
    &["CREATE TABLE calls_v4 (
        id INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        ts_unix_ms INTEGER NOT NULL,
        agent TEXT NOT NULL,
        tool TEXT NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        target TEXT NOT NULL,
        args TEXT NOT NULL,
        decision TEXT NOT NULL CHECK (decision IN ('allow', 'deny', 'preview')),
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
        outcome_hash TEXT,
        lookup TEXT NOT NULL DEFAULT '',
        sandbox INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO calls_v4 SELECT * FROM calls;
    DROP TABLE calls;
    ALTER TABLE calls_v4 RENAME TO calls;
    CREATE UNIQUE INDEX calls_by_outcome_seq ON calls (outcome_seq) WHERE outcome_seq IS NOT NULL;
    CREATE INDEX calls_by_time ON calls (ts_unix_ms);
    CREATE INDEX calls_by_agent ON calls (agent, ts_unix_ms);"],
    // 5: a person's decision on a request for approval is an event of its
    // own (approved, rejected), and the approvals live here with a mark of
    // whether that decision is in the chain yet. Logs of 0.7 made the
    // approvals table on first use: it is kept when it exists.
    &[
        "CREATE TABLE calls_v5 (
        id INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        ts_unix_ms INTEGER NOT NULL,
        agent TEXT NOT NULL,
        tool TEXT NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        target TEXT NOT NULL,
        args TEXT NOT NULL,
        decision TEXT NOT NULL
            CHECK (decision IN ('allow', 'deny', 'preview', 'approved', 'rejected')),
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
        outcome_hash TEXT,
        lookup TEXT NOT NULL DEFAULT '',
        sandbox INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO calls_v5 SELECT * FROM calls;
    DROP TABLE calls;
    ALTER TABLE calls_v5 RENAME TO calls;
    CREATE UNIQUE INDEX calls_by_outcome_seq ON calls (outcome_seq) WHERE outcome_seq IS NOT NULL;
    CREATE INDEX calls_by_time ON calls (ts_unix_ms);
    CREATE INDEX calls_by_agent ON calls (agent, ts_unix_ms);",
        super::approvals::SQLITE_TABLE,
    ],
    // 6: what an allowed write changed, for undo: the object before it
    // (deflated; its SHA-256 is also in the row's hashed `lookup`), what
    // the write answered, and the id of what it created.
    &["CREATE TABLE snapshots (
        call_id INTEGER PRIMARY KEY,
        reader TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('object', 'text', 'missing', 'nothing')),
        prior BLOB,
        digest TEXT,
        after BLOB,
        created TEXT
    );"],
    // 7: the approval a row belongs to, in a column of its own (for
    // `audit --approval` and verify's one-call-per-approval check); it
    // repeats the hashed rule, `approval ID`, and verify checks the two agree.
    &["ALTER TABLE calls ADD COLUMN approval TEXT;
    UPDATE calls SET approval = substr(rule, 10) WHERE rule LIKE 'approval %';
    CREATE INDEX calls_by_approval ON calls (approval) WHERE approval IS NOT NULL;"],
    // 8: a change an operator made to the policy (in the console) is an
    // event of its own. SQLite cannot change a CHECK: the table is rebuilt;
    // rows and hashes are kept.
    &["CREATE TABLE calls_v8 (
        id INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        ts_unix_ms INTEGER NOT NULL,
        agent TEXT NOT NULL,
        tool TEXT NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        target TEXT NOT NULL,
        args TEXT NOT NULL,
        decision TEXT NOT NULL
            CHECK (decision IN ('allow', 'deny', 'preview', 'approved', 'rejected', 'policy')),
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
        outcome_hash TEXT,
        lookup TEXT NOT NULL DEFAULT '',
        sandbox INTEGER NOT NULL DEFAULT 0,
        approval TEXT
    );
    INSERT INTO calls_v8 SELECT * FROM calls;
    DROP TABLE calls;
    ALTER TABLE calls_v8 RENAME TO calls;
    CREATE UNIQUE INDEX calls_by_outcome_seq ON calls (outcome_seq) WHERE outcome_seq IS NOT NULL;
    CREATE INDEX calls_by_time ON calls (ts_unix_ms);
    CREATE INDEX calls_by_agent ON calls (agent, ts_unix_ms);
    CREATE INDEX calls_by_approval ON calls (approval) WHERE approval IS NOT NULL;"],
    // 9: a person's note on their decision on a request for approval.
    &[super::approvals::NOTE_COLUMN],
    // 10: who asked for approval, when a token named a person and client.
    &[super::approvals::ASKED_BY_COLUMN],
    // 11: an alert Cloudflare sent to a webhook is an event of its own (the
    // table rebuilt for the CHECK, as for 8).
    &["CREATE TABLE calls_v11 (
        id INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        ts_unix_ms INTEGER NOT NULL,
        agent TEXT NOT NULL,
        tool TEXT NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        target TEXT NOT NULL,
        args TEXT NOT NULL,
        decision TEXT NOT NULL
            CHECK (decision IN ('allow', 'deny', 'preview', 'approved', 'rejected', 'policy', 'alert')),
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
        outcome_hash TEXT,
        lookup TEXT NOT NULL DEFAULT '',
        sandbox INTEGER NOT NULL DEFAULT 0,
        approval TEXT
    );
    INSERT INTO calls_v11 SELECT * FROM calls;
    DROP TABLE calls;
    ALTER TABLE calls_v11 RENAME TO calls;
    CREATE UNIQUE INDEX calls_by_outcome_seq ON calls (outcome_seq) WHERE outcome_seq IS NOT NULL;
    CREATE INDEX calls_by_time ON calls (ts_unix_ms);
    CREATE INDEX calls_by_agent ON calls (agent, ts_unix_ms);
    CREATE INDEX calls_by_approval ON calls (approval) WHERE approval IS NOT NULL;"],
];

/// Brings the database to the current schema version.
pub(super) fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        let tx = connection.transaction()?;
        for part in *migration {
            tx.execute_batch(part)?;
        }
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// Whether the database has every migration (and so every column).
pub(super) fn is_current(connection: &Connection) -> rusqlite::Result<bool> {
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    Ok(version >= MIGRATIONS.len() as i64)
}

/// Whether the chain is keyed (HMAC with the audit key); logs written
/// before keys are not, until the writer re-keys them.
pub(super) fn is_keyed(connection: &Connection) -> rusqlite::Result<bool> {
    connection.query_row(
        "SELECT EXISTS (SELECT 1 FROM chain_meta WHERE name = 'mac' AND value = 'hmac-sha256')",
        [],
        |row| row.get(0),
    )
}

/// Records that every event is now keyed.
pub(super) fn mark_keyed(connection: &Connection) -> rusqlite::Result<()> {
    connection
        .execute(
            "INSERT OR REPLACE INTO chain_meta (name, value) VALUES ('mac', 'hmac-sha256')",
            [],
        )
        .map(|_| ())
}

/// Opens (or creates) the database in WAL mode. Commits are not fsynced
/// (`synchronous = NORMAL`): the writer flushes the WAL itself, once for
/// many commits.
pub(super) fn open(path: &std::path::Path, max_bytes: Option<u64>) -> rusqlite::Result<Connection> {
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

/// Records `fingerprint` as the log's key unless one is recorded already;
/// the one recorded. The first writer of a log claims it for its key.
pub(super) fn claim_key(connection: &Connection, fingerprint: &str) -> rusqlite::Result<String> {
    connection.execute(
        "INSERT OR IGNORE INTO chain_meta (name, value) VALUES ('key', ?1)",
        [fingerprint],
    )?;
    connection.query_row(
        "SELECT value FROM chain_meta WHERE name = 'key'",
        [],
        |row| row.get(0),
    )
}

/// The size cap `open` set (`max_bytes`), in pages.
pub(super) fn max_pages(connection: &Connection) -> rusqlite::Result<i64> {
    connection.query_row("PRAGMA max_page_count", [], |row| row.get(0))
}

#[cfg(test)]
mod tests {
    use rusqlite::params;

    use super::*;
    use crate::audit::chain::{self, ChainVerdict, Formula, GENESIS};
    use crate::audit::key::ChainKey;
    use crate::audit::legacy;
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
            decision: crate::audit::Decision::Allow,
            reason: "your zones grant is read".into(),
            rule: "grants.zones".into(),
            summary: format!("{agent} was allowed to list zones."),
            lookup: String::new(),
            sandbox: false,
        }
    }

    /// A version-1 log as flaregate 0.1 wrote it: a call with its outcome
    /// and one without, chained with plain SHA-256.
    fn version_1_log() -> Connection {
        let connection = Connection::open_in_memory().unwrap();
        connection.execute_batch(MIGRATIONS[0][0]).unwrap();
        connection.pragma_update(None, "user_version", 1).unwrap();
        let insert = |seq: i64, prev: &str, r: &CallRecord| {
            let hash = legacy::decision_hash(prev, seq, r);
            connection
                .execute(
                    "INSERT INTO calls (ts, ts_unix_ms, agent, tool, method, path, target, args, decision, reason, rule, summary, seq, prev_hash, hash)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'allow', ?9, ?10, ?11, ?12, ?13, ?14)",
                    params![r.ts, r.ts_unix_ms, r.agent, r.tool, r.method, r.path, r.target, r.args, r.reason, r.rule, r.summary, seq, prev, hash],
                )
                .unwrap();
            hash
        };
        let first = insert(1, GENESIS, &record("auditor"));
        let outcome = Outcome {
            status: Some(200),
            duration_ms: Some(12),
            text: "Cloudflare answered 200 in 12 ms.".into(),
            ..Outcome::default()
        };
        let second = legacy::outcome_hash(&first, 2, 1, &outcome, "");
        connection
            .execute(
                "UPDATE calls SET status = 200, cf_codes = '', duration_ms = 12, outcome = ?1, outcome_seq = 2, outcome_prev_hash = ?2, outcome_hash = ?3 WHERE id = 1",
                params![outcome.text, first, second],
            )
            .unwrap();
        insert(3, &second, &record("site-deployer"));
        connection
    }

    #[test]
    fn a_version_1_log_keeps_its_rows_and_is_re_keyed_and_outcome_numbers_stay_unique() {
        let mut connection = version_1_log();
        migrate(&mut connection).unwrap();
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        assert!(!is_keyed(&connection).unwrap());

        let key = ChainKey::from_bytes([5; 32]);
        assert_eq!(legacy::rekey(&mut connection, &key), Ok(2));
        let ChainVerdict::Valid { rows, head } =
            chain::verify(&connection, Formula::Keyed(&key), &[]).unwrap()
        else {
            panic!("the re-keyed chain verifies");
        };
        assert_eq!((rows, head.events), (2, 3));
        assert!(
            matches!(
                chain::verify(&connection, Formula::Legacy, &[]).unwrap(),
                ChainVerdict::Broken { .. }
            ),
            "the public formula no longer verifies it"
        );
        assert!(
            connection
                .execute("UPDATE calls SET outcome_seq = 2 WHERE id = 2", [])
                .is_err(),
            "an outcome number is used once"
        );
    }

    #[test]
    fn a_broken_version_1_log_is_not_re_keyed() {
        let mut connection = version_1_log();
        connection
            .execute("UPDATE calls SET agent = 'mallory' WHERE id = 2", [])
            .unwrap();
        migrate(&mut connection).unwrap();
        let error = legacy::rekey(&mut connection, &ChainKey::from_bytes([5; 32])).unwrap_err();
        assert!(error.contains("broken"), "{error}");
        let agent: String = connection
            .query_row("SELECT agent FROM calls WHERE id = 2", [], |row| row.get(0))
            .unwrap();
        assert_eq!(agent, "mallory", "left as it is");
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
