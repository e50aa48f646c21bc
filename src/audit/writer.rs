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

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::AuditTimes;
use super::chain::Head;
use super::key::{AuditFiles, ChainKey, absolute};
use super::record::{CallRecord, Outcome};
use super::snapshot::Snapshot;
use super::sqlite_log::SqliteLog;
use super::sync::{FlushReply, Syncer};
use super::{AuditError, checkpoint};

/// A row's handle: the seq of its decision event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRef {
    pub id: i64,
    pub seq: i64,
}

// Jobs move once, into the channel; boxing the large variant would cost an
// allocation per record.
#[allow(clippy::large_enum_variant)]
pub(super) enum Job {
    /// A record to commit; `flushed`, if given, hears once it is on disk.
    Write {
        write: Write,
        flushed: Option<FlushReply>,
    },
    /// Make everything written so far durable.
    Flush(FlushReply),
    /// Whether the store takes writes now: a flush for SQLite, a round
    /// trip to the database for PostgreSQL (whose commits need no flush).
    Probe(FlushReply),
    /// Make everything durable and write the head checkpoint (shutdown).
    Close(oneshot::Sender<Result<Head, AuditError>>),
}

/// A record to commit.
pub(super) enum Write {
    Begin {
        record: CallRecord,
        /// What the write changes, kept for undo.
        snapshot: Option<Box<Snapshot>>,
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

/// The head checkpoint is brought up to date this often while rows are
/// written (and at shutdown).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);

/// The chain's end and the last row id, as the writer keeps them between
/// commits: ids are chosen here, so each row's hash covers its id.
#[derive(Clone)]
pub(super) struct Tip {
    pub(super) head: Head,
    pub(super) last_id: i64,
}

/// Where the log lives: one of two stores behind the one writer.
pub(super) enum Backend {
    Sqlite(SqliteLog),
    Postgres(super::postgres::Worker),
}

/// The database, and how its commits reach the disk.
pub(super) struct Log {
    store: Backend,
    times: Arc<AuditTimes>,
    key: ChainKey,
    files: AuditFiles,
    /// Flushes the WAL; `None` when commits are never flushed
    /// (`Durability::Normal`).
    syncer: Option<Syncer>,
    /// When the oldest unflushed write must be flushed, if there is one.
    flush_due: Option<tokio::time::Instant>,
    /// The head the checkpoint file holds, and the head to write at the
    /// next tick: one tick old, so already flushed when it is written.
    checkpointed: Head,
    pending: Option<Head>,
    checkpoint_due: Option<tokio::time::Instant>,
}

impl Log {
    /// Notes a commit: it is flushed on request, or at `FLUSH_AFTER`.
    fn written(&mut self) {
        if self.syncer.is_some() && self.flush_due.is_none() {
            self.flush_due = Some(tokio::time::Instant::now() + FLUSH_AFTER);
        }
    }

    /// Notes the head after a commit, for a checkpoint at the next tick.
    fn advanced(&mut self) {
        if self.checkpoint_due.is_none() {
            self.checkpoint_due = Some(tokio::time::Instant::now() + CHECKPOINT_EVERY);
        }
    }

    /// At a tick: writes the head noted at the tick before (flushed since),
    /// and notes the current one for the next.
    fn tick(&mut self, tip: &Tip) {
        self.checkpoint_due = None;
        if let Some(head) = self.pending.take() {
            self.write_checkpoint(&head);
        }
        if tip.head != self.checkpointed {
            self.pending = Some(tip.head.clone());
            self.checkpoint_due = Some(tokio::time::Instant::now() + CHECKPOINT_EVERY);
        }
    }

    fn write_checkpoint(&mut self, head: &Head) {
        match checkpoint::write(&self.files.head, &self.key, head) {
            Ok(()) => self.checkpointed = head.clone(),
            Err(error) => tracing::error!(
                %error, path = %absolute(&self.files.head).display(),
                "cannot write the audit head checkpoint"
            ),
        }
    }

    /// Makes everything written durable, then checkpoints the head.
    async fn close(&mut self, tip: &Tip) -> Result<Head, AuditError> {
        let (reply, flushed) = oneshot::channel();
        self.flush(&mut vec![reply]);
        flushed
            .await
            .map_err(|_| AuditError::Unavailable("the audit fsync thread stopped".into()))??;
        self.pending = None;
        self.checkpoint_due = None;
        checkpoint::write(&self.files.head, &self.key, &tip.head).map_err(|e| {
            AuditError::Unavailable(format!(
                "cannot write the audit head checkpoint {}: {e}",
                absolute(&self.files.head).display()
            ))
        })?;
        self.checkpointed = tip.head.clone();
        Ok(tip.head.clone())
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

impl Log {
    pub(super) fn new(
        store: Backend,
        (key, files): (ChainKey, &AuditFiles),
        syncer: Option<Syncer>,
        times: Arc<AuditTimes>,
        head: &Head,
    ) -> Self {
        Log {
            store,
            times,
            key,
            files: files.clone(),
            syncer,
            flush_due: None,
            checkpointed: head.clone(),
            pending: None,
            checkpoint_due: None,
        }
    }
}

pub(super) fn spawn(log: Log, tip: Tip, capacity: usize) -> Result<mpsc::Sender<Job>, AuditError> {
    let (sender, receiver) = mpsc::channel(capacity);
    thread::Builder::new()
        .name("audit-writer".into())
        .spawn(move || run(log, tip, receiver))
        .map_err(|e| AuditError::Unavailable(format!("cannot start the audit writer: {e}")))?;
    Ok(sender)
}

fn run(log: Log, tip: Tip, receiver: mpsc::Receiver<Job>) {
    // A runtime of this thread's own, for the flush timer.
    match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime.block_on(serve(log, tip, receiver)),
        Err(error) => tracing::error!(%error, "cannot start the audit writer"),
    }
}

async fn serve(mut log: Log, mut tip: Tip, mut receiver: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut flushes = Vec::new();
    loop {
        let due = [log.flush_due, log.checkpoint_due]
            .into_iter()
            .flatten()
            .min();
        let first = match due {
            Some(due) => match tokio::time::timeout_at(due, receiver.recv()).await {
                Ok(job) => job,
                Err(_elapsed) => {
                    let now = tokio::time::Instant::now();
                    if log.flush_due.is_some_and(|at| at <= now) {
                        log.flush(&mut flushes);
                    }
                    if log.checkpoint_due.is_some_and(|at| at <= now) {
                        log.tick(&tip);
                    }
                    continue;
                }
            },
            None => receiver.recv().await,
        };
        let Some(first) = first else { break };
        let mut next = Some(first);
        let mut flushes_of_batch = Vec::new();
        let mut closing = Vec::new();
        while let Some(job) = next.take() {
            match job {
                Job::Flush(reply) => flushes.push(reply),
                Job::Probe(reply) => match &mut log.store {
                    Backend::Sqlite(store) => match store.writable() {
                        Ok(()) => flushes.push(reply),
                        Err(error) => {
                            let _ = reply.send(Err(error));
                        }
                    },
                    Backend::Postgres(worker) => {
                        let _ = reply.send(worker.ping().map_err(|e| AuditError::Unavailable(e.0)));
                    }
                },
                Job::Close(reply) => closing.push(reply),
                Job::Write { write, flushed } => {
                    batch.push(write);
                    flushes_of_batch.extend(flushed);
                }
            }
            if batch.len() < BATCH && closing.is_empty() {
                next = receiver.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            match write(&mut log, &mut tip, &mut batch) {
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
        for reply in closing {
            let _ = reply.send(log.close(&tip).await);
        }
    }
    if tip.head != log.checkpointed
        && let Err(error) = log.close(&tip).await
    {
        tracing::error!(%error, "the audit log could not be closed cleanly");
    }
}

/// Commits a batch of records and tells each caller how it went.
fn write(log: &mut Log, tip: &mut Tip, batch: &mut Vec<Write>) -> Result<(), AuditError> {
    let started = std::time::Instant::now();
    let committed = match &mut log.store {
        Backend::Sqlite(store) => store.commit(&log.key, tip, batch),
        Backend::Postgres(worker) => {
            let (returned, committed) = worker.commit(&log.key, std::mem::take(batch));
            *batch = returned;
            committed
        }
    };
    log.times.commit.observe(started.elapsed());
    match committed {
        Ok((new_tip, results)) => {
            *tip = new_tip;
            log.written();
            log.advanced();
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

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::audit::schema;
    use crate::audit::sync::Wal;

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
            decision: crate::audit::Decision::Allow,
            reason: "test".into(),
            rule: "test".into(),
            summary: "test".into(),
            lookup: String::new(),
            sandbox: false,
        }
    }

    /// A writer whose WAL flushes go to `wal`.
    fn writer(dir: &Path, wal: PathBuf) -> mpsc::Sender<Job> {
        let connection = schema::open(&dir.join("audit.db"), None).expect("opens");
        let log = Log {
            store: Backend::Sqlite(SqliteLog::new(connection, None)),
            times: Arc::default(),
            key: ChainKey::from_bytes([3; 32]),
            files: AuditFiles::beside(&dir.join("audit.db").into()),
            syncer: Some(Syncer::start(Wal::new(wal), Arc::default()).expect("fsync thread")),
            flush_due: None,
            checkpointed: Head::genesis(),
            pending: None,
            checkpoint_due: None,
        };
        let tip = Tip {
            head: Head::genesis(),
            last_id: 0,
        };
        let (sender, receiver) = mpsc::channel(16);
        thread::spawn(move || run(log, tip, receiver));
        sender
    }

    async fn begin(
        jobs: &mpsc::Sender<Job>,
    ) -> (Result<RowRef, AuditError>, Result<(), AuditError>) {
        let (reply, answer) = oneshot::channel();
        let (flushed, on_disk) = oneshot::channel();
        let write = Write::Begin {
            record: record(),
            snapshot: None,
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
