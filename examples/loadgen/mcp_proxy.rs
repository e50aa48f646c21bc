//! The cheapest MCP server that can answer loadgen's call: rmcp's
//! streamable HTTP service (as flaregate configures it: JSON answers,
//! sessions for clients that open one, one tokio worker) with a single tool,
//! the run's read (`list_dns_records` or `list_zones`), that sends the GET to
//! the upstream with reqwest and
//! answers with Cloudflare's `result` as structuredContent and its compact
//! JSON text, as flaregate renders it. No policy, no budgets, no audit log.
//!
//! loadgen runs it as its own process (`loadgen --mcp-proxy URL`): its cost
//! per call above the bare pass-through proxy's is what speaking MCP with
//! rmcp costs; flaregate's above it is flaregate's own work.

use std::sync::Arc;

use axum::serve::ListenerExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorData,
    Implementation, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
    Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{RoleServer, ServerHandler};
use serde_json::{Map, Value, json};

use crate::workload::Workload;

#[derive(Clone)]
struct Proxy {
    http: reqwest::Client,
    upstream: Arc<str>,
    token: Arc<str>,
    workload: Workload,
    tool: Arc<Tool>,
}

impl ServerHandler for Proxy {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("mcp-proxy", "1"))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(vec![(*self.tool).clone()]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if self.workload == Workload::DnsRecords
            && request
                .arguments
                .as_ref()
                .and_then(|a| a.get("zone_id"))
                .and_then(Value::as_str)
                .is_none()
        {
            return Err(ErrorData::invalid_params("zone_id is required", None));
        }
        let answer = self
            .http
            .get(format!("{}{}", self.upstream, self.workload.path()))
            .bearer_auth(&*self.token)
            .send()
            .await
            .and_then(|a| a.error_for_status());
        let body: Value = match answer {
            Ok(answer) => answer
                .json()
                .await
                .map_err(|e| ErrorData::internal_error(e.to_string(), None))?,
            Err(error) => {
                return Ok(
                    CallToolResult::error(vec![ContentBlock::text(error.to_string())]).into(),
                );
            }
        };
        let Value::Object(mut envelope) = body else {
            return Err(ErrorData::internal_error("not an envelope", None));
        };
        let result = envelope.remove("result").unwrap_or(Value::Null);
        let text = serde_json::to_string(&result).expect("a value serialises");
        let mut structured = Map::new();
        if let Some(info) = envelope.remove("result_info") {
            structured.insert("result_info".into(), info);
        }
        structured.insert("result".into(), result);
        let mut answer = CallToolResult::success(vec![ContentBlock::text(text)]);
        answer.structured_content = Some(Value::Object(structured));
        Ok(answer.into())
    }
}

/// Serves until killed; prints `MCP-PROXY: <url>` once it listens.
pub fn serve(upstream: String, token: String, workload: Workload) {
    // One worker, as `flaregate serve` runs.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let schema = match workload {
            Workload::DnsRecords => json!({
                "type": "object",
                "properties": {"zone_id": {"type": "string"}},
                "required": ["zone_id"],
            }),
            Workload::Zones => json!({"type": "object", "properties": {}}),
        };
        let Value::Object(schema) = schema else {
            unreachable!("an object literal")
        };
        let proxy = Proxy {
            http: reqwest::Client::new(),
            upstream: upstream.into(),
            token: token.into(),
            workload,
            tool: Arc::new(Tool::new(
                workload.tool(),
                "The run's read",
                Arc::new(schema),
            )),
        };
        let config = StreamableHttpServerConfig::default().with_json_response(true);
        let service = StreamableHttpService::new(
            move || Ok(proxy.clone()),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        let app = axum::Router::new().nest_service("/mcp", service);
        println!("MCP-PROXY: http://{address}/mcp");
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).await.expect("serve");
    });
}
