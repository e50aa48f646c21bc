//! Tool results for the agent: Cloudflare's answer as structuredContent
//! with a readable text rendering, and failures as isError results that say
//! what happened and what to do.

use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock, ErrorData};
use serde_json::{Map, Value, json};

use crate::server::pipeline::{Answer, Fault};

use crate::catalog::{Endpoint, Pagination, ResponseKind};
use crate::cloudflare::{ApiResponse, next_cursor};

/// A successful call: `{"result": …, "result_info"?: …, "next_page"?|"next_cursor"?: …}`.
pub(super) fn success(endpoint: &Endpoint, answer: ApiResponse) -> CallToolResult {
    let mut structured = Map::new();
    let mut hint = None;
    if let Some(info) = &answer.result_info {
        match endpoint.pagination {
            Pagination::Page => {
                let page = info["page"].as_u64().unwrap_or(1);
                let pages = info["total_pages"].as_u64().unwrap_or(page);
                if page < pages {
                    structured.insert("next_page".into(), json!(page + 1));
                    hint = Some(format!(
                        "Page {page} of {pages}: call again with page = {} for more.",
                        page + 1
                    ));
                }
            }
            Pagination::Cursor => {
                if let Some(cursor) = next_cursor(Some(info)) {
                    hint = Some(format!(
                        "More results: call again with cursor = \"{cursor}\"."
                    ));
                    structured.insert("next_cursor".into(), json!(cursor));
                }
            }
            Pagination::None => {}
        }
        structured.insert("result_info".into(), info.clone());
    }
    let text = match (endpoint.response, &answer.result) {
        (ResponseKind::Text, result) => result["content"].as_str().unwrap_or_default().to_string(),
        // Compact: the model reads it as well indented, for fewer tokens.
        // `to_string` on a `Value` goes through `fmt` and costs ~3x more.
        (ResponseKind::Json | ResponseKind::Graphql, result) => {
            serde_json::to_string(result).expect("a JSON value always serialises")
        }
    };
    structured.insert("result".into(), answer.result);
    let mut content = vec![ContentBlock::text(text)];
    if let Some(hint) = hint {
        content.push(ContentBlock::text(hint));
    }
    // Not `CallToolResult::structured`: it serialises the value into a text
    // block of its own, which would be thrown away here.
    let mut result = CallToolResult::success(content);
    result.structured_content = Some(Value::Object(structured));
    result
}

/// An answer flaregate makes itself (a preview, a search): the value as
/// structuredContent and as its compact JSON text.
pub(super) fn structured(value: Value) -> CallToolResult {
    let text = serde_json::to_string(&value).expect("a JSON value always serialises");
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(value);
    result
}

/// flaregate refused the call: the policy said no, or the arguments are wrong.
pub(super) fn refusal(text: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text.into())])
}

/// The pipeline's answer (or why there is none) in MCP's terms.
pub(super) fn response(answer: Result<Answer, Fault>) -> Result<CallToolResponse, ErrorData> {
    answer.map(of).map_err(|fault| fault_of(&fault))
}

fn of(answer: Answer) -> CallToolResponse {
    match answer {
        Answer::Result { endpoint, response } => success(&endpoint, response).into(),
        Answer::Made(value) => structured(value).into(),
        Answer::Refused { text, shown } => {
            let mut result = refusal(text);
            if let Some(shown) = shown {
                let json = serde_json::to_string(&shown).expect("JSON values always serialise");
                result.content.push(ContentBlock::text(json));
                result.structured_content = Some(shown);
            }
            result.into()
        }
        Answer::Failed(text) => CallToolResult::error(vec![ContentBlock::text(text)]).into(),
        Answer::Ask { question, state } => super::ask::input_required(question, state).into(),
        Answer::Undo {
            heading, answer, ..
        } => match of(*answer) {
            CallToolResponse::Complete(mut result) => {
                result.content.insert(0, ContentBlock::text(heading));
                result.into()
            }
            other => other,
        },
    }
}

/// A call flaregate could not answer, as a protocol error.
pub(super) fn fault_of(fault: &Fault) -> ErrorData {
    let message = fault.to_string();
    match fault {
        Fault::AgentGone => ErrorData::invalid_request(message, None),
        Fault::UnknownTool(_) => ErrorData::invalid_params(message, None),
        Fault::AuditDown(_) => ErrorData::internal_error(message, None),
    }
}
