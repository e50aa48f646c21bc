//! Appending to the chain, whatever the store: [`Chain`] chooses each
//! row's id and each event's number and hash; a [`Sink`] (one open
//! transaction of SQLite or PostgreSQL) stores them.

use rusqlite::params;

use super::chain::{Formula, Head};
use super::key::ChainKey;
use super::record::{CallRecord, Outcome};
use super::snapshot::{self, Snapshot};
use super::writer::{RowRef, Tip, Write};

/// Why a store could not take a batch (the message is what callers see).
#[derive(Debug)]
pub(super) struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError(error.to_string())
    }
}

/// Where a batch's events go: one open transaction of one backend. The
/// chain (ids, numbering, hashes) is worked out once, in [`Chain`].
pub(super) trait Sink {
    /// Inserts decision row `id_seq.0` as event `id_seq.1`, linked to
    /// `prev_hash.0` with hash `prev_hash.1`.
    fn decision(
        &mut self,
        id_seq: (i64, i64),
        prev_hash: (&str, &str),
        r: &CallRecord,
    ) -> Result<(), StoreError>;
    /// Fills in row `row`'s outcome as event `seq`; false if the row has
    /// none to fill.
    fn outcome(
        &mut self,
        row: RowRef,
        seq: i64,
        prev_hash: (&str, &str),
        o: &Outcome,
        codes: &str,
    ) -> Result<bool, StoreError>;
    /// Keeps row `id`'s snapshot.
    fn snapshot(&mut self, id: i64, s: &Snapshot) -> Result<(), StoreError>;
    /// Adds what a write answered and created to row `id`'s snapshot.
    fn snapshot_outcome(
        &mut self,
        id: i64,
        after: Option<&str>,
        created: Option<&str>,
    ) -> Result<(), StoreError>;
}

impl Sink for rusqlite::Transaction<'_> {
    fn decision(
        &mut self,
        (id, seq): (i64, i64),
        (prev, hash): (&str, &str),
        r: &CallRecord,
    ) -> Result<(), StoreError> {
        self.prepare_cached(
            "INSERT INTO calls (id, ts, ts_unix_ms, agent, tool, method, path, target, args, decision, reason, rule, summary, lookup, sandbox, seq, prev_hash, hash, approval)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
        )?
        .execute(params![
            id, r.ts, r.ts_unix_ms, r.agent, r.tool, r.method, r.path, r.target, r.args,
            r.decision.as_str(), r.reason, r.rule, r.summary, r.lookup, r.sandbox,
            seq, prev, hash, r.approval()
        ])?;
        Ok(())
    }

    fn outcome(
        &mut self,
        row: RowRef,
        seq: i64,
        (prev, hash): (&str, &str),
        o: &Outcome,
        codes: &str,
    ) -> Result<bool, StoreError> {
        let changed = self
            .prepare_cached(
                "UPDATE calls SET status = ?1, cf_codes = ?2, error = ?3, duration_ms = ?4, outcome = ?5,
                                  outcome_seq = ?6, outcome_prev_hash = ?7, outcome_hash = ?8
                 WHERE id = ?9 AND outcome_seq IS NULL",
            )?
            .execute(params![o.status, codes, o.error, o.duration_ms.map(|d| d as i64), o.text, seq, prev, hash, row.id])?;
        Ok(changed == 1)
    }

    fn snapshot(&mut self, id: i64, s: &Snapshot) -> Result<(), StoreError> {
        Ok(snapshot::insert(self, id, s)?)
    }

    fn snapshot_outcome(
        &mut self,
        id: i64,
        after: Option<&str>,
        created: Option<&str>,
    ) -> Result<(), StoreError> {
        Ok(snapshot::complete(self, id, after, created)?)
    }
}

/// Appends events to the chain: chooses each row's id and each event's
/// number and hash, whatever the backend.
pub(super) struct Chain<'a> {
    formula: Formula<'a>,
    pub(super) tip: Tip,
}

impl<'a> Chain<'a> {
    pub(super) fn new(key: &'a ChainKey, tip: Tip) -> Self {
        Self {
            formula: Formula::Keyed(key),
            tip,
        }
    }

    /// Writes every job of a batch; each job's row.
    pub(super) fn write(
        &mut self,
        sink: &mut impl Sink,
        batch: &[Write],
    ) -> Result<Vec<RowRef>, StoreError> {
        let mut rows = Vec::with_capacity(batch.len());
        for job in batch {
            let row = match job {
                Write::Begin {
                    record, snapshot, ..
                } => {
                    let row = self.insert(sink, record)?;
                    if let Some(snapshot) = snapshot {
                        sink.snapshot(row.id, snapshot)?;
                    }
                    row
                }
                Write::Complete { row, outcome, .. } => {
                    self.complete(sink, *row, outcome)?;
                    sink.snapshot_outcome(
                        row.id,
                        outcome.after.as_deref(),
                        outcome.created.as_deref(),
                    )?;
                    *row
                }
                Write::Whole {
                    record, outcome, ..
                } => {
                    let row = self.insert(sink, record)?;
                    self.complete(sink, row, outcome)?;
                    row
                }
            };
            rows.push(row);
        }
        Ok(rows)
    }

    /// Writes a decision row as the next event of the chain.
    fn insert(&mut self, sink: &mut impl Sink, r: &CallRecord) -> Result<RowRef, StoreError> {
        let seq = self.tip.head.events + 1;
        let id = self.tip.last_id + 1;
        let hash = self.formula.decision(&self.tip.head.hash, seq, id, r);
        sink.decision((id, seq), (&self.tip.head.hash, &hash), r)?;
        self.tip = Tip {
            head: Head { events: seq, hash },
            last_id: id,
        };
        Ok(RowRef { id, seq })
    }

    /// Fills in a decision row's outcome as the next event of the chain.
    fn complete(
        &mut self,
        sink: &mut impl Sink,
        row: RowRef,
        o: &Outcome,
    ) -> Result<(), StoreError> {
        let seq = self.tip.head.events + 1;
        let codes = o
            .cf_codes
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let hash = self
            .formula
            .outcome(&self.tip.head.hash, (seq, row.id, row.seq), o, &codes);
        if !sink.outcome(row, seq, (&self.tip.head.hash, &hash), o, &codes)? {
            return Err(StoreError(format!(
                "row {} has no outcome to fill in",
                row.id
            )));
        }
        self.tip.head = Head { events: seq, hash };
        Ok(())
    }
}
