//! flaregate: an MCP server that lets AI agents use the Cloudflare API inside
//! the lines an operator draws, with every decision logged.

pub mod catalog;
pub mod cloudflare;
pub mod logging;
pub mod sandbox;
pub mod policy;
