//! What a call asks: the agent, the tool and its arguments, how the person
//! at the client can be asked, and flaregate's own options, parsed once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::catalog::{Access, Catalog, DRY_RUN, Endpoint};
use crate::policy::Agent;

/// One call as a client (or one of flaregate's own tools) asks it.
pub(crate) struct CallRequest {
    pub agent: String,
    /// The person and client an OAuth token named, for the audit row.
    pub person: Option<String>,
    /// What its OAuth token's scopes allow (unlimited for a key).
    pub scopes: crate::oauth::TokenAccess,
    /// An admin in the console makes this call for the agent (an undo
    /// from a row): `undo_call` is admitted whatever the agent's `undo`;
    /// the restoring call is still judged by the agent's policy.
    pub from_console: bool,
    /// The person (`person`, an operator in the console who may approve)
    /// saw this exact call's preview and confirmed it: an approval it
    /// needs is requested, approved by them and redeemed at once, each
    /// step in the approvals table as any other.
    pub confirmed: bool,
    pub tool: String,
    pub args: Map<String, Value>,
    /// How to ask the person at the client, if the client can.
    pub asker: Option<Asker>,
    /// The client's W3C trace context (`_meta.traceparent`), if any.
    pub traceparent: Option<String>,
}

/// flaregate's own options of a call, never sent upstream.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Options {
    /// Preview the write instead of making it (`dry_run: true`).
    pub dry_run: bool,
    /// The operator's approval this call redeems (`approval_id`).
    pub approval_id: Option<String>,
    /// The logged write this call undoes (`undo_call`).
    pub undoes: Option<Undoes>,
}

/// The row an undo puts back, and whether it may overwrite a later change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Undoes {
    pub row: i64,
    pub force: bool,
}

/// flaregate's own argument for an approval id.
pub(crate) const APPROVAL_ID: &str = "approval_id";

impl Options {
    /// Takes flaregate's own arguments out of `args`, only where this
    /// agent's schema of `endpoint` offers them: `dry_run` on a write,
    /// `approval_id` on a tool that needs approval. Anything else is left
    /// for the schema to refuse.
    pub(super) fn take_from(
        &mut self,
        args: &mut Map<String, Value>,
        endpoint: &Endpoint,
        (catalog, agent): (&Catalog, &Agent),
    ) {
        if agent.needs_approval(catalog, &endpoint.tool) {
            self.approval_id = match args.remove(APPROVAL_ID) {
                Some(Value::String(id)) => Some(id),
                // Anything else names no approval: refused like an unknown id.
                Some(other) => Some(crate::text::clip(&other.to_string(), 40)),
                None => self.approval_id.take(),
            };
        }
        if endpoint.access == Access::Write
            && let Some(Value::Bool(dry_run)) = args.get(DRY_RUN)
        {
            self.dry_run |= *dry_run;
            args.remove(DRY_RUN);
        }
    }
}

/// How the person at the client can be asked to approve a call.
pub(crate) enum Asker {
    /// An initialized session: asked now, the answer awaited.
    Session(Arc<dyn AskClient>),
    /// A 2026-07-28 request from a client that declared elicitation: asked
    /// by answering [`super::Answer::Ask`]; the retry brings what its user
    /// said (`said`, none if it brought no answer) and the request state.
    Retry {
        said: Option<Said>,
        state: Option<String>,
    },
}

/// Puts a yes/no question to the person at the client, in a session.
pub(crate) trait AskClient: Send + Sync {
    fn ask(&self, message: String) -> Pin<Box<dyn Future<Output = Said> + Send + '_>>;
}

/// What the person at the client said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Said {
    Yes,
    /// Declined, or cancelled.
    No {
        cancelled: bool,
    },
    /// No yes came: no answer, or a form accepted without approving.
    Nothing(String),
}
