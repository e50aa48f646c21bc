//! Stage 2, decide: the policy's verdict for this agent. A call that must
//! see the object it acts on first has its lookup charged (`charge.rs`),
//! read (`upstream.rs`) and noted for its row, then is decided again.

use std::sync::Arc;

use super::upstream::LookupError;
use super::{Call, Services, Stop};
use crate::policy::{Denial, DenyKind, Verdict};

/// A verdict that allows the call: only `decide` makes one, and `charge`
/// asks for one before anything can be sent for the call.
#[derive(Debug, Clone)]
pub(super) struct Allowed {
    /// In plain words ("your DNS grant is full"), and the rule that decided.
    pub reason: Arc<str>,
    pub rule: Arc<str>,
}

impl Services {
    pub(super) async fn decide(&self, call: &mut Call<'_>) -> Result<Allowed, Stop> {
        let (policy, agent) = (call.policy, call.agent);
        let mut verdict = self
            .engine
            .decide(policy, agent, &call.tool, &call.args)
            .await;
        if verdict == Verdict::NeedsLookup {
            let mut ticket = self.charge_lookup(call).await?;
            let object = self.look_up(call, &mut ticket).await;
            verdict = match &object {
                Ok(current) => self
                    .engine
                    .decide_with(policy, agent, &call.tool, &call.args, current),
                Err(error) => Verdict::Deny(lookup_failed(error)),
            };
            call.looked_up = Some(object);
        }
        match verdict {
            Verdict::Allow { reason, rule } => Ok(Allowed { reason, rule }),
            Verdict::Deny(denial) => Err(Stop::Refused(denial)),
            Verdict::NeedsLookup => Err(Stop::Refused(Denial::new(
                DenyKind::LookupFailed,
                "the object this call acts on could not be checked",
                "lookup",
            ))),
        }
    }
}

/// The refusal of a call whose object could not be fetched to check it.
fn lookup_failed(error: &LookupError) -> Denial {
    match error {
        LookupError::NotFound => Denial::new(
            DenyKind::LookupFailed,
            "there is no such object: Cloudflare answered 404 when flaregate fetched it to check the call",
            "lookup",
        ),
        LookupError::Failed(problem) => Denial::new(
            DenyKind::LookupFailed,
            format!("cannot check the object this call acts on: {problem}"),
            "lookup",
        ),
    }
}
