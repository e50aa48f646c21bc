//! The writer thread: the only code that writes the log. Records arrive over
//! a bounded channel (a full channel makes callers wait: nothing is ever
//! dropped), are committed in batches, and each caller is told once its
//! record is written (it then survives the process being killed).
//!
//! Commits are not flushed one by one: a `Flush` job makes everything
//! written so far durable with one fsync of the WAL file (on the fsync
//! thread, `sync.rs`), however many commits that covers, and the writer
//! flushes on its own at most `FLUSH_AFTER` after a write nobody asked to
//! flush.

use std::path::Path;
use std::thread;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use super::AuditError;
use super::chain::{GENESIS, decision_hash, outcome_hash};
use super::record::{CallRecord, Outcome};
use super::schema;
use super::sync::{FlushReply, Syncer, Wal};

/// A row's handle: the seq of its decision event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRef {
    pub id: i64,
    pub seq: i64,
}

// Jobs move once, into the channel; boxing the large variant would cost an
// allocation per record.
#[allow(clippy::large_enum_variant)]
pub enum Job {
    /// A record to commit; `flushed`, if given, hears once it is on disk.
    Write {
        write: Write,
        flushed: Option<FlushReply>,
    },
    /// Make everything written so far durable.
    Flush(FlushReply),
}

/// A record to commit.
pub enum Write {
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

/// Writes nobody asked to flush reach the disk this long after, at most.
const FLUSH_AFTER: Duration = Duration::from_millis(10);

/// Jobs committed in one transaction, at most.
const BATCH: usize = 512;

/// The chain's head, as the writer keeps it between commits.
struct Head {
    seq: i64,
    hash: String,
}

/// The database, and how its commits reach the disk.
struct Log {
    connection: Connection,
    /// Flushes the WAL; `None` when commits are never flushed
    /// (`Durability::Normal`).
    syncer: Option<Syncer>,
    /// When the oldest unflushed write must be flushed, if there is one.
    flush_due: Option<tokio::time::Instant>,
}

impl Log {
    /// Notes a commit: it is flushed on request, or at `FLUSH_AFTER`.
    fn written(&mut self) {
        if self.syncer.is_some() && self.flush_due.is_none() {
            self.flush_due = Some(tokio::time::Instant::now() + FLUSH_AFTER);
        }
    }

    /// Has every commit so far made durable, and `waiting` told once it is.
    /// The fsync runs on the syncer's thread; commits go on meanwhile.
    fn flush(&mut self, waiting: &mut Vec<FlushReply>) {
        self.flush_due = None;
        match &self.syncer {
            Some(syncer) => syncer.flush(std::mem::take(waiting)),
            None => waiting.drain(..).for_each(|reply| {
                let _ = reply.send(Ok(()));
            }),
        }
    }
}

/// Opens the database and starts the writer thread.
pub fn start(
    path: &Path,
    durability: super::Durability,
    max_bytes: Option<u64>,
    capacity: usize,
) -> Result<mpsc::Sender<Job>, AuditError> {
    let connection = schema::open(path, max_bytes).map_err(|e| AuditError::open(path, e))?;
    let head = read_head(&connection).map_err(|e| AuditError::open(path, e))?;
    let syncer = match durability {
        super::Durability::Full => {
            let mut wal = path.as_os_str().to_owned();
            wal.push("-wal");
            Some(Syncer::start(Wal::new(wal.into())).map_err(|e| {
                AuditError::Unavailable(format!("cannot start the audit fsync thread: {e}"))
            })?)
        }
        super::Durability::Normal => None,
    };
    let log = Log {
        connection,
        syncer,
        flush_due: None,
    };
    let (sender, receiver) = mpsc::channel(capacity);
    thread::Builder::new()
        .name("audit-writer".into())
        .spawn(move || run(log, head, receiver))
        .map_err(|e| AuditError::Unavailable(format!("cannot start the audit writer: {e}")))?;
    Ok(sender)
}

fn read_head(connection: &Connection) -> rusqlite::Result<Head> {
    let last = connection
        .query_row(
            "SELECT seq, hash FROM calls WHERE seq = (SELECT MAX(seq) FROM calls)
             UNION ALL
             SELECT outcome_seq, outcome_hash FROM calls WHERE outcome_seq = (SELECT MAX(outcome_seq) FROM calls WHERE outcome_seq IS NOT NULL)
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

fn run(log: Log, head: Head, receiver: mpsc::Receiver<Job>) {
    // A runtime of this thread's own, for the flush timer.
    match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime.block_on(serve(log, head, receiver)),
        Err(error) => tracing::error!(%error, "cannot start the audit writer"),
    }
}

async fn serve(mut log: Log, mut head: Head, mut receiver: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut flushes = Vec::new();
    loop {
        let first = match log.flush_due {
            Some(due) => match tokio::time::timeout_at(due, receiver.recv()).await {
                Ok(job) => job,
                Err(_elapsed) => {
                    log.flush(&mut flushes);
                    continue;
                }
            },
            None => receiver.recv().await,
        };
        let Some(first) = first else { break };
        let mut next = Some(first);
        let mut flushes_of_batch = Vec::new();
        while let Some(job) = next.take() {
            match job {
                Job::Flush(reply) => flushes.push(reply),
                Job::Write { write, flushed } => {
                    batch.push(write);
                    flushes_of_batch.extend(flushed);
                }
            }
            if batch.len() < BATCH {
                next = receiver.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            match write(&mut log, &mut head, &mut batch) {
                Ok(()) => flushes.append(&mut flushes_of_batch),
                Err(error) => {
                    for reply in flushes_of_batch {
                        let _ = reply.send(Err(error.clone()));
                    }
                }
            }
        }
        if !flushes.is_empty()
            || log
                .flush_due
                .is_some_and(|due| due <= tokio::time::Instant::now())
        {
            log.flush(&mut flushes);
        }
    }
    log.flush(&mut flushes);
}

/// Commits a batch of records and tells each caller how it went.
fn write(log: &mut Log, head: &mut Head, batch: &mut Vec<Write>) -> Result<(), AuditError> {
    match commit(&mut log.connection, head, batch) {
        Ok((new_head, results)) => {
            *head = new_head;
            log.written();
            for (job, result) in batch.drain(..).zip(results) {
                answer(job, Ok(result));
            }
            Ok(())
        }
        Err(error) => {
            tracing::error!(%error, "audit log write failed; the calls waiting on it are refused");
            let error = AuditError::Unavailable(error.to_string());
            for job in batch.drain(..) {
                answer(job, Err(error.clone()));
            }
            Err(error)
        }
    }
}

fn answer(write: Write, result: Result<RowRef, AuditError>) {
    // A caller that went away (client disconnected) needs no answer.
    match write {
        Write::Begin { reply, .. } | Write::Whole { reply, .. } => {
            let _ = reply.send(result);
        }
        Write::Complete { reply, .. } => {
            let _ = reply.send(result.map(|_| ()));
        }
    }
}

/// Writes a batch in one transaction; the new head and each job's row.
fn commit(
    connection: &mut Connection,
    head: &Head,
    batch: &[Write],
) -> rusqlite::Result<(Head, Vec<RowRef>)> {
    let tx = connection.transaction()?;
    let mut seq = head.seq;
    let mut prev = head.hash.clone();
    let mut rows = Vec::with_capacity(batch.len());
    for job in batch {
        let row = match job {
            Write::Begin { record, .. } => insert(&tx, &mut seq, &mut prev, record)?,
            Write::Complete { row, outcome, .. } => {
                complete(&tx, &mut seq, &mut prev, *row, outcome)?;
                *row
            }
            Write::Whole {
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

/// Writes a decision row as the next event of the chain.
pub(super) fn insert(
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

/// Fills in a decision row's outcome as the next event of the chain.
pub(super) fn complete(
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn record() -> CallRecord {
        CallRecord {
            ts: "2026-11-28T00:00:00Z".into(),
            ts_unix_ms: 0,
            agent: "a".into(),
            tool: "get_zone".into(),
            method: "GET".into(),
            path: "/zones/x".into(),
            target: String::new(),
            args: "{}".into(),
            allowed: true,
            reason: "test".into(),
            rule: "test".into(),
            summary: "test".into(),
        }
    }

    /// A writer whose WAL flushes go to `wal`.
    fn writer(dir: &Path, wal: PathBuf) -> mpsc::Sender<Job> {
        let connection = schema::open(&dir.join("audit.db"), None).expect("opens");
        let head = read_head(&connection).expect("head");
        let log = Log {
            connection,
            syncer: Some(Syncer::start(Wal::new(wal)).expect("fsync thread")),
            flush_due: None,
        };
        let (sender, receiver) = mpsc::channel(16);
        thread::spawn(move || run(log, head, receiver));
        sender
    }

    async fn begin(
        jobs: &mpsc::Sender<Job>,
    ) -> (Result<RowRef, AuditError>, Result<(), AuditError>) {
        let (reply, answer) = oneshot::channel();
        let (flushed, on_disk) = oneshot::channel();
        let write = Write::Begin {
            record: record(),
            reply,
        };
        let job = Job::Write {
            write,
            flushed: Some(flushed),
        };
        assert!(jobs.send(job).await.is_ok());
        (
            answer.await.expect("answered"),
            on_disk.await.expect("flush answered"),
        )
    }

    #[tokio::test]
    async fn a_flush_that_fails_is_reported_to_every_waiter_and_retried() {
        let dir = tempfile::tempdir().expect("tempdir");
        let jobs = writer(dir.path(), dir.path().join("missing").join("audit.db-wal"));
        let (row, flushed) = begin(&jobs).await;
        assert!(row.is_ok(), "the write itself succeeds");
        let error = flushed.expect_err("the flush cannot succeed");
        assert!(
            error.to_string().contains("cannot flush the audit log"),
            "{error}"
        );
        let (_, again) = begin(&jobs).await;
        assert!(again.is_err(), "still not durable: still refused");
    }

    #[tokio::test]
    async fn a_flush_that_works_reports_success() {
        let dir = tempfile::tempdir().expect("tempdir");
        let jobs = writer(dir.path(), dir.path().join("audit.db-wal"));
        let (row, flushed) = begin(&jobs).await;
        assert!(row.is_ok() && flushed.is_ok(), "{flushed:?}");
    }
}
