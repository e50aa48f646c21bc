//! What the server writes into the chain besides calls: the refused calls
//! counted past an agent's refusal budget, and the approvals operators
//! decided on the host. Run every few seconds and at shutdown.

use super::Services;
use super::approve::blocking;
use crate::approval::{Approval, rule_of, time_of};
use crate::audit::{self, CallRecord, Decision, Outcome};
use crate::budget::Suppressed;

/// Why an operator's decision could not be written into the chain (it is
/// tried again at the next round).
#[derive(Debug, thiserror::Error)]
pub(crate) enum HousekeepingError {
    #[error(transparent)]
    Approvals(#[from] crate::approval::StoreFailed),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
}

impl Services {
    /// Writes one row for each agent's refused calls that were counted
    /// rather than written.
    pub(crate) async fn record_suppressed(&self) -> Result<(), audit::AuditError> {
        let mut taken = self.budgets.take_suppressed().into_iter();
        while let Some(suppressed) = taken.next() {
            let limit = self
                .engine
                .policy()
                .agent(&suppressed.agent)
                .and_then(|a| a.limits.refusals_per_minute)
                .unwrap_or(crate::budget::DEFAULT_REFUSALS_PER_MINUTE);
            let record = suppressed_record(&suppressed, limit, self.sandbox);
            if let Err(error) = self.audit.record(record, Outcome::default()).await {
                // Kept for the next try: no count is lost with the log down.
                self.budgets.restore(suppressed);
                taken.for_each(|rest| self.budgets.restore(rest));
                return Err(error);
            }
        }
        Ok(())
    }

    /// Writes into the chain the decisions operators made on the host
    /// since the last time (their calls, if made, have rows of their own).
    pub(crate) async fn record_decisions(&self) -> Result<(), HousekeepingError> {
        let Some((approvals, _)) = self.approvals.clone() else {
            return Ok(());
        };
        let decided = blocking(move || approvals.unrecorded()).await?;
        for approval in decided {
            self.record_decision(&approval).await?;
        }
        Ok(())
    }

    /// Writes one decision made on the host into the chain, once: it is
    /// claimed first (several instances may see it), and the claim given
    /// back if the row cannot be written, for the next try.
    pub(super) async fn record_decision(
        &self,
        approval: &Approval,
    ) -> Result<(), HousekeepingError> {
        let (approvals, _) = self.approvals.clone().expect("only called with approvals");
        let (store, id) = (approvals.clone(), approval.id.clone());
        if !blocking(move || store.claim(&id)).await? {
            return Ok(());
        }
        let record = decision_record(approval, self.sandbox);
        if let Err(error) = self.audit.record(record, Outcome::default()).await {
            let id = approval.id.clone();
            let _ = blocking(move || approvals.unclaim(&id)).await;
            return Err(error.into());
        }
        Ok(())
    }
}

/// The row that stands for refused calls counted past the refusal budget.
fn suppressed_record(s: &Suppressed, limit: u32, sandbox: bool) -> CallRecord {
    let first = humantime::format_rfc3339_millis(unix_ms(s.first_ms)).to_string();
    let last = humantime::format_rfc3339_millis(unix_ms(s.last_ms)).to_string();
    let reason = format!(
        "{} more refused calls between {first} and {last}, answered without a row each: over its limit of {limit} refused calls per minute",
        s.count
    );
    CallRecord {
        ts: audit::now_rfc3339(),
        ts_unix_ms: audit::now_unix_ms(),
        agent: s.agent.clone(),
        tool: String::new(),
        method: String::new(),
        path: String::new(),
        target: String::new(),
        args: serde_json::json!({ "refused_calls": s.count, "first": first, "last": last })
            .to_string(),
        decision: Decision::Deny,
        summary: format!("{} had {reason}", s.agent),
        reason,
        rule: "limits.refusals_per_minute".into(),
        lookup: String::new(),
        sandbox,
    }
}

fn unix_ms(ms: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64)
}

/// The chain row of a decision made on the host.
fn decision_record(approval: &Approval, sandbox: bool) -> CallRecord {
    let approved = approval.status == crate::approval::Status::Approved;
    let (decision, verb) = if approved {
        (Decision::Approved, "approved")
    } else {
        (Decision::Rejected, "rejected")
    };
    let by = approval.decided_by.as_deref().unwrap_or("?");
    let decided_ms = approval.decided_ms.unwrap_or_default();
    let mut reason = format!(
        "{verb} by {by} at {} (requested at {})",
        time_of(decided_ms),
        time_of(approval.requested_ms)
    );
    if let Some(note) = &approval.note {
        reason.push_str(&format!(": \"{note}\""));
    }
    CallRecord {
        ts: audit::now_rfc3339(),
        ts_unix_ms: audit::now_unix_ms(),
        agent: approval.agent.clone(),
        tool: approval.tool.clone(),
        method: String::new(),
        path: String::new(),
        target: String::new(),
        args: serde_json::json!({ "approval_id": approval.id }).to_string(),
        decision,
        summary: crate::text::escape(&format!(
            "{by} {verb} {}'s request to run {}",
            approval.agent, approval.summary
        ))
        .into_owned(),
        reason: crate::text::escape(&reason).into_owned(),
        rule: rule_of(&approval.id),
        lookup: String::new(),
        sandbox,
    }
}
