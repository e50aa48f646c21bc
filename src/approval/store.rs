//! The approvals table in either audit store: the same statements (`?`
//! placeholders, each used once, numbered for PostgreSQL), run on the
//! SQLite file or, off the async runtime, on the PostgreSQL database.

use crate::audit::Database;

use super::{Approval, Status};

/// A value bound to a statement.
pub(super) enum Param<'a> {
    Text(&'a str),
    Int(i64),
    MaybeInt(Option<i64>),
}

/// Where the approvals are.
#[derive(Debug, Clone)]
pub(super) struct Table {
    db: Database,
}

/// An open connection to one of the two stores.
pub(super) enum Db {
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::Client>),
}

impl Table {
    pub(super) fn new(db: &Database) -> Self {
        Self { db: db.clone() }
    }

    /// Runs `work` on an open connection, brought to the current schema
    /// (the command line may run before a new server opened the store).
    pub(super) fn with<T: Send>(
        &self,
        work: impl FnOnce(&mut Db) -> Result<T, String> + Send,
    ) -> Result<T, super::StoreFailed> {
        let done = match &self.db {
            Database::Postgres(url) => crate::audit::off_runtime(move || {
                let client = crate::audit::open_postgres(url)?;
                work(&mut Db::Postgres(Box::new(client)))
            }),
            Database::Sqlite(file) => crate::audit::open_database(file)
                .map_err(|e| e.to_string())
                .and_then(|connection| work(&mut Db::Sqlite(connection))),
        };
        done.map_err(super::StoreFailed)
    }
}

impl Db {
    /// Runs a statement; the rows it changed.
    pub(super) fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, String> {
        match self {
            Db::Sqlite(c) => c
                .execute(sql, rusqlite::params_from_iter(params.iter().map(sqlite)))
                .map(|n| n as u64)
                .map_err(|e| e.to_string()),
            Db::Postgres(c) => c
                .execute(&crate::audit::numbered(sql), &pg(params))
                .map_err(|e| e.to_string()),
        }
    }

    /// The approvals a query selects (`SELECT *`).
    pub(super) fn approvals(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<Approval>, String> {
        match self {
            Db::Sqlite(c) => {
                let mut statement = c.prepare(sql).map_err(|e| e.to_string())?;
                let rows = statement
                    .query_map(
                        rusqlite::params_from_iter(params.iter().map(sqlite)),
                        |row| {
                            Ok(Approval {
                                id: row.get("id")?,
                                agent: row.get("agent")?,
                                tool: row.get("tool")?,
                                digest: row.get("digest")?,
                                summary: row.get("summary")?,
                                preview: row.get("preview")?,
                                requested_ms: row.get("requested_ms")?,
                                expires_ms: row.get("expires_ms")?,
                                status: Status::parse(&row.get::<_, String>("status")?),
                                decided_by: row.get("decided_by")?,
                                decided_ms: row.get("decided_ms")?,
                                used: row.get::<_, Option<i64>>("used_ms")?.is_some(),
                                recorded: row.get::<_, i64>("recorded")? != 0,
                            })
                        },
                    )
                    .map_err(|e| e.to_string())?;
                rows.collect::<Result<_, _>>().map_err(|e| e.to_string())
            }
            Db::Postgres(c) => Ok(c
                .query(&crate::audit::numbered(sql), &pg(params))
                .map_err(|e| e.to_string())?
                .iter()
                .map(|row| Approval {
                    id: row.get("id"),
                    agent: row.get("agent"),
                    tool: row.get("tool"),
                    digest: row.get("digest"),
                    summary: row.get("summary"),
                    preview: row.get("preview"),
                    requested_ms: row.get("requested_ms"),
                    expires_ms: row.get("expires_ms"),
                    status: Status::parse(row.get("status")),
                    decided_by: row.get("decided_by"),
                    decided_ms: row.get("decided_ms"),
                    used: row.get::<_, Option<i64>>("used_ms").is_some(),
                    recorded: row.get::<_, i64>("recorded") != 0,
                })
                .collect()),
        }
    }
}

fn sqlite<'a>(param: &'a Param<'_>) -> rusqlite::types::ToSqlOutput<'a> {
    use rusqlite::types::{ToSqlOutput, Value, ValueRef};
    match param {
        Param::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
        Param::Int(n) => ToSqlOutput::Owned(Value::Integer(*n)),
        Param::MaybeInt(n) => ToSqlOutput::Owned(n.map_or(Value::Null, Value::Integer)),
    }
}

fn pg<'a>(params: &'a [Param<'_>]) -> Vec<&'a (dyn postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|param| -> &(dyn postgres::types::ToSql + Sync) {
            match param {
                Param::Text(text) => text,
                Param::Int(n) => n,
                Param::MaybeInt(n) => n,
            }
        })
        .collect()
}
