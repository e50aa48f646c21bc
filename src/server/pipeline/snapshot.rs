//! Snapshots for undo: before an allowed write goes upstream, the object it
//! changes is read through the catalog (`Catalog::reader_of`) and kept with
//! the write's audit row; after it, what Cloudflare answered and the id of
//! what it created. A snapshot that cannot be taken is logged and the write
//! goes on, unless the agent's policy says `snapshots = "required"`.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::upstream::LookupError;
use super::{Call, Services, Ticket};
use crate::audit::{Prior, Snapshot, snapshot_note};
use crate::catalog::{Access, Endpoint, Method, ResponseKind};
use crate::policy::{Denial, DenyKind, Snapshots};

/// Whether a write of `call` keeps a snapshot, and the read it takes for
/// it (none when the decision's lookup read the same object).
fn plan<'a>(call: &Call<'a>) -> Option<(Option<&'a Endpoint>, bool)> {
    let endpoint = call.endpoint();
    let kept = call.agent.snapshots != Snapshots::Off
        && endpoint.access == Access::Write
        && endpoint.undo.never.is_none();
    if !kept {
        return None;
    }
    match call.policy.catalog().reader_of(endpoint) {
        Some(reader) => {
            let same_read = endpoint
                .lookup
                .as_ref()
                .is_some_and(|l| l.tool == reader.tool);
            Some((Some(reader), !(same_read && call.looked_up.is_some())))
        }
        None if endpoint.method == Method::Post => Some((None, false)),
        None => None,
    }
}

impl Services {
    /// The reads a snapshot of `call` takes (charged with the call).
    pub(super) fn snapshot_reads(&self, call: &Call<'_>) -> u32 {
        plan(call).map_or(0, |(_, reads)| u32::from(reads))
    }

    /// Reads what `call` is about to change; notes the read and the kept
    /// state's digest in the call's lookup (hashed by the chain).
    pub(super) async fn snapshot(
        &self,
        call: &mut Call<'_>,
        ticket: &mut Ticket,
    ) -> Result<Option<Snapshot>, Denial> {
        let mode = call.agent.snapshots;
        let Some((reader, reads)) = plan(call) else {
            return Ok(None);
        };
        let (reader, prior) = match reader {
            Some(reader) => {
                let object = match call.looked_up.take().filter(|_| !reads) {
                    Some(object) => object,
                    // The decision's lookup read it already.
                    None => self.read_object(call, ticket, reader, None).await,
                };
                let prior = match object {
                    Ok(object) => Ok(prior_of(reader, object)),
                    Err(LookupError::NotFound) => Ok(Prior::Missing),
                    Err(LookupError::Failed(problem)) => Err(problem),
                };
                (reader.tool.clone(), prior)
            }
            None => (String::new(), Ok(Prior::Nothing)),
        };
        let prior = prior.and_then(|prior| {
            let size = prior.stored_size();
            if size > call.agent.snapshot_max_bytes {
                Err(format!(
                    "it is {} KB deflated, over this agent's snapshot_max_kb of {}",
                    size.div_ceil(1024),
                    call.agent.snapshot_max_bytes / 1024
                ))
            } else {
                Ok(prior)
            }
        });
        match prior {
            Ok(prior) => {
                let snapshot = Snapshot { reader, prior };
                call.note(&snapshot_note(&snapshot));
                Ok(Some(snapshot))
            }
            Err(problem) if mode == Snapshots::Required => Err(Denial::new(
                DenyKind::SnapshotFailed,
                format!(
                    "the state before this write could not be kept for undo ({problem}), and your policy requires it; nothing was sent"
                ),
                "snapshots = required",
            )),
            Err(problem) => {
                tracing::warn!(agent = %call.agent.id, person = %call.who(), tool = %call.tool, %problem, "a write goes on without a snapshot: it cannot be undone");
                call.note(&format!("no snapshot: {problem}"));
                Ok(None)
            }
        }
    }
}

/// What a write with a snapshot answered, kept to tell a later change: the
/// answer's JSON, or for code the SHA-256 of the code it sent; and the id
/// of what it created (a POST's result `id`, or `name`).
pub(super) fn after_of(
    endpoint: &Endpoint,
    args: &Map<String, Value>,
    result: &Value,
) -> (Option<String>, Option<String>) {
    let sent_text = endpoint
        .undo
        .text
        .as_deref()
        .filter(|_| endpoint.undo.tool.is_none())
        .and_then(|name| args.get(name))
        .and_then(Value::as_str);
    let after = match sent_text {
        Some(text) => Some(hex::encode(Sha256::digest(text.as_bytes()))),
        None if result.is_null() => None,
        None => Some(result.to_string()),
    };
    let created = (endpoint.method == Method::Post)
        .then(|| ["id", "name"].iter().find_map(|k| result.get(*k)?.as_str()))
        .flatten()
        .map(str::to_string);
    (after, created)
}

/// The prior state as read: a text read's content, or the object.
fn prior_of(reader: &Endpoint, object: Map<String, Value>) -> Prior {
    match (reader.response, object.get("content")) {
        (ResponseKind::Text, Some(Value::String(code))) => Prior::Text(code.clone()),
        _ => Prior::Object(Value::Object(object).to_string()),
    }
}
