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
pub fn agents(connection: &Connection) -> rusqlite::Result<Vec<String>> {
    connection
        .prepare("SELECT DISTINCT agent FROM calls ORDER BY agent")?
        .query_map([], |row| row.get(0))?
        .collect()
}

/// Opens the log read-only (queries never write).
pub fn open_read_only(path: &Path) -> Result<Connection, AuditError> {
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

/// The rows matching `filter`, oldest first.
pub fn query(
    connection: &Connection,
    filter: &Filter,
    now_unix_ms: i64,
) -> rusqlite::Result<Vec<Entry>> {
    let mut clauses = Vec::new();
    let mut values: Vec<Box<dyn ToSql>> = Vec::new();
    if let Some(agent) = &filter.agent {
        clauses.push("agent = ?");
        values.push(Box::new(agent.clone()));
    }
    if let Some(tool) = &filter.tool {
        clauses.push("tool = ?");
        values.push(Box::new(tool.clone()));
    }
    if let Some(decision) = filter.decision {
        clauses.push("decision = ?");
        values.push(Box::new(decision.as_str()));
    }
    if let Some(approval) = &filter.approval {
        clauses.push("rule = ?");
        values.push(Box::new(crate::approval::rule_of(approval)));
    }
    if let Some(zone) = &filter.zone {
        clauses.push("(target = ? OR path LIKE '/zones/' || ? || '%')");
        values.push(Box::new(zone.to_ascii_lowercase()));
        values.push(Box::new(zone.to_ascii_lowercase()));
    }
    if let Some(id) = filter.id {
        clauses.push("id = ?");
        values.push(Box::new(id));
    }
    if let Some(after) = filter.after_id {
        clauses.push("id > ?");
        values.push(Box::new(after));
    }
    if let Some(since) = filter.since {
        clauses.push("ts_unix_ms >= ?");
        values.push(Box::new(now_unix_ms - since.as_millis() as i64));
    }
    let filter_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let sql = format!(
        "SELECT * FROM (SELECT {COLUMNS} FROM calls {filter_sql} ORDER BY id DESC LIMIT {})
         ORDER BY id",
        filter.limit.max(1)
    );
    let mut statement = connection.prepare(&sql)?;
    let params: Vec<&dyn ToSql> = values.iter().map(|v| v.as_ref()).collect();
    let rows = statement.query_map(params.as_slice(), entry)?;
    rows.collect()
}

/// The columns `query` selects, as an [`Entry`].
const COLUMNS: &str = "id, ts, agent, tool, method, path, decision, reason, rule, target, args, status, cf_codes, duration_ms, summary, outcome, lookup, sandbox";

fn entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    let outcome: Option<String> = row.get("outcome")?;
    let summary: String = row.get("summary")?;
    let args: String = row.get("args")?;
    let codes: Option<String> = row.get("cf_codes")?;
    Ok(Entry {
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
        args: serde_json::from_str(&args).unwrap_or(serde_json::Value::Null),
        status: row.get("status")?,
        cf_codes: codes
            .unwrap_or_default()
            .split(',')
            .filter_map(|c| c.parse().ok())
            .collect(),
        duration_ms: row.get("duration_ms")?,
        summary: match outcome.filter(|o| !o.is_empty()) {
            Some(outcome) => format!("{summary}; {outcome}."),
            None if summary.ends_with('.') => summary,
            None => format!("{summary}."),
        },
        lookup: row.get("lookup")?,
        sandbox: row.get("sandbox")?,
    })
}

/// The allowed writes after row `after` that Cloudflare carried out
/// (2xx) on one of `paths` or below it, oldest first: what changed an
/// object again since a write.
pub fn later_writes(
    connection: &Connection,
    after: i64,
    paths: &[String],
) -> rusqlite::Result<Vec<Entry>> {
    let mut found = Vec::new();
    let mut statement = connection.prepare(&format!(
        "SELECT {COLUMNS} FROM calls WHERE id > ?1 AND decision = 'allow' AND method NOT IN ('GET', '')
         AND status BETWEEN 200 AND 299 AND (path = ?2 OR substr(path, 1, length(?2) + 1) = ?2 || '/') ORDER BY id"
    ))?;
    for path in paths {
        let rows = statement.query_map(rusqlite::params![after, path], entry)?;
        for row in rows {
            let row = row?;
            if !found.iter().any(|e: &Entry| e.id == row.id) {
                found.push(row);
            }
        }
    }
    found.sort_by_key(|e| e.id);
    Ok(found)
}

/// The rows whose reason says they undo row `row` (see `server/undo.rs`).
pub fn undos_of(connection: &Connection, row: i64) -> rusqlite::Result<Vec<Entry>> {
    let mut statement = connection.prepare(&format!(
        "SELECT {COLUMNS} FROM calls WHERE id > ?1 AND instr(reason, ?2) > 0 ORDER BY id"
    ))?;
    let marker = super::undo_note(row);
    let rows = statement.query_map(rusqlite::params![row, marker], entry)?;
    rows.collect()
}
