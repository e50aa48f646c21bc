//! `audit export`: a stretch of the chain as JSON lines that verify on
//! their own with the key. The first line says which events they span
//! (the hash before the first, the head after the last); every event
//! carries its hash; an archive adds the snapshots of its rows.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::AuditError;
use super::chain::{self, ChainVerdict, Content, Event, Head};
use super::key::{AuditFiles, ChainKey};
use super::record::{CallRecord, Decision, Outcome};
use super::snapshot::Stored;

/// The first line of every export and archive file.
pub(super) const FORMAT: &str = "flaregate audit export v1";

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
    if span.key != key.fingerprint() {
        return Err(bad(
            1,
            &format!(
                "it was written with the audit key of fingerprint {}, not this one ({}): give that key",
                span.key,
                key.fingerprint()
            ),
        ));
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

pub(super) fn write_file(
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
