//! One call's state as it goes through the stages.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::request::{Asker, Options};
use super::undo::Plan;
use super::upstream::LookupError;
use crate::catalog::Endpoint;
use crate::cloudflare::PreparedRequest;
use crate::policy::{Agent, Policy};
use crate::telemetry::CallTrace;

/// A call under way.
pub(super) struct Call<'a> {
    /// The policy when the call arrived; used to its end.
    pub policy: &'a Policy,
    pub agent: &'a Agent,
    /// Who signed in as the agent ("alice@example.com via client claude").
    pub person: Option<String>,
    /// What its OAuth token's scopes allow (unlimited for a key).
    pub scopes: crate::oauth::TokenAccess,
    /// Made by an admin in the console (see `CallRequest::from_console`).
    pub from_console: bool,
    /// Confirmed by an operator who may approve (`CallRequest::confirmed`).
    pub confirmed: bool,
    /// The tool as asked (an undo's becomes the restoring tool's).
    pub tool: String,
    /// Its arguments, flaregate's own options taken out.
    pub args: Map<String, Value>,
    pub options: Options,
    pub asker: Option<Asker>,
    /// The catalog entry, once admitted (shared: the answer carries it).
    pub endpoint: Option<&'a Arc<Endpoint>>,
    /// The request it sends, built once admitted (what is logged is what
    /// is sent).
    pub request: Option<PreparedRequest>,
    /// Every read made for it ("GET … → 200 in 4 ms"), written with its row.
    pub lookup: String,
    /// The object the decision's lookup read, if one did (a preview or a
    /// snapshot of the same object uses it instead of reading again).
    pub looked_up: Option<Result<Map<String, Value>, LookupError>>,
    /// Whether the call itself was charged already (with its lookup).
    pub charged_call: bool,
    /// An undo: the logged row and how to put it back.
    pub undo: Option<Plan<'a>>,
    /// The call's span, when traces are on.
    pub trace: Option<&'a CallTrace>,
}

impl<'a> Call<'a> {
    /// Who signed in as the agent, for log lines ("-" for a key).
    pub(super) fn who(&self) -> std::borrow::Cow<'_, str> {
        self.person
            .as_deref()
            .map_or("-".into(), crate::text::escape)
    }

    pub(super) fn new(
        policy: &'a Policy,
        agent: &'a Agent,
        request: super::CallRequest,
        trace: Option<&'a CallTrace>,
    ) -> Self {
        Self {
            policy,
            agent,
            person: request.person,
            scopes: request.scopes,
            from_console: request.from_console,
            confirmed: request.confirmed,
            tool: request.tool,
            args: request.args,
            options: Options::default(),
            asker: request.asker,
            endpoint: None,
            request: None,
            lookup: String::new(),
            looked_up: None,
            charged_call: false,
            undo: None,
            trace,
        }
    }

    /// Times a step that began at `start_ns` into the call's span, if traced.
    pub(super) fn step(&self, name: &'static str, start_ns: u64) {
        if let Some(trace) = self.trace {
            trace.step(name, start_ns);
        }
    }

    /// Adds a read made for the call to what its row says was fetched.
    pub(super) fn note(&mut self, note: &str) {
        if note.is_empty() {
            return;
        }
        if !self.lookup.is_empty() {
            self.lookup.push_str("; ");
        }
        self.lookup.push_str(note);
    }

    /// The admitted endpoint (every stage after `admit`).
    pub(super) fn endpoint(&self) -> &'a Endpoint {
        self.endpoint.expect("stages after admit have an endpoint")
    }

    /// The admitted entry, shared (for an answer that outlives the call).
    pub(super) fn shared_endpoint(&self) -> Arc<Endpoint> {
        Arc::clone(self.endpoint.expect("stages after admit have an endpoint"))
    }
}
