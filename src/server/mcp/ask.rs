//! Asking the person at the client to approve a call, in MCP's terms: an
//! `elicitation/create` form in an initialized session, or an
//! `input_required` result a 2026-07-28 client answers on its retry. The
//! pipeline decides when to ask; this module only speaks the protocol.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ElicitRequest, ElicitRequestParams,
    ElicitationAction, ElicitationSchema, InputRequest, InputRequiredResult, InputResponses,
    ProtocolVersion,
};
use rmcp::service::{ElicitationMode, RequestContext};
use rmcp::{Peer, RoleServer};
use serde_json::Value;

use crate::server::pipeline::{AskClient, Asker, Said};

/// The key of the one question (a yes/no field) in every form.
const QUESTION: &str = "approve";

/// How the client can ask its user to approve a call, if it can: a
/// 2026-07-28 request that declares elicitation gets an `input_required`
/// result (and brings the answer on its retry); an initialized session
/// whose client declared elicitation is sent `elicitation/create`.
pub(super) fn asker(
    request: &CallToolRequestParams,
    context: &RequestContext<RoleServer>,
) -> Option<Asker> {
    let modern = context
        .protocol_version()
        .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str());
    if modern {
        return retry_asker(request, context.client_capabilities());
    }
    context
        .peer
        .supported_elicitation_modes()
        .contains(&ElicitationMode::Form)
        .then(|| Asker::Session(Arc::new(SessionAsker(context.peer.clone()))))
}

/// For a 2026-07-28 request: asking by `input_required`, if the client
/// declared form elicitation in `capabilities`.
pub(super) fn retry_asker(
    request: &CallToolRequestParams,
    capabilities: Option<ClientCapabilities>,
) -> Option<Asker> {
    let elicitation = capabilities?.elicitation?;
    let form = elicitation.form.is_some() || elicitation.url.is_none();
    form.then(|| Asker::Retry {
        said: said_in(request.input_responses.as_ref()),
        state: request.request_state.clone(),
    })
}

/// What the user said, as a retry brings it; none if it brought no answer.
fn said_in(responses: Option<&InputResponses>) -> Option<Said> {
    let answer = responses?.get(QUESTION)?;
    let action = answer.get("action")?;
    Some(
        match serde_json::from_value::<ElicitationAction>(action.clone()) {
            Ok(action) => said(
                action,
                answer.pointer("/content/approve").and_then(Value::as_bool),
            ),
            Err(_) => Said::Nothing("the client's answer is not one MCP knows".into()),
        },
    )
}

fn said(action: ElicitationAction, approve: Option<bool>) -> Said {
    match (action, approve) {
        (ElicitationAction::Accept, Some(true)) => Said::Yes,
        (ElicitationAction::Accept, _) => Said::Nothing(
            "the person at the client accepted the form without approving the call".into(),
        ),
        (ElicitationAction::Cancel, _) => Said::No { cancelled: true },
        (_, _) => Said::No { cancelled: false },
    }
}

/// The question as a form with one required yes/no field.
fn form(message: String) -> ElicitRequestParams {
    ElicitRequestParams::FormElicitationParams {
        meta: None,
        message,
        requested_schema: ElicitationSchema::builder()
            .required_bool(QUESTION)
            .build_unchecked(),
    }
}

/// The `input_required` answer of a 2026-07-28 call: the question, and the
/// state (the approval id) the retry brings back.
pub(super) fn input_required(question: String, state: String) -> InputRequiredResult {
    let asked = InputRequest::Elicitation(ElicitRequest::new(form(question)));
    InputRequiredResult::new(
        Some(BTreeMap::from([(QUESTION.to_string(), asked)])),
        Some(state),
    )
}

/// Asks through an initialized session's `elicitation/create`.
struct SessionAsker(Peer<RoleServer>);

impl AskClient for SessionAsker {
    fn ask(&self, message: String) -> Pin<Box<dyn Future<Output = Said> + Send + '_>> {
        Box::pin(async move {
            match self.0.create_elicitation(form(message)).await {
                Ok(result) => said(
                    result.action,
                    result.content.as_ref().and_then(|c| c[QUESTION].as_bool()),
                ),
                Err(error) => Said::Nothing(format!("the client could not ask its user ({error})")),
            }
        })
    }
}
