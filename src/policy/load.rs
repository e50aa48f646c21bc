//! Reads policy files, checks them against the catalog and compiles them.
//! Every problem is reported with its file and line; all of them at once,
//! so an operator fixes a file in one pass.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use toml::Spanned;

use super::file::{AgentSpec, AuthMode, ConstraintSpec, Level, PolicyFile, ToolMode, ToolSetting};
use super::model::{Agent, Constraint, NameSource, Policy, ToolRule};
use super::scope::{Scope, ScopeRef};
use crate::catalog::{Access, Catalog};

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
                problems.push(Problem {
                    file: file.clone(),
                    line,
                    message: e.message().trim().to_string(),
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

struct Context<'a> {
    file: &'a Path,
    text: &'a str,
    catalog: &'a Catalog,
    problems: &'a mut Vec<Problem>,
    warnings: &'a mut Vec<String>,
    names: &'a mut Vec<NameSource>,
}

impl Context<'_> {
    fn line<T>(&self, at: &Spanned<T>) -> usize {
        crate::text::line_of(self.text, at.span().start)
    }

    fn location<T>(&self, at: &Spanned<T>) -> String {
        format!("{}:{}", self.file.display(), self.line(at))
    }

    fn problem<T>(&mut self, at: &Spanned<T>, message: String) {
        let line = self.line(at);
        self.problems.push(Problem {
            file: self.file.to_path_buf(),
            line,
            message,
        });
    }

    fn warn<T>(&mut self, at: &Spanned<T>, message: String) {
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
                self.problem(
                    group,
                    format!(
                        "unknown capability group `{}`; the groups are {}",
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
                self.problem(tool, format!("unknown tool `{}`", tool.get_ref()));
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
            for index in targets {
                tools[index].constraints.push(constraint.clone());
            }
        }
        self.warn_partly_constrained(&spec.id, &id, &tools);
        if !tools.iter().any(|t| t.allowed) {
            self.warn(
                &spec.id,
                format!("agent `{id}` is granted nothing: it will see no tools"),
            );
        }
        if auth == AuthMode::Key && key_hashes.is_empty() {
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
        let approve = self.globs(&spec.approve, false).flatten();
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
        let granted = tools.iter().filter(|t| t.allowed).count();
        let discover = match spec.tool_mode {
            ToolMode::Typed => false,
            ToolMode::Discover => true,
            ToolMode::Auto => granted > super::model::TYPED_TOOLS_MAX,
        };
        Agent {
            id,
            description: spec.description,
            discover,
            approve,
            approval_ttl,
            approver: spec.approver,
            snapshots: spec.snapshots,
            snapshot_max_bytes: spec.snapshot_max_kb.unwrap_or(DEFAULT_SNAPSHOT_MAX_KB) as usize
                * 1024,
            undo: spec.undo,
            auth,
            key_hashes,
            zones,
            accounts,
            grants,
            limits: spec.limits,
            tools,
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

    /// Compiles one constraint and finds the tools it applies to: the
    /// tool named, every tool a glob matches, or every tool of a group, that
    /// has the argument (a parameter or a field its lookup fetches).
    fn constraint<'s>(
        &mut self,
        spec: &'s ConstraintSpec,
    ) -> Option<(&'s Spanned<String>, Vec<usize>, Constraint)> {
        let arg = spec.arg.get_ref();
        let (at, candidates) = match (&spec.tool, &spec.group) {
            (Some(tool), None) => (tool, self.tools_named(tool)?),
            (None, Some(group)) => {
                if self.catalog.group(group.get_ref()).is_none() {
                    self.problem(
                        group,
                        format!("constraint on unknown group `{}`", group.get_ref()),
                    );
                    return None;
                }
                let members = self
                    .catalog
                    .endpoints()
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| &e.group == group.get_ref())
                    .map(|(i, _)| i)
                    .collect();
                (group, members)
            }
            _ => {
                self.problem(
                    &spec.arg,
                    "a constraint names a tool (or a tool glob) or a group, not both".into(),
                );
                return None;
            }
        };
        let has_arg = |index: &usize| {
            let endpoint = &self.catalog.endpoints()[*index];
            endpoint.param(arg).is_some()
                || endpoint
                    .lookup
                    .as_ref()
                    .is_some_and(|l| l.fields.contains(arg))
        };
        let targets: Vec<usize> = candidates.iter().copied().filter(has_arg).collect();
        if targets.is_empty() {
            let message = match candidates.as_slice() {
                [one] => {
                    let endpoint = &self.catalog.endpoints()[*one];
                    let mut names: Vec<&str> =
                        endpoint.params.iter().map(|p| p.name.as_str()).collect();
                    if let Some(lookup) = &endpoint.lookup {
                        names.extend(lookup.fields.iter().map(String::as_str));
                    }
                    format!(
                        "{} has no argument `{arg}`; its arguments are {}",
                        endpoint.tool,
                        names.join(", ")
                    )
                }
                _ => format!(
                    "no tool that `{}` names has an argument `{arg}`",
                    at.get_ref()
                ),
            };
            self.problem(&spec.arg, message);
            return None;
        }
        if spec.allow.is_empty() && spec.deny.is_empty() {
            self.problem(
                at,
                format!(
                    "the constraint on {}.{arg} has neither allow nor deny",
                    at.get_ref()
                ),
            );
            return None;
        }
        let allow = self.globs(&spec.allow, false)?;
        let deny = self.globs(&spec.deny, true)?;
        let text = |globs: &[Spanned<String>]| {
            globs
                .iter()
                .map(|g| g.get_ref().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let constraint = Constraint {
            arg: arg.clone(),
            allow,
            deny,
            allow_text: text(&spec.allow),
            deny_text: text(&spec.deny),
            source: self.location(at),
        };
        Some((at, targets, constraint))
    }

    /// The catalog indexes of the tool `name` names (a glob may name many).
    fn tools_named(&mut self, name: &Spanned<String>) -> Option<Vec<usize>> {
        let pattern = name.get_ref();
        if !pattern.contains(['*', '?', '[']) {
            return match self.catalog.index_of(pattern) {
                Some(index) => Some(vec![index]),
                None => {
                    self.problem(name, format!("constraint on unknown tool `{pattern}`"));
                    None
                }
            };
        }
        let glob = match globset::Glob::new(pattern) {
            Ok(glob) => glob.compile_matcher(),
            Err(e) => {
                self.problem(name, format!("`{pattern}` is not a valid tool glob: {e}"));
                return None;
            }
        };
        let matched: Vec<usize> = self
            .catalog
            .endpoints()
            .iter()
            .enumerate()
            .filter(|(_, e)| glob.is_match(&e.tool))
            .map(|(i, _)| i)
            .collect();
        if matched.is_empty() {
            self.problem(name, format!("the tool glob `{pattern}` matches no tool"));
            return None;
        }
        Some(matched)
    }

    /// Warns when some write tools of a group are constrained on an
    /// argument and others that have it are not (a `put_worker_script`
    /// constraint leaves `delete_worker_script` open).
    fn warn_partly_constrained(&mut self, at: &Spanned<String>, id: &str, tools: &[ToolRule]) {
        let endpoints = self.catalog.endpoints();
        let mut open: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for (endpoint, rule) in endpoints.iter().zip(tools) {
            if endpoint.access != Access::Write {
                continue;
            }
            for constraint in &rule.constraints {
                let group_writes = endpoints.iter().zip(tools).filter(|(other, other_rule)| {
                    other.group == endpoint.group
                        && other.access == Access::Write
                        && other_rule.allowed
                        && (other.param(&constraint.arg).is_some()
                            || other
                                .lookup
                                .as_ref()
                                .is_some_and(|l| l.fields.contains(&constraint.arg)))
                        && !other_rule
                            .constraints
                            .iter()
                            .any(|c| c.arg == constraint.arg)
                });
                for (other, _) in group_writes {
                    let left = open
                        .entry((endpoint.group.clone(), constraint.arg.clone()))
                        .or_default();
                    if !left.contains(&other.tool) {
                        left.push(other.tool.clone());
                    }
                }
            }
        }
        for ((group, arg), left) in open {
            self.warn(
                at,
                format!(
                    "agent `{id}` has {group} tools constrained on `{arg}` but not {}: constrain them too (`group = \"{group}\"` does all), or turn them off",
                    left.join(", ")
                ),
            );
        }
    }

    /// Compiles globs; `None` (with a problem filed) if one is invalid.
    fn globs(&mut self, globs: &[Spanned<String>], ignore_case: bool) -> Option<Option<GlobSet>> {
        if globs.is_empty() {
            return Some(None);
        }
        let mut set = GlobSetBuilder::new();
        let mut ok = true;
        for glob in globs {
            match GlobBuilder::new(glob.get_ref())
                .case_insensitive(ignore_case)
                .literal_separator(false)
                .build()
            {
                Ok(compiled) => {
                    set.add(compiled);
                }
                Err(e) => {
                    self.problem(
                        glob,
                        format!("invalid glob `{}`: {}", glob.get_ref(), e.kind()),
                    );
                    ok = false;
                }
            }
        }
        if !ok {
            return None;
        }
        set.build().ok().map(Some)
    }
}

/// The largest snapshot kept unless `snapshot_max_kb` says (a Worker of
/// 10 MB deflates to well under this).
const DEFAULT_SNAPSHOT_MAX_KB: u32 = 10 * 1024;

/// How long a request for approval stays valid unless `approval_ttl` says.
const DEFAULT_APPROVAL_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The grant `grants.*` names: every group not named on its own.
const WILDCARD: &str = "*";

/// What an agent's grants say of one tool's group.
enum GroupGrant {
    /// Nothing: deny by default.
    None,
    Group(Level),
    /// `grants."*"`, for a group the agent's grants do not name.
    Wildcard(Level),
    /// A user-level or global endpoint, or a group whose permission is not
    /// known: no group grant reaches it.
    ByNameOnly(crate::catalog::Reach),
}

/// The rule for one tool from the agent's group grant and tool override.
fn tool_rule(
    tool: &str,
    access: Access,
    group: &str,
    group_title: &str,
    grant: GroupGrant,
    over: Option<&(ToolSetting, String)>,
) -> ToolRule {
    let by_level = |level: Level| match access {
        Access::Read => level >= Level::Read,
        Access::Write => level == Level::Full,
    };
    let (allowed, reason, rule) = match (over, grant) {
        (Some((ToolSetting::On, at)), _) => (
            true,
            format!("your tools.{tool} override is on"),
            format!("tools.{tool} = on ({at})"),
        ),
        (Some((ToolSetting::Off, at)), _) => (
            false,
            format!("your tools.{tool} override is off"),
            format!("tools.{tool} = off ({at})"),
        ),
        (None, GroupGrant::None) => (
            false,
            format!("it has no {group_title} grant (deny by default)"),
            format!("grants.{group} absent"),
        ),
        (None, GroupGrant::ByNameOnly(reach)) => {
            let what = match reach {
                crate::catalog::Reach::User => "it acts on the token's user, not a zone or account",
                crate::catalog::Reach::Global => "it acts on no zone or account",
                _ => "its Cloudflare permission is not known",
            };
            (
                false,
                format!("{tool} is granted only by name ({what}): no tools.{tool} = on"),
                format!("tools.{tool} absent"),
            )
        }
        (None, GroupGrant::Group(level)) => (
            by_level(level),
            format!("your {group_title} grant is {}", level.as_str()),
            format!("grants.{group} = {}", level.as_str()),
        ),
        (None, GroupGrant::Wildcard(level)) => (
            by_level(level),
            format!("your grant of every group is {}", level.as_str()),
            format!("grants.\"*\" = {}", level.as_str()),
        ),
    };
    ToolRule {
        allowed,
        reason: reason.into(),
        rule: rule.into(),
        constraints: Vec::new(),
    }
}
