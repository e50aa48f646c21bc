//! Whether the Cloudflare token can serve what the policies grant: one
//! cheap read per granted group and zone or account, and for each granted
//! write permission its catalog probe (`probe = true`: a DELETE of an id
//! that cannot exist — Cloudflare answers 404 when the permission is held,
//! 403 when it is not), each refusal named with the permission the token
//! lacks. Nothing is changed. The write probes run for `check --live`
//! only, not at every `serve` start (where DELETEs, even of nothing, would
//! crowd the account's own audit log). A write permission without a probe
//! is found missing when the first write is refused (and said so then).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::{Directory, Policy, Scope, ScopeRef};
use crate::catalog::{Access, Catalog, Endpoint, Scope as EndpointScope};
use crate::cloudflare::Client;

/// Each group and scope the token cannot serve, in words; with `writes`,
/// each granted write permission it lacks too (its probe).
pub async fn gaps(
    client: &Client,
    policy: &Policy,
    directory: &Directory,
    writes: bool,
) -> Vec<String> {
    let catalog = policy.catalog();
    let mut probes: BTreeSet<(String, Option<String>)> = BTreeSet::new();
    for agent in policy.agents() {
        for tool in agent.visible_tools(catalog) {
            let Some(endpoint) = catalog.endpoint(tool) else {
                continue;
            };
            let Some(probe) = probe_of(catalog, &endpoint.group) else {
                continue;
            };
            let (Some(kind), Some(_)) = (probe.scope(), probe.scope_param()) else {
                probes.insert((endpoint.group.clone(), None));
                continue;
            };
            for id in ids_of(agent.scope(kind), kind, directory) {
                probes.insert((endpoint.group.clone(), Some(id)));
            }
        }
    }
    let mut found = if writes {
        write_gaps(client, policy, directory).await
    } else {
        Vec::new()
    };
    for (group, id) in probes {
        let probe = probe_of(catalog, &group).expect("probes are made for groups that have one");
        let mut args = Map::new();
        if let (Some(param), Some(id)) = (probe.scope_param(), &id) {
            args.insert(param.name.clone(), Value::String(id.clone()));
        }
        let label = id.as_deref().map(|id| match probe.scope() {
            Some(EndpointScope::Zone) => format!(" on zone {}", directory.zone_label(id)),
            Some(EndpointScope::Account) => format!(" on account {}", directory.account_label(id)),
            None => String::new(),
        });
        let label = label.unwrap_or_default();
        match client.call(probe, &args).await {
            Ok(_) => {}
            Err(error) if error.status() == Some(403) => found.push(format!(
                "the Cloudflare token cannot serve {group}{label}: it lacks {} ({} refused: {error})",
                probe.permission, probe.tool
            )),
            Err(error) if error.status() == Some(404) => found.push(format!(
                "{group}{label} is not there for this token: not on the plan, or not found (404 from {}, not a missing permission: {error})",
                probe.tool
            )),
            Err(error) => found.push(format!(
                "could not check {group}{label} with {}: {error}",
                probe.tool
            )),
        }
    }
    found
}

/// The group's cheapest read: one whose only path argument is its zone or
/// account (or none).
fn probe_of<'a>(catalog: &'a Catalog, group: &str) -> Option<&'a Endpoint> {
    catalog
        .endpoints()
        .iter()
        .map(|e| &**e)
        .filter(|e| e.group == group && e.access == Access::Read)
        .find(|e| {
            e.path
                .params()
                .all(|p| e.scope_param().is_some_and(|s| s.name == p))
        })
}

/// The ids a scope covers, as the directory knows them (for "*", one of
/// them is enough to check the permission).
fn ids_of(scope: &Scope, kind: EndpointScope, directory: &Directory) -> Vec<String> {
    let (by_name, names) = match kind {
        EndpointScope::Zone => (&directory.zone_ids, &directory.zone_names),
        EndpointScope::Account => (&directory.account_ids, &directory.account_names),
    };
    match scope {
        Scope::All => names.keys().min().cloned().into_iter().collect(),
        Scope::Listed(entries) => entries
            .iter()
            .filter_map(|entry| match entry {
                ScopeRef::Id(id) => Some(id.clone()),
                ScopeRef::Name(name) => by_name.get(name).cloned(),
            })
            .collect(),
    }
}

/// Each granted write permission, with the probe that checks it, on each
/// zone or account it is granted on, that the token lacks.
async fn write_gaps(client: &Client, policy: &Policy, directory: &Directory) -> Vec<String> {
    let catalog = policy.catalog();
    let mut probes: BTreeSet<(String, String)> = BTreeSet::new();
    for agent in policy.agents() {
        for tool in agent.visible_tools(catalog) {
            let Some(endpoint) = catalog.endpoint(tool).filter(|e| e.access == Access::Write)
            else {
                continue;
            };
            let Some(probe) = write_probe_of(catalog, endpoint) else {
                continue;
            };
            let Some(kind) = probe.scope() else {
                continue;
            };
            for id in ids_of(agent.scope(kind), kind, directory) {
                probes.insert((probe.tool.clone(), id));
            }
        }
    }
    let mut found = Vec::new();
    for (tool, id) in probes {
        let probe = catalog
            .endpoint(&tool)
            .expect("probes come from the catalog");
        let mut args = Map::new();
        for name in probe.path.params() {
            let is_scope = probe.scope_param().is_some_and(|p| p.name == name);
            let value = if is_scope {
                id.clone()
            } else {
                no_such(probe, name)
            };
            args.insert(name.to_string(), Value::String(value));
        }
        let label = match probe.scope() {
            Some(EndpointScope::Zone) => format!("zone {}", directory.zone_label(&id)),
            _ => format!("account {}", directory.account_label(&id)),
        };
        match client.call(probe, &args).await {
            Err(error) if error.status() == Some(404) => {}
            Err(error) if error.status() == Some(403) => found.push(format!(
                "the Cloudflare token cannot write {} on {label}: it lacks {} ({} of an object that cannot exist was refused: {error})",
                probe.group, probe.permission, probe.tool
            )),
            Err(error) => found.push(format!(
                "could not check {} on {label} with {}: {error}",
                probe.permission, probe.tool
            )),
            Ok(_) => found.push(format!(
                "{} on {label} answered success for an object that cannot exist: check the catalog's probe",
                probe.tool
            )),
        }
    }
    found
}

/// The catalog's probe of `endpoint`'s write permission, if it has one.
fn write_probe_of<'a>(catalog: &'a Catalog, endpoint: &Endpoint) -> Option<&'a Endpoint> {
    catalog
        .endpoints()
        .iter()
        .map(|e| &**e)
        .find(|e| e.probe && e.permission == endpoint.permission && e.reach == endpoint.reach)
}

/// A value for `name` that its pattern accepts and no object has.
fn no_such(endpoint: &Endpoint, name: &str) -> String {
    let pattern = endpoint.param(name).and_then(|p| p.pattern.as_ref());
    [
        "00000000000000000000000000000000",
        "flaregate-probe-no-such-object",
        "0",
    ]
    .into_iter()
    .find(|value| pattern.is_none_or(|p| p.is_match(value)))
    .unwrap_or("0")
    .to_string()
}

/// Whether the token is active, and whose it is, in words: "the token is
/// active (owned by account …)"; an inactive or unverifiable token is the
/// error.
pub async fn verify(client: &Client) -> Result<String, String> {
    match client.verify_token().await {
        Ok((status, owner)) if status == "active" => Ok(match owner {
            crate::cloudflare::TokenOwner::User => "the token is active (a user's token)".into(),
            crate::cloudflare::TokenOwner::Account(id) => {
                format!("the token is active (owned by account {id})")
            }
        }),
        Ok((status, _)) => Err(format!("the Cloudflare token is {status}, not active")),
        Err(error) => Err(format!("cannot verify the Cloudflare token: {error}")),
    }
}
