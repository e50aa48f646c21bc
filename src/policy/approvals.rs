//! What needs a person's approval (`approve`): tool names or globs, or
//! tools selected by what they are — `access:write` (every write),
//! `method:DELETE` (every DELETE), `group:dns` (every tool of a group) —
//! so an imported API's hundreds of deletes are covered by one line, not
//! by a name pattern that matches some of them. Compiled once per agent
//! into one flag per catalog tool.

use globset::Glob;
use toml::Spanned;

use super::load::Context;
use crate::catalog::{Access, Endpoint, Method};

/// One `approve` entry.
enum Selector {
    Tools(globset::GlobMatcher),
    Access(Access),
    Method(Method),
    Group(String),
}

impl Selector {
    fn covers(&self, endpoint: &Endpoint) -> bool {
        match self {
            Selector::Tools(glob) => glob.is_match(&endpoint.tool),
            Selector::Access(access) => endpoint.access == *access,
            Selector::Method(method) => endpoint.method == *method,
            Selector::Group(group) => endpoint.group == *group,
        }
    }
}

impl Context<'_> {
    /// Which catalog tools (by index) `entries` say a person must approve;
    /// every entry that cannot be read is a problem at its line.
    pub(super) fn approvals(&mut self, entries: &[Spanned<String>]) -> Vec<bool> {
        let selectors: Vec<Selector> = entries
            .iter()
            .filter_map(|entry| match self.selector(entry.get_ref()) {
                Ok(selector) => Some(selector),
                Err(problem) => {
                    self.problem(
                        entry,
                        format!("approve entry `{}`: {problem}", entry.get_ref()),
                    );
                    None
                }
            })
            .collect();
        self.catalog
            .endpoints()
            .iter()
            .map(|endpoint| selectors.iter().any(|s| s.covers(endpoint)))
            .collect()
    }

    fn selector(&self, entry: &str) -> Result<Selector, String> {
        let Some((kind, value)) = entry.split_once(':') else {
            return Glob::new(entry)
                .map(|glob| Selector::Tools(glob.compile_matcher()))
                .map_err(|e| format!("invalid glob: {}", e.kind()));
        };
        match kind {
            "access" => match value {
                "write" => Ok(Selector::Access(Access::Write)),
                "read" => Ok(Selector::Access(Access::Read)),
                _ => Err("access is `write` or `read`".into()),
            },
            "method" => Method::from_name(value)
                .map(Selector::Method)
                .ok_or_else(|| "method is one of GET, POST, PUT, PATCH, DELETE".into()),
            "group" if self.catalog.group(value).is_some() => {
                Ok(Selector::Group(value.to_string()))
            }
            "group" => Err(format!(
                "there is no group `{value}` in the catalog ({})",
                self.catalog
                    .groups()
                    .iter()
                    .map(|g| g.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ => Err(format!(
                "`{kind}:` selects nothing: use a tool name or glob, `access:write`, `method:DELETE` or `group:NAME`"
            )),
        }
    }
}
