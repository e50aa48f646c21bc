//! Reading a PostgreSQL log: the same questions as the SQLite reader,
//! with the shared SQL numbered for PostgreSQL.

use postgres::Client;

use super::super::AuditError;
use super::super::append::StoreError;
use super::super::chain::{Event, Head};
use super::super::integrity;
use super::super::query::{self, Entry, Filter};
use super::super::record::{CallRecord, Decision, Outcome};
use super::super::snapshot::{self, Stored};
use super::{connect, shown};

/// A connection for reading (`flaregate audit`, verify, undo).
pub(crate) struct Reader(Client);

impl Reader {
    pub(crate) fn open(url: &str) -> Result<Self, AuditError> {
        let mut client = connect(url).map_err(|e| {
            AuditError::Unavailable(format!("the audit database {}: {e}", shown(url)))
        })?;
        let exists: bool = client
            .query_one("SELECT to_regclass('flaregate_schema') IS NOT NULL", &[])
            .map_err(|e| AuditError::Unavailable(StoreError::from(e).0))?
            .get(0);
        if !exists {
            return Err(AuditError::Unavailable(format!(
                "the audit database {} holds no flaregate log yet: `flaregate serve` makes it",
                shown(url)
            )));
        }
        Ok(Self(client))
    }

    /// Every event of every row, in chain order, and the number of rows.
    pub(crate) fn events(&mut self) -> Result<(u64, Vec<Event>), StoreError> {
        let mut events = Vec::new();
        let mut rows = 0;
        for row in self.0.query(
            "SELECT id, ts, ts_unix_ms, agent, tool, method, path, target, args, decision, reason, rule, summary,
                    lookup, sandbox, seq, prev_hash, hash, status, cf_codes, error, duration_ms, outcome,
                    outcome_seq, outcome_prev_hash, outcome_hash
             FROM calls ORDER BY id",
            &[],
        )? {
            rows += 1;
            let id: i64 = row.get("id");
            let seq: i64 = row.get("seq");
            let record = CallRecord {
                ts: row.get("ts"),
                ts_unix_ms: row.get("ts_unix_ms"),
                agent: row.get("agent"),
                tool: row.get("tool"),
                method: row.get("method"),
                path: row.get("path"),
                target: row.get("target"),
                args: row.get("args"),
                decision: Decision::parse(row.get("decision")),
                reason: row.get("reason"),
                rule: row.get("rule"),
                summary: row.get("summary"),
                lookup: row.get("lookup"),
                sandbox: row.get("sandbox"),
            };
            events.push(Event::decision(seq, id, row.get("prev_hash"), row.get("hash"), record));
            if let Some(outcome_seq) = row.get::<_, Option<i64>>("outcome_seq") {
                let outcome = Outcome {
                    status: row.get::<_, Option<i32>>("status").map(|s| s as u16),
                    error: row.get("error"),
                    duration_ms: row.get::<_, Option<i64>>("duration_ms").map(|d| d.max(0) as u64),
                    text: row.get::<_, Option<String>>("outcome").unwrap_or_default(),
                    ..Outcome::default()
                };
                events.push(Event::outcome(
                    (outcome_seq, id, seq),
                    row.get::<_, Option<String>>("outcome_prev_hash").unwrap_or_default(),
                    row.get::<_, Option<String>>("outcome_hash").unwrap_or_default(),
                    outcome,
                    row.get::<_, Option<String>>("cf_codes").unwrap_or_default(),
                ));
            }
        }
        events.sort_by_key(Event::seq);
        Ok((rows, events))
    }

    /// The end of the chain as stored.
    pub(crate) fn head(&mut self) -> Result<Head, StoreError> {
        let row = self
            .0
            .query_opt("SELECT events, hash FROM chain_head WHERE id = 1", &[])?;
        Ok(row.map_or_else(Head::genesis, |row| Head {
            events: row.get(0),
            hash: row.get(1),
        }))
    }

    /// The rows `filter` selects, oldest first.
    pub(crate) fn query(&mut self, filter: &Filter, now_ms: i64) -> Result<Vec<Entry>, StoreError> {
        let (sql, values) = query::select(filter, now_ms);
        self.entries(&numbered(&sql), &values)
    }

    /// Allowed writes after row `after` on one of `paths` or below it.
    pub(crate) fn later_writes(
        &mut self,
        after: i64,
        paths: &[String],
    ) -> Result<Vec<Entry>, StoreError> {
        let mut found: Vec<Entry> = Vec::new();
        for path in paths {
            let values = query::later_writes_values(after, path);
            for entry in self.entries(&numbered(query::LATER_WRITES), &values)? {
                if !found.iter().any(|e| e.id == entry.id) {
                    found.push(entry);
                }
            }
        }
        found.sort_by_key(|e| e.id);
        Ok(found)
    }

    /// The rows that undo row `row`.
    pub(crate) fn undos_of(&mut self, row: i64) -> Result<Vec<Entry>, StoreError> {
        let values = [
            query::Value::Int(row),
            query::Value::Text(super::super::undo_note(row)),
        ];
        self.entries(&numbered(query::UNDOS_OF), &values)
    }

    /// The agents with rows in the log.
    pub(crate) fn agents(&mut self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .0
            .query("SELECT DISTINCT agent FROM calls ORDER BY agent", &[])?
            .iter()
            .map(|row| row.get(0))
            .collect())
    }

    /// Row `id`'s snapshot, if it has one.
    pub(crate) fn snapshot(&mut self, id: i64) -> Result<Option<Stored>, StoreError> {
        let row = self.0.query_opt(
            "SELECT reader, kind, prior, after, created FROM snapshots WHERE call_id = $1",
            &[&id],
        )?;
        Ok(row.map(|row| {
            snapshot::stored(row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
        }))
    }

    /// The archive mark as stored, if rows were ever archived.
    pub(crate) fn archive_mark(&mut self) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .query_opt("SELECT value FROM chain_meta WHERE name = 'archived'", &[])?
            .map(|row| row.get(0)))
    }

    /// The snapshots of rows up to `row`.
    pub(crate) fn snapshots_through(&mut self, row: i64) -> Result<Vec<(i64, Stored)>, StoreError> {
        Ok(self
            .0
            .query(snapshot::THROUGH, &[&row])?
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    snapshot::stored(r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)),
                )
            })
            .collect())
    }

    /// Deletes rows up to `through_row` and their snapshots and sets the
    /// archive mark, if the mark is still `old` (no other archive ran).
    pub(crate) fn cut(
        &mut self,
        old: Option<&str>,
        sealed: &str,
        through_row: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.0.transaction()?;
        let now: Option<String> = tx
            .query_opt(
                "SELECT value FROM chain_meta WHERE name = 'archived' FOR UPDATE",
                &[],
            )?
            .map(|row| row.get(0));
        if now.as_deref() != old {
            return Err(StoreError(
                "another archive ran meanwhile: nothing was archived; run it again".into(),
            ));
        }
        tx.execute("DELETE FROM snapshots WHERE call_id <= $1", &[&through_row])?;
        tx.execute("DELETE FROM calls WHERE id <= $1", &[&through_row])?;
        tx.execute(
            "INSERT INTO chain_meta (name, value) VALUES ('archived', $1)
             ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            &[&sealed],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The first row whose approval column disagrees with its rule.
    pub(crate) fn mismatched(&mut self) -> Result<Option<i64>, StoreError> {
        Ok(self.0.query_one(integrity::MISMATCHED, &[])?.get(0))
    }

    /// The rows that kept (or say they kept) a snapshot, with it.
    pub(crate) fn kept(&mut self) -> Result<Vec<integrity::Kept>, StoreError> {
        let rows = self.0.query(integrity::KEPT, &[])?;
        Ok(rows
            .iter()
            .map(|row| integrity::Kept {
                id: row.get(0),
                lookup: row.get(1),
                outcome: row.get(2),
                snapshot: row
                    .get::<_, Option<i64>>(3)
                    .map(|_| integrity::KeptSnapshot {
                        reader: row.get(4),
                        kind: row.get(5),
                        prior: row.get(6),
                        digest: row.get(7),
                        after: row.get(8),
                        created: row.get(9),
                    }),
            })
            .collect())
    }

    /// The allowed rows under an approval, oldest first.
    pub(crate) fn approved(&mut self) -> Result<Vec<(i64, String)>, StoreError> {
        let rows = self.0.query(integrity::APPROVED, &[])?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    fn entries(&mut self, sql: &str, values: &[query::Value]) -> Result<Vec<Entry>, StoreError> {
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
            values.iter().map(query::Value::as_pg).collect();
        Ok(self
            .0
            .query(sql, &params)?
            .iter()
            .map(|row| {
                query::Entry::from_parts(query::Parts {
                    id: row.get("id"),
                    ts: row.get("ts"),
                    agent: row.get("agent"),
                    tool: row.get("tool"),
                    method: row.get("method"),
                    path: row.get("path"),
                    decision: row.get("decision"),
                    reason: row.get("reason"),
                    rule: row.get("rule"),
                    target: row.get("target"),
                    args: row.get("args"),
                    status: row.get::<_, Option<i32>>("status").map(|s| s as u16),
                    cf_codes: row.get("cf_codes"),
                    duration_ms: row.get("duration_ms"),
                    summary: row.get("summary"),
                    outcome: row.get("outcome"),
                    lookup: row.get("lookup"),
                    sandbox: row.get("sandbox"),
                })
            })
            .collect())
    }
}

/// `?` placeholders as PostgreSQL's `$1, $2, …` (the shared SQL is
/// written for SQLite; no query text holds a literal `?`).
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}
