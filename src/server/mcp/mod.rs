//! Everything that knows MCP: rmcp's handler, the HTTP and stdio
//! transports, the direct path, tools tailored per agent, discovery,
//! asking the person at the client, and rendering the pipeline's answers.

mod alerts;
mod ask;
mod briefing;
mod direct;
mod discovery;
mod examples;
mod handler;
pub mod http;
mod notify;
mod render;
mod search;
mod sessions;
mod sign_in;
pub mod stdio;
mod subscriptions;
mod tools;

pub use handler::{Caller, Handler};
pub(crate) use notify::Notifier;
pub(crate) use search::SearchIndex;
pub use tools::{PAGE_SIZE, ToolTable, tool_for};
