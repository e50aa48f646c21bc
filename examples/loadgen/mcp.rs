//! A minimal MCP client over streamable HTTP: JSON-RPC POSTs sent with
//! reqwest, as the direct path is. A full client library (rmcp's) costs as
//! much CPU per call as flaregate itself on these two shared cores, and that
//! cost would be counted against flaregate.

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Value, json};

/// Which MCP revision the sessions speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Protocol {
    /// 2026-07-28: no session; each request carries its version; JSON answers.
    Modern,
    /// 2025-11-25: initialize, a session id, an SSE stream per request.
    Legacy,
}

impl Protocol {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "modern" | "2026-07-28" => Some(Self::Modern),
            "legacy" | "2025-11-25" => Some(Self::Legacy),
            _ => None,
        }
    }

    fn version(self) -> &'static str {
        match self {
            Self::Modern => "2026-07-28",
            Self::Legacy => "2025-11-25",
        }
    }
}

/// One agent's session with flaregate.
pub struct Session {
    http: reqwest::Client,
    url: String,
    key: String,
    protocol: Protocol,
    session_id: Option<String>,
    next_id: u64,
}

impl Session {
    /// Opens a session (legacy: initialize + initialized; modern: nothing to open).
    pub async fn open(url: &str, key: &str, protocol: Protocol) -> Result<Self, String> {
        let mut session = Self {
            http: reqwest::Client::new(),
            url: url.to_string(),
            key: key.to_string(),
            protocol,
            session_id: None,
            next_id: 0,
        };
        if protocol == Protocol::Legacy {
            let params = json!({
                "protocolVersion": protocol.version(),
                "capabilities": {},
                "clientInfo": {"name": "loadgen", "version": "1"},
            });
            session.request("initialize", params).await?;
            session
                .post(
                    json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
                    None,
                )
                .await?;
        }
        Ok(session)
    }

    /// Ends a legacy session (DELETE), as a well-behaved client does, so the
    /// next phase of the run does not count it in flaregate's memory.
    pub async fn close(self) -> Result<(), String> {
        let Some(id) = &self.session_id else {
            return Ok(());
        };
        let response = self
            .http
            .delete(&self.url)
            .bearer_auth(&self.key)
            .header("MCP-Protocol-Version", self.protocol.version())
            .header("Mcp-Session-Id", id)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("closing the session: HTTP {}", response.status()))
        }
    }

    /// tools/call; the tool result.
    pub async fn call_tool(&mut self, name: &str, arguments: Value) -> Result<Value, String> {
        self.request("tools/call", json!({"name": name, "arguments": arguments}))
            .await
    }

    /// tools/list; the result.
    pub async fn list_tools(&mut self) -> Result<Value, String> {
        self.request("tools/list", json!({})).await
    }

    async fn request(&mut self, method: &str, mut params: Value) -> Result<Value, String> {
        self.next_id += 1;
        if self.protocol == Protocol::Modern {
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": self.protocol.version(),
                "io.modelcontextprotocol/clientCapabilities": {},
            });
        }
        let name = params["name"].as_str().map(str::to_string);
        let body =
            json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params});
        let answer = self.post(body, Some((method, name))).await?;
        let mut message: Value = serde_json::from_str(&answer).map_err(|e| e.to_string())?;
        match message.get_mut("result") {
            Some(result) => Ok(result.take()),
            None => Err(format!("{method}: {message}")),
        }
    }

    /// POSTs one message; the JSON-RPC answer's text, if any.
    async fn post(
        &mut self,
        body: Value,
        request: Option<(&str, Option<String>)>,
    ) -> Result<String, String> {
        let mut post = self
            .http
            .post(&self.url)
            .bearer_auth(&self.key)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream")
            .header("MCP-Protocol-Version", self.protocol.version());
        if let Some(id) = &self.session_id {
            post = post.header("Mcp-Session-Id", id);
        }
        if let (Protocol::Modern, Some((method, name))) = (self.protocol, &request) {
            post = post.header("Mcp-Method", *method);
            if let Some(name) = name {
                post = post.header("Mcp-Name", name);
            }
        }
        let response = post.json(&body).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        if let Some(id) = response.headers().get("mcp-session-id") {
            self.session_id = id.to_str().ok().map(str::to_string);
        }
        let sse = response
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let text = response.text().await.map_err(|e| e.to_string())?;
        if request.is_none() || !sse {
            return Ok(text);
        }
        // The answer is the SSE event whose data is a JSON-RPC response.
        text.lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(str::trim)
            .find(|data| {
                data.starts_with('{') && (data.contains("\"result\"") || data.contains("\"error\""))
            })
            .map(str::to_string)
            .ok_or_else(|| "no answer in the event stream".to_string())
    }
}
