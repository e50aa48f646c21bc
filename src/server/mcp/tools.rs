//! Catalog endpoints as MCP tools: name, title, the agent-facing
//! description, the input schema, an output schema for object results, and
//! annotations. Built once per catalog; each agent sees a filtered list.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Value, json};

use crate::catalog::{Catalog, Endpoint, ResultKind};
use crate::policy::Agent;

/// The most tools one tools/list answer holds.
pub const PAGE_SIZE: usize = 100;

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

    /// The tool of the catalog endpoint at `index`.
    pub fn tool(&self, index: usize) -> &Tool {
        &self.tools[index]
    }

    /// Every tool `agent` may see.
    pub fn visible(&self, agent: &Agent) -> Vec<Tool> {
        self.visible_from(agent, 0).map(Tool::clone).collect()
    }

    /// One tools/list page for `agent`: up to [`PAGE_SIZE`] tools from the
    /// cursor on, and the cursor of the next page. Serialising thousands of
    /// schemas in one answer costs milliseconds; pages keep each answer
    /// short. `None` if the cursor is not one this table handed out.
    pub fn page(&self, agent: &Agent, cursor: Option<&str>) -> Option<(Vec<Tool>, Option<String>)> {
        let start = match cursor {
            None => 0,
            Some(text) => text.parse::<usize>().ok()?,
        };
        let mut rest = self.visible_from(agent, start);
        let page: Vec<Tool> = rest.by_ref().take(PAGE_SIZE).cloned().collect();
        let next = rest
            .next()
            .is_some()
            .then(|| (start + PAGE_SIZE).to_string());
        Some((page, next))
    }

    fn visible_from<'a>(
        &'a self,
        agent: &'a Agent,
        skip: usize,
    ) -> impl Iterator<Item = &'a Tool> + 'a {
        self.tools
            .iter()
            .enumerate()
            .filter(|(index, _)| agent.may_use_index(*index))
            .map(|(_, tool)| tool)
            .skip(skip)
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
        endpoint.input_schema.clone(),
    )
    .with_title(endpoint.title.clone())
    .with_annotations(annotations);
    match endpoint.result {
        ResultKind::Object => tool.with_raw_output_schema(output_schema()),
        ResultKind::Array | ResultKind::Null => tool,
    }
}

/// structuredContent is `{"result": …}` (plus paging when listed), or for
/// a write called with `dry_run` (or one that waits for a person's
/// approval) the preview; for object results both shapes are published,
/// so a strict client accepts every answer.
fn output_schema() -> Arc<JsonObject> {
    object(json!({
        "type": "object",
        "properties": {
            "result": {"type": "object", "description": "Cloudflare's result object"},
            "result_info": {"type": "object", "description": "Paging information, when Cloudflare sent it"},
            "preview": {"type": "boolean", "description": "true: a preview (dry_run, or a call waiting for approval); nothing was sent"},
            "decision": {"type": "object", "description": "A preview's decision: would_be allowed or denied, with its reason and rule"}
        },
        "anyOf": [{"required": ["result"]}, {"required": ["preview"]}]
    }))
}
