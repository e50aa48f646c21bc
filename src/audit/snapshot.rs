//! Snapshots: what an allowed write changed, kept beside its row so the
//! write can be undone. The object before the write is stored deflated; its
//! SHA-256 is written into the row's `lookup` text, which the chain hashes,
//! so `audit verify` catches an edited snapshot. What the write answered and
//! the id of what it created are added with the outcome.

use std::io::{Read, Write};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use sha2::{Digest, Sha256};

/// What was there before a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prior {
    /// The object as Cloudflare sent it (JSON).
    Object(String),
    /// A text read's content (Worker code).
    Text(String),
    /// Cloudflare answered 404: the write made it.
    Missing,
    /// A create: there was nothing to read.
    Nothing,
}

impl Prior {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Prior::Object(_) => "object",
            Prior::Text(_) => "text",
            Prior::Missing => "missing",
            Prior::Nothing => "nothing",
        }
    }

    pub(super) fn content(&self) -> Option<&str> {
        match self {
            Prior::Object(text) | Prior::Text(text) => Some(text),
            Prior::Missing | Prior::Nothing => None,
        }
    }

    /// The SHA-256 (hex) of the content, if there is content.
    pub fn digest(&self) -> Option<String> {
        self.content().map(sha256_hex)
    }

    /// Its size as stored: deflated bytes (0 without content).
    pub fn stored_size(&self) -> usize {
        self.content().map_or(0, |c| deflate(c.as_bytes()).len())
    }
}

/// A write's snapshot as the writer stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The tool that read the prior state ("" for a create).
    pub reader: String,
    pub prior: Prior,
}

/// A snapshot as read back, with what the write answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub reader: String,
    pub prior: Prior,
    /// The write's answer (JSON), or for code the SHA-256 of what it sent.
    pub after: Option<String>,
    /// The id of what the write created.
    pub created: Option<String>,
}

/// The note the row's `lookup` text gets, hashed by the chain: the kind,
/// the reader and the digest of what was kept (`integrity.rs` checks the
/// snapshot against it).
pub fn note(snapshot: &Snapshot) -> String {
    let (kind, reader) = (snapshot.prior.kind(), &snapshot.reader);
    match snapshot.prior.digest() {
        Some(digest) => format!("prior state kept ({kind} read with {reader}), sha256:{digest}"),
        None if snapshot.prior == Prior::Missing => {
            format!("prior state kept ({kind} read with {reader}): it did not exist")
        }
        None => "what it creates is noted for undo".into(),
    }
}

/// How a prior state is stored: its kind, its content deflated, its digest.
pub(super) fn stored_form(prior: &Prior) -> (&'static str, Option<Vec<u8>>, Option<String>) {
    let content = prior.content().map(|c| deflate(c.as_bytes()));
    (prior.kind(), content, prior.digest())
}

pub(super) fn insert(tx: &Transaction<'_>, call_id: i64, s: &Snapshot) -> rusqlite::Result<()> {
    let (kind, prior, digest) = stored_form(&s.prior);
    tx.prepare_cached(
        "INSERT INTO snapshots (call_id, reader, kind, prior, digest) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![call_id, s.reader, kind, prior, digest])?;
    Ok(())
}

/// Adds what the write answered and created to its snapshot, if it has one.
pub(super) fn complete(
    tx: &Transaction<'_>,
    call_id: i64,
    after: Option<&str>,
    created: Option<&str>,
) -> rusqlite::Result<()> {
    if after.is_none() && created.is_none() {
        return Ok(());
    }
    tx.prepare_cached("UPDATE snapshots SET after = ?1, created = ?2 WHERE call_id = ?3")?
        .execute(params![
            after.map(|a| deflate(a.as_bytes())),
            created,
            call_id
        ])?;
    Ok(())
}

/// A snapshot from its stored columns.
pub(super) fn stored(
    reader: String,
    kind: String,
    prior: Option<Vec<u8>>,
    after: Option<Vec<u8>>,
    created: Option<String>,
) -> Stored {
    let text = |blob: Option<Vec<u8>>| blob.map(|b| inflate(&b)).unwrap_or_default();
    let prior = match kind.as_str() {
        "object" => Prior::Object(text(prior)),
        "text" => Prior::Text(text(prior)),
        "missing" => Prior::Missing,
        _ => Prior::Nothing,
    };
    Stored {
        reader,
        prior,
        after: after.map(|a| inflate(&a)),
        created,
    }
}

/// The snapshot of row `call_id`, if it has one.
/// The snapshots of rows up to `$1`, in row order (for an archive).
pub(super) const THROUGH: &str = "SELECT call_id, reader, kind, prior, after, created FROM snapshots WHERE call_id <= $1 ORDER BY call_id";

pub(super) fn read(connection: &Connection, call_id: i64) -> rusqlite::Result<Option<Stored>> {
    connection
        .query_row(
            "SELECT reader, kind, prior, after, created FROM snapshots WHERE call_id = ?1",
            [call_id],
            |row| {
                Ok(stored(
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                ))
            },
        )
        .optional()
}

pub(super) fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

pub(super) fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(bytes)
        .expect("writing to memory does not fail");
    encoder.finish().expect("writing to memory does not fail")
}

/// Inflates a stored blob; a blob that does not inflate reads as empty
/// (and then fails `first_mismatch`).
pub(super) fn inflate(bytes: &[u8]) -> String {
    let mut text = String::new();
    let mut decoder = flate2::read::DeflateDecoder::new(bytes);
    if decoder.read_to_string(&mut text).is_err() {
        text.clear();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_comes_back_byte_for_byte_and_smaller() {
        let code = "export default { fetch() { return new Response('hi') } }\n".repeat(200);
        let stored = deflate(code.as_bytes());
        assert!(stored.len() < code.len() / 10);
        assert_eq!(inflate(&stored), code);
    }
}
