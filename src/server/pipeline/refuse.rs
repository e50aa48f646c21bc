//! Where every refusal is written: one row each (up to the agent's refusal
//! budget, counted past it), then the words the agent is told. Nothing an
//! agent may not read goes into those words: a refusal that rests on the
//! object as it is says only that the agent may not act on it, and a
//! refused undo says only that the agent may not act on that row.

use serde_json::json;

use super::record::audit_down;
use super::{Answer, Call, Fault, Services, Shown, Stop};
use crate::audit::{self, Decision, Outcome};
use crate::policy::{Denial, DenyKind, Verdict};
use crate::{telemetry, text};

impl Services {
    /// Writes the refusal a stage stopped `call` with, and answers it.
    pub(super) async fn stopped(&self, call: &Call<'_>, stop: Stop) -> Result<Answer, Fault> {
        let (denial, shown) = match stop {
            Stop::Fault(fault) => return Err(fault),
            Stop::Unknown if call.options.undoes.is_some() => {
                // The restoring call is not one the agent may make.
                let denial = Denial::new(
                    DenyKind::NotGranted,
                    format!("{} is not one of your tools", text::clip(&call.tool, 64)),
                    "grants",
                );
                (denial, None)
            }
            Stop::Unknown => {
                // Unknown and not-granted tools look the same to the agent;
                // the row says which it was.
                let directory = self.engine.directory();
                let denial = match call
                    .policy
                    .decide(call.agent, &call.tool, &call.args, &directory, None)
                {
                    Verdict::Deny(denial) => denial,
                    _ => Denial::new(
                        DenyKind::UnknownTool,
                        "the tool is not visible",
                        "unknown tool",
                    ),
                };
                self.write_refusal(call, &denial, Decision::Deny).await?;
                return Err(Fault::UnknownTool(text::clip(&call.tool, 64)));
            }
            Stop::Refused(denial) => (denial, None),
            Stop::RefusedShowing(denial, shown) => (denial, Some(shown)),
        };
        let said = agent_text(call, &denial);
        if call.options.dry_run && rests_on_policy(denial.kind) {
            // A preview the policy would refuse: the decision alone.
            self.write_refusal(call, &denial, Decision::Preview).await?;
            let decision = json!({"would_be": "denied", "kind": denial.kind.as_str(), "reason": said, "rule": &*denial.rule});
            let shown = json!({"preview": true, "decision": decision, "note": "A preview: nothing was sent to Cloudflare, and the call would be refused."});
            return Ok(Answer::Refused {
                text: said,
                shown: Some(shown),
            });
        }
        self.write_refusal(call, &denial, Decision::Deny).await?;
        Ok(match shown {
            None => Answer::refused(said),
            Some(Shown::Preview(preview)) => Answer::Refused {
                text: said,
                shown: Some(preview),
            },
            Some(Shown::Ask { question, state }) => Answer::Ask { question, state },
        })
    }

    /// Audits a refusal (decision and outcome at once), charged to the
    /// agent's refusal budget; past it, counted instead of written — unless
    /// the call read something from Cloudflare (every request sent has its
    /// row, and those are bounded by the agent's upstream share) or it
    /// issued an approval id (the request must be in the chain).
    async fn write_refusal(
        &self,
        call: &Call<'_>,
        denial: &Denial,
        decision: Decision,
    ) -> Result<(), Fault> {
        let agent = call.agent;
        // Labels from the catalog only: an agent's made-up names are "unknown".
        let label = call.endpoint.map_or("unknown", |e| e.tool.as_str());
        self.metrics
            .call(&agent.id, label, Decision::Deny, denial.kind.as_str());
        let must_write = !call.lookup.is_empty() || denial.kind == DenyKind::ApprovalRequired;
        if !self.charge_refusal(agent).await && !must_write {
            self.budgets.suppress(&agent.id, audit::now_unix_ms());
            tracing::debug!(agent = %agent.id, kind = denial.kind.as_str(), "refused call counted, not written: over the refusal budget");
            return Ok(());
        }
        tracing::info!(
            agent = %agent.id, person = %call.who(), tool = %text::clip(&call.tool, 64),
            kind = denial.kind.as_str(), reason = %text::escape(&denial.reason), "call denied"
        );
        let record = if decision == Decision::Preview {
            let reason = format!("would be denied: {}", denial.reason);
            let mut record = self.record(call, decision, &reason, &denial.rule);
            record.summary = format!("previewed: {}", record.summary);
            record
        } else {
            self.record(call, decision, &denial.reason, &denial.rule)
        };
        let step = telemetry::now_ns();
        let recorded = self.audit.record(record, Outcome::default()).await;
        call.step("audit.refusal", step);
        recorded.map(|_| ()).map_err(audit_down)
    }
}

/// Whether a refusal is the policy's verdict on the call (rather than its
/// arguments, budgets or approval).
fn rests_on_policy(kind: DenyKind) -> bool {
    matches!(
        kind,
        DenyKind::NotGranted
            | DenyKind::OutsideScope
            | DenyKind::Unresolved
            | DenyKind::Constraint
            | DenyKind::Immutable
            | DenyKind::LookupFailed
    )
}

/// What the agent is told of a refusal.
fn agent_text(call: &Call<'_>, denial: &Denial) -> String {
    if let Some(undoes) = &call.options.undoes
        && rests_on_policy(denial.kind)
    {
        return format!(
            "Denied by flaregate policy: you may not act on row {}.",
            undoes.row
        );
    }
    let reveals_object = !call.lookup.is_empty()
        && matches!(
            denial.kind,
            DenyKind::Constraint | DenyKind::Immutable | DenyKind::LookupFailed
        );
    let may_read_object = call
        .endpoint
        .and_then(|e| e.lookup.as_ref())
        .is_some_and(|lookup| call.agent.may_see(call.policy.catalog(), &lookup.tool));
    let reason = if reveals_object && !may_read_object {
        "you may not act on the object this call names"
    } else {
        &denial.reason
    };
    let reason = reason.trim_end_matches('.');
    match denial.kind {
        DenyKind::InvalidArguments => format!("{reason}. Nothing was sent to Cloudflare."),
        DenyKind::OverLimit => format!("Refused: {reason}. Nothing was sent to Cloudflare."),
        _ => format!("Denied by flaregate policy: {reason}."),
    }
}
