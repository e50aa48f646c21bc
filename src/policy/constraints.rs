//! Constraints as a policy file writes them (`[[agent.constraint]]`),
//! compiled: the tools each one reaches and its value globs.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use toml::Spanned;

use super::file::{ConstraintSpec, ToolSetting};
use super::load::Context;
use super::model::{Constraint, ToolRule};
use crate::catalog::{Access, Endpoint};

/// Whether a call of `endpoint` names `arg`: as a parameter, or as a field
/// its lookup fetches.
fn carries(endpoint: &Endpoint, arg: &str) -> bool {
    endpoint.param(arg).is_some()
        || endpoint
            .lookup
            .as_ref()
            .is_some_and(|l| l.fields.iter().any(|f| f == arg))
}

impl Context<'_> {
    /// Takes away the tools of a constrained group that a constraint cannot
    /// be checked on — they do not carry its argument, or act on a whole
    /// zone's worth of objects at once (`bulk`) — unless the policy names
    /// them in `tools`: an operator who constrained a group meant it for
    /// every tool of it, imported ones included. Returns each with why.
    pub(super) fn fail_closed(
        &self,
        constrained: &[(Constraint, BTreeSet<String>)],
        tools: &mut [ToolRule],
        overrides: &HashMap<String, (ToolSetting, String)>,
    ) -> Vec<(String, String)> {
        let mut removed = Vec::new();
        for (index, endpoint) in self.catalog.endpoints().iter().enumerate() {
            let named = matches!(overrides.get(&endpoint.tool), Some((ToolSetting::On, _)));
            if !tools[index].allowed || named {
                continue;
            }
            let unchecked = constrained.iter().find(|(constraint, groups)| {
                groups.contains(&endpoint.group)
                    && (endpoint.bulk || !carries(endpoint, &constraint.arg))
            });
            let Some((constraint, _)) = unchecked else {
                continue;
            };
            let why = if endpoint.bulk {
                format!(
                    "it acts on a whole zone's worth of objects at once, so the constraint on `{}` ({}) cannot be checked on it",
                    constraint.arg, constraint.source
                )
            } else {
                format!(
                    "it has no `{}`, so the constraint on it ({}) cannot be checked",
                    constraint.arg, constraint.source
                )
            };
            let rule = &mut tools[index];
            rule.allowed = false;
            rule.reason = format!("{why}; the policy may grant it by name in `tools`").into();
            rule.rule = format!("constraint at {}", constraint.source).into();
            removed.push((endpoint.tool.clone(), why));
        }
        removed
    }

    /// Compiles one constraint and finds the tools it applies to: the
    /// tool named, every tool a glob matches, or every tool of a group, that
    /// has the argument (a parameter or a field its lookup fetches).
    pub(super) fn constraint<'s>(
        &mut self,
        spec: &'s ConstraintSpec,
    ) -> Option<(&'s Spanned<String>, Vec<usize>, Constraint)> {
        let arg = spec.arg.get_ref();
        let (at, candidates) = match (&spec.tool, &spec.group) {
            (Some(tool), None) => (tool, self.tools_named(tool)?),
            (None, Some(group)) => {
                if self.catalog.group(group.get_ref()).is_none() {
                    let hint = crate::text::did_you_mean(
                        group.get_ref(),
                        self.catalog.groups().iter().map(|g| g.id.as_str()),
                    );
                    self.problem(
                        group,
                        format!("constraint on unknown group `{}`{hint}", group.get_ref()),
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
        let has_arg = |index: &usize| carries(&self.catalog.endpoints()[*index], arg);
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
                    let hint = crate::text::did_you_mean(
                        pattern,
                        self.catalog.endpoints().iter().map(|e| e.tool.as_str()),
                    );
                    self.problem(
                        name,
                        format!("constraint on unknown tool `{pattern}`{hint}"),
                    );
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
    pub(super) fn warn_partly_constrained(
        &mut self,
        at: &Spanned<String>,
        id: &str,
        tools: &[ToolRule],
    ) {
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
    pub(super) fn globs(
        &mut self,
        globs: &[Spanned<String>],
        ignore_case: bool,
    ) -> Option<Option<GlobSet>> {
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
