//! `undo_call`: puts back what a logged write changed, from the snapshot
//! kept with its row. Offered only to agents whose policy says `undo =
//! true` (the operator identity `flaregate undo` speaks for). The undo
//! reads the row and its snapshot, works out the restoring call from the
//! catalog (`Catalog::undo_of`), checks whether the object was changed
//! again since (later writes in the log, and the object now against what
//! the write left), and runs the restoring call through the whole
//! pipeline as the calling agent: its grants, scope and approvals apply,
//! and its row says which row it undoes.

use rmcp::model::{CallToolResponse, ContentBlock, ErrorData, JsonObject, Tool, ToolAnnotations};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::call::{Call, CallContext};
use super::gateway::Gateway;
use crate::audit::{Entry, Prior, Stored};
use crate::catalog::{Endpoint, Location, Made, Method, Restore};
use crate::policy::{Denial, DenyKind, LookupError};

/// The tool's name (reserved: no catalog entry may take it).
pub const UNDO: &str = "undo_call";

/// The tool as an agent with `undo = true` sees it.
pub fn tool() -> Tool {
    let mut schema = Map::new();
    schema.insert("type".into(), json!("object"));
    schema.insert(
        "properties".into(),
        json!({
            "row": {"type": "integer", "minimum": 1, "description": "The audit row of the write to undo (flaregate audit shows ids)."},
            "dry_run": {"type": "boolean", "description": "Show what the undo would do (the restoring call's preview) and send nothing."},
            "force": {"type": "boolean", "description": "Undo even though what the write changed was changed again since."}
        }),
    );
    schema.insert("required".into(), json!(["row"]));
    schema.insert("additionalProperties".into(), json!(false));
    Tool::new(
        UNDO,
        "Put back what a logged write changed, from the state kept before it: re-create what it deleted, restore what it changed, remove what it created. The restoring call is checked against your rules and logged, linked to the row it undoes.",
        std::sync::Arc::new(schema),
    )
    .with_title("Undo a logged write")
    .with_annotations(ToolAnnotations::new().destructive(true).open_world(true))
}

/// What the undo was asked.
struct Request {
    row: i64,
    dry_run: bool,
    force: bool,
}

impl Gateway {
    /// Runs `undo_call` for `agent_id`.
    pub async fn undo(
        &self,
        agent_id: &str,
        args: Option<JsonObject>,
    ) -> Result<CallToolResponse, ErrorData> {
        let policy = self.engine.policy();
        let agent = policy.agent(agent_id).ok_or_else(|| {
            ErrorData::invalid_request("this agent is no longer in the policy", None)
        })?;
        let args = args.unwrap_or_default();
        let call = Call {
            policy: &policy,
            agent,
            tool: UNDO,
            args: &args,
            endpoint: None,
            lookup: String::new(),
            undoes: None,
            looked_up: None,
            trace: None,
        };
        let refuse = |why: String| Denial::new(DenyKind::UndoRefused, why, "undo");
        let request = match parse(&args) {
            Ok(request) => request,
            Err(why) => {
                let denial = Denial::new(DenyKind::InvalidArguments, why, "arguments");
                return self.refusal(&call, denial).await.map(Into::into);
            }
        };
        let plan = match self.plan(request.row).await {
            Ok(plan) => plan,
            Err(why) => return self.refusal(&call, refuse(why)).await.map(Into::into),
        };
        // Reading the object now is a request to Cloudflare: charged as a
        // call before it goes (the restoring call is charged on its own).
        let charge = crate::budget::Charge {
            call: true,
            upstream: true,
            ..crate::budget::Charge::default()
        };
        if let Err(over) = self.spend(agent, charge).await {
            let denial = super::call::over_limit(&over);
            return self.refusal(&call, denial).await.map(Into::into);
        }
        let changed = self.changed_since(&plan).await;
        if let (Some(changed), false) = (&changed, request.force) {
            let why = format!(
                "row {}: {changed}; undoing it would overwrite that. Call again with force: true to undo it anyway",
                plan.entry.id
            );
            return self.refusal(&call, refuse(why)).await.map(Into::into);
        }
        let mut restore_args = plan.args.clone();
        if request.dry_run && plan.restorer.access == crate::catalog::Access::Write {
            restore_args.insert(crate::catalog::DRY_RUN.into(), json!(true));
        }
        let context = CallContext {
            undoes: Some(plan.entry.id),
            ..CallContext::default()
        };
        let answer = self
            .call(agent_id, &plan.restorer.tool, Some(restore_args), context)
            .await?;
        let mut heading = format!(
            "Undo of row {} ({}): {} with {}.",
            plan.entry.id,
            plan.entry.summary.trim_end_matches('.'),
            plan.restorer.tool,
            crate::audit::stored_args(Some(plan.restorer), &plan.args)
        );
        if let Some(changed) = changed {
            heading.push_str(&format!(" Forced: {changed}."));
        }
        Ok(match answer {
            CallToolResponse::Complete(mut result) => {
                result.content.insert(0, ContentBlock::text(heading));
                result.into()
            }
            other => other,
        })
    }

    /// Reads row `row` and its snapshot, and works out the restoring call.
    async fn plan(&self, row: i64) -> Result<Plan<'_>, String> {
        let db = self.audit_db.clone();
        let found = tokio::task::spawn_blocking(move || crate::audit::read_row(&db, row))
            .await
            .expect("reading a row does not panic")
            .map_err(|e| e.to_string())?;
        let Some((entry, stored)) = found else {
            return Err(format!("there is no row {row} in the audit log"));
        };
        let Some(endpoint) = self.catalog.endpoint(&entry.tool) else {
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
        let restore = self
            .catalog
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
        })
    }

    /// Whether what the write changed was changed again since: by a later
    /// write through flaregate, or (as read now) by anything else.
    async fn changed_since(&self, plan: &Plan<'_>) -> Option<String> {
        // The object's own path: where the undo acts, and where it is read.
        let reader = self.object_reader(plan);
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
        if let Ok(later) = later
            && let Some(first) = later.first()
        {
            return Some(format!(
                "what it changed was changed again by row {} ({} at {})",
                first.id, first.tool, first.ts
            ));
        }
        let reader = reader?;
        let now = self.engine.fetch(reader, &plan.path_args()).await.object;
        let removed = plan.endpoint.method == Method::Delete;
        match (now, removed) {
            (Err(LookupError::NotFound), true) => None,
            (Ok(_), true) => Some("what it deleted exists again".into()),
            (Err(LookupError::NotFound), false) => Some("what it changed is gone now".into()),
            (Err(LookupError::Failed(problem)), _) => {
                Some(format!("its current state cannot be read ({problem})"))
            }
            (Ok(current), false) => differs(plan.stored.after.as_deref(), &current),
        }
    }

    /// The read of the object the write left: for a create, the GET of the
    /// new object's path; else what the snapshot was read with.
    fn object_reader(&self, plan: &Plan<'_>) -> Option<&Endpoint> {
        let reader = match plan.made {
            Made::Created => self
                .catalog
                .endpoints()
                .iter()
                .find(|e| e.method == Method::Get && e.path.raw == plan.restorer.path.raw),
            _ => self.catalog.endpoint(&plan.stored.reader),
        };
        reader.map(|e| &**e)
    }
}

/// A row to undo and the call that undoes it.
struct Plan<'a> {
    entry: Entry,
    endpoint: &'a Endpoint,
    stored: Stored,
    restorer: &'a Endpoint,
    made: Made,
    args: Map<String, Value>,
}

impl Plan<'_> {
    /// The arguments naming the object: for a create, the restoring
    /// call's (which hold the new id); else the logged call's.
    fn path_args(&self) -> Map<String, Value> {
        match self.made {
            Made::Created => self.args.clone(),
            _ => self.entry.args.as_object().cloned().unwrap_or_default(),
        }
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
        .find(|k| !matches!(k.as_str(), "row" | "dry_run" | "force"))
    {
        return Err(format!(
            "undo_call takes row, dry_run and force, not `{}`",
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
    Ok(Request {
        row,
        dry_run: flag("dry_run")?,
        force: flag("force")?,
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
