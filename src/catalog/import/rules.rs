//! The import's table (openapi/groups.toml): which group each of the
//! schema's tags goes to, the dashboard name of each permission the schema
//! names, and the permission of tags whose operations name none.

use std::collections::BTreeMap;

use globset::{Glob, GlobMatcher};
use serde::Deserialize;

use crate::catalog::Access;

/// The table shipped with flaregate, for the copy of the schema it ships.
pub const BUILTIN: &str = include_str!("../../../openapi/groups.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    #[serde(default)]
    permissions: BTreeMap<String, String>,
    #[serde(default, rename = "rule")]
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    /// Tag names or globs ("Radar *").
    tags: Vec<String>,
    group: String,
    title: Option<String>,
    description: Option<String>,
    /// The permission's dashboard name without Read/Write, for operations
    /// whose schema names none.
    permission: Option<String>,
}

/// The compiled table.
pub struct Rules {
    permissions: BTreeMap<String, String>,
    rules: Vec<(Vec<GlobMatcher>, RawRule)>,
}

/// Where one tag's operations go.
pub struct Placement<'a> {
    pub group: String,
    pub title: String,
    pub description: Option<&'a str>,
    pub permission: Option<&'a str>,
}

impl Rules {
    pub fn parse(text: &str) -> Result<Self, String> {
        let raw: RawRules = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| crate::text::line_of(text, s.start));
            format!("line {line}: {}", e.message())
        })?;
        let mut rules = Vec::with_capacity(raw.rules.len());
        for rule in raw.rules {
            let globs = rule
                .tags
                .iter()
                .map(|t| Glob::new(t).map(|g| g.compile_matcher()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("rule for group `{}`: {e}", rule.group))?;
            rules.push((globs, rule));
        }
        Ok(Self {
            permissions: raw.permissions,
            rules,
        })
    }

    /// The group of the first rule naming `tag`, else one of its own.
    pub fn place(&self, tag: &str) -> Placement<'_> {
        match self
            .rules
            .iter()
            .find(|(globs, _)| globs.iter().any(|g| g.is_match(tag)))
        {
            Some((_, rule)) => Placement {
                group: rule.group.clone(),
                title: rule.title.clone().unwrap_or_else(|| tag.to_string()),
                description: rule.description.as_deref(),
                permission: rule.permission.as_deref(),
            },
            None => Placement {
                group: super::names::snake(tag),
                title: tag.to_string(),
                description: None,
                permission: None,
            },
        }
    }

    /// The dashboard name of a permission as the schema writes it
    /// (`#dns_records:edit`, `com.cloudflare.edge.worker.script.create`),
    /// with Read or Write by what the call does.
    pub fn permission_name(&self, schema_name: &str, access: Access) -> String {
        let base = schema_name
            .split(':')
            .next()
            .unwrap_or(schema_name)
            .trim_end_matches('.');
        let key = self
            .permissions
            .keys()
            .filter(|k| base == k.as_str() || base.starts_with(&format!("{k}.")))
            .max_by_key(|k| k.len());
        let name = match key {
            Some(key) => self.permissions[key].clone(),
            None => title_case(
                base.trim_start_matches('#')
                    .rsplit('.')
                    .nth(1)
                    .unwrap_or(base),
            ),
        };
        with_access(&name, access)
    }
}

/// "DNS" + read → "DNS Read".
pub(super) fn with_access(name: &str, access: Access) -> String {
    match access {
        Access::Read => format!("{name} Read"),
        Access::Write => format!("{name} Write"),
    }
}

fn title_case(text: &str) -> String {
    text.split(['_', '-', '.'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars.next().map_or(String::new(), |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_reads_and_names_permissions() {
        let rules = Rules::parse(BUILTIN).expect("shipped table");
        assert_eq!(
            rules.permission_name("#dns_records:edit", Access::Write),
            "DNS Write"
        );
        assert_eq!(
            rules.permission_name("com.cloudflare.edge.worker.script.create", Access::Write),
            "Workers Scripts Write"
        );
        assert_eq!(rules.place("DNS Records for a Zone").group, "dns");
        assert_eq!(rules.place("Radar Http").group, "radar");
        assert_eq!(rules.place("Some New Tag").group, "some_new_tag");
    }
}
