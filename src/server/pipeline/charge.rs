//! Stage 3, charge: the one place budgets are spent. An allowed call is
//! charged, before anything is sent for it, for every request it will send
//! (the lookup that decided it, a preview's or a snapshot's read, an undo's
//! check, the call itself); what comes back is the [`Ticket`] those
//! requests are sent on. Refusals are charged here too.

use super::approve::Route;
use super::{Allowed, Call, Services, Stop};
use crate::budget::{Charge, OverBudget};
use crate::catalog::Access;
use crate::policy::{Agent, Denial, DenyKind};

/// The requests a call was charged for: made only here, spent one request
/// at a time by `upstream.rs`, so nothing goes that was not paid for.
#[derive(Debug)]
pub(super) struct Ticket {
    left: u32,
}

impl Ticket {
    /// A ticket for nothing (what a test holds to show that an uncharged
    /// request does not go).
    #[cfg(test)]
    pub(super) fn empty() -> Self {
        Ticket { left: 0 }
    }

    /// Takes one request from the ticket; false when none is left.
    pub(super) fn take(&mut self) -> bool {
        let had = self.left > 0;
        self.left = self.left.saturating_sub(1);
        had
    }
}

impl Services {
    /// Charges the lookup a decision needs: the call, and one request.
    pub(super) async fn charge_lookup(&self, call: &mut Call<'_>) -> Result<Ticket, Stop> {
        let charge = Charge {
            call: true,
            upstream: 1,
            ..Charge::default()
        };
        self.spend(call.agent, charge).await.map_err(refused)?;
        call.charged_call = true;
        Ok(Ticket { left: 1 })
    }

    /// Charges an allowed call for everything it will send.
    pub(super) async fn charge(
        &self,
        call: &mut Call<'_>,
        _allowed: &Allowed,
    ) -> Result<Ticket, Stop> {
        let route = super::approve::route(self, call);
        let preview_reads = self.preview_reads(call);
        let undo_reads = call.undo.as_ref().map_or(0, |plan| plan.reads(self));
        let (requests, write) = match (call.options.dry_run, route) {
            (true, _) => (preview_reads + undo_reads, false),
            // Asking is charged as a call (its preview reads Cloudflare).
            (false, Route::AskAndStop) => (preview_reads + undo_reads, false),
            (false, route) => {
                let asking = if matches!(route, Route::AskAndWait | Route::Confirmed) {
                    preview_reads
                } else {
                    0
                };
                let sends = 1 + self.snapshot_reads(call) + asking + undo_reads;
                (sends, call.endpoint().access == Access::Write)
            }
        };
        // A request to an endpoint with a quota of its own is charged to
        // that quota, not the REST budget.
        let sends_call = !call.options.dry_run && route != Route::AskAndStop;
        let quota = call.endpoint().quota.filter(|_| sends_call);
        let charge = Charge {
            call: !call.charged_call,
            write,
            refusal: false,
            upstream: requests.saturating_sub(u32::from(quota.is_some())),
            quota,
        };
        self.spend(call.agent, charge).await.map_err(refused)?;
        call.charged_call = true;
        Ok(Ticket { left: requests })
    }

    /// Charges one more page of a list the agent sees cut to its
    /// constraints (each page is a request), before it is sent.
    pub(super) async fn charge_page(
        &self,
        agent: &Agent,
        ticket: &mut Ticket,
    ) -> Result<(), OverBudget> {
        let page = Charge {
            upstream: 1,
            ..Charge::default()
        };
        self.spend(agent, page).await?;
        ticket.left += 1;
        Ok(())
    }

    /// Charges a refusal to the agent's refusal budget; false when it is
    /// spent (the refusal is then counted rather than written).
    pub(super) async fn charge_refusal(&self, agent: &Agent) -> bool {
        let refusal = Charge {
            refusal: true,
            ..Charge::default()
        };
        self.spend(agent, refusal).await.is_ok()
    }

    async fn spend(&self, agent: &Agent, charge: Charge) -> Result<(), OverBudget> {
        self.budgets.spend(&agent.id, &agent.limits, charge).await
    }
}

fn refused(over: OverBudget) -> Stop {
    Stop::Refused(over_limit(&over))
}

/// The refusal of a call that is over one of its agent's budgets.
pub(super) fn over_limit(over: &OverBudget) -> Denial {
    Denial::new(DenyKind::OverLimit, over.to_string(), "limits")
}
