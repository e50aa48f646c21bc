//! The audit log: every decision, allowed or denied, with its reason and
//! Cloudflare's answer, in SQLite, hash-chained so edits and deletions show.
//! The only module that knows SQL.

mod chain;
mod query;
mod record;
mod schema;
pub mod summary;
mod writer;

use std::path::Path;
use std::time::SystemTime;

use tokio::sync::{mpsc, oneshot};

pub use chain::Verdict;
pub use query::{Entry, Filter};
pub use record::{CallRecord, Outcome, redact};
pub use writer::RowRef;

use writer::Job;

/// Why the log could not take or give a record. Calls fail closed on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open the audit log {path}: {message}")]
    Open { path: String, message: String },
    #[error("the audit log is unavailable: {0}")]
    Unavailable(String),
}

impl AuditError {
    fn open(path: &Path, error: impl std::fmt::Display) -> Self {
        AuditError::Open {
            path: path.display().to_string(),
            message: error.to_string(),
        }
    }
}

/// When a committed row is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Every commit is fsynced: rows survive a power loss (SQLite
    /// `synchronous = FULL`). Costs a disk flush per commit.
    #[default]
    Full,
    /// Commits reach the OS at once and the disk at checkpoints: rows
    /// survive the process being killed, not a power loss (`NORMAL`).
    Normal,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}

/// A handle on the log's writer thread; cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditLog {
    jobs: mpsc::Sender<Job>,
}

impl AuditLog {
    /// Opens (creating and migrating as needed) the log at `path`, with
    /// every commit flushed to disk.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        Self::open_with(path, Durability::Full, None)
    }

    /// Opens the log with the given durability and, if set, a size cap:
    /// once the file reaches `max_bytes`, writes fail and calls are refused.
    pub fn open_with(
        path: &Path,
        durability: Durability,
        max_bytes: Option<u64>,
    ) -> Result<Self, AuditError> {
        Ok(Self {
            jobs: writer::start(path, durability, max_bytes, 4096)?,
        })
    }

    /// Writes a decision before the upstream call; returns once committed.
    pub async fn begin(&self, record: CallRecord) -> Result<RowRef, AuditError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Begin { record, reply }).await?;
        answer.await.map_err(|_| gone())?
    }

    /// Adds the outcome to a row; returns once committed.
    pub async fn complete(&self, row: RowRef, outcome: Outcome) -> Result<(), AuditError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Complete {
            row,
            outcome,
            reply,
        })
        .await?;
        answer.await.map_err(|_| gone())?
    }

    /// Writes a decision and its outcome at once (a denial); returns once committed.
    pub async fn record(&self, record: CallRecord, outcome: Outcome) -> Result<RowRef, AuditError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Whole {
            record,
            outcome,
            reply,
        })
        .await?;
        answer.await.map_err(|_| gone())?
    }

    async fn send(&self, job: Job) -> Result<(), AuditError> {
        self.jobs.send(job).await.map_err(|_| gone())
    }
}

fn gone() -> AuditError {
    AuditError::Unavailable("the audit writer stopped".into())
}

/// Checks the hash chain of the log at `path`.
pub fn verify(path: &Path) -> Result<Verdict, AuditError> {
    let connection = query::open_read_only(path)?;
    chain::verify(&connection).map_err(|e| AuditError::Unavailable(e.to_string()))
}

/// Reads rows of the log at `path`.
pub fn read(path: &Path, filter: &Filter) -> Result<Vec<Entry>, AuditError> {
    let connection = query::open_read_only(path)?;
    query::query(&connection, filter, now_unix_ms())
        .map_err(|e| AuditError::Unavailable(e.to_string()))
}

/// Milliseconds since the Unix epoch.
pub fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The time as stored: RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}
