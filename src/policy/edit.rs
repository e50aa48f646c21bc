//! Changes to a policy file made for an operator (in the console): the
//! TOML is edited in place, so the operator's comments and layout stay and
//! nothing but the changed value moves. The result is checked like any
//! policy before anything is written.

use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value};

use super::Level;

/// Why a policy file cannot be changed as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("the file is not valid TOML: {0}")]
    Syntax(String),
    #[error("no [[agent]] with id `{0}` in this file")]
    NoAgent(String),
    #[error("agent `{0}`'s `{1}` is not what the policy format says: fix the file by hand")]
    Odd(String, &'static str),
    #[error("agent `{0}` has no rule number {1} in this file")]
    NoConstraint(String, usize),
}

/// One change to one agent, as an operator asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// The agent's grant on a capability group.
    Grant { group: String, level: Level },
    /// The zones (or accounts) the agent is limited to: names, ids, `*`.
    Scope { key: ScopeKey, values: Vec<String> },
    /// A new `[[agent.constraint]]`.
    AddConstraint(NewConstraint),
    /// The agent's n-th `[[agent.constraint]]` in the file (from 0) taken out.
    RemoveConstraint(usize),
}

/// `zones` or `accounts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKey {
    Zones,
    Accounts,
}

impl ScopeKey {
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKey::Zones => "zones",
            ScopeKey::Accounts => "accounts",
        }
    }
}

/// A rule on an argument's values, as `[[agent.constraint]]` writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConstraint {
    /// `tool` (a name or glob) or `group`.
    pub on: ConstraintOn,
    pub arg: String,
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

/// What a constraint covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConstraintOn {
    Tool(String),
    Group(String),
}

impl std::fmt::Display for NewConstraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.on {
            ConstraintOn::Tool(tool) => write!(f, "tool {tool}")?,
            ConstraintOn::Group(group) => write!(f, "group {group}")?,
        }
        write!(f, ", argument {}", self.arg)?;
        if !self.allow.is_empty() {
            write!(f, ", allow {:?}", self.allow)?;
        }
        if !self.deny.is_empty() {
            write!(f, ", deny {:?}", self.deny)?;
        }
        Ok(())
    }
}

/// Whether `text` defines agent `id` (an `[[agent]]` with that id).
pub fn defines_agent(text: &str, id: &str) -> bool {
    text.parse::<DocumentMut>()
        .ok()
        .and_then(|doc| {
            doc.get("agent")
                .and_then(Item::as_array_of_tables)
                .map(|agents| agents.iter().any(|a| id_of(a) == Some(id)))
        })
        .unwrap_or(false)
}

/// `text` with `edit` made to agent `id`.
pub fn apply(text: &str, id: &str, edit: &Edit) -> Result<String, EditError> {
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| EditError::Syntax(e.message().to_string()))?;
    let agent = agent_mut(&mut doc, id)?;
    match edit {
        Edit::Grant { group, level } => set_grant(agent, id, group, *level)?,
        Edit::Scope { key, values } => set_scope(agent, *key, values),
        Edit::AddConstraint(constraint) => add_constraint(agent, id, constraint)?,
        Edit::RemoveConstraint(index) => remove_constraint(agent, id, *index)?,
    }
    Ok(doc.to_string())
}

/// Agent `id`'s constraints as the file writes them, in order (the index
/// [`Edit::RemoveConstraint`] takes), each in words.
pub fn constraints(text: &str, id: &str) -> Result<Vec<String>, EditError> {
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| EditError::Syntax(e.message().to_string()))?;
    let agent = agent_mut(&mut doc, id)?;
    let Some(item) = agent.get("constraint") else {
        return Ok(Vec::new());
    };
    let described = |t: &dyn toml_edit::TableLike| {
        let text = |key: &str| t.get(key).and_then(Item::as_str).map(str::to_string);
        let list = |key: &str| {
            t.get(key)
                .and_then(Item::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let on = match (text("tool"), text("group")) {
            (Some(tool), _) => ConstraintOn::Tool(tool),
            (None, Some(group)) => ConstraintOn::Group(group),
            (None, None) => ConstraintOn::Tool("?".into()),
        };
        NewConstraint {
            on,
            arg: text("arg").unwrap_or_default(),
            allow: list("allow"),
            deny: list("deny"),
        }
        .to_string()
    };
    match item {
        Item::ArrayOfTables(tables) => Ok(tables.iter().map(|t| described(t)).collect()),
        Item::Value(Value::Array(array)) => Ok(array
            .iter()
            .filter_map(Value::as_inline_table)
            .map(|t| described(t))
            .collect()),
        _ => Err(EditError::Odd(id.to_string(), "constraint")),
    }
}

fn agent_mut<'d>(doc: &'d mut DocumentMut, id: &str) -> Result<&'d mut Table, EditError> {
    doc.get_mut("agent")
        .and_then(Item::as_array_of_tables_mut)
        .and_then(|agents| agents.iter_mut().find(|a| id_of(a) == Some(id)))
        .ok_or_else(|| EditError::NoAgent(id.to_string()))
}

/// The grant on `group` set to `level`. Off removes the group's entry
/// (deny by default), or writes `"off"` where a `"*"` grant would
/// otherwise cover the group.
fn set_grant(agent: &mut Table, id: &str, group: &str, level: Level) -> Result<(), EditError> {
    let odd = || EditError::Odd(id.to_string(), "grants");
    if !agent.contains_key("grants") {
        agent.insert(
            "grants",
            Item::Value(Value::InlineTable(InlineTable::new())),
        );
    }
    let grants = agent.get_mut("grants").ok_or_else(odd)?;
    let table = grants.as_table_like_mut().ok_or_else(odd)?;
    let wildcard = table.contains_key("*");
    if level == Level::Off && !wildcard {
        table.remove(group);
    } else {
        match table.get_mut(group) {
            Some(Item::Value(existing)) => replace_kept(existing, Value::from(level.as_str())),
            _ => {
                table.insert(group, toml_edit::value(level.as_str()));
            }
        }
    }
    if let Some(inline) = grants.as_inline_table_mut() {
        inline.fmt();
    }
    Ok(())
}

/// `zones = [...]` (or `accounts`) set, in its place where it was.
fn set_scope(agent: &mut Table, key: ScopeKey, values: &[String]) {
    let list = Value::Array(values.iter().map(String::as_str).collect::<Array>());
    match agent.get_mut(key.as_str()) {
        Some(Item::Value(existing)) => replace_kept(existing, list),
        _ => {
            agent.insert(key.as_str(), Item::Value(list));
        }
    }
}

/// A new `[[agent.constraint]]` after the agent's others.
fn add_constraint(agent: &mut Table, id: &str, new: &NewConstraint) -> Result<(), EditError> {
    let mut table = Table::new();
    match &new.on {
        ConstraintOn::Tool(tool) => table.insert("tool", toml_edit::value(tool.as_str())),
        ConstraintOn::Group(group) => table.insert("group", toml_edit::value(group.as_str())),
    };
    table.insert("arg", toml_edit::value(new.arg.as_str()));
    for (key, globs) in [("allow", &new.allow), ("deny", &new.deny)] {
        if !globs.is_empty() {
            let list: Array = globs.iter().map(String::as_str).collect();
            table.insert(key, toml_edit::value(list));
        }
    }
    match agent.get_mut("constraint") {
        None => {
            let mut tables = ArrayOfTables::new();
            tables.push(table);
            agent.insert("constraint", Item::ArrayOfTables(tables));
        }
        Some(Item::ArrayOfTables(tables)) => tables.push(table),
        Some(Item::Value(Value::Array(array))) => {
            array.push(Value::InlineTable(table.into_inline_table()));
        }
        Some(_) => return Err(EditError::Odd(id.to_string(), "constraint")),
    }
    Ok(())
}

fn remove_constraint(agent: &mut Table, id: &str, index: usize) -> Result<(), EditError> {
    let missing = || EditError::NoConstraint(id.to_string(), index + 1);
    let now_empty = match agent.get_mut("constraint") {
        Some(Item::ArrayOfTables(tables)) if index < tables.len() => {
            tables.remove(index);
            tables.is_empty()
        }
        Some(Item::Value(Value::Array(array))) if index < array.len() => {
            array.remove(index);
            array.is_empty()
        }
        _ => return Err(missing()),
    };
    if now_empty {
        agent.remove("constraint");
    }
    Ok(())
}

/// `existing` given `new`'s value, keeping its place and the comment
/// beside it.
fn replace_kept(existing: &mut Value, new: Value) {
    let decor = existing.decor().clone();
    *existing = new;
    *existing.decor_mut() = decor;
}

fn id_of(agent: &toml_edit::Table) -> Option<&str> {
    agent.get("id").and_then(Item::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(group: &str, level: Level) -> Edit {
        Edit::Grant {
            group: group.into(),
            level,
        }
    }

    const FILE: &str = r#"# Who may do what.

[[agent]]
id = "dns-editor"   # the DNS team's bot
zones = ["example.com"]
grants = { dns = "full", zones = "read" }

[[agent]]
id = "auditor"
[agent.grants]
# reads everything
"*" = "read"
workers = "off"  # not the code
"#;

    #[test]
    fn a_grant_changes_in_place_and_every_comment_stays() {
        let changed = apply(FILE, "dns-editor", &grant("cache", Level::Full)).expect("edits");
        assert!(
            changed.contains(r#"grants = { dns = "full", zones = "read", cache = "full" }"#),
            "{changed}"
        );
        let changed = apply(&changed, "dns-editor", &grant("zones", Level::Off)).expect("edits");
        assert!(
            changed.contains(r#"grants = { dns = "full", cache = "full" }"#),
            "{changed}"
        );
        for kept in [
            "# Who may do what.",
            "# the DNS team's bot",
            "# reads everything",
            "# not the code",
        ] {
            assert!(changed.contains(kept), "{kept}: {changed}");
        }
        // Only the grants line moved.
        let moved: Vec<_> = FILE
            .lines()
            .zip(changed.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(moved.len(), 1, "{moved:?}");
    }

    #[test]
    fn off_under_a_wildcard_is_written_and_a_table_of_grants_is_kept() {
        let changed = apply(FILE, "auditor", &grant("dns", Level::Off)).expect("edits");
        assert!(changed.contains("dns = \"off\""), "{changed}");
        let changed = apply(FILE, "auditor", &grant("workers", Level::Read)).expect("edits");
        assert!(
            changed.contains("workers = \"read\"  # not the code"),
            "{changed}"
        );
        assert!(defines_agent(FILE, "auditor") && !defines_agent(FILE, "nobody"));
        assert_eq!(
            apply(FILE, "nobody", &grant("dns", Level::Read)),
            Err(EditError::NoAgent("nobody".into()))
        );
    }

    #[test]
    fn zones_change_in_place_and_rules_are_added_after_the_agents_others_and_removed() {
        let zones = Edit::Scope {
            key: ScopeKey::Zones,
            values: vec!["example.com".into(), "example.net".into()],
        };
        let changed = apply(FILE, "dns-editor", &zones).expect("edits");
        assert!(
            changed.contains("zones = [\"example.com\", \"example.net\"]"),
            "{changed}"
        );
        let accounts = Edit::Scope {
            key: ScopeKey::Accounts,
            values: vec!["*".into()],
        };
        let changed = apply(&changed, "dns-editor", &accounts).expect("edits");
        assert!(changed.contains("accounts = [\"*\"]"), "{changed}");

        let rule = NewConstraint {
            on: ConstraintOn::Group("dns".into()),
            arg: "name".into(),
            allow: vec!["*.example.com".into()],
            deny: vec![],
        };
        let changed =
            apply(&changed, "dns-editor", &Edit::AddConstraint(rule.clone())).expect("edits");
        let added =
            "[[agent.constraint]]\ngroup = \"dns\"\narg = \"name\"\nallow = [\"*.example.com\"]";
        assert!(changed.contains(added), "{changed}");
        // Inside dns-editor's section, before the next [[agent]].
        let (at, next) = (
            changed.find(added).expect("added"),
            changed.find("id = \"auditor\"").expect("auditor"),
        );
        assert!(at < next, "{changed}");
        let parsed: toml::Value = toml::from_str(&changed).expect("valid TOML");
        assert_eq!(
            parsed["agent"][0]["constraint"][0]["arg"].as_str(),
            Some("name")
        );
        assert_eq!(
            constraints(&changed, "dns-editor").expect("reads"),
            vec![rule.to_string()]
        );

        let removed = apply(&changed, "dns-editor", &Edit::RemoveConstraint(0)).expect("edits");
        assert!(!removed.contains("[[agent.constraint]]"), "{removed}");
        assert_eq!(
            apply(&removed, "dns-editor", &Edit::RemoveConstraint(0)),
            Err(EditError::NoConstraint("dns-editor".into(), 1))
        );
    }
}
