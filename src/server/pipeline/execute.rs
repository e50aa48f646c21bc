//! Stage 5b, execute: an allowed, charged (and, where asked, approved)
//! call — its snapshot read, its decision row written (and flushed before
//! anything that can change something is sent), the request sent, the
//! outcome written before the agent hears it.

use std::time::Instant;

use super::record::{audit_down, deleted, outcome_of};
use super::visible::Visible;
use super::{Allowed, Answer, Call, Services, Stop, Ticket};
use crate::audit::{Decision, RowRef};
use crate::catalog::Method;
use crate::cloudflare::CloudflareError;
use crate::telemetry;

impl Services {
    pub(super) async fn execute(
        &self,
        call: &mut Call<'_>,
        allowed: Allowed,
        mut ticket: Ticket,
    ) -> Result<Answer, Stop> {
        let endpoint = call.endpoint();
        // What the write changes, kept for undo (read before the row, so
        // the row's lookup notes its digest).
        let snapshot = self
            .snapshot(call, &mut ticket)
            .await
            .map_err(Stop::Refused)?;
        let kept = snapshot.is_some();
        let call = &*call;
        let record = self.record(call, Decision::Allow, &allowed.reason, &allowed.rule);
        let step = telemetry::now_ns();
        let (row, flushed) = self
            .audit
            .begin_with(record, snapshot)
            .await
            .map_err(|e| Stop::Fault(audit_down(e)))?;
        call.step("audit.decision", step);
        self.metrics
            .call(&call.agent.id, &endpoint.tool, Decision::Allow, "none");
        let send_and_record = self.send_and_record(call, &mut ticket, row, kept);
        let answer = if endpoint.method == Method::Get {
            // A read changes nothing upstream, so it runs while the decision
            // is flushed; the agent sees nothing until the flush is done.
            let (flushed, answer) = tokio::join!(flushed.wait(), send_and_record);
            flushed.map_err(|e| Stop::Fault(audit_down(e)))?;
            answer
        } else {
            let step = telemetry::now_ns();
            flushed
                .wait()
                .await
                .map_err(|e| Stop::Fault(audit_down(e)))?;
            call.step("audit.flush", step);
            send_and_record.await
        };
        Ok(answer_of(call, answer))
    }

    /// Sends the call, then records its outcome (written before the agent
    /// hears it); a write that kept a snapshot also records what it left.
    async fn send_and_record(
        &self,
        call: &Call<'_>,
        ticket: &mut Ticket,
        row: RowRef,
        kept: bool,
    ) -> Result<Visible, CloudflareError> {
        let started = Instant::now();
        let step = telemetry::now_ns();
        let answer = self.send_call(call, ticket).await;
        let took = started.elapsed();
        call.step("cloudflare", step);
        let status = match &answer {
            Ok(Visible::Answer(ok)) => Some(ok.status),
            Ok(Visible::Withheld) => Some(200),
            Err(error) => error.status(),
        };
        self.metrics.upstream(status, took);
        let mut outcome = outcome_of(&answer, took.as_millis() as u64);
        if let (true, Ok(Visible::Answer(ok))) = (kept, &answer) {
            (outcome.after, outcome.created) =
                super::snapshot::after_of(call.endpoint(), &call.args, &ok.result);
            if let Some(created) = &outcome.created {
                outcome.text = format!(
                    "{}; it created {created}",
                    outcome.text.trim_end_matches('.')
                );
            }
        }
        if kept {
            // What undo will compare against, tied to the hashed outcome.
            let left = crate::audit::snapshot_after_note(outcome.after.as_deref());
            outcome.text = format!("{} {left}", outcome.text);
        }
        let step = telemetry::now_ns();
        let completed = self.audit.complete(row, outcome).await;
        call.step("audit.outcome", step);
        if let Err(error) = completed {
            // The call already happened; say so to the operator, answer the agent.
            tracing::error!(%error, row = row.id, "cannot record a call's outcome");
        }
        answer
    }

    /// Sends the call: cut to what the agent may see, or as it is.
    async fn send_call(
        &self,
        call: &Call<'_>,
        ticket: &mut Ticket,
    ) -> Result<Visible, CloudflareError> {
        let endpoint = call.endpoint();
        if call.policy.filters_list(call.agent, endpoint) {
            return self.fetch_visible(call, ticket).await;
        }
        let request = call.request.as_ref().expect("built when admitted");
        self.send(ticket, request, endpoint.response)
            .await
            .map(Visible::Answer)
    }
}

/// The agent's answer to a call that was sent.
fn answer_of(call: &Call<'_>, answer: Result<Visible, CloudflareError>) -> Answer {
    let endpoint = call.endpoint();
    match answer {
        Ok(Visible::Answer(mut response)) => {
            if endpoint.method == Method::Delete && response.result.is_null() {
                response.result = deleted(call);
            }
            Answer::Result {
                endpoint: call.shared_endpoint(),
                response,
            }
        }
        Ok(Visible::Withheld) => Answer::refused(
            "Denied by flaregate policy: what this call names is outside your allowed values; nothing of it is shown.",
        ),
        Err(error) if error.status() == Some(403) => {
            // Not the agent's doing: the token flaregate holds lacks it.
            tracing::warn!(
                agent = %call.agent.id, person = %call.who(), tool = %endpoint.tool,
                permission = %endpoint.permission,
                "Cloudflare refused a call: the token lacks a permission"
            );
            Answer::refused(format!(
                "{error} flaregate's Cloudflare token lacks {} for this call: the operator must add it to the token.",
                endpoint.permission
            ))
        }
        Err(error) => Answer::Failed(error.to_string()),
    }
}
