//! Arguments that name a zone or an account (`names` in the catalog): an
//! account endpoint that attaches a Worker to `hostname` acts on that
//! hostname's zone, so the hostname is judged against the agent's zones as
//! a zone in the path would be. A value that names no zone the directory
//! knows is outside a limited scope (fail closed).

use serde_json::{Map, Value};

use super::decide::{DenyKind, Verdict, check_scope};
use super::model::Agent;
use super::scope::{Directory, Scope};
use crate::catalog::{Endpoint, Names, Scope as EndpointScope};

/// The refusal of the first argument of `endpoint` in `args` that names a
/// zone or account outside the agent's scope, if one does.
pub(super) fn outside(
    agent: &Agent,
    endpoint: &Endpoint,
    args: &Map<String, Value>,
    directory: &Directory,
) -> Option<Verdict> {
    for param in &endpoint.params {
        let (Some(names), Some(value)) = (param.names, args.get(&param.name)) else {
            continue;
        };
        let texts: Vec<&str> = match value {
            Value::String(one) => vec![one],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for text in texts {
            if let Some(denied) = judge(agent, names, text, directory) {
                return Some(denied);
            }
        }
    }
    None
}

fn judge(agent: &Agent, names: Names, text: &str, directory: &Directory) -> Option<Verdict> {
    let (kind, id) = match names {
        Names::ZoneId => (EndpointScope::Zone, Some(text.to_string())),
        Names::AccountId => (EndpointScope::Account, Some(text.to_string())),
        Names::ZoneName => (
            EndpointScope::Zone,
            directory.zone_ids.get(&normal(text)).cloned(),
        ),
        Names::Hostname => (EndpointScope::Zone, zone_of_host(&normal(text), directory)),
    };
    match id {
        Some(id) => check_scope(agent, kind, &id, directory),
        None if matches!(agent.scope(kind), Scope::All) => None,
        None => Some(Verdict::Deny(super::decide::Denial::new(
            DenyKind::OutsideScope,
            format!(
                "{} names no zone of yours ({}); your zones are {}",
                crate::text::clip(text, 80),
                noun(names),
                directory.describe(agent.scope(kind), kind)
            ),
            format!("zones = [{}]", agent.scope(kind).describe()),
        ))),
    }
}

fn noun(names: Names) -> &'static str {
    match names {
        Names::ZoneId => "a zone id",
        Names::ZoneName => "a zone name",
        Names::Hostname => "a hostname",
        Names::AccountId => "an account id",
    }
}

/// A name as zones are compared: lower case, no trailing dot.
fn normal(text: &str) -> String {
    text.trim_end_matches('.').to_ascii_lowercase()
}

/// The id of the zone a hostname is in: the longest zone name it ends
/// with, at a label boundary.
fn zone_of_host(host: &str, directory: &Directory) -> Option<String> {
    directory
        .zone_ids
        .iter()
        .filter(|(zone, _)| host == zone.as_str() || host.ends_with(&format!(".{zone}")))
        .max_by_key(|(zone, _)| zone.len())
        .map(|(_, id)| id.clone())
}
