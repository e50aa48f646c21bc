//! MCP over stdin/stdout for one agent (`serve --stdio --agent ID`).
//! stdout carries only the protocol; logs go to stderr.

use std::sync::Arc;

use rmcp::ServiceExt;
use rmcp::transport::stdio;

use super::handler::Handler;
use crate::server::Gateway;

/// Serves until the client closes stdin.
pub async fn serve(gateway: Arc<Gateway>, agent: String) -> Result<(), String> {
    let running = Handler::new(gateway, Some(agent))
        .serve(stdio())
        .await
        .map_err(|e| format!("MCP over stdio failed to start: {e}"))?;
    running
        .waiting()
        .await
        .map_err(|e| format!("MCP over stdio stopped: {e}"))?;
    Ok(())
}
