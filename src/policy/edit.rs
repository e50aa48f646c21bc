//! Changes to a policy file made for an operator (in the console): the
//! TOML is edited in place, so the operator's comments and layout stay and
//! nothing but the changed value moves. The result is checked like any
//! policy before anything is written.

use toml_edit::{DocumentMut, InlineTable, Item, Value};

use super::Level;

/// Why a policy file cannot be changed as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("the file is not valid TOML: {0}")]
    Syntax(String),
    #[error("no [[agent]] with id `{0}` in this file")]
    NoAgent(String),
    #[error("agent `{0}`'s grants are not a table: fix the file by hand")]
    OddGrants(String),
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

/// `text` with agent `id`'s grant on `group` set to `level`. Off removes
/// the group's entry (deny by default), or writes `"off"` where a `"*"`
/// grant would otherwise cover the group.
pub fn set_grant(text: &str, id: &str, group: &str, level: Level) -> Result<String, EditError> {
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| EditError::Syntax(e.message().to_string()))?;
    let agent = doc
        .get_mut("agent")
        .and_then(Item::as_array_of_tables_mut)
        .and_then(|agents| agents.iter_mut().find(|a| id_of(a) == Some(id)))
        .ok_or_else(|| EditError::NoAgent(id.to_string()))?;
    let odd = || EditError::OddGrants(id.to_string());
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
            // Keeps the entry's place and the comment beside it.
            Some(Item::Value(existing)) => {
                let decor = existing.decor().clone();
                *existing = Value::from(level.as_str());
                *existing.decor_mut() = decor;
            }
            _ => {
                table.insert(group, toml_edit::value(level.as_str()));
            }
        }
    }
    if let Some(inline) = grants.as_inline_table_mut() {
        inline.fmt();
    }
    Ok(doc.to_string())
}

fn id_of(agent: &toml_edit::Table) -> Option<&str> {
    agent.get("id").and_then(Item::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let changed = set_grant(FILE, "dns-editor", "cache", Level::Full).expect("edits");
        assert!(
            changed.contains(r#"grants = { dns = "full", zones = "read", cache = "full" }"#),
            "{changed}"
        );
        let changed = set_grant(&changed, "dns-editor", "zones", Level::Off).expect("edits");
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
        let changed = set_grant(FILE, "auditor", "dns", Level::Off).expect("edits");
        assert!(changed.contains("dns = \"off\""), "{changed}");
        let changed = set_grant(FILE, "auditor", "workers", Level::Read).expect("edits");
        assert!(
            changed.contains("workers = \"read\"  # not the code"),
            "{changed}"
        );
        assert!(defines_agent(FILE, "auditor") && !defines_agent(FILE, "nobody"));
        assert_eq!(
            set_grant(FILE, "nobody", "dns", Level::Read),
            Err(EditError::NoAgent("nobody".into()))
        );
    }
}
