//! The WAL's fsyncs, on a thread of their own: while the disk flushes, the
//! writer goes on committing (an outcome, the next decision), so a call
//! waits for one fsync but not for the commits queued behind it.
//!
//! A flush covers every commit made before it was asked for: the writer
//! hands over its waiters only after committing, and the fsync starts after
//! that. Rows SQLite moves into the database file at a checkpoint are
//! fsynced by SQLite itself.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use tokio::sync::oneshot;

use super::AuditError;
use super::AuditTimes;

/// Told once what was written is on disk (or that it could not be).
pub(super) type FlushReply = oneshot::Sender<Result<(), AuditError>>;

/// After a failed fsync, how long before trying again unasked.
const RETRY_AFTER: Duration = Duration::from_millis(10);

/// The WAL file, opened at the first flush and kept: SQLite keeps the same
/// file while a connection is open.
pub(super) struct Wal {
    path: PathBuf,
    file: Option<File>,
}

/// What the fsync thread makes durable: the WAL, or a stand-in in tests.
pub(super) trait Durable: Send + 'static {
    fn sync(&mut self) -> std::io::Result<()>;
}

impl Wal {
    pub(super) fn new(path: PathBuf) -> Self {
        Self { path, file: None }
    }
}

impl Durable for Wal {
    fn sync(&mut self) -> std::io::Result<()> {
        if self.file.is_none() {
            self.file = Some(File::open(&self.path)?);
        }
        let synced = self.file.as_ref().map_or(Ok(()), File::sync_data);
        if synced.is_err() {
            self.file = None; // reopened at the next attempt
        }
        synced
    }
}

/// The writer's end: hands over flushes. Dropping it lets the thread finish
/// the flushes already handed over, then stop.
pub(super) struct Syncer {
    requests: Option<mpsc::Sender<Vec<FlushReply>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Syncer {
    pub(super) fn start(target: impl Durable, times: Arc<AuditTimes>) -> std::io::Result<Self> {
        let (requests, receiver) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("audit-fsync".into())
            .spawn(move || run(target, receiver, &times))?;
        Ok(Self {
            requests: Some(requests),
            thread: Some(thread),
        })
    }

    /// Makes everything committed so far durable, then answers `waiting`.
    pub(super) fn flush(&self, waiting: Vec<FlushReply>) {
        let sent = match &self.requests {
            Some(requests) => requests.send(waiting).map_err(|mpsc::SendError(w)| w),
            None => Err(waiting),
        };
        if let Err(waiting) = sent {
            let error = AuditError::Unavailable("the audit log's fsync thread stopped".into());
            for reply in waiting {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has flushed what it has.
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(mut target: impl Durable, requests: mpsc::Receiver<Vec<FlushReply>>, times: &AuditTimes) {
    let mut failed = false;
    loop {
        // After a failure nothing written is known durable: try again
        // unasked, so rows written before an idle spell still reach the disk.
        let first = if failed {
            match requests.recv_timeout(RETRY_AFTER) {
                Ok(waiting) => waiting,
                Err(RecvTimeoutError::Timeout) => Vec::new(),
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match requests.recv() {
                Ok(waiting) => waiting,
                Err(_) => break,
            }
        };
        // One fsync for every flush asked for meanwhile.
        let mut waiting = first;
        waiting.extend(requests.try_iter().flatten());
        let started = std::time::Instant::now();
        let synced = target.sync();
        times.fsync.observe(started.elapsed());
        let synced = synced.map_err(|error| {
            if !failed {
                tracing::error!(%error, "audit log flush failed; calls are refused until it works again");
            }
            AuditError::Unavailable(format!("cannot flush the audit log to disk: {error}"))
        });
        if failed && synced.is_ok() {
            tracing::info!("audit log flushes work again");
        }
        failed = synced.is_err();
        for reply in waiting {
            let _ = reply.send(synced.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use super::*;

    /// Fails its first `failures` fsyncs, then works; counts every attempt.
    struct Flaky {
        attempts: Arc<AtomicUsize>,
        failures: usize,
    }

    impl Durable for Flaky {
        fn sync(&mut self) -> std::io::Result<()> {
            let attempt = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
            if attempt <= self.failures {
                Err(std::io::Error::other("the disk is gone"))
            } else {
                Ok(())
            }
        }
    }

    fn flush(syncer: &Syncer) -> Result<(), AuditError> {
        let (reply, answer) = oneshot::channel();
        syncer.flush(vec![reply]);
        answer.blocking_recv().expect("every flush is answered")
    }

    #[test]
    fn after_a_failed_fsync_it_retries_unasked_until_one_works() {
        let attempts = Arc::new(AtomicUsize::new(0));
        let syncer = Syncer::start(
            Flaky {
                attempts: attempts.clone(),
                failures: 3,
            },
            Arc::default(),
        )
        .expect("fsync thread");

        assert!(flush(&syncer).is_err(), "the first fsync fails");
        // Nobody asks again: rows written before the failure must still
        // reach the disk, so the thread keeps trying on its own.
        let started = Instant::now();
        while attempts.load(Ordering::SeqCst) < 4 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no retry after a failed fsync ({} attempts)",
                attempts.load(Ordering::SeqCst)
            );
            thread::sleep(Duration::from_millis(5));
        }
        // Once one worked it waits to be asked again.
        thread::sleep(RETRY_AFTER * 10);
        assert_eq!(attempts.load(Ordering::SeqCst), 4);
        assert!(flush(&syncer).is_ok());
        assert_eq!(attempts.load(Ordering::SeqCst), 5);
    }
}
