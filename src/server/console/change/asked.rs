//! A change as the console's forms ask for it (one agent's grant, zones,
//! accounts, or a rule on an argument), read into the policy edit it
//! makes; and the words the preview, the log line and the chain's
//! `policy` row use for it.

use serde::Deserialize;

use crate::policy::Level;
use crate::policy::edit::{ConstraintOn, Edit, NewConstraint, ScopeKey};

/// The forms' fields; which ones count depends on `kind`.
#[derive(Debug, Default, Deserialize)]
pub(in crate::server::console) struct Asked {
    pub agent: String,
    /// `grant` (the default), `zones`, `accounts`, `constraint` (add one),
    /// `unconstrain` (take one out).
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub level: String,
    /// Zones or accounts, separated by commas, spaces or lines.
    #[serde(default)]
    pub values: String,
    #[serde(default)]
    pub tool: String,
    #[serde(default)]
    pub arg: String,
    #[serde(default)]
    pub allow: String,
    #[serde(default)]
    pub deny: String,
    /// The rule to take out, counted from 1 in the file's order.
    #[serde(default)]
    pub index: String,
}

/// The fields a form carries on to the next step, by name.
pub(super) fn fields(asked: &Asked) -> [(&'static str, &str); 10] {
    [
        ("agent", &asked.agent),
        ("kind", &asked.kind),
        ("group", &asked.group),
        ("level", &asked.level),
        ("values", &asked.values),
        ("tool", &asked.tool),
        ("arg", &asked.arg),
        ("allow", &asked.allow),
        ("deny", &asked.deny),
        ("index", &asked.index),
    ]
}

impl Asked {
    /// Whether this asks which rule to take out (none is chosen yet).
    pub(super) fn picks_a_rule(&self) -> bool {
        self.kind == "unconstrain" && self.index.trim().is_empty()
    }

    /// The edit asked for, or what is wrong with the form.
    pub(super) fn edit(&self) -> Result<Edit, String> {
        match self.kind.as_str() {
            "" | "grant" => Ok(Edit::Grant {
                group: self.group.clone(),
                level: level_of(&self.level).ok_or("level is off, read or full")?,
            }),
            "zones" => Ok(Edit::Scope {
                key: ScopeKey::Zones,
                values: list(&self.values),
            }),
            "accounts" => Ok(Edit::Scope {
                key: ScopeKey::Accounts,
                values: list(&self.values),
            }),
            "constraint" => {
                let on = match (self.tool.trim(), self.group.trim()) {
                    ("", "") => {
                        return Err("name the tool (or glob) or the group the rule is on".into());
                    }
                    ("", group) => ConstraintOn::Group(group.to_string()),
                    (tool, "") => ConstraintOn::Tool(tool.to_string()),
                    _ => return Err("a rule is on a tool or on a group, not both".into()),
                };
                let arg = self.arg.trim();
                if arg.is_empty() {
                    return Err("name the argument the rule is on".into());
                }
                Ok(Edit::AddConstraint(NewConstraint {
                    on,
                    arg: arg.to_string(),
                    allow: list(&self.allow),
                    deny: list(&self.deny),
                }))
            }
            "unconstrain" => match self.index.trim().parse::<usize>() {
                Ok(n) if n >= 1 => Ok(Edit::RemoveConstraint(n - 1)),
                _ => Err("the rule to take out is a number from 1".into()),
            },
            other => Err(format!(
                "`{other}` is not a change the console makes (grant, zones, accounts, constraint, unconstrain)"
            )),
        }
    }
}

/// The words of a change: what the agent had and has, the chain row's
/// sentence and rule.
pub(super) struct Described {
    pub old: String,
    pub new: String,
}

impl Described {
    /// "root (console) changed ops's zones from … to … in FILE".
    pub(super) fn sentence(&self, operator: &str, agent: &str, edit: &Edit, file: &str) -> String {
        let (old, new) = (&self.old, &self.new);
        match edit {
            Edit::Grant { group, .. } => format!(
                "{operator} (console) changed {agent}'s grant on {group} from {old} to {new} in {file}"
            ),
            Edit::Scope { key, .. } => format!(
                "{operator} (console) changed {agent}'s {} from {old} to {new} in {file}",
                key.as_str()
            ),
            Edit::AddConstraint(_) => {
                format!("{operator} (console) added a rule for {agent}: {new} in {file}")
            }
            Edit::RemoveConstraint(_) => {
                format!("{operator} (console) removed {agent}'s rule: {old} in {file}")
            }
        }
    }
}

/// The chain row's rule for an edit: the key of the policy it changes.
pub(super) fn rule_of(edit: &Edit) -> String {
    match edit {
        Edit::Grant { group, .. } => format!("grants.{group}"),
        Edit::Scope { key, .. } => key.as_str().to_string(),
        Edit::AddConstraint(_) | Edit::RemoveConstraint(_) => "constraint".into(),
    }
}

/// What the chain row's arguments call the edit.
pub(super) fn kind_of(edit: &Edit) -> &'static str {
    match edit {
        Edit::Grant { .. } => "grant",
        Edit::Scope { key, .. } => key.as_str(),
        Edit::AddConstraint(_) => "constraint",
        Edit::RemoveConstraint(_) => "unconstrain",
    }
}

pub(super) fn level_of(word: &str) -> Option<Level> {
    match word {
        "off" => Some(Level::Off),
        "read" => Some(Level::Read),
        "full" => Some(Level::Full),
        _ => None,
    }
}

/// Items separated by commas, spaces or lines.
fn list(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_form_reads_into_its_edit_and_a_wrong_one_says_why() {
        let asked = |kind: &str, fill: &dyn Fn(&mut Asked)| {
            let mut asked = Asked {
                agent: "ops".into(),
                kind: kind.into(),
                ..Asked::default()
            };
            fill(&mut asked);
            asked.edit()
        };
        assert_eq!(
            asked("zones", &|a| a.values = "example.com, example.net\n".into()),
            Ok(Edit::Scope {
                key: ScopeKey::Zones,
                values: vec!["example.com".into(), "example.net".into()]
            })
        );
        assert!(matches!(
            asked("constraint", &|a| {
                a.group = "dns".into();
                a.arg = "name".into();
                a.allow = "*.example.com".into();
            }),
            Ok(Edit::AddConstraint(NewConstraint {
                on: ConstraintOn::Group(_),
                ..
            }))
        ));
        assert!(
            asked("constraint", &|a| {
                a.group = "dns".into();
                a.tool = "x".into();
                a.arg = "name".into();
            })
            .is_err()
        );
        assert_eq!(
            asked("unconstrain", &|a| a.index = "2".into()),
            Ok(Edit::RemoveConstraint(1))
        );
        assert!(asked("unconstrain", &|a| a.index = "0".into()).is_err());
        assert!(asked("grant", &|a| a.level = "admin".into()).is_err());
        assert!(asked("delete", &|_| {}).is_err());
    }
}
