//! Zones and accounts as policies name them (names or ids, or "*") and as
//! calls name them (ids). Names are resolved to ids through the Cloudflare
//! API into a [`Directory`] that is refreshed on a miss.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::catalog::Catalog;
use crate::cloudflare::{Client, CloudflareError};

/// One entry of an agent's `zones` or `accounts` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeRef {
    Id(String),
    Name(String),
}

/// What an agent's `zones` or `accounts` cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// "*": everything the Cloudflare token reaches.
    All,
    /// Only these (possibly none).
    Listed(Vec<ScopeRef>),
}

/// The outcome of a scope check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeCheck {
    Inside,
    Outside,
    /// Outside as far as the directory knows, but some names in the scope
    /// are not resolved yet: a fresher directory might say otherwise.
    Unresolved,
}

impl Scope {
    /// Whether `id` is covered, resolving names through `names`.
    pub fn check(&self, id: &str, names: &HashMap<String, String>) -> ScopeCheck {
        let Scope::Listed(entries) = self else {
            return ScopeCheck::Inside;
        };
        let mut unresolved = false;
        for entry in entries {
            match entry {
                ScopeRef::Id(own) if own == id => return ScopeCheck::Inside,
                ScopeRef::Name(name) => match names.get(name) {
                    Some(resolved) if resolved == id => return ScopeCheck::Inside,
                    Some(_) => {}
                    None => unresolved = true,
                },
                ScopeRef::Id(_) => {}
            }
        }
        if unresolved {
            ScopeCheck::Unresolved
        } else {
            ScopeCheck::Outside
        }
    }

    /// Whether the scope lists this name (zones compare without case).
    pub fn names(&self, name: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Listed(entries) => entries
                .iter()
                .any(|e| matches!(e, ScopeRef::Name(own) if own.eq_ignore_ascii_case(name))),
        }
    }

    /// How a reason should name this scope: "example.com, 023e…".
    pub fn describe(&self) -> String {
        match self {
            Scope::All => "all".to_string(),
            Scope::Listed(entries) if entries.is_empty() => "none".to_string(),
            Scope::Listed(entries) => entries
                .iter()
                .map(|e| match e {
                    ScopeRef::Id(s) | ScopeRef::Name(s) => s.as_str(),
                })
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// Names ↔ ids of the zones and accounts the Cloudflare token reaches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    pub zone_ids: HashMap<String, String>,
    pub zone_names: HashMap<String, String>,
    pub account_ids: HashMap<String, String>,
    pub account_names: HashMap<String, String>,
}

impl Directory {
    pub fn add_zone(&mut self, name: &str, id: &str) {
        self.zone_ids
            .insert(name.to_ascii_lowercase(), id.to_string());
        self.zone_names
            .insert(id.to_string(), name.to_ascii_lowercase());
    }

    pub fn add_account(&mut self, name: &str, id: &str) {
        self.account_ids.insert(name.to_string(), id.to_string());
        self.account_names.insert(id.to_string(), name.to_string());
    }

    /// A scope in words with names and ids, for an agent to act on:
    /// "example.com (023e…), Example Corp (a1b2…)", "all", "none"; a name
    /// not resolved is marked so.
    pub fn describe(&self, scope: &Scope, kind: crate::catalog::Scope) -> String {
        let (ids, names) = match kind {
            crate::catalog::Scope::Zone => (&self.zone_ids, &self.zone_names),
            crate::catalog::Scope::Account => (&self.account_ids, &self.account_names),
        };
        match scope {
            Scope::All => "all".to_string(),
            Scope::Listed(entries) if entries.is_empty() => "none".to_string(),
            Scope::Listed(entries) => entries
                .iter()
                .map(|entry| match entry {
                    ScopeRef::Name(name) => match ids.get(name) {
                        Some(id) => format!("{name} ({id})"),
                        None => format!("{name} (not resolved)"),
                    },
                    ScopeRef::Id(id) => match names.get(id) {
                        Some(name) => format!("{name} ({id})"),
                        None => id.clone(),
                    },
                })
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// "example.com" for a known zone id, else the id itself.
    pub fn zone_label<'a>(&'a self, id: &'a str) -> &'a str {
        self.zone_names.get(id).map_or(id, String::as_str)
    }

    pub fn account_label<'a>(&'a self, id: &'a str) -> &'a str {
        self.account_names.get(id).map_or(id, String::as_str)
    }

    /// Lists every zone and account the client's credential reaches.
    pub async fn fetch(client: &Client, catalog: &Catalog) -> Result<Self, CloudflareError> {
        let mut directory = Directory::default();
        let (zones, accounts) = tokio::try_join!(
            list_all(client, catalog, "list_zones"),
            list_all(client, catalog, "list_accounts")
        )?;
        for zone in zones {
            if let (Some(name), Some(id)) = (zone["name"].as_str(), zone["id"].as_str()) {
                directory.add_zone(name, id);
            }
        }
        for account in accounts {
            if let (Some(name), Some(id)) = (account["name"].as_str(), account["id"].as_str()) {
                directory.add_account(name, id);
            }
        }
        Ok(directory)
    }
}

/// Every item of a page-numbered list tool, up to a generous cap.
async fn list_all(
    client: &Client,
    catalog: &Catalog,
    tool: &str,
) -> Result<Vec<Value>, CloudflareError> {
    const MAX_PAGES: u32 = 200;
    let Some(endpoint) = catalog.endpoint(tool) else {
        return Ok(Vec::new());
    };
    let mut args = Map::new();
    args.insert("per_page".into(), json!(50));
    Ok(client.fetch_all(endpoint, &args, MAX_PAGES).await?.items)
}

/// The id a call targets, from its scope argument (`zone_id`, `account_id`).
pub(super) fn target_id<'a>(args: &'a Map<String, Value>, param: &str) -> Option<&'a str> {
    args.get(param).and_then(Value::as_str)
}

/// How the audit log and reasons name what a call targets: "example.com"
/// for a known zone, "account Example Corp", or the bare id.
pub fn describe_target(
    endpoint: &crate::catalog::Endpoint,
    args: &Map<String, Value>,
    directory: &Directory,
) -> Option<String> {
    if let Some(spec) = &endpoint.graphql {
        return queried(spec, args, directory);
    }
    let param = endpoint.scope_param()?;
    let id = target_id(args, &param.name)?;
    Some(match endpoint.scope()? {
        crate::catalog::Scope::Zone => directory.zone_label(id).to_string(),
        crate::catalog::Scope::Account => format!("account {}", directory.account_label(id)),
    })
}

/// The zones and accounts a GraphQL query names: "example.com, account
/// Example Corp".
fn queried(
    spec: &crate::catalog::Graphql,
    args: &Map<String, Value>,
    directory: &Directory,
) -> Option<String> {
    let reading = super::graphql::read_call(spec, args)?;
    let zones = reading
        .zones
        .iter()
        .map(|id| directory.zone_label(id).to_string());
    let accounts = reading
        .accounts
        .iter()
        .map(|id| format!("account {}", directory.account_label(id)));
    let named: Vec<String> = zones.chain(accounts).collect();
    (!named.is_empty()).then(|| named.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_through_the_directory() {
        let mut directory = Directory::default();
        directory.add_zone("example.com", "aaa");
        let scope = Scope::Listed(vec![
            ScopeRef::Name("example.com".into()),
            ScopeRef::Name("new.example".into()),
        ]);
        assert_eq!(scope.check("aaa", &directory.zone_ids), ScopeCheck::Inside);
        assert_eq!(
            scope.check("bbb", &directory.zone_ids),
            ScopeCheck::Unresolved
        );
        let ids = Scope::Listed(vec![ScopeRef::Id("aaa".into())]);
        assert_eq!(ids.check("bbb", &directory.zone_ids), ScopeCheck::Outside);
        assert_eq!(
            Scope::Listed(vec![]).check("aaa", &directory.zone_ids),
            ScopeCheck::Outside
        );
        assert_eq!(
            Scope::All.check("zzz", &directory.zone_ids),
            ScopeCheck::Inside
        );
    }
}
