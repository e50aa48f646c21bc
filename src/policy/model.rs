//! The compiled policy: what the decision engine reads on every call.
//! Built once per load from the policy files, so the hot path only looks
//! things up — no parsing, no glob compiling.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use globset::GlobSet;

use super::file::{AuthMode, Level, Limits};
use super::scope::Scope;
use crate::catalog::Catalog;

/// Every agent, compiled against one catalog.
#[derive(Debug)]
pub struct Policy {
    pub(super) catalog: Arc<Catalog>,
    pub(super) agents: Vec<Agent>,
    pub(super) by_id: HashMap<String, usize>,
    /// Things that are allowed but probably not meant (an agent granted
    /// nothing, a constraint on a tool the agent cannot use).
    pub warnings: Vec<String>,
    /// Every zone and account name the files use, with where.
    pub(super) names: Vec<NameSource>,
}

/// A zone or account name as a policy file writes it.
#[derive(Debug, Clone)]
pub(super) struct NameSource {
    pub kind: crate::catalog::Scope,
    pub name: String,
    /// "policies/demo.toml:29".
    pub location: String,
}

/// One agent, ready for decisions.
#[derive(Debug)]
pub struct Agent {
    pub id: String,
    pub description: String,
    pub auth: AuthMode,
    pub(super) key_hashes: Vec<[u8; 32]>,
    /// The OAuth tokens it stands for, by their claims.
    pub oauth: Option<super::ClaimMatch>,
    pub zones: Scope,
    pub accounts: Scope,
    /// The group grants as written (groups left out are off).
    pub grants: BTreeMap<String, Level>,
    pub limits: Limits,
    /// Whether its tools are offered through search_api / describe_api /
    /// call_api instead of one typed tool each (`tool_mode`).
    pub discover: bool,
    /// About how many bytes its typed `tools/list` takes (what `auto`
    /// decides `discover` by).
    pub listing_bytes: usize,
    /// Per catalog endpoint (by index): must a person approve its calls
    /// first (`approve`).
    pub(super) approve: Vec<bool>,
    /// How long a request for approval stays valid.
    pub approval_ttl: std::time::Duration,
    /// Who decides its requests for approval.
    pub approver: super::file::Approver,
    /// Whether the state before its writes is kept for undo.
    pub snapshots: super::file::Snapshots,
    /// The largest snapshot kept, in bytes once deflated.
    pub snapshot_max_bytes: usize,
    /// Whether it may undo logged writes (`undo_call`).
    pub undo: bool,
    /// Per catalog endpoint (by index): may the agent call it, and why.
    pub(super) tools: Vec<ToolRule>,
    /// The tools its grants give but a constraint took away, because the
    /// constraint cannot be checked on them: each with why.
    pub removed: Vec<(String, String)>,
}

/// Whether an agent may call one tool, and the rule that says so.
#[derive(Debug, Clone)]
pub(super) struct ToolRule {
    pub allowed: bool,
    /// In plain words, e.g. "your DNS grant is read".
    pub reason: Arc<str>,
    /// Where it comes from, e.g. "grants.dns = read".
    pub rule: Arc<str>,
    pub constraints: Vec<Constraint>,
}

/// Allowed / denied values for one argument.
#[derive(Debug, Clone)]
pub struct Constraint {
    pub arg: String,
    pub allow: Option<GlobSet>,
    pub deny: Option<GlobSet>,
    pub allow_text: String,
    pub deny_text: String,
    /// "policies/demo.toml:31", for the decision's rule.
    pub source: String,
}

impl Policy {
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    pub fn agents(&self) -> &[Agent] {
        &self.agents
    }

    pub fn agent(&self, id: &str) -> Option<&Agent> {
        self.by_id.get(id).map(|&i| &self.agents[i])
    }
}

impl Policy {
    /// The zone and account names of the policy that `directory` does not
    /// know, as "policies/x.toml:3: zone `exmaple.org` …": a name that never
    /// resolves denies every call on it, which is rarely what was meant.
    pub fn unresolved_names(&self, directory: &super::Directory) -> Vec<String> {
        let mut found: Vec<String> = self
            .names
            .iter()
            .filter(|n| {
                let known = match n.kind {
                    crate::catalog::Scope::Zone => &directory.zone_ids,
                    crate::catalog::Scope::Account => &directory.account_ids,
                };
                !known.contains_key(&n.name)
            })
            .map(|n| {
                let kind = match n.kind {
                    crate::catalog::Scope::Zone => "zone",
                    crate::catalog::Scope::Account => "account",
                };
                format!(
                    "{}: {kind} `{}` is not one the Cloudflare token reaches (a typo, or a {kind} the token may not list?); calls on it are denied",
                    n.location, n.name
                )
            })
            .collect();
        found.dedup();
        found
    }

    /// Lets `agent` also authenticate with the key whose SHA-256 is `hash`
    /// (the sandbox demo's fresh keys).
    pub fn add_key_hash(&mut self, agent: &str, hash: [u8; 32]) -> bool {
        match self.by_id.get(agent) {
            Some(&i) => {
                self.agents[i].key_hashes.push(hash);
                true
            }
            None => false,
        }
    }
}

/// Past this size of its `tools/list` (bytes, about 6k tokens) an agent in
/// `tool_mode = "auto"` discovers its tools instead: more would crowd a
/// model's context before any work is done.
pub const TYPED_LISTING_MAX_BYTES: usize = 24 * 1024;

impl Agent {
    /// The tools this agent may see and call, in catalog order.
    pub fn visible_tools<'a>(&'a self, catalog: &'a Catalog) -> impl Iterator<Item = &'a str> + 'a {
        catalog
            .endpoints()
            .iter()
            .zip(&self.tools)
            .filter(|(_, rule)| rule.allowed)
            .map(|(endpoint, _)| endpoint.tool.as_str())
    }

    /// Whether the agent may see the catalog endpoint at `index`.
    pub fn may_use_index(&self, index: usize) -> bool {
        self.tools.get(index).is_some_and(|rule| rule.allowed)
    }

    /// Whether the agent may see `tool` (cheap: one index lookup).
    pub fn may_see(&self, catalog: &Catalog, tool: &str) -> bool {
        catalog
            .index_of(tool)
            .is_some_and(|i| self.tools[i].allowed)
    }

    /// The zones or the accounts the agent holds, for an endpoint of `kind`.
    pub fn scope(&self, kind: crate::catalog::Scope) -> &Scope {
        match kind {
            crate::catalog::Scope::Zone => &self.zones,
            crate::catalog::Scope::Account => &self.accounts,
        }
    }

    /// The agent's constraints on `tool`'s arguments.
    pub fn constraints<'a>(&'a self, catalog: &Catalog, tool: &str) -> &'a [Constraint] {
        catalog
            .index_of(tool)
            .map_or(&[], |i| self.tools[i].constraints.as_slice())
    }

    /// Whether a call of `tool` needs a person's approval first.
    pub fn needs_approval(&self, catalog: &Catalog, tool: &str) -> bool {
        catalog
            .index_of(tool)
            .is_some_and(|i| self.approve.get(i).copied().unwrap_or(false))
    }

    /// Whether the agent has any bearer key.
    pub fn has_keys(&self) -> bool {
        !self.key_hashes.is_empty()
    }

    /// The effective level for a group: what `check` prints.
    pub fn level(&self, group: &str) -> Level {
        self.grants
            .get(group)
            .or_else(|| self.grants.get("*"))
            .copied()
            .unwrap_or(Level::Off)
    }
}
