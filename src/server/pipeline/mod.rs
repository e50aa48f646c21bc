//! One call, one pipeline of stages. No rmcp type crosses into this module:
//! `server::mcp` turns a client's request into a [`CallRequest`] and the
//! [`Answer`] back into MCP.
//!
//! admit → decide → charge → (an undo's check) → approve → preview | execute
//!
//! Each stage returns the call's next state or a [`Stop`]; every refusal is
//! written in one place (`refuse.rs`). Nothing reaches Cloudflare for an
//! agent except through `upstream.rs`, which spends a [`Ticket`] that only
//! `charge.rs` makes, and only for an [`Allowed`] verdict or the lookup that
//! verdict needs: a preview, a snapshot or an undo's read cannot run ahead
//! of the decision or of the agent's budgets.

mod admit;
mod answer;
mod approve;
mod call;
mod charge;
mod decide;
mod execute;
mod housekeeping;
mod preview;
mod record;
mod refuse;
mod request;
mod run;
mod services;
mod snapshot;
#[cfg(test)]
mod tests;
mod undo;
mod upstream;
mod visible;

pub(crate) use answer::{Answer, Fault};
pub(crate) use request::{APPROVAL_ID, AskClient, Asker, CallRequest, Said};
pub(crate) use services::Services;
pub(crate) use undo::UNDO;
pub(crate) use upstream::{LookupError, fetch_object};

use call::Call;
use charge::Ticket;
use decide::Allowed;

/// Why a call goes no further than the stage that stopped it.
enum Stop {
    /// Refused: written in `refuse.rs`, then the agent told why.
    Refused(crate::policy::Denial),
    /// Refused, with more for the agent than words (written the same way).
    RefusedShowing(crate::policy::Denial, Shown),
    /// Not a tool this agent sees (unknown and not granted look the same).
    Unknown,
    /// flaregate cannot go on; nothing was sent.
    Fault(Fault),
}

/// What a refusal shows besides its words.
enum Shown {
    /// The preview of the call a person must approve first.
    Preview(serde_json::Value),
    /// The question for the person at the client, and the request state
    /// the client sends back with the answer (2026-07-28).
    Ask { question: String, state: String },
}

impl From<Fault> for Stop {
    fn from(fault: Fault) -> Self {
        Stop::Fault(fault)
    }
}
