//! The Cloudflare token permissions the policies need, each with the
//! zones or accounts it is needed on, so the token can be made with
//! exactly those (`flaregate check` prints them, the console shows them).

use serde::Serialize;

use super::Policy;
use crate::catalog::Catalog;

/// A Cloudflare token permission the policies need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Permission {
    /// As the dashboard's token form lists it: "Zone · DNS · Edit".
    pub label: String,
    /// The API's name: "DNS Write".
    pub permission: String,
    /// Where: "zones: example.com" or "accounts: all".
    pub on: String,
}

/// The Cloudflare token permissions the policies need, with the zones or
/// accounts each is needed on: create the token with exactly these.
pub fn token_permissions(catalog: &Catalog, policy: &Policy) -> Vec<Permission> {
    use super::{Scope, ScopeRef};
    use std::collections::{BTreeMap, BTreeSet};
    // Per permission: on which kind, and the entries (None: all of them).
    let mut needed: BTreeMap<&str, (&str, Option<BTreeSet<String>>)> = BTreeMap::new();
    for agent in policy.agents() {
        // Each tool the agent may call, and the reads flaregate makes for
        // it: the lookup that checks it, the read a snapshot keeps.
        let mut endpoints = Vec::new();
        for tool in agent.visible_tools(catalog) {
            let endpoint = catalog
                .endpoint(tool)
                .expect("visible tools come from the catalog");
            endpoints.push(&**endpoint);
            let lookup = endpoint
                .lookup
                .as_ref()
                .and_then(|l| catalog.endpoint(&l.tool));
            endpoints.extend(lookup.map(|e| &**e));
            if agent.snapshots != super::Snapshots::Off {
                endpoints.extend(catalog.reader_of(endpoint));
            }
        }
        for endpoint in endpoints {
            let Some(scope_kind) = endpoint.scope() else {
                // A user-level or global permission: no zones or accounts.
                needed
                    .entry(&endpoint.permission)
                    .or_insert((endpoint.reach.as_str(), None));
                continue;
            };
            let kind = match scope_kind {
                crate::catalog::Scope::Zone => "zones",
                crate::catalog::Scope::Account => "accounts",
            };
            let scope = agent.scope(scope_kind);
            let entry = needed
                .entry(&endpoint.permission)
                .or_insert_with(|| (kind, Some(BTreeSet::new())));
            match (scope, &mut entry.1) {
                (Scope::All, on) => *on = None,
                (Scope::Listed(refs), Some(on)) => on.extend(refs.iter().map(|r| match r {
                    ScopeRef::Id(s) | ScopeRef::Name(s) => s.clone(),
                })),
                (Scope::Listed(_), None) => {}
            }
        }
    }
    needed
        .into_iter()
        .map(|(permission, (kind, on))| {
            let on = match on {
                None => format!("{kind}: all"),
                Some(on) if on.is_empty() => format!("{kind}: none held"),
                Some(on) => format!("{kind}: {}", on.into_iter().collect::<Vec<_>>().join(", ")),
            };
            Permission {
                label: dashboard_label(permission, kind),
                permission: permission.to_string(),
                on,
            }
        })
        .collect()
}

/// A permission as the dashboard's token form lists it: "Zone · DNS ·
/// Edit" for the API's "DNS Write" on zones.
fn dashboard_label(permission: &str, kind: &str) -> String {
    let (resource, level) = match permission.rsplit_once(' ') {
        Some((resource, "Read")) => (resource, "Read"),
        Some((resource, "Write")) => (resource, "Edit"),
        Some((_, last)) => (permission, last),
        None => (permission, "Edit"),
    };
    let on = match kind {
        "zones" => "Zone",
        "accounts" => "Account",
        _ => "User",
    };
    format!("{on} · {resource} · {level}")
}

/// The permissions as `flaregate check` prints them, aligned.
pub fn permissions_text(permissions: &[Permission]) -> String {
    if permissions.is_empty() {
        return String::new();
    }
    let width = permissions
        .iter()
        .map(|p| p.label.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::from(
        "\nCloudflare token permissions the policies need (as the dashboard lists them, then the API's name):\n",
    );
    for p in permissions {
        let pad = width - p.label.chars().count();
        out.push_str(&format!(
            "  {}{:pad$}  {:<28}  {}\n",
            p.label, "", p.permission, p.on
        ));
    }
    out
}
