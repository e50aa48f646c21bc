//! flaregate: an MCP server that lets AI agents use the Cloudflare API inside
//! the lines an operator draws, with every decision logged.
// What is not part of the library's API is `pub(crate)` (or less).
#![warn(unreachable_pub)]

pub mod alerts;
pub mod approval;
pub mod audit;
pub mod budget;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod cloudflare;
pub mod config;
pub mod files;
pub mod histogram;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod oauth;
pub mod policy;
pub mod postgres_target;
pub mod sandbox;
pub mod server;
pub mod telemetry;
pub mod text;
