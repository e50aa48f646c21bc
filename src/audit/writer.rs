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
//!
//! A call that finds the writer idle commits its record itself, on its own
//! thread ([`Inline`]): at one call at a time, handing a record to the
//! writer thread and waking the caller again cost more than the commit.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::AuditTimes;
use super::append::StoreError;
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
    /// A caller committed on its own thread and left a flush or checkpoint
    /// due before the deadline the writer sleeps until.
    Wake,
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

    /// Checkpoints `head`, which a flush has made durable (shutdown).
    fn checkpoint_now(&mut self, head: &Head) -> Result<(), AuditError> {
        self.pending = None;
        self.checkpoint_due = None;
        checkpoint::write(&self.files.head, &self.key, head).map_err(|e| {
            AuditError::Unavailable(format!(
                "cannot write the audit head checkpoint {}: {e}",
                absolute(&self.files.head).display()
            ))
        })?;
        self.checkpointed = head.clone();
        Ok(())
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

/// The writer's state: the log, the chain's end, and the deadline the
/// writer thread sleeps until. The thread takes it for each batch; a call
/// that finds the writer idle takes it to commit on its own thread.
pub(super) struct State {
    log: Log,
    tip: Tip,
    /// The flush or checkpoint the writer thread waits for, if any.
    armed: Option<tokio::time::Instant>,
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic mid-commit rolled its transaction back and left the tip as
    // it was: the state is whole.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    /// The next flush or checkpoint, noted as the one the writer waits for.
    fn arm(&mut self) -> Option<tokio::time::Instant> {
        self.armed = self.due();
        self.armed
    }

    fn due(&self) -> Option<tokio::time::Instant> {
        [self.log.flush_due, self.log.checkpoint_due]
            .into_iter()
            .flatten()
            .min()
    }

    /// Flushes and checkpoints what is due by now.
    fn on_time(&mut self, flushes: &mut Vec<FlushReply>) {
        let now = tokio::time::Instant::now();
        if self.log.flush_due.is_some_and(|at| at <= now) {
            self.log.flush(flushes);
        }
        if self.log.checkpoint_due.is_some_and(|at| at <= now) {
            self.log.tick(&self.tip);
        }
    }
}

/// The writer's handles: its queue and, for SQLite, commits on the
/// caller's thread.
pub(super) struct Writer {
    pub(super) jobs: mpsc::Sender<Job>,
    pub(super) inline: Option<Inline>,
}

pub(super) fn spawn(log: Log, tip: Tip, capacity: usize) -> Result<Writer, AuditError> {
    let (sender, receiver) = mpsc::channel(capacity);
    let sqlite = matches!(log.store, Backend::Sqlite(_));
    let state = Arc::new(Mutex::new(State {
        log,
        tip,
        armed: None,
    }));
    let shared = state.clone();
    thread::Builder::new()
        .name("audit-writer".into())
        .spawn(move || run(shared, receiver))
        .map_err(|e| AuditError::Unavailable(format!("cannot start the audit writer: {e}")))?;
    let inline = (sqlite && inline_enabled()).then(|| Inline {
        state,
        wake: sender.clone(),
    });
    Ok(Writer {
        jobs: sender,
        inline,
    })
}

/// `FLAREGATE_INLINE_COMMITS=off` sends every record to the writer thread
/// (for measuring the difference).
fn inline_enabled() -> bool {
    let off =
        std::env::var("FLAREGATE_INLINE_COMMITS").is_ok_and(|v| v.eq_ignore_ascii_case("off"));
    if off {
        tracing::info!(
            "FLAREGATE_INLINE_COMMITS=off: every audit record goes to the writer thread"
        );
    }
    !off
}

/// Commits a record on the caller's thread when the writer is idle. SQLite
/// only: a PostgreSQL commit is a network round trip, not for a thread
/// that serves calls. The commit blocks the caller's thread for its
/// duration (tens of µs); under load the writer is busy and records queue
/// for it, to be committed in batches.
#[derive(Clone)]
pub(super) struct Inline {
    state: Shared,
    wake: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Inline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inline")
    }
}

impl Inline {
    /// Commits `job` now if it is a record, the writer thread is not at
    /// work and no other process holds SQLite's write lock; otherwise hands
    /// it back for the queue. Its replies are answered as the writer
    /// thread answers them, and a record asked to be flushed is handed to
    /// the fsync thread at once.
    // The job given back moves once, into the queue, as it would have.
    #[allow(clippy::result_large_err)]
    pub(super) fn try_write(&self, job: Job) -> Result<(), Job> {
        let Job::Write { write, flushed } = job else {
            return Err(job);
        };
        let Ok(mut guard) = self.state.try_lock() else {
            return Err(Job::Write { write, flushed });
        };
        let state = &mut *guard;
        let mut batch = vec![write];
        match write_if_free(&mut state.log, &mut state.tip, &mut batch) {
            None => {
                let write = batch.pop().expect("a batch left as it was");
                return Err(Job::Write { write, flushed });
            }
            Some(Ok(())) => {
                if let Some(flushed) = flushed {
                    state.log.flush(&mut vec![flushed]);
                }
            }
            Some(Err(error)) => {
                if let Some(flushed) = flushed {
                    let _ = flushed.send(Err(error));
                }
            }
        }
        let earlier = match (state.due(), state.armed) {
            (Some(due), Some(armed)) => due < armed,
            (due, _) => due.is_some(),
        };
        if earlier {
            // A full queue means the writer is about to look anyway.
            let _ = self.wake.try_send(Job::Wake);
        }
        Ok(())
    }
}

fn run(state: Shared, receiver: mpsc::Receiver<Job>) {
    // A runtime of this thread's own, for the flush timer.
    match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime.block_on(serve(state, receiver)),
        Err(error) => tracing::error!(%error, "cannot start the audit writer"),
    }
}

async fn serve(state: Shared, mut receiver: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut flushes = Vec::new();
    loop {
        let due = lock(&state).arm();
        let first = match due {
            Some(due) => match tokio::time::timeout_at(due, receiver.recv()).await {
                Ok(job) => job,
                Err(_elapsed) => {
                    lock(&state).on_time(&mut flushes);
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
                Job::Probe(reply) => match &mut lock(&state).log.store {
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
                Job::Wake => {}
            }
            if batch.len() < BATCH && closing.is_empty() {
                next = receiver.try_recv().ok();
            }
        }
        {
            let mut guard = lock(&state);
            let State { log, tip, .. } = &mut *guard;
            if !batch.is_empty() {
                match write(log, tip, &mut batch) {
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
        for reply in closing {
            let _ = reply.send(close(&state).await);
        }
    }
    let unchecked = {
        let state = lock(&state);
        state.tip.head != state.log.checkpointed
    };
    if unchecked && let Err(error) = close(&state).await {
        tracing::error!(%error, "the audit log could not be closed cleanly");
    }
}

/// Makes everything written so far durable, then checkpoints the head it
/// covers (a caller may commit meanwhile: its rows are after that head).
async fn close(state: &Mutex<State>) -> Result<Head, AuditError> {
    let (reply, flushed) = oneshot::channel();
    let head = {
        let mut state = lock(state);
        state.log.flush(&mut vec![reply]);
        state.tip.head.clone()
    };
    flushed
        .await
        .map_err(|_| AuditError::Unavailable("the audit fsync thread stopped".into()))??;
    lock(state).log.checkpoint_now(&head)?;
    Ok(head)
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
    settle(log, tip, batch, committed, started)
}

/// As [`write`], on a thread that must not wait for another process's
/// SQLite lock: `None`, the batch untouched, when one holds it.
fn write_if_free(
    log: &mut Log,
    tip: &mut Tip,
    batch: &mut Vec<Write>,
) -> Option<Result<(), AuditError>> {
    let started = std::time::Instant::now();
    let Backend::Sqlite(store) = &mut log.store else {
        return None;
    };
    let committed = store.commit_if_free(&log.key, tip, batch).transpose()?;
    Some(settle(log, tip, batch, committed, started))
}

/// After a commit: the new tip, and each caller told how it went.
fn settle(
    log: &mut Log,
    tip: &mut Tip,
    batch: &mut Vec<Write>,
    committed: Result<(Tip, Vec<RowRef>), StoreError>,
    started: std::time::Instant,
) -> Result<(), AuditError> {
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
        let state = Arc::new(Mutex::new(State {
            log,
            tip,
            armed: None,
        }));
        thread::spawn(move || run(state, receiver));
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
