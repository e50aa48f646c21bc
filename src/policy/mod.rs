//! Policies: which agents exist, what each may see and do, and the
//! decision for every call. The server asks [`Policy::decide`] and never
//! looks inside.

mod agents;
mod approvals;
mod canonical;
mod claims;
mod constraints;
mod decide;
pub mod edit;
mod engine;
mod file;
mod freshness;
mod grants;
pub mod graphql;
mod identity;
mod lists;
mod load;
mod model;
mod named;
mod permissions;
mod query_scope;
mod scope;
pub mod token_gaps;

pub use claims::ClaimMatch;
pub use decide::{Denial, DenyKind, Verdict};
pub use engine::Engine;
pub use file::{Approver, AuthMode, Level, Limits, Snapshots, ToolMode, ToolSetting, json_schema};
pub use freshness::{Freshness, OnReloadError, ReloadFailure};
pub use identity::{BadAgentId, KEY_PREFIX, check_agent_id, new_key, sha256_hex};
pub use load::{PolicyError, Problem, compile, policy_files};
pub use model::{Agent, Constraint, Policy, TYPED_LISTING_MAX_BYTES};
pub use permissions::{Permission, permissions_text, token_permissions};
pub use scope::{Directory, Scope, ScopeCheck, ScopeRef, describe_target};

/// The demo policy (policies/demo.toml at build time), used by
/// `serve --sandbox` when no policy is given.
pub const DEMO: &str = include_str!("../../policies/demo.toml");
