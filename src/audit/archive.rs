//! Retention: `audit export` writes a stretch of the chain as JSON lines
//! that verify on their own with the key, and `audit archive` moves old
//! rows out into such a file. The log then starts where the archive ends;
//! the archive mark (the cut's event, hash and last row, MAC'd with the
//! key, kept in `chain_meta`) is what `verify` starts from, so rows
//! deleted without the key still show as a gap.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::chain::{self, ChainVerdict, Content, Event, Head};
use super::key::{AuditFiles, ChainKey};
use super::record::{CallRecord, Decision, Outcome};
use super::snapshot::Stored;
use super::source::Source;
use super::{AuditError, Database};

/// The first line of every export and archive file.
pub const FORMAT: &str = "flaregate audit export v1";
/// Rows without an outcome younger than this may still be in flight: an
/// archive stops before them.
const IN_FLIGHT_MS: i64 = 60 * 60 * 1000;

/// What an export file spans: events `first_event..=last_event`, the hash
/// before the first (`prev`) and after the last (`head`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub format: String,
    pub first_event: i64,
    pub last_event: i64,
    pub prev: String,
    pub head: String,
    pub rows: u64,
    /// The audit key's fingerprint: which key verifies it.
    pub key: String,
}

/// One line after the first: an event of the chain, or a kept snapshot.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Line {
    Decision {
        event: i64,
        row: i64,
        prev: String,
        hash: String,
        ts: String,
        ts_unix_ms: i64,
        agent: String,
        tool: String,
        method: String,
        path: String,
        target: String,
        args: String,
        decision: String,
        reason: String,
        rule: String,
        summary: String,
        lookup: String,
        sandbox: bool,
    },
    Outcome {
        event: i64,
        row: i64,
        prev: String,
        hash: String,
        decision_event: i64,
        status: Option<u16>,
        cf_codes: String,
        error: Option<String>,
        duration_ms: Option<u64>,
        text: String,
    },
    /// The state before a write, kept for undo (not hashed by the chain:
    /// its digest is, in the row's `lookup`).
    Snapshot {
        row: i64,
        reader: String,
        prior_kind: String,
        prior: Option<String>,
        after: Option<String>,
        created: Option<String>,
    },
}

impl Line {
    fn of(event: &Event) -> Self {
        let (seq, row, prev, hash) = (
            event.seq,
            event.row,
            event.prev.clone(),
            event.stored.clone(),
        );
        match &event.content {
            Content::Decision(r) => Line::Decision {
                event: seq,
                row,
                prev,
                hash,
                ts: r.ts.clone(),
                ts_unix_ms: r.ts_unix_ms,
                agent: r.agent.clone(),
                tool: r.tool.clone(),
                method: r.method.clone(),
                path: r.path.clone(),
                target: r.target.clone(),
                args: r.args.clone(),
                decision: r.decision.as_str().to_string(),
                reason: r.reason.clone(),
                rule: r.rule.clone(),
                summary: r.summary.clone(),
                lookup: r.lookup.clone(),
                sandbox: r.sandbox,
            },
            Content::Outcome {
                decision_seq,
                outcome,
                codes,
            } => Line::Outcome {
                event: seq,
                row,
                prev,
                hash,
                decision_event: *decision_seq,
                status: outcome.status,
                cf_codes: codes.clone(),
                error: outcome.error.clone(),
                duration_ms: outcome.duration_ms,
                text: outcome.text.clone(),
            },
        }
    }

    fn into_event(self) -> Option<Event> {
        Some(match self {
            Line::Decision {
                event,
                row,
                prev,
                hash,
                ts,
                ts_unix_ms,
                agent,
                tool,
                method,
                path,
                target,
                args,
                decision,
                reason,
                rule,
                summary,
                lookup,
                sandbox,
            } => {
                let record = CallRecord {
                    ts,
                    ts_unix_ms,
                    agent,
                    tool,
                    method,
                    path,
                    target,
                    args,
                    decision: Decision::parse(&decision),
                    reason,
                    rule,
                    summary,
                    lookup,
                    sandbox,
                };
                Event::decision(event, row, prev, hash, record)
            }
            Line::Outcome {
                event,
                row,
                prev,
                hash,
                decision_event,
                status,
                cf_codes,
                error,
                duration_ms,
                text,
            } => {
                let outcome = Outcome {
                    status,
                    error,
                    duration_ms,
                    text,
                    ..Outcome::default()
                };
                Event::outcome((event, row, decision_event), prev, hash, outcome, cf_codes)
            }
            Line::Snapshot { .. } => return None,
        })
    }

    fn snapshot(row: i64, stored: &Stored) -> Self {
        Line::Snapshot {
            row,
            reader: stored.reader.clone(),
            prior_kind: stored.prior.kind().to_string(),
            prior: stored.prior.content().map(str::to_string),
            after: stored.after.clone(),
            created: stored.created.clone(),
        }
    }
}

/// The archive mark: where the log now starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Mark {
    /// The last archived event and its hash.
    pub start: Head,
    /// The last archived row.
    pub through_row: i64,
}

impl Mark {
    fn body(&self) -> String {
        format!("{} through row {}", self.start, self.through_row)
    }

    /// As stored: the body and its MAC.
    fn sealed(&self, key: &ChainKey) -> String {
        let body = self.body();
        let mac = key.mac(&[b"flaregate audit archive v1\n", body.as_bytes()]);
        format!("{body} mac {mac}")
    }

    /// A stored mark, checked against `key`.
    pub(super) fn open(stored: &str, key: &ChainKey) -> Result<Self, String> {
        let forged = || {
            "the archive mark in the log was not written with this audit key: rows at the start of the log were removed or the mark was altered".to_string()
        };
        let (body, mac) = stored.rsplit_once(" mac ").ok_or_else(forged)?;
        let (head, row) = body.split_once(" through row ").ok_or_else(forged)?;
        let mark = Mark {
            start: head.parse().map_err(|_| forged())?,
            through_row: row.parse().map_err(|_| forged())?,
        };
        let expected = key.mac(&[b"flaregate audit archive v1\n", body.as_bytes()]);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            mac.as_bytes(),
        )) {
            return Err(forged());
        }
        Ok(mark)
    }
}

/// Where the log at hand starts: the genesis, or its archive mark's head.
pub(super) fn start(
    source: &mut Source,
    key: &ChainKey,
) -> Result<Result<Head, String>, AuditError> {
    Ok(match source.archive_mark()? {
        None => Ok(Head::genesis()),
        Some(stored) => Mark::open(&stored, key).map(|mark| mark.start),
    })
}

/// What an export or archive wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub span: Span,
    /// The rows whose decisions are in it, first and last.
    pub first_row: i64,
    pub last_row: i64,
}

/// Writes every event of the rows decided in `[since, until)` (ms since
/// the epoch), and the events of other rows between them so the stretch is
/// whole, to `out`. `None` when no row was decided then.
pub fn export(
    files: &AuditFiles,
    since: Option<i64>,
    until: Option<i64>,
    out: &mut (dyn Write + Send),
) -> Result<Option<Written>, AuditError> {
    let key = ChainKey::load(&files.key)?;
    super::with_source(&files.db, |source| {
        let (_, events) = source.events()?;
        let decided = |e: &Event| match &e.content {
            Content::Decision(r) => {
                since.is_none_or(|s| r.ts_unix_ms >= s) && until.is_none_or(|u| r.ts_unix_ms < u)
            }
            Content::Outcome { .. } => false,
        };
        let rows: Vec<i64> = events
            .iter()
            .filter(|e| decided(e))
            .map(|e| e.row)
            .collect();
        let (Some(&first_row), Some(&last_row)) = (rows.first(), rows.last()) else {
            return Ok(None);
        };
        let seqs = events
            .iter()
            .filter(|e| (first_row..=last_row).contains(&e.row))
            .map(|e| e.seq);
        let (first, last) = (seqs.clone().min(), seqs.max());
        let (Some(first), Some(last)) = (first, last) else {
            return Ok(None);
        };
        let stretch: Vec<&Event> = events
            .iter()
            .filter(|e| (first..=last).contains(&e.seq))
            .collect();
        let written = write_file(out, &stretch, &[], &key)?;
        Ok(Some(written))
    })
}

/// Checks an export or archive file on its own with `key`: every event's
/// hash, the links between them, and that it holds what its first line
/// says it spans.
pub fn verify_file(path: &Path, key: &ChainKey) -> Result<(Span, ChainVerdict), AuditError> {
    let bad = |line: usize, e: &dyn std::fmt::Display| {
        AuditError::Unavailable(format!("{}:{line}: {e}", path.display()))
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| AuditError::Unavailable(format!("cannot read {}: {e}", path.display())))?;
    let mut lines = text.lines();
    let span: Span = serde_json::from_str(lines.next().unwrap_or_default())
        .map_err(|e| bad(1, &format!("not a flaregate export ({e})")))?;
    if span.format != FORMAT {
        return Err(bad(1, &format!("`{}` is not {FORMAT}", span.format)));
    }
    let mut events = Vec::new();
    let mut rows = std::collections::BTreeSet::new();
    for (number, line) in lines.enumerate() {
        let line: Line = serde_json::from_str(line).map_err(|e| bad(number + 2, &e))?;
        if let Some(event) = line.into_event() {
            if event.is_decision() {
                rows.insert(event.row);
            }
            events.push(event);
        }
    }
    events.sort_by_key(Event::seq);
    let start = Head {
        events: span.first_event - 1,
        hash: span.prev.clone(),
    };
    let end = Head {
        events: span.last_event,
        hash: span.head.clone(),
    };
    let marks = [chain::Mark {
        head: &end,
        from: "the file's first line",
    }];
    let verdict = chain::verify_events(
        rows.len() as u64,
        &events,
        chain::Formula::Keyed(key),
        &marks,
        &start,
    );
    let verdict = match verdict {
        ChainVerdict::Valid { head, .. } if head != end => ChainVerdict::Broken {
            row: None,
            problem: format!(
                "the file ends at event {} but its first line says {}",
                head.events, end.events
            ),
        },
        verdict => verdict,
    };
    Ok((span, verdict))
}

/// Moves the rows decided before `before` (ms since the epoch) out of the
/// log into a new file at `out`, with their snapshots: the chain is
/// verified first, the file written and synced, then the rows deleted and
/// the archive mark set in one transaction. Stops before a row that may
/// still be in flight, and always keeps the newest row. `None` when there
/// is nothing to archive.
pub fn archive(files: &AuditFiles, before: i64, out: &Path) -> Result<Option<Written>, AuditError> {
    let key = ChainKey::load(&files.key)?;
    let verdict = super::verify(files, None)?;
    if let ChainVerdict::Broken { problem, .. } = verdict {
        return Err(AuditError::Unavailable(format!(
            "the log does not verify ({problem}): nothing was archived; keep the log as it is and find out why"
        )));
    }
    let now = super::now_unix_ms();
    let (written, old) = super::with_source(&files.db, |source| {
        let old = source.archive_mark()?;
        let (_, events) = source.events()?;
        let Some(cut) = cut_point(&events, before, now) else {
            return Ok((None, old));
        };
        let stretch: Vec<&Event> = events.iter().take_while(|e| e.seq <= cut).collect();
        let last_row = stretch.iter().map(|e| e.row).max().unwrap_or_default();
        let snapshots = source.snapshots_through(last_row)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(out)
            .map_err(|e| {
                AuditError::Unavailable(format!("cannot create {}: {e}", out.display()))
            })?;
        let written = write_file(&mut file, &stretch, &snapshots, &key)?;
        file.sync_all()
            .map_err(|e| AuditError::Unavailable(format!("{}: {e}", out.display())))?;
        Ok((Some(written), old))
    })?;
    let Some(written) = written else {
        return Ok(None);
    };
    let mark = Mark {
        start: Head {
            events: written.span.last_event,
            hash: written.span.head.clone(),
        },
        through_row: written.last_row,
    };
    let sealed = mark.sealed(&key);
    let cut = match &files.db {
        Database::Sqlite(path) => cut_sqlite(path, old.as_deref(), &sealed, mark.through_row),
        Database::Postgres(url) => super::postgres::off_runtime(|| {
            super::postgres::Reader::open(url)?
                .cut(old.as_deref(), &sealed, mark.through_row)
                .map_err(|e| AuditError::Unavailable(e.0))
        }),
    };
    if let Err(error) = cut {
        // The log is as it was: the file is a copy, not the only record.
        let _ = std::fs::remove_file(out);
        return Err(error);
    }
    Ok(Some(written))
}

/// The last event that may be cut after: every event up to it belongs to
/// a row decided before `before` that is finished (or too old to be in
/// flight), no such row has an event after it, and the newest row stays.
fn cut_point(events: &[Event], before: i64, now: i64) -> Option<i64> {
    let mut last_of: HashMap<i64, i64> = HashMap::new();
    let mut outcome: HashMap<i64, bool> = HashMap::new();
    for event in events {
        last_of.insert(event.row, event.seq);
        *outcome.entry(event.row).or_default() |= !event.is_decision();
    }
    let newest_row = events.iter().map(|e| e.row).max()?;
    let (mut reach, mut cut) = (0, None);
    for event in events {
        if let Content::Decision(record) = &event.content {
            let young = now - record.ts_unix_ms < IN_FLIGHT_MS;
            let unfinished = !outcome[&event.row] && young;
            if record.ts_unix_ms >= before || unfinished || event.row == newest_row {
                break;
            }
        }
        reach = reach.max(last_of[&event.row]);
        if reach == event.seq {
            cut = Some(event.seq);
        }
    }
    cut
}

fn write_file(
    out: &mut dyn Write,
    events: &[&Event],
    snapshots: &[(i64, Stored)],
    key: &ChainKey,
) -> Result<Written, AuditError> {
    let (first, last) = (
        events.first().expect("a stretch is not empty"),
        events.last().expect("a stretch is not empty"),
    );
    let rows: Vec<i64> = events
        .iter()
        .filter(|e| e.is_decision())
        .map(|e| e.row)
        .collect();
    let span = Span {
        format: FORMAT.into(),
        first_event: first.seq,
        last_event: last.seq,
        prev: first.prev.clone(),
        head: last.stored.clone(),
        rows: rows.len() as u64,
        key: key.fingerprint(),
    };
    let failed = |e: std::io::Error| AuditError::Unavailable(format!("writing the export: {e}"));
    let mut out = std::io::BufWriter::new(out);
    writeln!(out, "{}", json(&span)).map_err(failed)?;
    for event in events {
        writeln!(out, "{}", json(&Line::of(event))).map_err(failed)?;
    }
    for (row, stored) in snapshots {
        writeln!(out, "{}", json(&Line::snapshot(*row, stored))).map_err(failed)?;
    }
    out.flush().map_err(failed)?;
    Ok(Written {
        span,
        first_row: rows.first().copied().unwrap_or(first.row),
        last_row: rows.last().copied().unwrap_or(last.row),
    })
}

fn json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("strings and numbers always serialise")
}

fn cut_sqlite(
    path: &Path,
    old: Option<&str>,
    sealed: &str,
    through_row: i64,
) -> Result<(), AuditError> {
    use rusqlite::OptionalExtension;
    let failed = |e: rusqlite::Error| AuditError::Unavailable(format!("archiving: {e}"));
    let mut connection = super::open_database(path).map_err(failed)?;
    let tx = connection
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(failed)?;
    let now: Option<String> = tx
        .query_row(
            "SELECT value FROM chain_meta WHERE name = 'archived'",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(failed)?;
    if now.as_deref() != old {
        return Err(AuditError::Unavailable(
            "another archive ran meanwhile: nothing was archived; run it again".into(),
        ));
    }
    tx.execute("DELETE FROM snapshots WHERE call_id <= ?1", [through_row])
        .map_err(failed)?;
    tx.execute("DELETE FROM calls WHERE id <= ?1", [through_row])
        .map_err(failed)?;
    tx.execute(
        "INSERT OR REPLACE INTO chain_meta (name, value) VALUES ('archived', ?1)",
        [sealed],
    )
    .map_err(failed)?;
    tx.commit().map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(seq: i64, row: i64, ts_unix_ms: i64) -> Event {
        let record = CallRecord {
            ts: String::new(),
            ts_unix_ms,
            agent: "a".into(),
            tool: "t".into(),
            method: "GET".into(),
            path: "/".into(),
            target: String::new(),
            args: "{}".into(),
            decision: Decision::Allow,
            reason: String::new(),
            rule: String::new(),
            summary: String::new(),
            lookup: String::new(),
            sandbox: false,
        };
        Event::decision(seq, row, String::new(), String::new(), record)
    }

    fn outcome(seq: i64, row: i64, decided: i64) -> Event {
        Event::outcome(
            (seq, row, decided),
            String::new(),
            String::new(),
            Outcome::default(),
            String::new(),
        )
    }

    /// Row 2's outcome comes after row 3's decision.
    fn interleaved(young_from: i64) -> Vec<Event> {
        vec![
            decision(1, 1, 0),
            outcome(2, 1, 1),
            decision(3, 2, 0),
            decision(4, 3, young_from),
            outcome(5, 2, 3),
            outcome(6, 3, 4),
            decision(7, 4, 0),
            outcome(8, 4, 7),
        ]
    }

    /// A cut falls after row 1 or after row 3's outcome, never inside a
    /// row; the newest row stays; a young row without an outcome (in
    /// flight) stops it, an old one (a crash) does not.
    #[test]
    fn the_cut_never_splits_a_row_and_keeps_the_newest() {
        let now = 10 * IN_FLIGHT_MS;
        assert_eq!(cut_point(&interleaved(0), 1, now), Some(6));
        assert_eq!(
            cut_point(&interleaved(0), 0, now),
            None,
            "nothing before then"
        );
        let mut open = interleaved(0);
        open.truncate(4);
        open.push(decision(5, 4, 0));
        assert_eq!(cut_point(&open, 1, now), Some(4), "old unfinished rows go");
        let mut in_flight = interleaved(now - 1);
        in_flight.truncate(4);
        in_flight.push(decision(5, 4, 0));
        assert_eq!(
            cut_point(&in_flight, now, now),
            Some(3),
            "row 3 may be in flight"
        );
    }
}
