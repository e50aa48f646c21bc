//! The hash chain. Each decision and each outcome is an event numbered in
//! write order; an event's hash is SHA-256 over the previous event's hash
//! and the event's content. Editing a row breaks its hash; deleting one
//! leaves a gap in the numbering and breaks the next event's link.

use rusqlite::{Connection, Row};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::record::{CallRecord, Outcome};

/// The `prev_hash` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// SHA-256 over `prev`, a newline and `content` as compact JSON. Events are
/// tuples, which serialise as JSON arrays without building a `Value`.
fn hash(prev: &str, content: &impl Serialize) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev.as_bytes());
    hasher.update(b"\n");
    serde_json::to_writer(&mut hasher, content).expect("strings and numbers always serialise");
    hex::encode(hasher.finalize())
}

/// The hash of a decision event.
pub fn decision_hash(prev: &str, seq: i64, r: &CallRecord) -> String {
    let decision = if r.allowed { "allow" } else { "deny" };
    let content = (
        "decision",
        seq,
        &r.ts,
        r.ts_unix_ms,
        &r.agent,
        &r.tool,
        &r.method,
        &r.path,
        &r.target,
        &r.args,
        decision,
        &r.reason,
        &r.rule,
        &r.summary,
    );
    hash(prev, &content)
}

/// The hash of an outcome event, bound to its decision by `decision_seq`.
pub fn outcome_hash(
    prev: &str,
    seq: i64,
    decision_seq: i64,
    o: &Outcome,
    cf_codes: &str,
) -> String {
    let content = (
        "outcome",
        seq,
        decision_seq,
        o.status,
        cf_codes,
        &o.error,
        o.duration_ms,
        &o.text,
    );
    hash(prev, &content)
}

/// What `audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every row's events are present and their hashes match.
    Valid { rows: u64, events: u64 },
    /// The first problem found, in chain order.
    Broken { row: i64, problem: String },
}

struct Event {
    seq: i64,
    row: i64,
    prev: String,
    stored: String,
    computed_with: Box<dyn Fn(&str) -> String>,
}

/// Checks the whole chain, in event order.
pub fn verify(connection: &Connection) -> rusqlite::Result<Verdict> {
    let mut statement = connection.prepare(
        "SELECT id, ts, ts_unix_ms, agent, tool, method, path, target, args, decision, reason, rule, summary,
                seq, prev_hash, hash, status, cf_codes, error, duration_ms, outcome,
                outcome_seq, outcome_prev_hash, outcome_hash
         FROM calls ORDER BY id",
    )?;
    let mut events: Vec<Event> = Vec::new();
    let mut rows = 0u64;
    let mut query = statement.query([])?;
    while let Some(row) = query.next()? {
        rows += 1;
        events.extend(row_events(row)?);
    }
    events.sort_by_key(|e| e.seq);
    let mut prev = GENESIS.to_string();
    for (expected, event) in (1_i64..).zip(&events) {
        if event.seq != expected {
            return Ok(Verdict::Broken {
                row: event.row,
                problem: format!(
                    "event {expected} is missing before row {}: a row was deleted",
                    event.row
                ),
            });
        }
        if event.prev != prev {
            return Ok(Verdict::Broken {
                row: event.row,
                problem: format!("row {} does not link to the event before it", event.row),
            });
        }
        if (event.computed_with)(&prev) != event.stored {
            return Ok(Verdict::Broken {
                row: event.row,
                problem: format!("row {} does not match its hash: it was edited", event.row),
            });
        }
        prev = event.stored.clone();
    }
    Ok(Verdict::Valid {
        rows,
        events: events.len() as u64,
    })
}

/// The one or two events a row holds.
fn row_events(row: &Row<'_>) -> rusqlite::Result<Vec<Event>> {
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
        allowed: row.get::<_, String>("decision")? == "allow",
        reason: row.get("reason")?,
        rule: row.get("rule")?,
        summary: row.get("summary")?,
    };
    let seq: i64 = row.get("seq")?;
    let mut events = vec![Event {
        seq,
        row: id,
        prev: row.get("prev_hash")?,
        stored: row.get("hash")?,
        computed_with: Box::new(move |prev| decision_hash(prev, seq, &record)),
    }];
    if let Some(outcome_seq) = row.get::<_, Option<i64>>("outcome_seq")? {
        let codes: String = row
            .get::<_, Option<String>>("cf_codes")?
            .unwrap_or_default();
        let outcome = Outcome {
            status: row.get::<_, Option<u16>>("status")?,
            cf_codes: Vec::new(),
            error: row.get("error")?,
            duration_ms: row
                .get::<_, Option<i64>>("duration_ms")?
                .map(|d| d.max(0) as u64),
            text: row.get::<_, Option<String>>("outcome")?.unwrap_or_default(),
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
            computed_with: Box::new(move |prev| {
                outcome_hash(prev, outcome_seq, seq, &outcome, &codes)
            }),
        });
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sha256_hex(text: &str) -> String {
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    /// Logs written before keep verifying: an event's hash is SHA-256 over
    /// the previous hash, "\n" and the event as a compact JSON array.
    #[test]
    fn events_hash_as_compact_json_arrays() {
        let record = CallRecord {
            ts: "2026-11-28T12:00:00.000Z".into(),
            ts_unix_ms: 1_764_331_200_000,
            agent: "site-deployer".into(),
            tool: "list_dns_records".into(),
            method: "GET".into(),
            path: "/zones/z/dns_records".into(),
            target: "zone example.com".into(),
            args: r#"{"zone_id":"z"}"#.into(),
            allowed: true,
            reason: "its DNS grant is \"read\"".into(),
            rule: "grants.dns".into(),
            summary: "site-deployer was allowed to list DNS records.".into(),
        };
        let expected = json!([
            "decision",
            7,
            record.ts,
            record.ts_unix_ms,
            record.agent,
            record.tool,
            record.method,
            record.path,
            record.target,
            record.args,
            "allow",
            record.reason,
            record.rule,
            record.summary
        ]);
        assert_eq!(
            decision_hash(GENESIS, 7, &record),
            sha256_hex(&format!("{GENESIS}\n{expected}"))
        );

        let outcome = Outcome {
            status: Some(200),
            cf_codes: Vec::new(),
            error: None,
            duration_ms: Some(12),
            text: "Cloudflare answered 200 in 12 ms.".into(),
        };
        let expected = json!(["outcome", 8, 7, 200, "[]", null, 12, outcome.text]);
        assert_eq!(
            outcome_hash("abc", 8, 7, &outcome, "[]"),
            sha256_hex(&format!("abc\n{expected}"))
        );
    }
}
