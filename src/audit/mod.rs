//! The audit log: every decision, allowed or denied, with its reason and
//! Cloudflare's answer, in SQLite, in one HMAC chain keyed with a key kept
//! outside the database, with head checkpoints beside it, so edits,
//! deletions and a cut-off end show. The only module that knows SQL.

mod append;
pub mod approvals;
mod archive;
mod chain;
mod checkpoint;
mod database;
mod export;
mod integrity;
mod key;
mod legacy;
mod opening;
mod postgres;
mod query;
mod record;
mod schema;
mod snapshot;
mod source;
mod sqlite_log;
pub mod summary;
mod sync;
mod writer;

use std::path::Path;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

pub use archive::archive;
pub use chain::{ChainVerdict, Head};
pub use database::Database;
pub use export::{Span, Written, export, verify_file};
pub use integrity::after_note as snapshot_after_note;
pub use key::{AuditFiles, ChainKey, POSTGRES_KEY_FILE};
pub use query::{Entry, Filter};
pub use record::{
    CallRecord, Decision, MAX_ARGS_BYTES, Outcome, approval_rule, stored_args, undo_note,
};
pub use snapshot::{Prior, Snapshot, Stored, note as snapshot_note};
pub use writer::RowRef;

use source::Source;
use writer::{Job, Write};

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
            path: key::absolute(path).display().to_string(),
            message: error.to_string(),
        }
    }
}

/// When a written row is safe from a power loss. Every written row
/// survives flaregate being killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// [`AuditLog::flush`] fsyncs: a decision is on disk before its call
    /// changes anything at Cloudflare and before the agent hears an answer;
    /// outcomes follow within milliseconds. One fsync covers every row
    /// written since the last.
    #[default]
    Full,
    /// Rows reach the disk at SQLite's checkpoints; a power loss can take
    /// the last ones. No fsync on the call path.
    Normal,
}

/// The audit database at `path`, created and brought to the current
/// schema if need be: for the approvals kept beside the calls.
pub fn open_database(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    schema::open(path, None)
}

/// A handle on the log's writer thread; cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditLog {
    jobs: mpsc::Sender<Job>,
    times: Arc<AuditTimes>,
    /// A SQLite log's file and size cap (for `/metrics`).
    file: Option<(std::path::PathBuf, Option<u64>)>,
}

/// How much a SQLite log holds against its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSize {
    /// The database file and its WAL, in bytes.
    pub bytes: u64,
    /// `audit_max_mb`, in bytes, if set.
    pub max_bytes: Option<u64>,
}

impl AuditLog {
    /// Opens (creating and migrating as needed) the log at `path`, its key
    /// and head checkpoint beside it, with every commit flushed to disk.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        Self::open_with(
            &AuditFiles::beside(&Database::parse(path)),
            Durability::Full,
            None,
        )
    }

    /// Opens the log with the given durability and, if set, a size cap:
    /// once the file reaches `max_bytes`, writes fail and calls are refused.
    pub fn open_with(
        files: &AuditFiles,
        durability: Durability,
        max_bytes: Option<u64>,
    ) -> Result<Self, AuditError> {
        let times = Arc::new(AuditTimes::default());
        Ok(Self {
            jobs: opening::start(files, durability, max_bytes, 4096, times.clone())?,
            times,
            file: files.db.file().map(|file| (file.to_path_buf(), max_bytes)),
        })
    }

    /// The size of a SQLite log (its file and WAL) and its cap; `None` for
    /// PostgreSQL, whose size its operator watches.
    pub fn size(&self) -> Option<LogSize> {
        let (file, max_bytes) = self.file.as_ref()?;
        let len = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
        let mut wal = file.as_os_str().to_owned();
        wal.push("-wal");
        Some(LogSize {
            bytes: len(file) + len(Path::new(&wal)),
            max_bytes: *max_bytes,
        })
    }

    /// How long commits and fsyncs have taken (for `/metrics`).
    pub fn times(&self) -> &AuditTimes {
        &self.times
    }

    /// Makes every row durable and writes the head checkpoint; returns the
    /// head. For a clean shutdown: the writer keeps working after it.
    pub async fn close(&self) -> Result<Head, AuditError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Close(reply)).await?;
        answer.await.map_err(|_| gone())?
    }

    /// Writes a decision before the upstream call. Returns once it is
    /// written, with a [`Flushed`] that resolves once it is on disk.
    pub async fn begin(&self, record: CallRecord) -> Result<(RowRef, Flushed), AuditError> {
        self.begin_with(record, None).await
    }

    /// As [`AuditLog::begin`], with the snapshot of what the write changes
    /// (stored in the same transaction as its row).
    pub async fn begin_with(
        &self,
        record: CallRecord,
        snapshot: Option<Snapshot>,
    ) -> Result<(RowRef, Flushed), AuditError> {
        let (reply, answer) = oneshot::channel();
        let (flushed, on_disk) = oneshot::channel();
        let write = Write::Begin {
            record,
            snapshot: snapshot.map(Box::new),
            reply,
        };
        self.send(Job::Write {
            write,
            flushed: Some(flushed),
        })
        .await?;
        let row = answer.await.map_err(|_| gone())??;
        Ok((row, Flushed(on_disk)))
    }

    /// Adds the outcome to a row; returns once written.
    pub async fn complete(&self, row: RowRef, outcome: Outcome) -> Result<(), AuditError> {
        let (reply, answer) = oneshot::channel();
        let write = Write::Complete {
            row,
            outcome,
            reply,
        };
        self.send(Job::Write {
            write,
            flushed: None,
        })
        .await?;
        answer.await.map_err(|_| gone())?
    }

    /// Writes a decision and its outcome at once (a denial); returns once
    /// it is on disk.
    pub async fn record(&self, record: CallRecord, outcome: Outcome) -> Result<RowRef, AuditError> {
        let (reply, answer) = oneshot::channel();
        let (flushed, on_disk) = oneshot::channel();
        let write = Write::Whole {
            record,
            outcome,
            reply,
        };
        self.send(Job::Write {
            write,
            flushed: Some(flushed),
        })
        .await?;
        let row = answer.await.map_err(|_| gone())??;
        Flushed(on_disk).wait().await?;
        Ok(row)
    }

    /// Whether the log takes writes now (for `/ready`): a flush with
    /// SQLite, a round trip to the database with PostgreSQL.
    pub async fn probe(&self) -> Result<(), AuditError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Probe(reply)).await?;
        Flushed(answer).wait().await
    }

    /// Returns once every row written so far is on disk (`Durability::Full`).
    pub async fn flush(&self) -> Result<(), AuditError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Flush(reply)).await?;
        Flushed(answer).wait().await
    }

    /// Records waiting for the writer now.
    pub fn queue_depth(&self) -> usize {
        self.jobs.max_capacity() - self.jobs.capacity()
    }

    async fn send(&self, job: Job) -> Result<(), AuditError> {
        self.jobs.send(job).await.map_err(|_| gone())
    }
}

/// Resolves once a written record is on disk.
#[must_use = "a record is only durable once this resolves"]
pub struct Flushed(oneshot::Receiver<Result<(), AuditError>>);

impl Flushed {
    pub async fn wait(self) -> Result<(), AuditError> {
        self.0.await.map_err(|_| gone())?
    }
}

fn gone() -> AuditError {
    AuditError::Unavailable("the audit writer stopped".into())
}

/// Checks the chain of the log with its key, against its head checkpoint
/// and, if given, a head the operator saved elsewhere (`expect`).
pub fn verify(files: &AuditFiles, expect: Option<&Head>) -> Result<ChainVerdict, AuditError> {
    with_source(&files.db, |source| verify_in(source, files, expect))
}

fn verify_in(
    source: &mut Source,
    files: &AuditFiles,
    expect: Option<&Head>,
) -> Result<ChainVerdict, AuditError> {
    if !source.is_keyed() {
        return Err(AuditError::Unavailable(format!(
            "{} was written before flaregate keyed its chain: start `flaregate serve` with it once to verify and key it",
            files.db
        )));
    }
    let key = key::ChainKey::load(&files.key)?;
    let saved = match checkpoint::read(&files.head, &key) {
        Ok(Some(head)) => head,
        Ok(None) => {
            return Ok(ChainVerdict::Broken {
                row: None,
                problem: format!(
                    "there is no head checkpoint at {}: flaregate writes one at first start, so rows may have been cut off the end",
                    key::absolute(&files.head).display()
                ),
            });
        }
        Err(problem) => return Ok(ChainVerdict::Broken { row: None, problem }),
    };
    let start = match archive::start(source, &key)? {
        Ok(start) => start,
        Err(problem) => return Ok(ChainVerdict::Broken { row: None, problem }),
    };
    // A host's checkpoint from before an archive's cut is simply older
    // than the log's start; a head the operator asks about must be checked.
    let mut marks = vec![chain::Mark {
        head: &saved,
        from: "the head checkpoint",
    }];
    if let Some(expect) = expect {
        if expect.events < start.events {
            return Ok(ChainVerdict::Broken {
                row: None,
                problem: format!(
                    "the head you gave (event {}) is in the archived part of the log, which now starts after event {}: check it in the archive file with `audit verify --file`",
                    expect.events, start.events
                ),
            });
        }
        marks.push(chain::Mark {
            head: expect,
            from: "the head you gave",
        });
    }
    let (rows, events) = source.events()?;
    let verdict = chain::verify_events(rows, &events, chain::Formula::Keyed(&key), &marks, &start);
    if let ChainVerdict::Valid { .. } = verdict
        && let Some((row, problem)) = source.first_problem()?
    {
        return Ok(ChainVerdict::Broken {
            row: Some(row),
            problem,
        });
    }
    Ok(verdict)
}

/// Row `id` of the log at `path` and its snapshot, if it has one.
pub fn read_row(db: &Database, id: i64) -> Result<Option<(Entry, Option<Stored>)>, AuditError> {
    with_source(db, |source| {
        let filter = Filter {
            id: Some(id),
            limit: 1,
            ..Filter::default()
        };
        let Some(entry) = source.query(&filter)?.into_iter().next() else {
            return Ok(None);
        };
        let stored = source.snapshot(id)?;
        Ok(Some((entry, stored)))
    })
}

/// The end of the chain as stored (`flaregate audit head`): save it
/// somewhere flaregate cannot write, and pass it to `verify` later.
pub fn head(files: &AuditFiles) -> Result<Head, AuditError> {
    with_source(&files.db, Source::head)
}

/// Reads rows of the log at `path` (a file, or a PostgreSQL URL).
pub fn read(db: &Database, filter: &Filter) -> Result<Vec<Entry>, AuditError> {
    with_source(db, |source| source.query(filter))
}

/// The allowed writes after row `after` on one of `paths` or below it
/// that Cloudflare carried out.
pub fn later_writes(db: &Database, after: i64, paths: &[String]) -> Result<Vec<Entry>, AuditError> {
    with_source(db, |source| source.later_writes(after, paths))
}

/// The rows that undid (or previewed undoing) row `row`.
pub fn undos_of(db: &Database, row: i64) -> Result<Vec<Entry>, AuditError> {
    with_source(db, |source| source.undos_of(row))
}

/// The agents that have rows in the log at `path`.
pub fn agents(db: &Database) -> Result<Vec<String>, AuditError> {
    with_source(db, Source::agents)
}

/// Runs `read` on the log at `path`; a PostgreSQL log is read off the
/// async runtime (its client blocks on a runtime of its own).
fn with_source<T: Send>(
    db: &Database,
    read: impl FnOnce(&mut Source) -> Result<T, AuditError> + Send,
) -> Result<T, AuditError> {
    let run = || read(&mut Source::open(db)?);
    if db.is_postgres() {
        postgres::off_runtime(run)
    } else {
        run()
    }
}

pub(crate) use postgres::numbered;
pub use postgres::{off_runtime, open_migrated as open_postgres};

pub use crate::clock::{now_rfc3339, now_unix_ms};

/// How long the audit log's commits and fsyncs take, kept by its writer
/// and fsync threads.
#[derive(Debug, Default)]
pub struct AuditTimes {
    pub commit: crate::histogram::Histogram,
    pub fsync: crate::histogram::Histogram,
}
