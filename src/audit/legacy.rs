//! Logs written before the audit key existed were chained with plain
//! SHA-256, which anyone can recompute. At first start with a key, such a
//! log is verified with the old formula and, only if it holds, re-chained
//! with the key in one transaction; a broken log is refused, not re-keyed.

use rusqlite::{Connection, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::chain::{self, ChainVerdict, Formula, GENESIS};
use super::key::ChainKey;
use super::record::{CallRecord, Outcome};

/// SHA-256 over `prev`, a newline and `content` as compact JSON.
fn hash(prev: &str, content: &impl Serialize) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev.as_bytes());
    hasher.update(b"\n");
    serde_json::to_writer(&mut hasher, content).expect("strings and numbers always serialise");
    hex::encode(hasher.finalize())
}

/// The unkeyed hash of a decision event (logs of schema version 1 and 2).
pub(super) fn decision_hash(prev: &str, seq: i64, r: &CallRecord) -> String {
    let decision = r.decision.as_str();
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

/// The unkeyed hash of an outcome event.
pub(super) fn outcome_hash(
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

/// Verifies an unkeyed log and re-chains every event with `key`, in one
/// transaction. Returns how many rows were re-keyed.
pub(super) fn rekey(connection: &mut Connection, key: &ChainKey) -> Result<u64, String> {
    match chain::verify(connection, Formula::Legacy, &[]).map_err(|e| e.to_string())? {
        ChainVerdict::Valid { rows, .. } => {
            let tx = connection.transaction().map_err(|e| e.to_string())?;
            rechain(&tx, key).map_err(|e| e.to_string())?;
            tx.commit().map_err(|e| e.to_string())?;
            Ok(rows)
        }
        ChainVerdict::Broken { problem, .. } => Err(format!(
            "it was written before flaregate keyed its chain, and its chain is broken ({problem}); \
             it is left as it is: keep it as evidence and start a new log under another name"
        )),
    }
}

/// Recomputes every event's hash with the key, in chain order.
fn rechain(tx: &rusqlite::Transaction<'_>, key: &ChainKey) -> rusqlite::Result<()> {
    let (_, events) = chain::read_events(tx)?;
    let formula = Formula::Keyed(key);
    let mut prev = GENESIS.to_string();
    for event in &events {
        let hash = event.compute(formula, &prev);
        let sql = if event.is_decision() {
            "UPDATE calls SET prev_hash = ?1, hash = ?2 WHERE id = ?3"
        } else {
            "UPDATE calls SET outcome_prev_hash = ?1, outcome_hash = ?2 WHERE id = ?3"
        };
        tx.execute(sql, params![prev, hash, event.row])?;
        prev = hash;
    }
    Ok(())
}
