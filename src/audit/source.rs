//! An open log to read — `flaregate audit`, `verify`, `head`, `show`, undo
//! — in either store: the same questions, each store's SQL.

use super::chain::{self, Event, Head};
use super::integrity;
use super::postgres::Reader;
use super::query::{self, Entry, Filter};
use super::snapshot::{self, Stored};
use super::{AuditError, key, schema};

pub(super) enum Source {
    Sqlite(rusqlite::Connection),
    Postgres(Box<Reader>),
}

fn failed(error: impl std::fmt::Display) -> AuditError {
    AuditError::Unavailable(error.to_string())
}

impl Source {
    /// Opens the log at `path` (a file, or a PostgreSQL URL) to read it,
    /// once it has the current schema.
    pub(super) fn open(db: &super::Database) -> Result<Self, AuditError> {
        let path = match db {
            super::Database::Postgres(url) => {
                return Ok(Source::Postgres(Box::new(Reader::open(url)?)));
            }
            super::Database::Sqlite(path) => path,
        };
        let connection = query::open_read_only(path)?;
        if !schema::is_current(&connection).map_err(failed)? {
            return Err(AuditError::Unavailable(format!(
                "{} was written by an older flaregate: start `flaregate serve` with it once to bring it up to date (its chain is verified and keyed then)",
                key::absolute(path).display()
            )));
        }
        Ok(Source::Sqlite(connection))
    }

    /// Whether its chain is keyed (a PostgreSQL log always is).
    pub(super) fn is_keyed(&self) -> bool {
        match self {
            Source::Sqlite(c) => schema::is_keyed(c).unwrap_or(false),
            Source::Postgres(_) => true,
        }
    }

    pub(super) fn query(&mut self, filter: &Filter) -> Result<Vec<Entry>, AuditError> {
        let now = super::now_unix_ms();
        match self {
            Source::Sqlite(c) => query::query(c, filter, now).map_err(failed),
            Source::Postgres(r) => r.query(filter, now).map_err(failed),
        }
    }

    /// Every event in chain order, and the number of rows.
    pub(super) fn events(&mut self) -> Result<(u64, Vec<Event>), AuditError> {
        match self {
            Source::Sqlite(c) => chain::read_events(c).map_err(failed),
            Source::Postgres(r) => r.events().map_err(failed),
        }
    }

    pub(super) fn head(&mut self) -> Result<Head, AuditError> {
        match self {
            Source::Sqlite(c) => chain::stored_head(c).map_err(failed),
            Source::Postgres(r) => r.head().map_err(failed),
        }
    }

    pub(super) fn snapshot(&mut self, id: i64) -> Result<Option<Stored>, AuditError> {
        match self {
            Source::Sqlite(c) => snapshot::read(c, id).map_err(failed),
            Source::Postgres(r) => r.snapshot(id).map_err(failed),
        }
    }

    /// The first row whose snapshot, or whose approval, does not hold
    /// against what the chain hashed (`integrity.rs`).
    pub(super) fn first_problem(&mut self) -> Result<Option<(i64, String)>, AuditError> {
        let kept = match self {
            Source::Sqlite(c) => kept_in(c).map_err(failed)?,
            Source::Postgres(r) => r.kept().map_err(failed)?,
        };
        if let Some(found) = kept
            .iter()
            .find_map(|row| integrity::problem(row).map(|problem| (row.id, problem)))
        {
            return Ok(Some(found));
        }
        let mismatched = match self {
            Source::Sqlite(c) => c
                .query_row(integrity::MISMATCHED, [], |row| row.get(0))
                .map_err(failed)?,
            Source::Postgres(r) => r.mismatched().map_err(failed)?,
        };
        if let Some(row) = mismatched {
            return Ok(Some(integrity::mismatched(row)));
        }
        let approved = match self {
            Source::Sqlite(c) => approved_in(c).map_err(failed)?,
            Source::Postgres(r) => r.approved().map_err(failed)?,
        };
        Ok(integrity::second_use(approved))
    }

    /// The archive mark as stored, if rows were ever archived.
    pub(super) fn archive_mark(&mut self) -> Result<Option<String>, AuditError> {
        match self {
            Source::Sqlite(c) => {
                use rusqlite::OptionalExtension;
                c.query_row(
                    "SELECT value FROM chain_meta WHERE name = 'archived'",
                    [],
                    |row| row.get(0),
                )
                .optional()
                .map_err(failed)
            }
            Source::Postgres(r) => r.archive_mark().map_err(failed),
        }
    }

    /// The snapshots of rows up to `row`.
    pub(super) fn snapshots_through(&mut self, row: i64) -> Result<Vec<(i64, Stored)>, AuditError> {
        match self {
            Source::Sqlite(c) => {
                let mut statement = c
                    .prepare(&snapshot::THROUGH.replace("$1", "?1"))
                    .map_err(failed)?;
                let rows = statement
                    .query_map([row], |r| {
                        Ok((
                            r.get(0)?,
                            snapshot::stored(r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?),
                        ))
                    })
                    .map_err(failed)?;
                rows.collect::<rusqlite::Result<_>>().map_err(failed)
            }
            Source::Postgres(r) => r.snapshots_through(row).map_err(failed),
        }
    }

    pub(super) fn later_writes(
        &mut self,
        after: i64,
        paths: &[String],
    ) -> Result<Vec<Entry>, AuditError> {
        match self {
            Source::Sqlite(c) => query::later_writes(c, after, paths).map_err(failed),
            Source::Postgres(r) => r.later_writes(after, paths).map_err(failed),
        }
    }

    pub(super) fn undos_of(&mut self, row: i64) -> Result<Vec<Entry>, AuditError> {
        match self {
            Source::Sqlite(c) => query::undos_of(c, row).map_err(failed),
            Source::Postgres(r) => r.undos_of(row).map_err(failed),
        }
    }

    pub(super) fn agents(&mut self) -> Result<Vec<String>, AuditError> {
        match self {
            Source::Sqlite(c) => query::agents(c).map_err(failed),
            Source::Postgres(r) => r.agents().map_err(failed),
        }
    }
}

fn kept_in(c: &rusqlite::Connection) -> rusqlite::Result<Vec<integrity::Kept>> {
    let mut statement = c.prepare(integrity::KEPT)?;
    let rows = statement.query_map([], |row| {
        let snapshot = row
            .get::<_, Option<i64>>(3)?
            .map(|_| -> rusqlite::Result<integrity::KeptSnapshot> {
                Ok(integrity::KeptSnapshot {
                    reader: row.get(4)?,
                    kind: row.get(5)?,
                    prior: row.get(6)?,
                    digest: row.get(7)?,
                    after: row.get(8)?,
                    created: row.get(9)?,
                })
            })
            .transpose()?;
        Ok(integrity::Kept {
            id: row.get(0)?,
            lookup: row.get(1)?,
            outcome: row.get(2)?,
            snapshot,
        })
    })?;
    rows.collect()
}

fn approved_in(c: &rusqlite::Connection) -> rusqlite::Result<Vec<(i64, String)>> {
    let mut statement = c.prepare(integrity::APPROVED)?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    rows.collect()
}
