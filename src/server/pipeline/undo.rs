//! `undo_call`: puts back what a logged write changed, from the snapshot
//! kept with its row. Offered only to agents whose policy says `undo =
//! true` (the operator identity `flaregate undo` speaks for).
//!
//! An undo is admitted as the restoring call it works out from the row and
//! the catalog (`Catalog::undo_of`), and runs through every stage as the
//! undoing agent: its grants, scope and approvals apply, and its rows say
//! which row it undoes. Before anything of the row is shown or read from
//! Cloudflare, the agent must be one that may act on the logged call; one
//! that may not is told only that. Between the charge and the gate, the
//! object is read (charged, noted in the row) to tell whether it was
//! changed again since; then the undo goes on only with `force`.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::request::Undoes;
use super::upstream::LookupError;
use super::{Answer, Call, Services, Stop, Ticket};
use crate::audit::{Entry, Prior, Stored};
use crate::catalog::{Access, Endpoint, Location, Made, Method, Restore};
use crate::policy::{Denial, DenyKind, Verdict};

/// The tool's name (reserved: no catalog entry may take it).
pub(crate) const UNDO: &str = "undo_call";

/// What the undo was asked.
struct Request {
    row: i64,
    dry_run: bool,
    force: bool,
    /// The restoring call's approval, once a person gave it.
    approval_id: Option<String>,
}

/// A row to undo and the call that undoes it.
pub(super) struct Plan<'a> {
    entry: Entry,
    endpoint: &'a Endpoint,
    stored: Stored,
    restorer: &'a Endpoint,
    made: Made,
    args: Map<String, Value>,
    /// What changed since, when the undo goes on anyway (`force`).
    forced: Option<String>,
}

impl Services {
    /// Admits `undo_call` as the restoring call of the row it names.
    pub(super) async fn admit_undo(&self, call: &mut Call<'_>) -> Result<(), Stop> {
        let request = parse(&call.args).map_err(|why| {
            Stop::Refused(Denial::new(DenyKind::InvalidArguments, why, "arguments"))
        })?;
        call.options.undoes = Some(Undoes {
            row: request.row,
            force: request.force,
        });
        call.options.approval_id = request.approval_id.clone();
        let refuse = |why: String| Stop::Refused(Denial::new(DenyKind::UndoRefused, why, "undo"));
        let row = request.row;
        let db = self.audit_db.clone();
        let found = tokio::task::spawn_blocking(move || crate::audit::read_row(&db, row))
            .await
            .expect("reading a row does not panic")
            .map_err(|e| refuse(e.to_string()))?;
        let Some((entry, stored)) = found else {
            return Err(refuse(format!("there is no row {row} in the audit log")));
        };
        self.within_reach(call, &entry)?;
        if let Some(done) = self.undone_by(row).await.map_err(refuse)? {
            return Err(refuse(format!(
                "row {row} was already undone by row {} at {}; to put it back, undo row {}",
                done.id, done.ts, done.id
            )));
        }
        let plan = plan(call.policy.catalog(), entry, stored).map_err(refuse)?;
        call.tool = plan.restorer.tool.clone();
        call.args = plan.args.clone();
        call.options.dry_run = request.dry_run && plan.restorer.access == Access::Write;
        call.undo = Some(plan);
        Ok(())
    }

    /// Refuses, saying nothing of the row, an agent that may not make the
    /// logged call itself (its zones, accounts, grants and constraints).
    fn within_reach(&self, call: &Call<'_>, entry: &Entry) -> Result<(), Stop> {
        let logged = entry.args.as_object().cloned().unwrap_or_default();
        let directory = self.engine.directory();
        match call
            .policy
            .decide(call.agent, &entry.tool, &logged, &directory, None)
        {
            Verdict::Deny(denial) => {
                let kind = match denial.kind {
                    DenyKind::UnknownTool | DenyKind::InvalidArguments => DenyKind::NotGranted,
                    kind => kind,
                };
                Err(Stop::Refused(Denial::new(
                    kind,
                    format!("row {}: {}", entry.id, denial.reason),
                    denial.rule,
                )))
            }
            // Allowed, or to be judged on the object: the restoring call's
            // own decision does that.
            _ => Ok(()),
        }
    }

    /// The row that already undid `row`: an allowed undo Cloudflare
    /// answered with success (previews and refusals do not count).
    async fn undone_by(&self, row: i64) -> Result<Option<Entry>, String> {
        let db = self.audit_db.clone();
        let undos = tokio::task::spawn_blocking(move || crate::audit::undos_of(&db, row))
            .await
            .expect("reading rows does not panic")
            .map_err(|e| e.to_string())?;
        Ok(undos
            .into_iter()
            .find(|u| u.decision == "allow" && u.status.is_some_and(|s| (200..300).contains(&s))))
    }

    /// Whether what the write changed was changed again since: by a later
    /// write through flaregate, or (as read now) by anything else. Refuses
    /// the undo if it was, unless forced.
    pub(super) async fn check_unchanged(
        &self,
        call: &mut Call<'_>,
        ticket: &mut Ticket,
    ) -> Result<(), Stop> {
        let plan = call.undo.as_ref().expect("only for undos");
        let reader = plan.reader(call.policy.catalog());
        let changed = match self.changed_in_log(plan, reader).await {
            Some(changed) => Some(changed),
            None => match reader {
                Some(reader) => {
                    let args = plan.path_args();
                    let (removed, after) = (
                        plan.endpoint.method == Method::Delete,
                        plan.stored.after.clone(),
                    );
                    let now = self.read_object(call, ticket, reader, Some(&args)).await;
                    changed_now(now, removed, after.as_deref())
                }
                None => None,
            },
        };
        let plan = call.undo.as_mut().expect("only for undos");
        match (changed, call.options.undoes.is_some_and(|u| u.force)) {
            (None, _) => Ok(()),
            (Some(changed), true) => {
                plan.forced = Some(changed);
                Ok(())
            }
            (Some(changed), false) => Err(Stop::Refused(Denial::new(
                DenyKind::UndoRefused,
                format!(
                    "row {}: {changed}; undoing it would overwrite that. Call again with force: true to undo it anyway",
                    plan.entry.id
                ),
                "undo",
            ))),
        }
    }

    /// A later write in the log on the object's path, if there is one.
    async fn changed_in_log(&self, plan: &Plan<'_>, reader: Option<&Endpoint>) -> Option<String> {
        let mut paths = vec![plan.entry.path.clone()];
        if let Some(reader) = reader
            && let Ok(request) = crate::cloudflare::build(reader, &plan.path_args())
        {
            paths.push(request.path);
        }
        let db = self.audit_db.clone();
        let after = plan.entry.id;
        let later =
            tokio::task::spawn_blocking(move || crate::audit::later_writes(&db, after, &paths))
                .await
                .expect("reading rows does not panic");
        let first = later.ok()?.into_iter().next()?;
        Some(format!(
            "what it changed was changed again by row {} ({} at {})",
            first.id, first.tool, first.ts
        ))
    }
}

impl Plan<'_> {
    /// The reads checking it takes (charged with the restoring call).
    pub(super) fn reads(&self, services: &Services) -> u32 {
        u32::from(self.reader(&services.catalog).is_some())
    }

    /// The read of the object the write left: for a create, the GET of the
    /// new object's path; else what the snapshot was read with.
    fn reader<'c>(&self, catalog: &'c crate::catalog::Catalog) -> Option<&'c Endpoint> {
        let reader = match self.made {
            Made::Created => catalog
                .endpoints()
                .iter()
                .find(|e| e.method == Method::Get && e.path.raw == self.restorer.path.raw),
            _ => catalog.endpoint(&self.stored.reader),
        };
        reader.map(|e| &**e)
    }

    /// The arguments naming the object: for a create, the restoring
    /// call's (which hold the new id); else the logged call's.
    fn path_args(&self) -> Map<String, Value> {
        match self.made {
            Made::Created => self.args.clone(),
            _ => self.entry.args.as_object().cloned().unwrap_or_default(),
        }
    }
}

/// An undo's answer: which row it undoes and how, then the restoring
/// call's answer (only once the call was admitted, decided and charged).
pub(super) fn headed(call: &Call<'_>, answer: Answer) -> Answer {
    let Some(plan) = &call.undo else {
        return answer;
    };
    let mut heading = format!(
        "Undo of row {} ({}): {} with {}.",
        plan.entry.id,
        plan.entry.summary.trim_end_matches('.'),
        plan.restorer.tool,
        crate::audit::stored_args(Some(plan.restorer), &plan.args)
    );
    if let Some(changed) = &plan.forced {
        heading.push_str(&format!(" Forced: {changed}."));
    }
    Answer::Undo {
        heading,
        restorer: plan.restorer.tool.clone(),
        answer: Box::new(answer),
    }
}

/// Works out the restoring call of a logged row.
fn plan(
    catalog: &crate::catalog::Catalog,
    entry: Entry,
    stored: Option<Stored>,
) -> Result<Plan<'_>, String> {
    let row = entry.id;
    let Some(endpoint) = catalog.endpoint(&entry.tool) else {
        return Err(format!(
            "row {row} is not a call of a catalog tool: nothing to undo"
        ));
    };
    let carried_out =
        entry.decision == "allow" && entry.status.is_some_and(|s| (200..300).contains(&s));
    if endpoint.method == Method::Get || !carried_out {
        return Err(format!(
            "row {row} is not a write Cloudflare carried out: nothing to undo"
        ));
    }
    let Some(stored) = stored else {
        return Err(format!(
            "row {row} kept no snapshot of what it changed (snapshots were off, or the state could not be read): it cannot be undone"
        ));
    };
    let made = match (&stored.prior, &stored.created) {
        (Prior::Object(_) | Prior::Text(_), _) => Made::Changed,
        (Prior::Missing, _) => Made::Missing,
        (Prior::Nothing, Some(_)) => Made::Created,
        (Prior::Nothing, None) => {
            return Err(format!(
                "row {row} created nothing flaregate can name: nothing to undo"
            ));
        }
    };
    let restore = catalog
        .undo_of(endpoint, made)
        .map_err(|why| format!("row {row} cannot be undone: {why}"))?;
    let logged = entry.args.as_object().cloned().unwrap_or_default();
    let (restorer, args) = restore_call(restore, &logged, &stored)?;
    Ok(Plan {
        entry,
        endpoint,
        stored,
        restorer,
        made,
        args,
        forced: None,
    })
}

/// How the object read now tells it was changed since the write.
fn changed_now(
    now: Result<Map<String, Value>, LookupError>,
    removed: bool,
    after: Option<&str>,
) -> Option<String> {
    match (now, removed) {
        (Err(LookupError::NotFound), true) => None,
        (Ok(_), true) => Some("what it deleted exists again".into()),
        (Err(LookupError::NotFound), false) => Some("what it changed is gone now".into()),
        (Err(LookupError::Failed(problem)), _) => {
            Some(format!("its current state cannot be read ({problem})"))
        }
        (Ok(current), false) => differs(after, &current),
    }
}

/// The restoring call's tool and arguments: path arguments from the logged
/// call (and a created object's id), the rest from the prior state.
fn restore_call<'a>(
    restore: Restore<'a>,
    logged: &Map<String, Value>,
    stored: &Stored,
) -> Result<(&'a Endpoint, Map<String, Value>), String> {
    let (tool, text) = match restore {
        Restore::Put { tool, text } => (tool, text),
        Restore::Remove { tool } => (tool, None),
    };
    let mut args = Map::new();
    let placeholders: Vec<&str> = tool.path.params().collect();
    let removes_created = matches!(restore, Restore::Remove { .. }) && stored.created.is_some();
    for (index, name) in placeholders.iter().enumerate() {
        let value = match (&stored.created, logged.get(*name)) {
            (Some(created), _) if removes_created && index + 1 == placeholders.len() => {
                json!(created)
            }
            (_, Some(value)) => value.clone(),
            _ => return Err(format!("the logged call does not name its `{name}`")),
        };
        args.insert(name.to_string(), value);
    }
    if let Restore::Remove { .. } = restore {
        return Ok((tool, args));
    }
    match (&stored.prior, text) {
        (Prior::Text(code), Some(text)) => {
            args.insert(text.to_string(), json!(code));
        }
        (Prior::Object(object), _) => {
            let prior: Map<String, Value> = serde_json::from_str(object)
                .map_err(|e| format!("its snapshot does not read as an object: {e}"))?;
            for param in &tool.params {
                let value = match param.location {
                    Location::Body | Location::Multipart => field(&prior, &param.key).cloned(),
                    // A whole-body argument gets the prior object, cut to
                    // the fields its schema names (if it names any).
                    Location::Payload => Some(payload(&prior, tool.param_schema(&param.name))),
                    Location::Path | Location::Query => None,
                };
                if let Some(value) = value.filter(|v| !v.is_null()) {
                    args.insert(param.name.clone(), value);
                }
            }
        }
        _ => return Err("its snapshot holds nothing to put back".into()),
    }
    Ok((tool, args))
}

/// The prior object as a whole body: only the fields the body's schema
/// names, when it names them.
fn payload(prior: &Map<String, Value>, schema: Option<&Map<String, Value>>) -> Value {
    match schema.and_then(|s| s.get("properties")?.as_object()) {
        Some(properties) => Value::Object(
            prior
                .iter()
                .filter(|(name, _)| properties.contains_key(*name))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
        ),
        None => Value::Object(prior.clone()),
    }
}

/// A field of `object` by its wire key, dotted for nested fields
/// (`account.id`).
fn field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    let mut parts = key.split('.');
    let mut value = object.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    Some(value)
}

/// How the object now differs from what the write left, if it does: the
/// fields both have (an object), or the code's digest.
fn differs(after: Option<&str>, now: &Map<String, Value>) -> Option<String> {
    let after = after?;
    if let (Some(Value::String(code)), false) = (now.get("content"), after.starts_with('{')) {
        let digest = hex::encode(Sha256::digest(code.as_bytes()));
        return (digest != after).then(|| "its code was changed since".to_string());
    }
    let after: Map<String, Value> = serde_json::from_str(after).ok()?;
    let changed: Vec<&str> = after
        .iter()
        .filter(|(name, value)| now.get(*name).is_some_and(|v| v != *value))
        .map(|(name, _)| name.as_str())
        .collect();
    (!changed.is_empty()).then(|| format!("it was changed since ({})", changed.join(", ")))
}

fn parse(args: &Map<String, Value>) -> Result<Request, String> {
    if let Some(unknown) = args
        .keys()
        .find(|k| !matches!(k.as_str(), "row" | "dry_run" | "force" | "approval_id"))
    {
        return Err(format!(
            "undo_call takes row, dry_run, force and approval_id, not `{}`",
            crate::text::clip(unknown, 40)
        ));
    }
    let row = args
        .get("row")
        .and_then(Value::as_i64)
        .filter(|&r| r >= 1)
        .ok_or("undo_call needs `row`: the audit row id of the write to undo")?;
    let flag = |name: &str| match args.get(name) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("`{name}` must be true or false")),
    };
    let approval_id = match args.get("approval_id") {
        None => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(_) => return Err("`approval_id` must be a string".into()),
    };
    Ok(Request {
        row,
        dry_run: flag("dry_run")?,
        force: flag("force")?,
        approval_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_made_outside_flaregate_is_told_by_field_or_by_code() {
        let after = r#"{"content":"a.example.net","ttl":300,"modified_on":"t1"}"#;
        let same: Map<String, Value> = serde_json::from_str(after).expect("object");
        assert_eq!(differs(Some(after), &same), None);
        let mut changed = same.clone();
        changed.insert("content".into(), json!("b.example.net"));
        changed.insert("modified_on".into(), json!("t2"));
        assert_eq!(
            differs(Some(after), &changed).as_deref(),
            Some("it was changed since (content, modified_on)")
        );
        let code = "export default {}";
        let digest = hex::encode(Sha256::digest(code.as_bytes()));
        let now: Map<String, Value> =
            serde_json::from_str(r#"{"content":"export default {}"}"#).expect("object");
        assert_eq!(differs(Some(&digest), &now), None);
        let edited: Map<String, Value> =
            serde_json::from_str(r#"{"content":"export default {1}"}"#).expect("object");
        assert_eq!(
            differs(Some(&digest), &edited).as_deref(),
            Some("its code was changed since")
        );
    }
}
