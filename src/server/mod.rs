//! The server: two halves with arrows in one direction. `mcp` is all that
//! knows MCP (rmcp's handler, the HTTP and stdio transports, the direct
//! path, tailoring tools, asking the person at the client, rendering
//! answers); `pipeline` runs each call through its stages and knows no
//! rmcp type. `mcp` calls `pipeline`, never the reverse.

pub mod admin;
mod console;
pub mod explain;
pub use console::ConsoleSetup;
mod gateway;
pub mod hooks;
pub mod listen;
pub mod mcp;
pub(crate) mod pipeline;
pub mod reload;
pub mod tls;

pub use gateway::Gateway;
pub use mcp::{Caller, Handler, PAGE_SIZE, ToolTable, http, stdio, tool_for};
