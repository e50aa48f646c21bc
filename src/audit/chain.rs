//! The hash chain. Each decision and each outcome is an event numbered in
//! write order; an event's hash is HMAC-SHA256, keyed with the audit key
//! (kept outside the database), over the previous event's hash and every
//! stored column of the event, the row id included. Editing a row breaks
//! its hash, and without the key it cannot be recomputed; deleting one
//! leaves a gap in the numbering; cutting the end off is caught by the
//! head checkpoints (`checkpoint.rs`).

use std::fmt;

use rusqlite::{Connection, Row};
use serde::Serialize;

use super::key::ChainKey;
use super::legacy;
use super::record::{CallRecord, Outcome};

/// The `prev_hash` of the first event.
pub(super) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The end of the chain after `events` events: what a checkpoint records
/// and `flaregate audit head` prints as `EVENTS:HASH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub events: i64,
    pub hash: String,
}

impl Head {
    pub fn genesis() -> Self {
        Self {
            events: 0,
            hash: GENESIS.to_string(),
        }
    }
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.events, self.hash)
    }
}

impl std::str::FromStr for Head {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!("`{text}` is not a head: write EVENTS:HASH as `flaregate audit head` prints it")
        };
        let (events, hash) = text.trim().split_once(':').ok_or_else(bad)?;
        let events: i64 = events.parse().map_err(|_| bad())?;
        let hash = hash.to_ascii_lowercase();
        if events < 0 || hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Self { events, hash })
    }
}

/// How event hashes are computed: keyed (every log now), or the plain
/// SHA-256 of logs written before the key existed (read once, to re-key).
#[derive(Clone, Copy)]
pub(super) enum Formula<'a> {
    Keyed(&'a ChainKey),
    Legacy,
}

impl Formula<'_> {
    /// The hash of a decision event.
    pub(super) fn decision(&self, prev: &str, seq: i64, id: i64, r: &CallRecord) -> String {
        let key = match self {
            Formula::Keyed(key) => key,
            Formula::Legacy => return legacy::decision_hash(prev, seq, r),
        };
        let decision = r.decision.as_str();
        let content = (
            ("decision", seq, id, &r.ts, r.ts_unix_ms, &r.agent, &r.tool),
            (&r.method, &r.path, &r.target, &r.args, decision, &r.reason),
            (&r.rule, &r.summary, &r.lookup, r.sandbox),
        );
        keyed(key, prev, &content)
    }

    /// The hash of an outcome event, bound to its decision by `decision_seq`.
    pub(super) fn outcome(
        &self,
        prev: &str,
        (seq, id, decision_seq): (i64, i64, i64),
        o: &Outcome,
        cf_codes: &str,
    ) -> String {
        let key = match self {
            Formula::Keyed(key) => key,
            Formula::Legacy => return legacy::outcome_hash(prev, seq, decision_seq, o, cf_codes),
        };
        let content = (
            "outcome",
            seq,
            id,
            decision_seq,
            o.status,
            cf_codes,
            &o.error,
            o.duration_ms,
            &o.text,
        );
        keyed(key, prev, &content)
    }
}

/// HMAC over `prev`, a newline and `content` as compact JSON. Events are
/// tuples, which serialise as JSON arrays without building a `Value`.
fn keyed(key: &ChainKey, prev: &str, content: &impl Serialize) -> String {
    use hmac::Mac;
    let mut mac = key.hasher();
    mac.update(prev.as_bytes());
    mac.update(b"\n");
    serde_json::to_writer(&mut mac, content).expect("strings and numbers always serialise");
    hex::encode(mac.finalize().into_bytes())
}

/// What `audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainVerdict {
    /// Every row's events are present, their hashes match, and every head
    /// the chain was checked against is in it.
    Valid { rows: u64, head: Head },
    /// The first problem found, in chain order; the row, when one row is
    /// to blame.
    Broken { row: Option<i64>, problem: String },
}

/// A head the chain must contain, and where it came from (for messages:
/// "the head checkpoint", "the head you gave").
pub(super) struct Mark<'a> {
    pub head: &'a Head,
    pub from: &'a str,
}

/// One event as stored: a decision or an outcome of row `row`.
pub(super) struct Event {
    pub(super) seq: i64,
    pub row: i64,
    pub(super) prev: String,
    pub(super) stored: String,
    pub(super) content: Content,
}

pub(super) enum Content {
    Decision(Box<CallRecord>),
    Outcome {
        decision_seq: i64,
        outcome: Outcome,
        codes: String,
    },
}

impl Event {
    /// Row `row`'s decision, event `seq`.
    pub(super) fn decision(
        seq: i64,
        row: i64,
        prev: String,
        stored: String,
        record: CallRecord,
    ) -> Self {
        Self {
            seq,
            row,
            prev,
            stored,
            content: Content::Decision(Box::new(record)),
        }
    }

    /// Row `row`'s outcome, event `seq`, bound to its decision event.
    pub(super) fn outcome(
        (seq, row, decision_seq): (i64, i64, i64),
        prev: String,
        stored: String,
        outcome: Outcome,
        codes: String,
    ) -> Self {
        Self {
            seq,
            row,
            prev,
            stored,
            content: Content::Outcome {
                decision_seq,
                outcome,
                codes,
            },
        }
    }

    /// Its number in the chain.
    pub(super) fn seq(&self) -> i64 {
        self.seq
    }

    pub(super) fn is_decision(&self) -> bool {
        matches!(self.content, Content::Decision(_))
    }

    /// The event's hash under `formula`, following `prev`.
    pub(super) fn compute(&self, formula: Formula<'_>, prev: &str) -> String {
        match &self.content {
            Content::Decision(record) => formula.decision(prev, self.seq, self.row, record),
            Content::Outcome {
                decision_seq,
                outcome,
                codes,
            } => formula.outcome(prev, (self.seq, self.row, *decision_seq), outcome, codes),
        }
    }
}

/// Checks the whole chain, in event order, and that it holds every mark.
pub(super) fn verify(
    connection: &Connection,
    formula: Formula<'_>,
    marks: &[Mark<'_>],
) -> rusqlite::Result<ChainVerdict> {
    let (rows, events) = read_events(connection)?;
    Ok(verify_events(
        rows,
        &events,
        formula,
        marks,
        &Head::genesis(),
    ))
}

/// Checks `events` (every event of `rows` rows, in chain order, from
/// either store) from `start` — the genesis, or the end of what was
/// archived — and that they hold every mark past it (a mark before
/// `start` cannot be checked here).
pub(super) fn verify_events(
    rows: u64,
    events: &[Event],
    formula: Formula<'_>,
    marks: &[Mark<'_>],
    start: &Head,
) -> ChainVerdict {
    let mut prev = start.hash.clone();
    for mark in marks.iter().filter(|m| m.head.events == start.events) {
        if mark.head.hash != start.hash {
            return broken(
                None,
                format!("{} does not match the start of the chain", mark.from),
            );
        }
    }
    for (expected, event) in (start.events + 1..).zip(events) {
        if event.seq != expected {
            return broken(
                Some(event.row),
                format!(
                    "event {expected} is missing before row {}: a row was deleted",
                    event.row
                ),
            );
        }
        if event.prev != prev {
            return broken(
                Some(event.row),
                format!("row {} does not link to the event before it", event.row),
            );
        }
        if event.compute(formula, &prev) != event.stored {
            return broken(
                Some(event.row),
                format!(
                    "row {} does not match its hash: it was edited (or rewritten without the audit key)",
                    event.row
                ),
            );
        }
        prev.clone_from(&event.stored);
        for mark in marks.iter().filter(|m| m.head.events == expected) {
            if mark.head.hash != prev {
                return broken(
                    Some(event.row),
                    format!(
                        "event {expected} (row {}) is not the one {} names: the log was rewritten",
                        event.row, mark.from
                    ),
                );
            }
        }
    }
    let head = Head {
        events: start.events + events.len() as i64,
        hash: prev,
    };
    if let Some(mark) = marks.iter().find(|m| m.head.events > head.events) {
        return broken(
            None,
            format!(
                "the log ends at event {} but {} has event {}: rows were removed from the end",
                head.events, mark.from, mark.head.events
            ),
        );
    }
    ChainVerdict::Valid { rows, head }
}

fn broken(row: Option<i64>, problem: String) -> ChainVerdict {
    ChainVerdict::Broken { row, problem }
}

/// Every event of every row, in chain order, and the number of rows.
pub(super) fn read_events(connection: &Connection) -> rusqlite::Result<(u64, Vec<Event>)> {
    let mut statement = connection.prepare(
        "SELECT id, ts, ts_unix_ms, agent, tool, method, path, target, args, decision, reason, rule, summary,
                lookup, sandbox, seq, prev_hash, hash, status, cf_codes, error, duration_ms, outcome,
                outcome_seq, outcome_prev_hash, outcome_hash
         FROM calls ORDER BY id",
    )?;
    let mut events: Vec<Event> = Vec::new();
    let mut rows = 0u64;
    let mut query = statement.query([])?;
    while let Some(row) = query.next()? {
        rows += 1;
        row_events(row, &mut events)?;
    }
    events.sort_by_key(|e| e.seq);
    Ok((rows, events))
}

/// The one or two events a row holds.
fn row_events(row: &Row<'_>, events: &mut Vec<Event>) -> rusqlite::Result<()> {
    let id: i64 = row.get("id")?;
    let record = CallRecord {
        ts: row.get("ts")?,
        ts_unix_ms: row.get("ts_unix_ms")?,
        agent: row.get("agent")?,
        tool: row.get("tool")?,
        method: row.get("method")?,
        path: row.get("path")?,
        target: row.get("target")?,
        args: row.get("args")?,
        decision: super::Decision::parse(&row.get::<_, String>("decision")?),
        reason: row.get("reason")?,
        rule: row.get("rule")?,
        summary: row.get("summary")?,
        lookup: row.get("lookup")?,
        sandbox: row.get("sandbox")?,
    };
    let seq: i64 = row.get("seq")?;
    events.push(Event {
        seq,
        row: id,
        prev: row.get("prev_hash")?,
        stored: row.get("hash")?,
        content: Content::Decision(Box::new(record)),
    });
    if let Some(outcome_seq) = row.get::<_, Option<i64>>("outcome_seq")? {
        let outcome = Outcome {
            status: row.get::<_, Option<u16>>("status")?,
            cf_codes: Vec::new(),
            error: row.get("error")?,
            duration_ms: row
                .get::<_, Option<i64>>("duration_ms")?
                .map(|d| d.max(0) as u64),
            text: row.get::<_, Option<String>>("outcome")?.unwrap_or_default(),
            ..Outcome::default()
        };
        events.push(Event {
            seq: outcome_seq,
            row: id,
            prev: row
                .get::<_, Option<String>>("outcome_prev_hash")?
                .unwrap_or_default(),
            stored: row
                .get::<_, Option<String>>("outcome_hash")?
                .unwrap_or_default(),
            content: Content::Outcome {
                decision_seq: seq,
                outcome,
                codes: row
                    .get::<_, Option<String>>("cf_codes")?
                    .unwrap_or_default(),
            },
        });
    }
    Ok(())
}

/// The last event of the chain as stored (not verified).
pub(super) fn stored_head(connection: &Connection) -> rusqlite::Result<Head> {
    use rusqlite::OptionalExtension;
    let last = connection
        .query_row(
            "SELECT seq, hash FROM calls WHERE seq = (SELECT MAX(seq) FROM calls)
             UNION ALL
             SELECT outcome_seq, outcome_hash FROM calls WHERE outcome_seq = (SELECT MAX(outcome_seq) FROM calls WHERE outcome_seq IS NOT NULL)
             ORDER BY 1 DESC LIMIT 1",
            [],
            |row| Ok(Head { events: row.get(0)?, hash: row.get(1)? }),
        )
        .optional()?;
    Ok(last.unwrap_or_else(Head::genesis))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> CallRecord {
        CallRecord {
            ts: "2026-11-28T12:00:00.000Z".into(),
            ts_unix_ms: 1_764_331_200_000,
            agent: "site-deployer".into(),
            tool: "list_dns_records".into(),
            method: "GET".into(),
            path: "/zones/z/dns_records".into(),
            target: "zone example.com".into(),
            args: r#"{"zone_id":"z"}"#.into(),
            decision: crate::audit::Decision::Allow,
            reason: "your DNS grant is \"read\"".into(),
            rule: "grants.dns".into(),
            summary: "site-deployer was allowed to list DNS records.".into(),
            lookup: String::new(),
            sandbox: false,
        }
    }

    /// The hash depends on the key, the row id and every column: without
    /// the key the public formula gives another answer.
    #[test]
    fn events_are_keyed_and_cover_the_row_id() {
        let key = ChainKey::from_bytes([7; 32]);
        let other = ChainKey::from_bytes([8; 32]);
        let r = record();
        let hash = Formula::Keyed(&key).decision(GENESIS, 1, 1, &r);
        assert_ne!(hash, Formula::Keyed(&other).decision(GENESIS, 1, 1, &r));
        assert_ne!(hash, Formula::Keyed(&key).decision(GENESIS, 1, 2, &r));
        assert_ne!(hash, Formula::Legacy.decision(GENESIS, 1, 1, &r));
        let mut sandboxed = r.clone();
        sandboxed.sandbox = true;
        assert_ne!(
            hash,
            Formula::Keyed(&key).decision(GENESIS, 1, 1, &sandboxed)
        );
    }

    #[test]
    fn heads_parse_as_printed() {
        let head = Head {
            events: 12,
            hash: "ab".repeat(32),
        };
        assert_eq!(head.to_string().parse::<Head>(), Ok(head));
        assert!("12".parse::<Head>().is_err());
        assert!("x:ab".parse::<Head>().is_err());
    }
}
