//! The MCP server: one typed tool per catalog endpoint, seen only by the
//! agents granted it, over stdio and streamable HTTP. The only module that
//! knows MCP; it asks `policy` for decisions and hands `audit` records.

pub mod admin;
mod approve;
mod briefing;
mod call;
mod direct;
mod discovery;
mod gateway;
mod handler;
pub mod http;
mod notify;
mod preview;
pub mod reload;
mod render;
mod snapshot;
pub mod stdio;
mod tools;
mod undo;
mod visible;

pub use gateway::Gateway;
pub use handler::{Caller, Handler};
pub use tools::{PAGE_SIZE, ToolTable, tool_for};
