//! The writer thread: the only code that writes the log. Records arrive over
//! a bounded channel (a full channel makes callers wait: nothing is ever
//! dropped), are committed in batches, and each caller is told once its
//! record is on disk.

use std::path::Path;
use std::thread;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use super::AuditError;
use super::chain::{GENESIS, decision_hash, outcome_hash};
use super::record::{CallRecord, Outcome};
use super::schema;

/// A row's handle: the seq of its decision event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRef {
    pub id: i64,
    pub seq: i64,
}

pub enum Job {
    Begin {
        record: CallRecord,
        reply: oneshot::Sender<Result<RowRef, AuditError>>,
    },
    Complete {
        row: RowRef,
        outcome: Outcome,
        reply: oneshot::Sender<Result<(), AuditError>>,
    },
    /// A decision and its outcome at once (denials).
    Whole {
        record: CallRecord,
        outcome: Outcome,
        reply: oneshot::Sender<Result<RowRef, AuditError>>,
    },
}

/// Jobs committed in one transaction, at most.
const BATCH: usize = 512;

/// The chain's head, as the writer keeps it between commits.
struct Head {
    seq: i64,
    hash: String,
}

/// Opens the database and starts the writer thread.
pub fn start(
    path: &Path,
    durability: super::Durability,
    max_bytes: Option<u64>,
    capacity: usize,
) -> Result<mpsc::Sender<Job>, AuditError> {
    let connection =
        schema::open(path, durability, max_bytes).map_err(|e| AuditError::open(path, e))?;
    let head = read_head(&connection).map_err(|e| AuditError::open(path, e))?;
    let (sender, receiver) = mpsc::channel(capacity);
    thread::Builder::new()
        .name("audit-writer".into())
        .spawn(move || run(connection, head, receiver))
        .map_err(|e| AuditError::Unavailable(format!("cannot start the audit writer: {e}")))?;
    Ok(sender)
}

fn read_head(connection: &Connection) -> rusqlite::Result<Head> {
    let last = connection
        .query_row(
            "SELECT seq, hash FROM calls WHERE seq = (SELECT MAX(seq) FROM calls)
             UNION ALL
             SELECT outcome_seq, outcome_hash FROM calls WHERE outcome_seq = (SELECT MAX(outcome_seq) FROM calls)
             ORDER BY 1 DESC LIMIT 1",
            [],
            |row| Ok(Head { seq: row.get(0)?, hash: row.get(1)? }),
        )
        .optional()?;
    Ok(last.unwrap_or(Head {
        seq: 0,
        hash: GENESIS.to_string(),
    }))
}

fn run(mut connection: Connection, mut head: Head, mut receiver: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = receiver.blocking_recv() {
        batch.push(first);
        while batch.len() < BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        match commit(&mut connection, &head, &batch) {
            Ok((new_head, results)) => {
                head = new_head;
                for (job, result) in batch.drain(..).zip(results) {
                    answer(job, Ok(result));
                }
            }
            Err(error) => {
                tracing::error!(%error, "audit log write failed; the calls waiting on it are refused");
                let message = error.to_string();
                for job in batch.drain(..) {
                    answer(job, Err(AuditError::Unavailable(message.clone())));
                }
            }
        }
    }
}

fn answer(job: Job, result: Result<RowRef, AuditError>) {
    // A caller that went away (client disconnected) needs no answer.
    match job {
        Job::Begin { reply, .. } | Job::Whole { reply, .. } => {
            let _ = reply.send(result);
        }
        Job::Complete { reply, .. } => {
            let _ = reply.send(result.map(|_| ()));
        }
    }
}

/// Writes a batch in one transaction; the new head and each job's row.
fn commit(
    connection: &mut Connection,
    head: &Head,
    batch: &[Job],
) -> rusqlite::Result<(Head, Vec<RowRef>)> {
    let tx = connection.transaction()?;
    let mut seq = head.seq;
    let mut prev = head.hash.clone();
    let mut rows = Vec::with_capacity(batch.len());
    for job in batch {
        let row = match job {
            Job::Begin { record, .. } => insert(&tx, &mut seq, &mut prev, record)?,
            Job::Complete { row, outcome, .. } => {
                complete(&tx, &mut seq, &mut prev, *row, outcome)?;
                *row
            }
            Job::Whole {
                record, outcome, ..
            } => {
                let row = insert(&tx, &mut seq, &mut prev, record)?;
                complete(&tx, &mut seq, &mut prev, row, outcome)?;
                row
            }
        };
        rows.push(row);
    }
    tx.commit()?;
    Ok((Head { seq, hash: prev }, rows))
}

fn insert(
    tx: &rusqlite::Transaction<'_>,
    seq: &mut i64,
    prev: &mut String,
    r: &CallRecord,
) -> rusqlite::Result<RowRef> {
    *seq += 1;
    let hash = decision_hash(prev, *seq, r);
    tx.prepare_cached(
        "INSERT INTO calls (ts, ts_unix_ms, agent, tool, method, path, target, args, decision, reason, rule, summary, seq, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![
        r.ts, r.ts_unix_ms, r.agent, r.tool, r.method, r.path, r.target, r.args,
        if r.allowed { "allow" } else { "deny" }, r.reason, r.rule, r.summary, *seq, prev.as_str(), hash
    ])?;
    *prev = hash;
    Ok(RowRef {
        id: tx.last_insert_rowid(),
        seq: *seq,
    })
}

fn complete(
    tx: &rusqlite::Transaction<'_>,
    seq: &mut i64,
    prev: &mut String,
    row: RowRef,
    o: &Outcome,
) -> rusqlite::Result<()> {
    *seq += 1;
    let codes = o
        .cf_codes
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let hash = outcome_hash(prev, *seq, row.seq, o, &codes);
    let changed = tx
        .prepare_cached(
            "UPDATE calls SET status = ?1, cf_codes = ?2, error = ?3, duration_ms = ?4, outcome = ?5,
                              outcome_seq = ?6, outcome_prev_hash = ?7, outcome_hash = ?8
             WHERE id = ?9 AND outcome_seq IS NULL",
        )?
        .execute(params![o.status, codes, o.error, o.duration_ms.map(|d| d as i64), o.text, *seq, prev.as_str(), hash, row.id])?;
    if changed != 1 {
        return Err(rusqlite::Error::QueryReturnedNoRows);
    }
    *prev = hash;
    Ok(())
}
