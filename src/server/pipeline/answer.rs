//! What the pipeline answers, for `server::mcp` to put into MCP's words.

use std::sync::Arc;

use serde_json::Value;

use crate::catalog::Endpoint;
use crate::cloudflare::ApiResponse;

/// The answer to one call.
#[derive(Debug)]
pub(crate) enum Answer {
    /// What Cloudflare answered to the call.
    Result {
        endpoint: Arc<Endpoint>,
        response: ApiResponse,
    },
    /// A value flaregate made itself: a preview.
    Made(Value),
    /// Refused by flaregate: the words for the agent, and a value when
    /// there is one to show (a preview).
    Refused { text: String, shown: Option<Value> },
    /// Cloudflare, or the way to it, failed: what happened and what to do.
    Failed(String),
    /// A person at the client must approve the call first: the question,
    /// and the state its retry brings back (2026-07-28).
    Ask { question: String, state: String },
    /// An undo: which row it undoes and how, then the restoring call's answer.
    Undo {
        heading: String,
        /// The restoring call's tool.
        restorer: String,
        answer: Box<Answer>,
    },
}

/// Why flaregate could not answer a call at all (a protocol error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The agent was removed from the policy since it connected.
    AgentGone,
    /// No such tool, or one this agent may not see.
    UnknownTool(String),
    /// The audit log cannot record the call: refused, nothing sent.
    AuditDown(String),
}

impl Answer {
    pub(crate) fn refused(text: impl Into<String>) -> Self {
        Answer::Refused {
            text: text.into(),
            shown: None,
        }
    }

    /// Whether the agent is told its call failed or was refused.
    pub(crate) fn is_error(&self) -> bool {
        match self {
            Answer::Refused { .. } | Answer::Failed(_) => true,
            Answer::Undo { answer, .. } => answer.is_error(),
            Answer::Result { .. } | Answer::Made(_) | Answer::Ask { .. } => false,
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::AgentGone => write!(f, "this agent is no longer in the policy"),
            Fault::UnknownTool(tool) => write!(f, "Unknown tool: {tool}"),
            Fault::AuditDown(error) => write!(
                f,
                "flaregate refused the call because its audit log cannot record it ({error}); nothing was sent to Cloudflare"
            ),
        }
    }
}
