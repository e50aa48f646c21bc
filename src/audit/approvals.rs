//! The approvals table, kept in the audit database beside the calls so the
//! server and the command line share it: its schema (the migrations in
//! `schema.rs` and `postgres/` take it from here), the row it holds and
//! every statement run on it, in either store. What a request binds and
//! who may decide it is the approval module's (`src/approval/`).

use super::Database;

/// The table in SQLite (the schema's migration 5). Logs of 0.7 made it on
/// first use, without `recorded`: such a table is kept.
pub(super) const SQLITE_TABLE: &str = "CREATE TABLE IF NOT EXISTS approvals (
        id TEXT PRIMARY KEY,
        agent TEXT NOT NULL,
        tool TEXT NOT NULL,
        digest TEXT NOT NULL,
        summary TEXT NOT NULL,
        preview TEXT NOT NULL,
        requested_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
        decided_by TEXT,
        decided_ms INTEGER,
        used_ms INTEGER
    );
    ALTER TABLE approvals ADD COLUMN recorded INTEGER NOT NULL DEFAULT 0;";

/// A person's note on their decision (the SQLite schema's migration 9,
/// PostgreSQL's 8).
pub(super) const NOTE_COLUMN: &str = "ALTER TABLE approvals ADD COLUMN note TEXT;";

/// Who asked, when an OAuth token named a person and client (the SQLite
/// schema's migration 10, PostgreSQL's 9).
pub(super) const ASKED_BY_COLUMN: &str = "ALTER TABLE approvals ADD COLUMN asked_by TEXT;";

/// The table in PostgreSQL (the schema's migration 3).
pub(super) const POSTGRES_TABLE: &str = "CREATE TABLE approvals (
        id TEXT PRIMARY KEY,
        agent TEXT NOT NULL,
        tool TEXT NOT NULL,
        digest TEXT NOT NULL,
        summary TEXT NOT NULL,
        preview TEXT NOT NULL,
        requested_ms BIGINT NOT NULL,
        expires_ms BIGINT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
        decided_by TEXT,
        decided_ms BIGINT,
        used_ms BIGINT,
        recorded BIGINT NOT NULL DEFAULT 0
    );";

/// Where a request for approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Approved,
    Rejected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "approved" => Status::Approved,
            "rejected" => Status::Rejected,
            _ => Status::Pending,
        }
    }
}

/// One request for approval.
#[derive(Debug, Clone)]
pub struct Approval {
    pub id: String,
    pub agent: String,
    pub tool: String,
    /// What the call does, in words ("delete DNS record … on example.com").
    pub summary: String,
    /// The call's preview (JSON): its request and what it would change.
    pub preview: String,
    pub requested_ms: i64,
    pub expires_ms: i64,
    pub status: Status,
    pub decided_by: Option<String>,
    pub decided_ms: Option<i64>,
    /// What the person who decided said of it, if anything.
    pub note: Option<String>,
    /// The person and client the asking agent's token named ("alice@…
    /// via client claude"); none for a key.
    pub asked_by: Option<String>,
    pub used: bool,
    /// Whether the audit chain has the decision.
    pub recorded: bool,
    /// The keyed digest binding it to the agent, tool and arguments.
    pub(crate) digest: String,
}

/// A request about to be written, pending.
#[derive(Debug)]
pub struct NewRequest<'a> {
    pub id: &'a str,
    pub agent: &'a str,
    pub tool: &'a str,
    pub digest: &'a str,
    pub summary: &'a str,
    pub preview: &'a str,
    pub requested_ms: i64,
    pub expires_ms: i64,
    pub asked_by: Option<&'a str>,
}

/// The approvals' database could not be read or written: what it said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreFailed(pub String);

fn failed(error: impl std::fmt::Display) -> StoreFailed {
    StoreFailed(error.to_string())
}

/// The approvals table of one audit database.
#[derive(Debug, Clone)]
pub struct Table {
    db: Database,
}

impl Table {
    pub fn new(db: &Database) -> Self {
        Self { db: db.clone() }
    }

    /// Runs `work` on one open connection, the schema brought up to date
    /// (the command line may run before a new server opened the store).
    pub fn with<T: Send>(
        &self,
        work: impl FnOnce(&mut Session) -> Result<T, StoreFailed> + Send,
    ) -> Result<T, StoreFailed> {
        match &self.db {
            Database::Postgres(url) => super::off_runtime(move || {
                let client = super::open_postgres(url).map_err(StoreFailed)?;
                work(&mut Session::Postgres(Box::new(client)))
            }),
            Database::Sqlite(file) => {
                let connection = super::open_database(file).map_err(failed)?;
                work(&mut Session::Sqlite(connection))
            }
        }
    }
}

/// An open connection to the table: one method per statement.
pub enum Session {
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::Client>),
}

impl Session {
    /// Request `id`, whatever its state.
    pub fn find(&mut self, id: &str) -> Result<Option<Approval>, StoreFailed> {
        let found = self.select("SELECT * FROM approvals WHERE id = ?", &[Param::Text(id)])?;
        Ok(found.into_iter().next())
    }

    /// The oldest unexpired request still waiting for this exact call.
    pub fn waiting(
        &mut self,
        (agent, tool, digest): (&str, &str, &str),
        now_ms: i64,
    ) -> Result<Option<Approval>, StoreFailed> {
        let found = self.select(
            "SELECT * FROM approvals WHERE agent = ? AND tool = ? AND digest = ?
             AND status = 'pending' AND expires_ms > ? ORDER BY requested_ms LIMIT 1",
            &[
                Param::Text(agent),
                Param::Text(tool),
                Param::Text(digest),
                Param::Int(now_ms),
            ],
        )?;
        Ok(found.into_iter().next())
    }

    /// Every unexpired request still waiting, oldest first.
    pub fn pending(&mut self, now_ms: i64) -> Result<Vec<Approval>, StoreFailed> {
        self.select(
            "SELECT * FROM approvals WHERE status = 'pending' AND expires_ms > ?
             ORDER BY requested_ms",
            &[Param::Int(now_ms)],
        )
    }

    /// The `limit` requests decided last, newest first.
    pub fn recent(&mut self, limit: usize) -> Result<Vec<Approval>, StoreFailed> {
        self.select(
            "SELECT * FROM approvals WHERE decided_ms IS NOT NULL
             ORDER BY decided_ms DESC LIMIT ?",
            &[Param::Int(limit.min(1_000) as i64)],
        )
    }

    /// Decisions the audit chain does not have yet, oldest first.
    pub fn unrecorded(&mut self) -> Result<Vec<Approval>, StoreFailed> {
        self.select(
            "SELECT * FROM approvals WHERE recorded = 0 AND decided_ms IS NOT NULL
             ORDER BY decided_ms LIMIT 100",
            &[],
        )
    }

    pub fn insert(&mut self, request: &NewRequest<'_>) -> Result<(), StoreFailed> {
        self.execute(
            "INSERT INTO approvals
             (id, agent, tool, digest, summary, preview, requested_ms, expires_ms, asked_by, status)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
            &[
                Param::Text(request.id),
                Param::Text(request.agent),
                Param::Text(request.tool),
                Param::Text(request.digest),
                Param::Text(request.summary),
                Param::Text(request.preview),
                Param::Int(request.requested_ms),
                Param::Int(request.expires_ms),
                Param::MaybeText(request.asked_by),
            ],
        )
        .map(drop)
    }

    /// Decides request `id` on the host if it is pending and unexpired;
    /// whether it was.
    pub fn decide(
        &mut self,
        id: &str,
        status: Status,
        (by, note): (&str, Option<&str>),
        now_ms: i64,
    ) -> Result<bool, StoreFailed> {
        let changed = self.execute(
            "UPDATE approvals SET status = ?, decided_by = ?, note = ?, decided_ms = ?
             WHERE id = ? AND status = 'pending' AND expires_ms > ?",
            &[
                Param::Text(status.as_str()),
                Param::Text(by),
                Param::MaybeText(note),
                Param::Int(now_ms),
                Param::Text(id),
                Param::Int(now_ms),
            ],
        )?;
        Ok(changed == 1)
    }

    /// The answer of the person at the client to pending request `id`: an
    /// approval is used at once by the call that asked, whose own row
    /// records the answer. Whether the request was still pending.
    pub fn answer(
        &mut self,
        id: &str,
        status: Status,
        by: &str,
        now_ms: i64,
    ) -> Result<bool, StoreFailed> {
        let used = (status == Status::Approved).then_some(now_ms);
        let changed = self.execute(
            "UPDATE approvals SET status = ?, decided_by = ?, decided_ms = ?, used_ms = ?,
             recorded = 1 WHERE id = ? AND status = 'pending'",
            &[
                Param::Text(status.as_str()),
                Param::Text(by),
                Param::Int(now_ms),
                Param::MaybeInt(used),
                Param::Text(id),
            ],
        )?;
        Ok(changed == 1)
    }

    /// Marks approved request `id` used, unless it was: whether this did.
    pub fn take(&mut self, id: &str, now_ms: i64) -> Result<bool, StoreFailed> {
        let changed = self.execute(
            "UPDATE approvals SET used_ms = ? WHERE id = ? AND used_ms IS NULL",
            &[Param::Int(now_ms), Param::Text(id)],
        )?;
        Ok(changed == 1)
    }

    /// Sets whether the chain has request `id`'s decision; whether the
    /// mark changed (so of several instances, one claims a decision).
    pub fn mark_recorded(&mut self, id: &str, recorded: bool) -> Result<bool, StoreFailed> {
        let changed = self.execute(
            "UPDATE approvals SET recorded = ? WHERE id = ? AND recorded = ?",
            &[
                Param::Int(recorded.into()),
                Param::Text(id),
                Param::Int((!recorded).into()),
            ],
        )?;
        Ok(changed == 1)
    }

    /// Runs a statement (`?` placeholders, numbered for PostgreSQL); the
    /// rows it changed.
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreFailed> {
        match self {
            Session::Sqlite(c) => c
                .execute(sql, rusqlite::params_from_iter(params.iter().map(sqlite)))
                .map(|n| n as u64)
                .map_err(failed),
            Session::Postgres(c) => c
                .execute(&super::numbered(sql), &pg(params))
                .map_err(failed),
        }
    }

    /// The requests a `SELECT *` finds.
    fn select(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Approval>, StoreFailed> {
        match self {
            Session::Sqlite(c) => {
                let mut statement = c.prepare(sql).map_err(failed)?;
                let mut rows = statement
                    .query(rusqlite::params_from_iter(params.iter().map(sqlite)))
                    .map_err(failed)?;
                let mut found = Vec::new();
                while let Some(row) = rows.next().map_err(failed)? {
                    found.push(approval(row)?);
                }
                Ok(found)
            }
            Session::Postgres(c) => c
                .query(&super::numbered(sql), &pg(params))
                .map_err(failed)?
                .iter()
                .map(approval)
                .collect(),
        }
    }
}

/// A row of either store, read by column name.
trait Columns {
    fn column<T>(&self, name: &str) -> Result<T, StoreFailed>
    where
        T: rusqlite::types::FromSql + for<'a> postgres::types::FromSql<'a>;
}

impl Columns for rusqlite::Row<'_> {
    fn column<T>(&self, name: &str) -> Result<T, StoreFailed>
    where
        T: rusqlite::types::FromSql + for<'a> postgres::types::FromSql<'a>,
    {
        self.get(name).map_err(failed)
    }
}

impl Columns for postgres::Row {
    fn column<T>(&self, name: &str) -> Result<T, StoreFailed>
    where
        T: rusqlite::types::FromSql + for<'a> postgres::types::FromSql<'a>,
    {
        self.try_get(name).map_err(failed)
    }
}

fn approval(row: &impl Columns) -> Result<Approval, StoreFailed> {
    Ok(Approval {
        id: row.column("id")?,
        agent: row.column("agent")?,
        tool: row.column("tool")?,
        digest: row.column("digest")?,
        summary: row.column("summary")?,
        preview: row.column("preview")?,
        requested_ms: row.column("requested_ms")?,
        expires_ms: row.column("expires_ms")?,
        status: Status::parse(&row.column::<String>("status")?),
        decided_by: row.column("decided_by")?,
        decided_ms: row.column("decided_ms")?,
        note: row.column("note")?,
        asked_by: row.column("asked_by")?,
        used: row.column::<Option<i64>>("used_ms")?.is_some(),
        recorded: row.column::<i64>("recorded")? != 0,
    })
}

/// A value bound to a statement.
enum Param<'a> {
    Text(&'a str),
    MaybeText(Option<&'a str>),
    Int(i64),
    MaybeInt(Option<i64>),
}

fn sqlite<'a>(param: &'a Param<'_>) -> rusqlite::types::ToSqlOutput<'a> {
    use rusqlite::types::{ToSqlOutput, Value, ValueRef};
    match param {
        Param::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
        Param::MaybeText(text) => {
            ToSqlOutput::Borrowed(text.map_or(ValueRef::Null, |t| ValueRef::Text(t.as_bytes())))
        }
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
                Param::MaybeText(text) => text,
                Param::Int(n) => n,
                Param::MaybeInt(n) => n,
            }
        })
        .collect()
}
