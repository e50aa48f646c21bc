//! `audit archive`: old rows moved out of the log into an export file
//! with their snapshots. The log then starts where the archive ends; the
//! archive mark (the cut's event, hash and last row, MAC'd with the key,
//! kept in `chain_meta`) is what `verify` starts from, so rows deleted
//! without the key still show as a gap.

use std::collections::HashMap;
use std::path::Path;

use super::chain::{ChainVerdict, Content, Event, Head};
use super::export::{Written, write_file};
use super::key::{AuditFiles, ChainKey};
use super::source::Source;
use super::{AuditError, Database};

/// Rows without an outcome younger than this may still be in flight: an
/// archive stops before them.
const IN_FLIGHT_MS: i64 = 60 * 60 * 1000;

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
    use crate::audit::record::{CallRecord, Decision, Outcome};

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
