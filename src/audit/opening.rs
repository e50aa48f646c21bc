//! Opening the log for writing: the database, its key (made for a new
//! log; a log written before keys is verified and re-keyed), and its head
//! against the last checkpoint; then the writer thread is started.

use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::mpsc;

use super::AuditTimes;
use super::chain::Head;
use super::key::{AuditFiles, ChainKey, absolute};
use super::sqlite_log::{SqliteLog, stored_tip};
use super::sync::{Syncer, Wal};
use super::writer::{Backend, Job, Log, spawn};
use super::{AuditError, checkpoint, legacy, schema};

/// Opens the database and starts the writer thread: loads (or, for a new
/// log, creates) the audit key, re-keys a log written before keys, refuses
/// a log shorter than its last head checkpoint, and checkpoints the head.
pub(super) fn start(
    files: &AuditFiles,
    durability: super::Durability,
    max_bytes: Option<u64>,
    capacity: usize,
    times: Arc<AuditTimes>,
) -> Result<mpsc::Sender<Job>, AuditError> {
    let file = match &files.db {
        super::Database::Sqlite(file) => file,
        super::Database::Postgres(url) => {
            warn_of_file_settings(durability, max_bytes);
            return start_postgres(files, url, capacity, times);
        }
    };
    let open_error = |e: rusqlite::Error| AuditError::open(file, e);
    let mut connection = schema::open(file, max_bytes).map_err(open_error)?;
    let key = key_for(&mut connection, files, file)?;
    let recorded = schema::claim_key(&connection, &key.fingerprint()).map_err(open_error)?;
    same_key(files, &key, &recorded)?;
    let tip = stored_tip(&connection).map_err(open_error)?;
    check_against_checkpoint(files, &key, &tip.head)?;
    let max_pages = match max_bytes {
        Some(_) => Some(schema::max_pages(&connection).map_err(open_error)?),
        None => None,
    };
    let syncer = match durability {
        super::Durability::Full => {
            let mut wal = file.as_os_str().to_owned();
            wal.push("-wal");
            Some(
                Syncer::start(Wal::new(wal.into()), times.clone()).map_err(|e| {
                    AuditError::Unavailable(format!("cannot start the audit fsync thread: {e}"))
                })?,
            )
        }
        super::Durability::Normal => None,
    };
    let log = Log::new(
        Backend::Sqlite(SqliteLog::new(connection, max_pages)),
        (key, files),
        syncer,
        times,
        &tip.head,
    );
    spawn(log, tip, capacity)
}

/// `audit_max_mb` and `audit_sync` are about a file and its fsyncs:
/// PostgreSQL has neither.
fn warn_of_file_settings(durability: super::Durability, max_bytes: Option<u64>) {
    if max_bytes.is_some() {
        tracing::warn!(
            "audit_max_mb is for a SQLite log and is not applied to PostgreSQL: size the database there"
        );
    }
    if durability == super::Durability::Normal {
        tracing::warn!(
            "audit_sync = \"normal\" has no effect on PostgreSQL: each commit is durable when it returns"
        );
    }
}

/// As [`start`], for a PostgreSQL log. A commit is durable when it
/// returns, so nothing is flushed; the chain's end is read from (and
/// locked in) the database at each batch.
fn start_postgres(
    files: &AuditFiles,
    url: &str,
    capacity: usize,
    times: Arc<AuditTimes>,
) -> Result<mpsc::Sender<Job>, AuditError> {
    let (worker, tip) = super::postgres::Worker::start(url)?;
    let key = if files.key.exists() {
        ChainKey::load(&files.key)?
    } else if tip.head.events == 0 {
        let key = ChainKey::create(&files.key)?;
        tracing::info!(path = %absolute(&files.key).display(), "created the audit key; every instance writing this log needs a copy");
        key
    } else {
        return Err(AuditError::Unavailable(format!(
            "the audit key {} is missing: the log in {} was chained with it; copy it from an instance that has it",
            absolute(&files.key).display(),
            super::postgres::shown(url)
        )));
    };
    let recorded = worker.claim_key(&key.fingerprint()).map_err(|e| {
        AuditError::Unavailable(format!(
            "the audit database {}: {e}",
            super::postgres::shown(url)
        ))
    })?;
    same_key(files, &key, &recorded)?;
    check_against_checkpoint(files, &key, &tip.head)?;
    let log = Log::new(
        Backend::Postgres(worker),
        (key, files),
        None,
        times,
        &tip.head,
    );
    spawn(log, tip, capacity)
}

/// Refuses a key other than the one the log was started with: rows
/// chained with two keys would not verify with either.
fn same_key(files: &AuditFiles, key: &ChainKey, recorded: &str) -> Result<(), AuditError> {
    let ours = key.fingerprint();
    if ours == recorded {
        return Ok(());
    }
    Err(AuditError::Unavailable(format!(
        "the audit key {} (fingerprint {ours}) is not the key the log {} was started with (fingerprint {recorded}): \
         copy that key file here from an instance that has it. Make the key once with `flaregate audit init-key` \
         and copy it to every instance before the first start",
        absolute(&files.key).display(),
        files.db
    )))
}

/// Refuses a log shorter than this host's head checkpoint (rows cut off
/// its end), then checkpoints its head.
fn check_against_checkpoint(
    files: &AuditFiles,
    key: &ChainKey,
    head: &Head,
) -> Result<(), AuditError> {
    match checkpoint::read(&files.head, key).map_err(AuditError::Unavailable)? {
        Some(saved) if saved.events > head.events => {
            return Err(AuditError::Unavailable(format!(
                "the audit log {} ends at event {} but its head checkpoint has event {}: rows were removed. \
                 Run `flaregate audit verify`; keep the files as evidence and start a new log under another name",
                files.db, head.events, saved.events
            )));
        }
        _ => {}
    }
    checkpoint::write(&files.head, key, head).map_err(|e| {
        AuditError::Unavailable(format!(
            "cannot write the audit head checkpoint {}: {e}",
            absolute(&files.head).display()
        ))
    })
}

/// The chain key of the log: read from its file; for a log with no key
/// yet (new, or written before keys) a new one is made, and older rows
/// are verified and re-keyed with it.
fn key_for(
    connection: &mut Connection,
    files: &AuditFiles,
    file: &std::path::Path,
) -> Result<ChainKey, AuditError> {
    let keyed = schema::is_keyed(connection).map_err(|e| AuditError::open(file, e))?;
    if keyed || files.key.exists() {
        if !files.key.exists() {
            return Err(AuditError::Unavailable(format!(
                "the audit key {} is missing: the log {} was chained with it and cannot be extended or verified without it; restore the key file",
                absolute(&files.key).display(),
                absolute(file).display()
            )));
        }
        let key = ChainKey::load(&files.key)?;
        if !keyed {
            rekey(connection, files, &key)?;
        }
        return Ok(key);
    }
    let key = ChainKey::create(&files.key)?;
    tracing::info!(path = %absolute(&files.key).display(), "created the audit key; keep it safe and apart from the log");
    rekey(connection, files, &key)?;
    Ok(key)
}

fn rekey(
    connection: &mut Connection,
    files: &AuditFiles,
    key: &ChainKey,
) -> Result<(), AuditError> {
    let rows = legacy::rekey(connection, key).map_err(|problem| {
        AuditError::Unavailable(format!("cannot key the audit log {}: {problem}", files.db))
    })?;
    schema::mark_keyed(connection).map_err(|e| {
        AuditError::Unavailable(format!("cannot key the audit log {}: {e}", files.db))
    })?;
    if rows > 0 {
        tracing::info!(
            rows,
            "verified the audit log written before keys and chained it with the key"
        );
    }
    Ok(())
}
