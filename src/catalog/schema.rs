//! The JSON Schema of an endpoint's arguments: what MCP publishes as the
//! tool's inputSchema and what every call is validated against.

use serde_json::{Map, Value, json};

use super::model::Endpoint;

/// The argument flaregate adds to every write tool for a preview; it is
/// never sent to Cloudflare, and no catalog parameter may take its name.
pub const DRY_RUN: &str = "dry_run";

/// Builds `{"type": "object", "properties": …, "required": …}` from the
/// endpoint's parameters. Unknown arguments are rejected
/// (`additionalProperties: false`) so a typo never silently does nothing.
///
/// The parameters' own schemas move into it (kept once, read through
/// [`Endpoint::param_schema`]).
pub(super) fn input_schema(endpoint: &mut Endpoint) -> Map<String, Value> {
    let properties: Map<String, Value> = endpoint
        .params
        .iter_mut()
        .map(|p| (p.name.clone(), Value::Object(std::mem::take(&mut p.schema))))
        .collect();
    let required: Vec<&str> = endpoint
        .params
        .iter()
        .filter(|p| p.required)
        .map(|p| p.name.as_str())
        .collect();
    let mut properties = properties;
    if endpoint.access == super::Access::Write {
        properties.insert(
            DRY_RUN.into(),
            json!({
                "type": "boolean",
                "description": "true: only preview the call (would it be allowed, the exact request, what it changes now); nothing is sent to Cloudflare."
            }),
        );
    }
    let mut schema = json!({
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
    });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    match schema {
        Value::Object(map) => map,
        _ => unreachable!("json! of an object literal is an object"),
    }
}
