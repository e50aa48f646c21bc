//! Stage 5a, preview: a write called with `dry_run: true` goes through
//! every stage up to the upstream call — arguments, policy, budgets, the
//! lookup — and answers, instead of sending, what would happen: the
//! decision, the exact request (secrets masked, Worker code by size and
//! SHA-256), the current state of what it changes, read through the
//! catalog once the verdict allows it, and a field-by-field diff. Audited
//! as a preview; nothing is sent. A preview the policy refuses is answered
//! by `refuse.rs` with the decision alone.

use serde_json::{Map, Value, json};

use super::record::audit_down;
use super::upstream::LookupError;
use super::{Allowed, Answer, Call, Services, Stop, Ticket};
use crate::audit::{self, Decision, Outcome};
use crate::catalog::{Endpoint, Location, Method, Part, ResponseKind};
use crate::cloudflare::{Body, PreparedRequest};

impl Services {
    /// Answers a preview of the allowed `call`.
    pub(super) async fn preview(
        &self,
        call: &mut Call<'_>,
        allowed: &Allowed,
        ticket: &mut Ticket,
    ) -> Result<Answer, Stop> {
        let (value, words) = self.preview_of(call, allowed, ticket).await;
        let mut record = self.record(call, Decision::Preview, &words, &allowed.rule);
        record.summary = format!("previewed: {}", record.summary);
        self.audit
            .record(record, Outcome::default())
            .await
            .map_err(|e| Stop::Fault(audit_down(e)))?;
        let tool = &call.endpoint().tool;
        self.metrics
            .call(&call.agent.id, tool, Decision::Preview, "none");
        Ok(Answer::Made(value))
    }

    /// The reads a preview makes: the current state, unless the decision's
    /// lookup read it already.
    pub(super) fn preview_reads(&self, call: &Call<'_>) -> u32 {
        let reader = call.policy.catalog().reader_of(call.endpoint());
        u32::from(call.looked_up.is_none() && reader.is_some())
    }

    /// What a preview shows (the decision, the request, the current state
    /// and the changes), and the decision in words.
    pub(super) async fn preview_of(
        &self,
        call: &mut Call<'_>,
        allowed: &Allowed,
        ticket: &mut Ticket,
    ) -> (Value, String) {
        let endpoint = call.endpoint();
        let reader = call.policy.catalog().reader_of(endpoint);
        let current = match (call.looked_up.clone(), reader) {
            (Some(current), _) => Some(current),
            (None, Some(reader)) => Some(self.read_object(call, ticket, reader, None).await),
            (None, None) => None,
        };
        let (reason, rule) = (&*allowed.reason, &*allowed.rule);
        let gated = call
            .agent
            .needs_approval(call.policy.catalog(), &endpoint.tool);
        let (decision, decision_words) = if gated {
            (
                json!({"would_be": "allowed once a person approves it", "reason": reason, "rule": rule}),
                format!("would be allowed once a person approves it: {reason}"),
            )
        } else {
            (
                json!({"would_be": "allowed", "reason": reason, "rule": rule}),
                format!("would be allowed: {reason}"),
            )
        };
        let mut answer = Map::new();
        answer.insert("preview".into(), json!(true));
        answer.insert("decision".into(), decision);
        if let Some(request) = &call.request {
            answer.insert(
                "request".into(),
                shown_request(endpoint, request, &call.args),
            );
        }
        // A reader that answers raw text fetches code (a Worker's).
        let code = reader.is_some_and(|r| r.response == ResponseKind::Text);
        let (state, diff) = describe_current(endpoint, &call.args, current, code);
        answer.insert("current".into(), state);
        if let Some(diff) = diff {
            answer.insert("changes".into(), diff);
        }
        answer.insert(
            "note".into(),
            json!("A preview: nothing was sent to Cloudflare. Call again without dry_run to make the change."),
        );
        (Value::Object(answer), decision_words)
    }
}

/// The request as it would be sent: method, path, query, and the
/// arguments as the audit log keeps them (secrets masked, code digested).
fn shown_request(
    endpoint: &Endpoint,
    request: &PreparedRequest,
    args: &Map<String, Value>,
) -> Value {
    let body = match &request.body {
        Body::None => Value::Null,
        Body::Json(_) | Body::Form(_) => {
            let sent: Map<String, Value> = args
                .iter()
                .filter(|(name, _)| {
                    endpoint.param(name).is_some_and(|p| {
                        matches!(
                            p.location,
                            Location::Body | Location::Payload | Location::Multipart
                        )
                    })
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            serde_json::from_str(&audit::stored_args(Some(endpoint), &sent)).unwrap_or(Value::Null)
        }
        Body::Module {
            metadata, module, ..
        } => json!({
            "metadata": metadata,
            "module": code_digest(module),
        }),
    };
    json!({
        "method": request.method.as_str(),
        "path": request.path,
        "query": request.query.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        "body": body,
    })
}

/// The object as it is now, and what the call would change in it.
fn describe_current(
    endpoint: &Endpoint,
    args: &Map<String, Value>,
    current: Option<Result<Map<String, Value>, LookupError>>,
    code: bool,
) -> (Value, Option<Value>) {
    let current = match current {
        None => {
            let state = if endpoint.method == Method::Post {
                "nothing yet: this call creates something new"
            } else {
                "not known: the catalog has no read for what this call changes"
            };
            return (json!({"known": false, "why": state}), None);
        }
        Some(Err(LookupError::NotFound)) => {
            return (
                json!({"known": true, "exists": false, "why": "Cloudflare answered 404: there is no such object now"}),
                None,
            );
        }
        Some(Err(LookupError::Failed(problem))) => {
            return (json!({"known": false, "why": problem}), None);
        }
        Some(Ok(current)) => current,
    };
    // Worker code: compared by size and digest, never shown whole.
    if code && let Some(Value::String(now)) = current.get("content") {
        return describe_code(endpoint, args, now);
    }
    let shown = Value::Object(current.clone());
    let diff = match endpoint.method {
        Method::Delete => Some(json!({"removed": shown.clone()})),
        Method::Put | Method::Patch => {
            let mut fields = Map::new();
            for param in endpoint
                .params
                .iter()
                .filter(|p| p.location == Location::Body)
            {
                let Some(after) = args.get(&param.name) else {
                    continue;
                };
                let field = param.key.split('.').next().unwrap_or(&param.key);
                let now = current.get(field).cloned().unwrap_or(Value::Null);
                if &now != after {
                    fields.insert(field.to_string(), json!({"now": now, "after": after}));
                }
            }
            Some(Value::Object(fields))
        }
        _ => None,
    };
    (
        json!({"known": true, "exists": true, "object": shown}),
        diff,
    )
}

/// Code as it is and as the call would leave it, by size and digest.
fn describe_code(
    endpoint: &Endpoint,
    args: &Map<String, Value>,
    code: &str,
) -> (Value, Option<Value>) {
    let now = code_digest(code);
    let after = endpoint
        .params
        .iter()
        .find(|p| p.part == Some(Part::Module))
        .and_then(|p| args.get(&p.name))
        .and_then(Value::as_str)
        .map(code_digest);
    let changed = after.as_ref().map(|a| a["sha256"] != now["sha256"]);
    (
        json!({"known": true, "exists": true, "code": now}),
        after.map(|after| json!({"code": {"now": now, "after": after, "changed": changed}})),
    )
}

fn code_digest(code: &str) -> Value {
    json!({"bytes": code.len(), "sha256": crate::policy::sha256_hex(code)})
}
