//! The audit records of a call: its decision row, and what Cloudflare
//! answered.

use serde_json::Value;

use super::visible::Visible;
use super::{Call, Services};
use crate::audit::{self, CallRecord, Decision, Outcome, summary};
use crate::cloudflare::CloudflareError;
use crate::policy::describe_target;
use crate::text;

impl Services {
    /// The audit record of `call` with `decision`.
    pub(super) fn record(
        &self,
        call: &Call<'_>,
        decision: Decision,
        reason: &str,
        rule: &str,
    ) -> CallRecord {
        let directory = self.engine.directory();
        let endpoint = call.endpoint.map(|e| &**e);
        let target = endpoint.and_then(|e| describe_target(e, &call.args, &directory));
        let (method, path) = match (endpoint, &call.request) {
            (Some(e), Some(r)) => (e.method.to_string(), r.path.clone()),
            (Some(e), None) => (e.method.to_string(), e.path.raw.clone()),
            (None, _) => (String::new(), String::new()),
        };
        let tool = text::clip(&call.tool, 64);
        // An undo's rows say which row they undo.
        let reason = match &call.options.undoes {
            Some(undoes) => {
                std::borrow::Cow::Owned(format!("{reason} {}", audit::undo_note(undoes.row)))
            }
            None => std::borrow::Cow::Borrowed(reason),
        };
        let reason = &*reason;
        CallRecord {
            ts: audit::now_rfc3339(),
            ts_unix_ms: audit::now_unix_ms(),
            agent: call.agent.id.clone(),
            method,
            path,
            target: target.clone().unwrap_or_default(),
            args: audit::stored_args(endpoint, &call.args),
            decision,
            reason: text::escape(reason).into_owned(),
            rule: text::escape(rule).into_owned(),
            summary: summary::decision(
                &match &call.person {
                    Some(person) => format!("{person} as {}", call.agent.id),
                    None => call.agent.id.clone(),
                },
                endpoint,
                &tool,
                target.as_deref(),
                &call.args,
                decision,
                reason,
            ),
            tool,
            lookup: call.lookup.clone(),
            sandbox: self.sandbox,
        }
    }
}

/// What Cloudflare answered, for the audit log.
pub(super) fn outcome_of(answer: &Result<Visible, CloudflareError>, duration_ms: u64) -> Outcome {
    match answer {
        Ok(Visible::Answer(ok)) => Outcome {
            status: Some(ok.status),
            duration_ms: Some(duration_ms),
            text: summary::outcome(Some(ok.status), &[], None, duration_ms),
            ..Outcome::default()
        },
        Ok(Visible::Withheld) => Outcome {
            status: Some(200),
            duration_ms: Some(duration_ms),
            text: format!(
                "{}; the answer was withheld: outside the agent's constraints",
                summary::outcome(Some(200), &[], None, duration_ms)
            ),
            ..Outcome::default()
        },
        Err(error) => Outcome {
            status: error.status(),
            cf_codes: error.codes(),
            error: Some(text::clip(&error.to_string(), 2048)),
            duration_ms: Some(duration_ms),
            text: summary::outcome(
                error.status(),
                &error.codes(),
                Some(&error.to_string()),
                duration_ms,
            ),
            ..Outcome::default()
        },
    }
}

/// What a delete removed, when Cloudflare answers `null`: the object's
/// path arguments (`{"deleted": true, "script_name": "site-blog", …}`).
pub(super) fn deleted(call: &Call<'_>) -> Value {
    let mut what = serde_json::Map::new();
    what.insert("deleted".into(), true.into());
    for name in call.endpoint().path.params() {
        if let Some(value) = call.args.get(name) {
            what.insert(name.to_string(), value.clone());
        }
    }
    Value::Object(what)
}

/// The audit log could not take the record: fail closed.
pub(super) fn audit_down(error: audit::AuditError) -> super::Fault {
    tracing::error!(%error, "refusing calls: the audit log cannot record them");
    super::Fault::AuditDown(error.to_string())
}
