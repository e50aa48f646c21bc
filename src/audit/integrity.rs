//! What `audit verify` checks beyond the chain: everything undo and
//! approval act on is tied to a hashed row. A snapshot's content, kind and
//! reader are named by its row's `lookup` note; what the write left and
//! what it created, by its outcome text; a row that says it kept a
//! snapshot must have one; and an approval lets one call through, so two
//! allowed rows under one approval's rule mean the approval was re-armed.

use super::snapshot::{inflate, sha256_hex};

/// One row that kept (or says it kept) a snapshot, with that snapshot.
pub(super) struct Kept {
    pub id: i64,
    pub lookup: String,
    pub outcome: Option<String>,
    pub snapshot: Option<KeptSnapshot>,
}

/// A snapshot's stored columns.
pub(super) struct KeptSnapshot {
    pub reader: String,
    pub kind: String,
    pub prior: Option<Vec<u8>>,
    pub digest: Option<String>,
    pub after: Option<Vec<u8>>,
    pub created: Option<String>,
}

/// The rows to check: every row with a snapshot, and every row whose
/// hashed note says it kept one (the same SQL on both stores).
pub(super) const KEPT: &str = "SELECT c.id, c.lookup, c.outcome, s.call_id, s.reader, s.kind, s.prior, s.digest, s.after, s.created
     FROM calls c LEFT JOIN snapshots s ON s.call_id = c.id
     WHERE s.call_id IS NOT NULL OR c.lookup LIKE '%prior state kept%' OR c.lookup LIKE '%noted for undo%'
     ORDER BY c.id";

/// The allowed rows under an approval, oldest first.
pub(super) const APPROVED: &str =
    "SELECT id, approval FROM calls WHERE decision = 'allow' AND approval IS NOT NULL ORDER BY id";

/// The first row whose approval column does not say what its hashed rule
/// says (`approval ID`, or no approval).
pub(super) const MISMATCHED: &str = "SELECT MIN(id) FROM calls
     WHERE CASE WHEN rule LIKE 'approval %' THEN approval IS NULL OR 'approval ' || approval <> rule
                ELSE approval IS NOT NULL END";

/// What is wrong with one kept row, if anything.
pub(super) fn problem(row: &Kept) -> Option<String> {
    let Some(snapshot) = &row.snapshot else {
        return Some("its snapshot (the state before the write) was deleted".into());
    };
    let note = row.lookup.as_str();
    let content = snapshot.prior.as_deref().map(inflate);
    let kind_fits = match snapshot.kind.as_str() {
        "object" | "text" => content.as_deref().is_some_and(|c| {
            let actual = sha256_hex(c);
            note.contains(&format!("sha256:{actual}"))
                && snapshot.digest.as_deref() == Some(actual.as_str())
        }),
        "missing" => note.contains("it did not exist") && content.is_none(),
        _ => note.contains("noted for undo") && content.is_none(),
    };
    if !kind_fits {
        return Some(
            "its snapshot (the state before the write) was changed after it was written".into(),
        );
    }
    // Rows written since the note names the reader and the kind.
    if let Some(named) = between(note, "prior state kept (", ")")
        && named != format!("{} read with {}", snapshot.kind, snapshot.reader)
    {
        return Some("its snapshot's kind or reader was changed after it was written".into());
    }
    let outcome = row.outcome.as_deref().unwrap_or_default();
    let created_fits = match &snapshot.created {
        Some(created) => outcome.contains(&format!("it created {created}")),
        None => !outcome.contains("it created "),
    };
    if !created_fits {
        return Some("which object its write created was changed after it was written".into());
    }
    let after = snapshot.after.as_deref().map(inflate);
    let after_fits = match (between(outcome, "what it left: sha256:", ")"), &after) {
        (Some(noted), Some(after)) => noted == sha256_hex(after),
        (Some(_), None) => false,
        // Written since, the outcome says there was nothing to keep.
        (None, Some(_)) => !outcome.contains(NOTHING_LEFT),
        (None, None) => true,
    };
    (!after_fits).then(|| "what its write left was changed after it was written".into())
}

/// What the outcome says when a write kept a snapshot but Cloudflare's
/// answer left nothing to compare later.
pub(super) const NOTHING_LEFT: &str = "(what it left: nothing kept)";

/// The outcome's note of what a write with a snapshot left.
pub fn after_note(after: Option<&str>) -> String {
    match after {
        Some(after) => format!("(what it left: sha256:{})", sha256_hex(after)),
        None => NOTHING_LEFT.to_string(),
    }
}

/// The first allowed row under an approval that already let one through.
pub(super) fn second_use(rows: impl IntoIterator<Item = (i64, String)>) -> Option<(i64, String)> {
    let mut seen = std::collections::HashSet::new();
    rows.into_iter().find_map(|(id, approval)| {
        (!seen.insert(approval.clone())).then(|| {
            (
                id,
                format!(
                    "approval {approval} let a second call through: an approval lets one, so it was re-armed"
                ),
            )
        })
    })
}

/// What a row whose approval column disagrees with its rule says.
pub(super) fn mismatched(row: i64) -> (i64, String) {
    (
        row,
        format!(
            "row {row}'s approval column does not match its hashed rule: it was edited (approvals are looked up by it)"
        ),
    )
}

/// The text of `haystack` between `start` and the next `end`.
fn between<'a>(haystack: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = haystack.find(start)? + start.len();
    let len = haystack[from..].find(end)?;
    Some(&haystack[from..from + len])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::snapshot::deflate;

    fn kept(lookup: &str, outcome: &str, snapshot: KeptSnapshot) -> Kept {
        Kept {
            id: 7,
            lookup: lookup.into(),
            outcome: Some(outcome.into()),
            snapshot: Some(snapshot),
        }
    }

    #[test]
    fn every_field_undo_acts_on_is_tied_to_the_hashed_row() {
        let prior = r#"{"content":"a"}"#;
        let digest = sha256_hex(prior);
        let lookup = format!("prior state kept (object read with get_dns_record), sha256:{digest}");
        let outcome = format!("Cloudflare answered 200 in 1 ms {}", after_note(Some("{}")));
        let genuine = || KeptSnapshot {
            reader: "get_dns_record".into(),
            kind: "object".into(),
            prior: Some(deflate(prior.as_bytes())),
            digest: Some(digest.clone()),
            after: Some(deflate(b"{}")),
            created: None,
        };
        assert_eq!(problem(&kept(&lookup, &outcome, genuine())), None);
        let mut reader = genuine();
        reader.reader = "get_worker_script".into();
        assert!(problem(&kept(&lookup, &outcome, reader)).is_some());
        let mut kind = genuine();
        kind.kind = "text".into();
        assert!(problem(&kept(&lookup, &outcome, kind)).is_some());
        let mut after = genuine();
        after.after = Some(deflate(b"{\"x\":1}"));
        assert!(problem(&kept(&lookup, &outcome, after)).is_some());
        let mut created = genuine();
        created.created = Some("0123".into());
        assert!(problem(&kept(&lookup, &outcome, created)).is_some());
        let deleted = Kept {
            snapshot: None,
            ..kept(&lookup, &outcome, genuine())
        };
        assert!(problem(&deleted).is_some());
        assert_eq!(
            second_use([(1, "a".into()), (2, "b".into()), (3, "a".into())]).map(|(id, _)| id),
            Some(3)
        );
    }
}
