//! The policy file format (policies/*.toml), as operators write it. Spans
//! are kept so every validation error can name its file and line; the JSON
//! Schema (`flaregate schema policy`) is derived from these types.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use toml::Spanned;

/// One policy file: a list of agents.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "flaregate policy file")]
pub(super) struct PolicyFile {
    /// The agents this file defines.
    #[serde(default, rename = "agent")]
    pub agents: Vec<AgentSpec>,
}

/// An agent identity and everything it is granted. Anything not granted is
/// denied.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AgentSpec {
    /// A unique id, used in logs and `--agent`, e.g. "site-deployer".
    #[schemars(with = "String", regex(pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$"))]
    pub id: Spanned<String>,
    /// What this agent is for.
    #[serde(default)]
    pub description: String,
    /// SHA-256 (64 hex characters) of each bearer key the agent may present
    /// over HTTP. Keys are never stored in clear: `flaregate keygen` prints both.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub key_sha256: Vec<Spanned<String>>,
    /// The organisation's login: the OAuth access tokens this agent stands
    /// for, by their claims (needs `[auth.oauth]` in flaregate.toml).
    #[serde(default)]
    pub oauth: Option<super::ClaimMatch>,
    /// `"none"`: no key needed; only accepted on a loopback listener.
    #[serde(default)]
    pub auth: Option<AuthMode>,
    /// Zones (names or 32-hex ids) zone-scoped tools may touch; "*" for all
    /// the Cloudflare token reaches. Omitted: none.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub zones: Option<Vec<Spanned<String>>>,
    /// Accounts (names or 32-hex ids) account-scoped tools may touch; "*" for
    /// all. Omitted: none.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub accounts: Option<Vec<Spanned<String>>>,
    /// Capability group → off | read | full; `"*"` for every group not
    /// named (never the groups and tools granted only by name).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, Level>")]
    pub grants: BTreeMap<Spanned<String>, Level>,
    /// Tool → off | on, overriding the tool's group grant.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, ToolSetting>")]
    pub tools: BTreeMap<Spanned<String>, ToolSetting>,
    /// Argument values allowed / denied, by glob.
    #[serde(default, rename = "constraint")]
    pub constraints: Vec<ConstraintSpec>,
    /// Call rates this agent may not exceed.
    #[serde(default)]
    pub limits: Limits,
    /// How the agent's tools are offered: one typed tool each, or three
    /// tools to search, describe and call them (for large grants). Default
    /// `auto`: typed while its tools/list stays under about 24 KB, discover above.
    #[serde(default)]
    pub tool_mode: ToolMode,
    /// What a person must approve first: tool names or globs
    /// ("purge_cache"), `access:write` (every write), `method:DELETE`
    /// (every DELETE), `group:NAME` (every tool of a group). Who approves
    /// is `approver`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub approve: Vec<Spanned<String>>,
    /// Who approves: `operator` (default: on the host, `flaregate approve
    /// ID`; a hostile client cannot approve its own calls) or `client`
    /// (the person at the client when the client can ask its user — whoever
    /// answers the client's prompt — else the operator).
    #[serde(default)]
    pub approver: Approver,
    /// Whether the state before each allowed write is kept for undo:
    /// `writes` (default: kept when it can be read), `required` (a write
    /// whose state cannot be kept is refused) or `off`.
    #[serde(default)]
    pub snapshots: Snapshots,
    /// The largest snapshot kept, in KB once deflated (default 10240).
    pub snapshot_max_kb: Option<u32>,
    /// Whether this agent may undo logged writes (the `undo_call` tool;
    /// each restoring call still needs this agent's grants).
    #[serde(default)]
    pub undo: bool,
    /// How long a request for approval stays valid, e.g. "15m" (default).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub approval_ttl: Option<Spanned<String>>,
}

/// Whether the state before a write is kept for undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Snapshots {
    /// Kept whenever the catalog can read it; a write goes on without one
    /// (logged) when the read fails.
    #[default]
    Writes,
    /// Kept, or the write is refused.
    Required,
    /// Never kept.
    Off,
}

/// Who decides a request for approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Approver {
    /// The person at the client, when the client can ask its user
    /// (elicitation); otherwise the operator. The client is trusted to
    /// show the question to a person.
    Client,
    /// Always the operator, on the host (the default).
    #[default]
    Operator,
}

/// How an agent's tools are offered in tools/list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ToolMode {
    /// One typed tool per endpoint.
    Typed,
    /// search_api, describe_api and call_api: a schema costs context only
    /// when the agent asks for it.
    Discover,
    /// Typed while the tools/list stays under about 24 KB, discover above.
    #[default]
    Auto,
}

/// How an agent authenticates over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Bearer key (the default).
    Key,
    /// No key: single-user loopback setups only.
    None,
}

/// What a group grant gives.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Nothing.
    Off,
    /// The group's read tools.
    Read,
    /// The group's read and write tools.
    Full,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Off => "off",
            Level::Read => "read",
            Level::Full => "full",
        }
    }
}

/// A per-tool override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ToolSetting {
    Off,
    On,
}

/// Allowed and denied values of one argument, for one tool, every tool a
/// glob names, or every tool of a group that has the argument.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ConstraintSpec {
    /// The tool, e.g. "put_worker_script", or a glob: "*_worker_script".
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub tool: Option<Spanned<String>>,
    /// Or a capability group, e.g. "workers": every tool of it that has the
    /// argument.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub group: Option<Spanned<String>>,
    /// The argument, e.g. "script_name". For a list argument (purge files)
    /// every item must pass.
    #[schemars(with = "String")]
    pub arg: Spanned<String>,
    /// Globs the value must match (one of); empty means any value.
    /// Matched case-sensitively: a value gains nothing by its case.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub allow: Vec<Spanned<String>>,
    /// Globs the value must not match. Matched ignoring case: nothing slips
    /// past a deny by its case.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub deny: Vec<Spanned<String>>,
}

/// Per-agent rate limits. Every call counts against one of them: the
/// calls that pass the policy against `calls_per_minute`, the refused ones
/// against `refusals_per_minute`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Calls that pass the policy (one that fetches its object first counts
    /// once), per minute.
    pub calls_per_minute: Option<u32>,
    /// Allowed calls of write tools, per hour.
    pub writes_per_hour: Option<u32>,
    /// Refused calls recorded one by one, per minute (default 30). Past it
    /// refused calls are answered at once and counted, one audit row for
    /// many, so no agent can fill the log.
    pub refusals_per_minute: Option<u32>,
    /// The longest time range, in days, one GraphQL Analytics query may ask
    /// a dataset for; a query then must bound each dataset's time.
    pub analytics_max_days: Option<u32>,
}

/// The JSON Schema of policy files, for editors.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(PolicyFile)).expect("a schema serialises")
}
