//! Discovery for large grants: instead of hundreds of typed tools, an
//! agent sees three — `search_api` finds the endpoints it may call,
//! `describe_api` gives one's input schema, `call_api` calls one through
//! the same pipeline as a typed tool (audited under the endpoint's name).
//! A schema then costs context only when the agent asks for it.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ErrorData, JsonObject, Tool,
    ToolAnnotations,
};
use serde_json::{Map, Value, json};

use super::briefing::View;
use super::render;
use crate::metrics::OwnTool;
use crate::server::Gateway;
use crate::server::pipeline::{Asker, CallRequest, UNDO};

pub(super) const SEARCH: &str = "search_api";
pub(super) const DESCRIBE: &str = "describe_api";
pub(super) const CALL: &str = "call_api";

/// Results a search returns unless asked for fewer or more (at most 50).
const DEFAULT_RESULTS: usize = 15;
const MAX_RESULTS: usize = 50;

/// Whether `name` is one of the three discovery tools.
pub(super) fn is_discovery_tool(name: &str) -> bool {
    matches!(name, SEARCH | DESCRIBE | CALL)
}

/// The three tools a discovering agent sees.
pub(super) fn tools() -> Vec<Tool> {
    let read = ToolAnnotations::new()
        .read_only(true)
        .destructive(false)
        .idempotent(true)
        .open_world(false);
    vec![
        Tool::new(
            SEARCH,
            "Find the Cloudflare API endpoints you may call: give keywords (e.g. \"zone setting\", \"dns record create\"), optionally a group. Returns each endpoint's name, what it does, its method and whether it reads or writes. Then describe_api for its arguments, and call_api to call it.",
            schema(json!({
                "query": {"type": "string", "maxLength": 200, "description": "Keywords: what you want to do or the object it acts on."},
                "group": {"type": "string", "maxLength": 64, "description": "Only endpoints of this capability group (e.g. dns, zone_settings)."},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS, "description": "How many results (default 15)."}
            }), &["query"]),
        )
        .with_title("Search the Cloudflare API")
        .with_annotations(read.clone()),
        Tool::new(
            DESCRIBE,
            "The full description and input schema of one endpoint you may call (a name from search_api).",
            schema(json!({
                "name": {"type": "string", "maxLength": 128, "description": "The endpoint's name, from search_api."}
            }), &["name"]),
        )
        .with_title("Describe an API endpoint")
        .with_annotations(read),
        Tool::new(
            CALL,
            "Call one endpoint you may call with its arguments (as describe_api gives them). The call is checked against your rules and logged exactly like a direct call.",
            schema(json!({
                "name": {"type": "string", "maxLength": 128, "description": "The endpoint's name, from search_api."},
                "arguments": {"type": "object", "description": "The endpoint's arguments, as its input schema (describe_api) says."}
            }), &["name"]),
        )
        .with_title("Call an API endpoint")
        .with_annotations(ToolAnnotations::new().open_world(true)),
    ]
}

pub(super) fn schema(properties: Value, required: &[&str]) -> Arc<JsonObject> {
    let mut map = Map::new();
    map.insert("type".into(), json!("object"));
    map.insert("properties".into(), properties);
    map.insert("required".into(), json!(required));
    map.insert("additionalProperties".into(), json!(false));
    Arc::new(map)
}

/// Answers one of the discovery tools for `agent`: `call_api` runs the
/// endpoint through the pipeline, as a typed tool would.
pub(super) async fn answer(
    gateway: &Gateway,
    caller: &super::Caller,
    request: CallToolRequestParams,
    asker: Option<Asker>,
    traceparent: Option<&str>,
) -> Result<CallToolResponse, ErrorData> {
    let agent = caller.agent.as_str();
    let own = match request.name.as_ref() {
        SEARCH => OwnTool::SearchApi,
        DESCRIBE => OwnTool::DescribeApi,
        _ => OwnTool::CallApi,
    };
    gateway.metrics().own_tool(agent, own);
    let args = request.arguments.unwrap_or_default();
    if request.name != CALL {
        return explore(gateway, caller, &request.name, &args).map(Into::into);
    }
    let Some(name) = args.get("name").and_then(Value::as_str) else {
        return Ok(
            render::refusal("call_api needs `name`: an endpoint's name from search_api.").into(),
        );
    };
    if is_discovery_tool(name) {
        return Ok(
            render::refusal(format!("{name} is not an API endpoint: call it directly.")).into(),
        );
    }
    let arguments = match args.get("arguments") {
        None => Map::new(),
        Some(Value::Object(arguments)) => arguments.clone(),
        Some(_) => return Ok(render::refusal("`arguments` must be an object.").into()),
    };
    let call = CallRequest {
        agent: agent.to_string(),
        person: caller.person.clone(),
        scopes: caller.scopes.clone(),
        from_console: false,
        confirmed: false,
        tool: name.to_string(),
        args: arguments,
        asker,
        traceparent: traceparent.map(str::to_string),
    };
    // An endpoint it may not call is an answer here, not a protocol error:
    // call_api itself exists.
    Ok(render::response(gateway.services.run(call).await)
        .unwrap_or_else(|error| render::refusal(error.message.to_string()).into()))
}

/// The undo tool, as an agent with `undo = true` sees it.
pub(super) fn undo_tool() -> Tool {
    Tool::new(
        UNDO,
        "Put back what a logged write changed, from the state kept before it: re-create what it deleted, restore what it changed, remove what it created. The restoring call is checked against your rules and logged, linked to the row it undoes.",
        schema(json!({
            "row": {"type": "integer", "minimum": 1, "description": "The audit row of the write to undo (flaregate audit shows ids)."},
            "dry_run": {"type": "boolean", "description": "Show what the undo would do (the restoring call's preview) and send nothing."},
            "force": {"type": "boolean", "description": "Undo even though what the write changed was changed again since."},
            "approval_id": {"type": "string", "description": "When the restoring call needs a person's approval: the approval id the refusal gave, once the operator approved it."}
        }), &["row"]),
    )
    .with_title("Undo a logged write")
    .with_annotations(ToolAnnotations::new().destructive(true).open_world(true))
}

/// search_api and describe_api.
fn explore(
    gateway: &Gateway,
    caller: &super::Caller,
    tool: &str,
    args: &JsonObject,
) -> Result<CallToolResult, ErrorData> {
    let text = |key: &str| args.get(key).and_then(Value::as_str);
    let policy = gateway.engine().policy();
    let agent = policy
        .agent(&caller.agent)
        .ok_or_else(|| ErrorData::invalid_request("this agent is no longer in the policy", None))?;
    let catalog = policy.catalog();
    match tool {
        SEARCH => {
            let Some(query) = text("query") else {
                return Ok(render::refusal(
                    "search_api needs `query`: keywords for what you want to do.",
                ));
            };
            let limit = args
                .get("limit")
                .and_then(Value::as_u64)
                .map_or(DEFAULT_RESULTS, |n| (n as usize).clamp(1, MAX_RESULTS));
            let found = gateway.search.search(
                catalog,
                (agent, &caller.scopes),
                query,
                text("group"),
                limit,
            );
            let note = if found.is_empty() {
                "No endpoint you may call matches; try other words."
            } else {
                "describe_api gives an endpoint's arguments; call_api calls it."
            };
            Ok(render::structured(
                json!({"endpoints": found, "note": note}),
            ))
        }
        _ => {
            let name = text("name").unwrap_or_default();
            let allowed = |i: usize| {
                let endpoint = &catalog.endpoints()[i];
                agent.may_use_index(i) && caller.scopes.allows(&endpoint.group, endpoint.access)
            };
            let Some(index) = catalog.index_of(name).filter(|&i| allowed(i)) else {
                return Ok(render::refusal(format!(
                    "there is no endpoint named {} that you may call; search_api finds them",
                    crate::text::clip(name, 80)
                )));
            };
            let endpoint = &catalog.endpoints()[index];
            let mut described = gateway.tools.tool(index).clone();
            View::new(catalog, agent, &gateway.engine().directory())
                .tailor(&mut described, endpoint);
            Ok(render::structured(json!({
                "name": endpoint.tool,
                "title": endpoint.title,
                "method": endpoint.method.as_str(),
                "path": endpoint.path.raw,
                "access": endpoint.access,
                "group": endpoint.group,
                "description": described.description,
                "input_schema": described.input_schema,
            })))
        }
    }
}
