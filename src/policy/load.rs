//! Reads policy files, checks them against the catalog and compiles them.
//! Every problem is reported with its file and line; all of them at once,
//! so an operator fixes a file in one pass.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;

use super::file::{AgentSpec, AuthMode, Level, PolicyFile, ToolMode, ToolSetting};
use super::grants::{GroupGrant, tool_rule};
use super::model::{Agent, NameSource, Policy, ToolRule};
use super::scope::{Scope, ScopeRef};
use crate::catalog::Catalog;

/// One thing wrong in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policies at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no policy files (*.toml) in {0}")]
    Empty(PathBuf),
    #[error("{}", list(.0))]
    Invalid(Vec<Problem>),
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `*.toml` files of a directory (or the one file given), in name order.
pub fn policy_files(path: &Path) -> Result<Vec<(PathBuf, String)>, PolicyError> {
    let io = |source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let files = crate::files::toml_files(path).map_err(io)?;
    if files.is_empty() {
        return Err(PolicyError::Empty(path.to_path_buf()));
    }
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).map_err(|source| PolicyError::Io {
                path: file.clone(),
                source,
            })?;
            Ok((file, text))
        })
        .collect()
}

/// Parses, checks and compiles policy sources.
pub fn compile(
    sources: &[(PathBuf, String)],
    catalog: Arc<Catalog>,
) -> Result<Policy, PolicyError> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut names = Vec::new();
    let mut agents: Vec<Agent> = Vec::new();
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut keys: HashMap<[u8; 32], String> = HashMap::new();
    for (file, text) in sources {
        if text.trim().is_empty() {
            // Mid-save, or emptied by mistake: never "no agents" by accident.
            problems.push(Problem {
                file: file.clone(),
                line: 1,
                message:
                    "the file is empty (half saved?); write a comment in it to mean \"no agents\""
                        .into(),
            });
            continue;
        }
        let parsed: PolicyFile = match toml::from_str(text) {
            Ok(parsed) => parsed,
            Err(e) => {
                let line = e.span().map_or(1, |s| crate::text::line_of(text, s.start));
                let at = text.lines().nth(line.saturating_sub(1)).unwrap_or_default();
                problems.push(Problem {
                    file: file.clone(),
                    line,
                    message: plain(e.message().trim(), at),
                });
                continue;
            }
        };
        for spec in parsed.agents {
            let mut ctx = Context {
                file,
                text,
                catalog: &catalog,
                problems: &mut problems,
                warnings: &mut warnings,
                names: &mut names,
            };
            let here = ctx.location(&spec.id);
            if let Some(first) = ids.insert(spec.id.get_ref().clone(), here.clone()) {
                ctx.problem(
                    &spec.id,
                    format!(
                        "agent `{}` is already defined at {first}",
                        spec.id.get_ref()
                    ),
                );
                continue;
            }
            for key in &spec.key_sha256 {
                if let Some(hash) = ctx.key_hash(key)
                    && let Some(owner) = keys.insert(hash, spec.id.get_ref().clone())
                {
                    ctx.problem(
                        key,
                        format!("this key_sha256 is already used by agent `{owner}`"),
                    );
                }
            }
            agents.push(ctx.agent(spec));
        }
    }
    if !problems.is_empty() {
        return Err(PolicyError::Invalid(problems));
    }
    let by_id = agents
        .iter()
        .enumerate()
        .map(|(i, a)| (a.id.clone(), i))
        .collect();
    Ok(Policy {
        catalog,
        agents,
        by_id,
        warnings,
        names,
    })
}

/// A SHA-256 written as 64 hex characters.
fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let mut hash = [0u8; 32];
    let text = text.trim();
    (text.len() == 64 && hex::decode_to_slice(text, &mut hash).is_ok()).then_some(hash)
}

pub(super) struct Context<'a> {
    pub(super) file: &'a Path,
    pub(super) text: &'a str,
    pub(super) catalog: &'a Catalog,
    pub(super) problems: &'a mut Vec<Problem>,
    pub(super) warnings: &'a mut Vec<String>,
    pub(super) names: &'a mut Vec<NameSource>,
}

impl Context<'_> {
    pub(super) fn line<T>(&self, at: &Spanned<T>) -> usize {
        crate::text::line_of(self.text, at.span().start)
    }

    pub(super) fn location<T>(&self, at: &Spanned<T>) -> String {
        format!("{}:{}", self.file.display(), self.line(at))
    }

    pub(super) fn problem<T>(&mut self, at: &Spanned<T>, message: String) {
        let line = self.line(at);
        self.problems.push(Problem {
            file: self.file.to_path_buf(),
            line,
            message,
        });
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

    pub(super) fn warn<T>(&mut self, at: &Spanned<T>, message: String) {
        let location = self.location(at);
        self.warnings.push(format!("{location}: {message}"));
    }

    fn agent(&mut self, spec: AgentSpec) -> Agent {
        let id = spec.id.get_ref().clone();
        if let Err(problem) = super::identity::check_agent_id(&id) {
            self.problem(&spec.id, problem);
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
        let mut tools: Vec<ToolRule> = self
            .catalog
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
            .collect();
        let mut constrained = Vec::new();
        for spec_constraint in &spec.constraints {
            let Some((at, targets, constraint)) = self.constraint(spec_constraint) else {
                continue;
            };
            if !targets.iter().any(|&index| tools[index].allowed) {
                let what = self.catalog.endpoints()[targets[0]].tool.clone();
                self.warn(
                    at,
                    format!("agent `{id}` cannot use {what}, so this constraint has no effect"),
                );
            }
            let groups: std::collections::BTreeSet<String> = targets
                .iter()
                .map(|&index| self.catalog.endpoints()[index].group.clone())
                .collect();
            for index in targets {
                tools[index].constraints.push(constraint.clone());
            }
            constrained.push((constraint, groups));
        }
        let mut removed = self.fail_closed(&constrained, &mut tools, &overrides);
        let named_on = |tool: &str| matches!(overrides.get(tool), Some((ToolSetting::On, _)));
        removed.extend(super::grants::opaque_taken(
            self.catalog,
            (&zones, &accounts),
            &mut tools,
            named_on,
        ));
        self.warn_partly_constrained(&spec.id, &id, &tools);
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
        self.warn_unscoped(&spec.id, &id, &tools, &zones, &accounts);
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
        let approve = self.approvals(&spec.approve);
        let approval_ttl = match &spec.approval_ttl {
            None => DEFAULT_APPROVAL_TTL,
            Some(text) => match humantime::parse_duration(text.get_ref()) {
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
            },
        };
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
            oauth: spec.oauth.clone(),
            zones,
            accounts,
            grants,
            limits: spec.limits,
            tools,
            removed,
        }
    }

    fn key_hash(&mut self, key: &Spanned<String>) -> Option<[u8; 32]> {
        let hash = parse_hash(key.get_ref());
        if hash.is_none() {
            self.problem(key, "key_sha256 must be 64 hex characters (the SHA-256 of the key; `flaregate keygen` prints it)".into());
        }
        hash
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

/// The largest snapshot kept unless `snapshot_max_kb` says (a Worker of
/// 10 MB deflates to well under this).
const DEFAULT_SNAPSHOT_MAX_KB: u32 = 10 * 1024;

/// How long a request for approval stays valid unless `approval_ttl` says.
const DEFAULT_APPROVAL_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The grant `grants.*` names: every group not named on its own.
const WILDCARD: &str = "*";

/// The TOML reader's words for the two slips people make most, said the
/// way the other problems are: a list entry written as one table
/// (`[agent.constraint]`), and a level that is not one.
fn plain(message: &str, line: &str) -> String {
    let table = line.trim().trim_start_matches('[').trim_end_matches(']');
    if message.starts_with("invalid type: map, expected a sequence") && line.trim().starts_with('[')
    {
        return format!("`[{table}]` is a list: write `[[{table}]]` (two brackets) for each entry");
    }
    if let Some(rest) = message.strip_prefix("unknown variant `")
        && message.contains("expected one of `off`, `read`, `full`")
    {
        let word = rest.split('`').next().unwrap_or_default();
        let hint = match word {
            "write" | "rw" | "admin" | "edit" => " (write access is `full`)".to_string(),
            _ => crate::text::did_you_mean(word, ["off", "read", "full"]),
        };
        return format!("`{word}` is not a level{hint}: a grant is off, read or full");
    }
    message.to_string()
}
