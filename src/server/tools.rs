//! Catalog endpoints as MCP tools: name, title, the agent-facing
//! description, the input schema, an output schema for object results, and
//! annotations. Built once per catalog; each agent sees a filtered list.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Value, json};

use crate::catalog::{Catalog, Endpoint, ResultKind};
use crate::policy::Agent;

/// One MCP tool per catalog endpoint, in catalog order.
#[derive(Debug)]
pub struct ToolTable {
    tools: Vec<Tool>,
}

impl ToolTable {
    pub fn new(catalog: &Catalog) -> Self {
        Self {
            tools: catalog.endpoints().iter().map(|e| tool_for(e)).collect(),
        }
    }

    /// The tools `agent` may see.
    pub fn visible(&self, agent: &Agent, catalog: &Catalog) -> Vec<Tool> {
        catalog
            .endpoints()
            .iter()
            .zip(&self.tools)
            .filter(|(endpoint, _)| agent.may_see(catalog, &endpoint.tool))
            .map(|(_, tool)| tool.clone())
            .collect()
    }
}

fn object(value: Value) -> Arc<JsonObject> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => unreachable!("schemas are built as JSON objects"),
    }
}

/// The MCP tool for one endpoint.
pub fn tool_for(endpoint: &Endpoint) -> Tool {
    let mut description = endpoint.description.clone();
    if let Some(note) = &endpoint.deprecation {
        description.push_str("\n\nNote: ");
        description.push_str(note);
    }
    let annotations = ToolAnnotations::new()
        .read_only(endpoint.annotations.read_only)
        .destructive(endpoint.annotations.destructive)
        .idempotent(endpoint.annotations.idempotent)
        .open_world(true);
    let tool = Tool::new(
        endpoint.tool.clone(),
        description,
        Arc::new(endpoint.input_schema.clone()),
    )
    .with_title(endpoint.title.clone())
    .with_annotations(annotations);
    match endpoint.result {
        ResultKind::Object => tool.with_raw_output_schema(output_schema()),
        ResultKind::Array | ResultKind::Null => tool,
    }
}

/// structuredContent is `{"result": …}` (plus paging when listed); for
/// object results that shape is published.
fn output_schema() -> Arc<JsonObject> {
    object(json!({
        "type": "object",
        "properties": {
            "result": {"type": "object", "description": "Cloudflare's result object"},
            "result_info": {"type": "object", "description": "Paging information, when Cloudflare sent it"}
        },
        "required": ["result"]
    }))
}
