//! Reading the log back: filters for `flaregate audit`.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, ToSql};
use serde::Serialize;

use super::AuditError;

/// Which rows to show.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub agent: Option<String>,
    pub tool: Option<String>,
    /// Only rows of this decision.
    pub decision: Option<super::Decision>,
    /// Only the rows of this request for approval's story.
    pub approval: Option<String>,
    /// Rows no older than this.
    pub since: Option<Duration>,
    /// Only calls on this zone (its name or id).
    pub zone: Option<String>,
    /// Only this row.
    pub id: Option<i64>,
    /// Only rows written after this one (`audit --follow`).
    pub after_id: Option<i64>,
    /// The newest this many rows (still printed oldest first).
    pub limit: usize,
}

/// One row as `audit` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub id: i64,
    pub ts: String,
    pub agent: String,
    pub tool: String,
    pub method: String,
    pub path: String,
    pub decision: String,
    pub reason: String,
    pub rule: String,
    pub target: String,
    pub args: serde_json::Value,
    pub status: Option<u16>,
    pub cf_codes: Vec<i64>,
    pub duration_ms: Option<i64>,
    /// The decision sentence and, once known, the outcome sentence.
    pub summary: String,
    /// What was fetched from Cloudflare to decide, if anything.
    pub lookup: String,
    /// Written while serving the built-in sandbox.
    pub sandbox: bool,
}

/// The distinct agents that have rows in the log (to tell a typo in a
/// filter from an agent that made no calls).
pub(super) fn agents(connection: &Connection) -> rusqlite::Result<Vec<String>> {
    connection
        .prepare("SELECT DISTINCT agent FROM calls ORDER BY agent")?
        .query_map([], |row| row.get(0))?
        .collect()
}

/// Opens the log read-only (queries never write).
pub(super) fn open_read_only(path: &Path) -> Result<Connection, AuditError> {
    if !path.exists() {
        return Err(AuditError::Unavailable(format!(
            "no audit log at {}",
            super::key::absolute(path).display()
        )));
    }
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| AuditError::open(path, e))
}

/// A value bound to a query, for either backend.
#[derive(Debug, Clone)]
pub(super) enum Value {
    Int(i64),
    Text(String),
}

impl Value {
    pub(super) fn as_pg(&self) -> &(dyn postgres::types::ToSql + Sync) {
        match self {
            Value::Int(n) => n,
            Value::Text(t) => t,
        }
    }
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Value::Int(n) => n.to_sql(),
            Value::Text(t) => t.to_sql(),
        }
    }
}

/// The query `filter` makes (`?` placeholders, each used once) and its
/// values: the newest `limit` rows, oldest first.
pub(super) fn select(filter: &Filter, now_unix_ms: i64) -> (String, Vec<Value>) {
    let mut clauses = Vec::new();
    let mut values = Vec::new();
    let mut text = |clause: &'static str, value: String, values: &mut Vec<Value>| {
        clauses.push(clause);
        values.push(Value::Text(value));
    };
    if let Some(agent) = &filter.agent {
        text("agent = ?", agent.clone(), &mut values);
    }
    if let Some(tool) = &filter.tool {
        text("tool = ?", tool.clone(), &mut values);
    }
    if let Some(decision) = filter.decision {
        text("decision = ?", decision.as_str().into(), &mut values);
    }
    if let Some(approval) = &filter.approval {
        text("approval = ?", approval.clone(), &mut values);
    }
    if let Some(zone) = &filter.zone {
        let zone = zone.to_ascii_lowercase();
        text(
            "(target = ? OR path LIKE '/zones/' || CAST(? AS TEXT) || '%')",
            zone.clone(),
            &mut values,
        );
        values.push(Value::Text(zone));
    }
    let mut int = |clause: &'static str, value: i64| {
        clauses.push(clause);
        values.push(Value::Int(value));
    };
    if let Some(id) = filter.id {
        int("id = ?", id);
    }
    if let Some(after) = filter.after_id {
        int("id > ?", after);
    }
    if let Some(since) = filter.since {
        int("ts_unix_ms >= ?", now_unix_ms - since.as_millis() as i64);
    }
    let filter_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let sql = format!(
        "SELECT * FROM (SELECT {COLUMNS} FROM calls {filter_sql} ORDER BY id DESC LIMIT {}) AS newest
         ORDER BY id",
        filter.limit.max(1)
    );
    (sql, values)
}

/// The rows matching `filter`, oldest first.
pub(super) fn query(
    connection: &Connection,
    filter: &Filter,
    now_unix_ms: i64,
) -> rusqlite::Result<Vec<Entry>> {
    let (sql, values) = select(filter, now_unix_ms);
    let mut statement = connection.prepare(&sql)?;
    let rows = statement.query_map(rusqlite::params_from_iter(values.iter()), entry)?;
    rows.collect()
}

/// The columns `query` selects, as an [`Entry`].
const COLUMNS: &str = "id, ts, agent, tool, method, path, decision, reason, rule, target, args, status, cf_codes, duration_ms, summary, outcome, lookup, sandbox";

/// A row's columns as both backends read them.
pub(super) struct Parts {
    pub id: i64,
    pub ts: String,
    pub agent: String,
    pub tool: String,
    pub method: String,
    pub path: String,
    pub decision: String,
    pub reason: String,
    pub rule: String,
    pub target: String,
    pub args: String,
    pub status: Option<u16>,
    pub cf_codes: Option<String>,
    pub duration_ms: Option<i64>,
    pub summary: String,
    pub outcome: Option<String>,
    pub lookup: String,
    pub sandbox: bool,
}

impl Entry {
    pub(super) fn from_parts(p: Parts) -> Self {
        Entry {
            id: p.id,
            ts: p.ts,
            agent: p.agent,
            tool: p.tool,
            method: p.method,
            path: p.path,
            decision: p.decision,
            reason: p.reason,
            rule: p.rule,
            target: p.target,
            args: serde_json::from_str(&p.args).unwrap_or(serde_json::Value::Null),
            status: p.status,
            cf_codes: p
                .cf_codes
                .unwrap_or_default()
                .split(',')
                .filter_map(|c| c.parse().ok())
                .collect(),
            duration_ms: p.duration_ms,
            summary: match p.outcome.filter(|o| !o.is_empty()) {
                Some(outcome) => format!("{}; {outcome}.", p.summary),
                None if p.summary.ends_with('.') => p.summary,
                None => format!("{}.", p.summary),
            },
            lookup: p.lookup,
            sandbox: p.sandbox,
        }
    }
}

fn entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    Ok(Entry::from_parts(Parts {
        id: row.get("id")?,
        ts: row.get("ts")?,
        agent: row.get("agent")?,
        tool: row.get("tool")?,
        method: row.get("method")?,
        path: row.get("path")?,
        decision: row.get("decision")?,
        reason: row.get("reason")?,
        rule: row.get("rule")?,
        target: row.get("target")?,
        args: row.get("args")?,
        status: row.get("status")?,
        cf_codes: row.get("cf_codes")?,
        duration_ms: row.get("duration_ms")?,
        summary: row.get("summary")?,
        outcome: row.get("outcome")?,
        lookup: row.get("lookup")?,
        sandbox: row.get("sandbox")?,
    }))
}

/// Allowed writes Cloudflare carried out (2xx) after a row (`?` 1) on a
/// path or below it (`?` 2–4: the same path).
pub(super) const LATER_WRITES: &str = "SELECT id, ts, agent, tool, method, path, decision, reason, rule, target, args, status, cf_codes, duration_ms, summary, outcome, lookup, sandbox
     FROM calls WHERE id > ? AND decision = 'allow' AND method NOT IN ('GET', '')
     AND status BETWEEN 200 AND 299 AND (path = ? OR substr(path, 1, length(CAST(? AS TEXT)) + 1) = CAST(? AS TEXT) || '/') ORDER BY id";

/// The rows after a row (`?` 1) whose reason holds its undo note (`?` 2).
pub(super) const UNDOS_OF: &str = "SELECT id, ts, agent, tool, method, path, decision, reason, rule, target, args, status, cf_codes, duration_ms, summary, outcome, lookup, sandbox
     FROM calls WHERE id > ? AND reason LIKE '%' || CAST(? AS TEXT) || '%' ORDER BY id";

/// The values of [`LATER_WRITES`].
pub(super) fn later_writes_values(after: i64, path: &str) -> [Value; 4] {
    let path = || Value::Text(path.to_string());
    [Value::Int(after), path(), path(), path()]
}

/// The allowed writes after row `after` that Cloudflare carried out
/// (2xx) on one of `paths` or below it, oldest first: what changed an
/// object again since a write.
pub(super) fn later_writes(
    connection: &Connection,
    after: i64,
    paths: &[String],
) -> rusqlite::Result<Vec<Entry>> {
    let mut found: Vec<Entry> = Vec::new();
    let mut statement = connection.prepare(LATER_WRITES)?;
    for path in paths {
        let values = later_writes_values(after, path);
        for row in statement.query_map(rusqlite::params_from_iter(values.iter()), entry)? {
            let row = row?;
            if !found.iter().any(|e| e.id == row.id) {
                found.push(row);
            }
        }
    }
    found.sort_by_key(|e| e.id);
    Ok(found)
}

/// The rows whose reason says they undo row `row` (see `server/undo.rs`).
pub(super) fn undos_of(connection: &Connection, row: i64) -> rusqlite::Result<Vec<Entry>> {
    let values = [Value::Int(row), Value::Text(super::undo_note(row))];
    let mut statement = connection.prepare(UNDOS_OF)?;
    let rows = statement.query_map(rusqlite::params_from_iter(values.iter()), entry)?;
    rows.collect()
}
