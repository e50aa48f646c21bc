//! Compiles one `[[agent]]`: its group grants and tool overrides into a
//! rule per catalog tool, its constraints (failing closed where one cannot
//! be checked), its zone and account lists, and its settings.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use toml::Spanned;

use super::file::{AgentSpec, AuthMode, Level, ToolMode, ToolSetting};
use super::grants::{GroupGrant, tool_rule};
use super::load::{Context, parse_hash};
use super::model::{Agent, Constraint, NameSource, ToolRule};
use super::scope::{Scope, ScopeRef};

/// The largest snapshot kept unless `snapshot_max_kb` says (a Worker of
/// 10 MB deflates to well under this).
const DEFAULT_SNAPSHOT_MAX_KB: u32 = 10 * 1024;

/// How long a request for approval stays valid unless `approval_ttl` says.
const DEFAULT_APPROVAL_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The grant `grants.*` names: every group not named on its own.
const WILDCARD: &str = "*";

/// A tool override and where it was written.
type Overrides = HashMap<String, (ToolSetting, String)>;

impl Context<'_> {
    pub(super) fn agent(&mut self, spec: AgentSpec) -> Agent {
        let id = spec.id.get_ref().clone();
        if let Err(problem) = super::identity::check_agent_id(&id) {
            self.problem(&spec.id, problem.to_string());
        }
        let key_hashes: Vec<[u8; 32]> = spec
            .key_sha256
            .iter()
            .filter_map(|k| parse_hash(k.get_ref()))
            .collect();
        let auth = spec.auth.unwrap_or(AuthMode::Key);
        if auth == AuthMode::None && !key_hashes.is_empty() {
            self.problem(
                &spec.id,
                format!("agent `{id}` has auth = \"none\" and keys: choose one"),
            );
        }
        let zones = self.scope(spec.zones.as_deref(), "zone");
        let accounts = self.scope(spec.accounts.as_deref(), "account");
        let grants = self.grants(&spec);
        let overrides = self.overrides(&spec);
        let mut tools = self.tool_rules(&grants, &overrides);
        let constrained = self.constrain(&spec, &mut tools);
        let mut removed = self.fail_closed(&constrained, &mut tools, &overrides);
        let named_on = |tool: &str| matches!(overrides.get(tool), Some((ToolSetting::On, _)));
        removed.extend(super::grants::opaque_taken(
            self.catalog,
            (&zones, &accounts),
            &mut tools,
            named_on,
        ));
        self.warn_partly_constrained(&spec.id, &id, &tools);
        self.check_settings(&spec, auth, &key_hashes, &tools);
        self.warn_unscoped(&spec.id, &id, &tools, &zones, &accounts);
        let approve = self.approvals(&spec.approve);
        let approval_ttl = self.approval_ttl(spec.approval_ttl.as_ref());
        let listing_bytes = self.listing_bytes(&tools);
        let discover = match spec.tool_mode {
            ToolMode::Typed => false,
            ToolMode::Discover => true,
            ToolMode::Auto => listing_bytes > super::model::TYPED_LISTING_MAX_BYTES,
        };
        Agent {
            id,
            description: spec.description,
            discover,
            listing_bytes,
            approve,
            approval_ttl,
            approver: spec.approver,
            snapshots: spec.snapshots,
            snapshot_max_bytes: spec.snapshot_max_kb.unwrap_or(DEFAULT_SNAPSHOT_MAX_KB) as usize
                * 1024,
            undo: spec.undo,
            auth,
            key_hashes,
            oauth: spec.oauth,
            zones,
            accounts,
            grants,
            limits: spec.limits,
            tools,
            removed,
        }
    }

    /// The group grants, each group known and grantable as a group.
    fn grants(&mut self, spec: &AgentSpec) -> BTreeMap<String, Level> {
        let mut grants = BTreeMap::new();
        for (group, level) in &spec.grants {
            if let Some(named) = self.catalog.group(group.get_ref())
                && named.explicit
                && *level != Level::Off
            {
                self.problem(
                    group,
                    format!(
                        "group `{}` is granted only tool by tool (its Cloudflare permission is not known): write tools.NAME = \"on\" for each tool instead",
                        named.id
                    ),
                );
            }
            if group.get_ref() != WILDCARD && self.catalog.group(group.get_ref()).is_none() {
                let known: Vec<&str> = self
                    .catalog
                    .groups()
                    .iter()
                    .map(|g| g.id.as_str())
                    .collect();
                let hint = crate::text::did_you_mean(group.get_ref(), known.iter().copied());
                self.problem(
                    group,
                    format!(
                        "unknown capability group `{}`{hint}; the groups are {}",
                        group.get_ref(),
                        known.join(", ")
                    ),
                );
            }
            grants.insert(group.get_ref().clone(), *level);
        }
        grants
    }

    /// The tool overrides (`tools.NAME = "on" | "off"`), each tool known.
    fn overrides(&mut self, spec: &AgentSpec) -> Overrides {
        let mut overrides = HashMap::new();
        for (tool, setting) in &spec.tools {
            if self.catalog.endpoint(tool.get_ref()).is_none() {
                let hint = crate::text::did_you_mean(
                    tool.get_ref(),
                    self.catalog.endpoints().iter().map(|e| e.tool.as_str()),
                );
                self.problem(tool, format!("unknown tool `{}`{hint}", tool.get_ref()));
            }
            overrides.insert(tool.get_ref().clone(), (*setting, self.location(tool)));
        }
        overrides
    }

    /// A rule per catalog tool, in catalog order: its group's grant (or the
    /// wildcard's; tools no group grant may reach go by name only) with
    /// its override applied.
    fn tool_rules(&self, grants: &BTreeMap<String, Level>, overrides: &Overrides) -> Vec<ToolRule> {
        self.catalog
            .endpoints()
            .iter()
            .map(|endpoint| {
                let group = self.catalog.group(&endpoint.group);
                let group_title = group.map_or(endpoint.group.as_str(), |g| g.title.as_str());
                let by_name_only = group.is_some_and(|g| g.explicit) || endpoint.scope().is_none();
                let grant = if by_name_only {
                    GroupGrant::ByNameOnly(endpoint.reach)
                } else if let Some(level) = grants.get(&endpoint.group) {
                    GroupGrant::Group(*level)
                } else if let Some(level) = grants.get(WILDCARD) {
                    GroupGrant::Wildcard(*level)
                } else {
                    GroupGrant::None
                };
                tool_rule(
                    endpoint.tool.as_str(),
                    endpoint.access,
                    &endpoint.group,
                    group_title,
                    grant,
                    overrides.get(&endpoint.tool),
                )
            })
            .collect()
    }

    /// Puts each constraint on the tools it names; each constraint with
    /// the groups of those tools (for failing closed on the rest).
    fn constrain(
        &mut self,
        spec: &AgentSpec,
        tools: &mut [ToolRule],
    ) -> Vec<(Constraint, BTreeSet<String>)> {
        let mut constrained = Vec::new();
        for spec_constraint in &spec.constraints {
            let Some((at, targets, constraint)) = self.constraint(spec_constraint) else {
                continue;
            };
            if !targets.iter().any(|&index| tools[index].allowed) {
                let what = self.catalog.endpoints()[targets[0]].tool.clone();
                self.warn(
                    at,
                    format!(
                        "agent `{}` cannot use {what}, so this constraint has no effect",
                        spec.id.get_ref()
                    ),
                );
            }
            let groups: BTreeSet<String> = targets
                .iter()
                .map(|&index| self.catalog.endpoints()[index].group.clone())
                .collect();
            for index in targets {
                tools[index].constraints.push(constraint.clone());
            }
            constrained.push((constraint, groups));
        }
        constrained
    }

    /// Settings that allow nothing or everyone, or leave the agent no way in.
    fn check_settings(
        &mut self,
        spec: &AgentSpec,
        auth: AuthMode,
        key_hashes: &[[u8; 32]],
        tools: &[ToolRule],
    ) {
        let id = spec.id.get_ref();
        if !tools.iter().any(|t| t.allowed) {
            self.warn(
                &spec.id,
                format!("agent `{id}` is granted nothing: it will see no tools"),
            );
        }
        if spec.oauth.as_ref().is_some_and(super::ClaimMatch::is_empty) {
            self.problem(
                &spec.id,
                format!("agent `{id}`'s [agent.oauth] names no claim, so every token would be it: name a sub, client_id, groups or email_domain"),
            );
        }
        if auth == AuthMode::Key && key_hashes.is_empty() && spec.oauth.is_none() {
            self.warn(
                &spec.id,
                format!(
                    "agent `{id}` has no key: over HTTP only `serve --sandbox` gives it one (new at each start); `flaregate keygen --agent {id}` makes a lasting one"
                ),
            );
        }
        for (name, value) in [
            ("calls_per_minute", spec.limits.calls_per_minute),
            ("writes_per_hour", spec.limits.writes_per_hour),
            ("refusals_per_minute", spec.limits.refusals_per_minute),
        ] {
            if value == Some(0) {
                self.problem(
                    &spec.id,
                    format!(
                        "agent `{id}`: limits.{name} = 0 allows nothing; remove the grant instead"
                    ),
                );
            }
        }
    }

    fn approval_ttl(&mut self, text: Option<&Spanned<String>>) -> std::time::Duration {
        let Some(text) = text else {
            return DEFAULT_APPROVAL_TTL;
        };
        match humantime::parse_duration(text.get_ref()) {
            Ok(ttl) if !ttl.is_zero() => ttl,
            _ => {
                self.problem(
                    text,
                    format!(
                        "approval_ttl `{}` is not a duration such as \"15m\" or \"2h\"",
                        text.get_ref()
                    ),
                );
                DEFAULT_APPROVAL_TTL
            }
        }
    }

    /// About how many bytes the typed `tools/list` these rules give takes.
    fn listing_bytes(&self, tools: &[ToolRule]) -> usize {
        self.catalog
            .endpoints()
            .iter()
            .zip(tools)
            .filter(|(_, rule)| rule.allowed)
            .map(|(endpoint, _)| endpoint.listing_bytes)
            .sum()
    }

    /// Warns of tools granted on zones or accounts the agent holds none of:
    /// every call of them would be denied.
    fn warn_unscoped(
        &mut self,
        at: &Spanned<String>,
        id: &str,
        tools: &[ToolRule],
        zones: &Scope,
        accounts: &Scope,
    ) {
        for (kind, scope, endpoint_scope) in [
            ("zones", zones, crate::catalog::Scope::Zone),
            ("accounts", accounts, crate::catalog::Scope::Account),
        ] {
            if !matches!(scope, Scope::Listed(held) if held.is_empty()) {
                continue;
            }
            let mut groups: Vec<&str> = self
                .catalog
                .endpoints()
                .iter()
                .zip(tools)
                .filter(|(e, rule)| {
                    rule.allowed && e.scope() == Some(endpoint_scope) && e.scope_param().is_some()
                })
                .map(|(e, _)| e.group.as_str())
                .collect();
            groups.dedup();
            if !groups.is_empty() {
                self.warn(
                    at,
                    format!(
                        "agent `{id}` is granted {} but holds no {kind}: every such call will be denied (add `{kind} = [...]`)",
                        groups.join(", ")
                    ),
                );
            }
        }
    }

    fn scope(&mut self, entries: Option<&[Spanned<String>]>, kind: &str) -> Scope {
        let Some(entries) = entries else {
            return Scope::Listed(Vec::new());
        };
        let mut refs = Vec::new();
        for entry in entries {
            let text = entry.get_ref().trim();
            if text == "*" {
                if entries.len() > 1 {
                    self.warn(
                        entry,
                        format!(
                            "\"*\" already covers every {kind}; the other entries are redundant"
                        ),
                    );
                }
                return Scope::All;
            }
            let is_id = text.len() == 32
                && text
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            let is_name = kind == "account"
                || (text.contains('.')
                    && text
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'));
            if is_id {
                refs.push(ScopeRef::Id(text.to_string()));
            } else if is_name && !text.is_empty() && !text.contains('*') {
                let name = if kind == "zone" {
                    text.to_ascii_lowercase()
                } else {
                    text.to_string()
                };
                let location = self.location(entry);
                self.names.push(NameSource {
                    kind: if kind == "zone" {
                        crate::catalog::Scope::Zone
                    } else {
                        crate::catalog::Scope::Account
                    },
                    name: name.clone(),
                    location,
                });
                refs.push(ScopeRef::Name(name));
            } else {
                self.problem(
                    entry,
                    format!("`{text}` is not a {kind} name, a 32-hex {kind} id or \"*\""),
                );
            }
        }
        Scope::Listed(refs)
    }
}
