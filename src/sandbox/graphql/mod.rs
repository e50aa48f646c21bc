//! `POST /graphql`: Cloudflare's GraphQL Analytics API, simulated over a
//! subset of its schema — `viewer { zones(filter: {zoneTag…}) { … } }`
//! with `httpRequestsAdaptiveGroups`, `httpRequests1dGroups` and
//! `firewallEventsAdaptive`, and `viewer { accounts(filter: {accountTag…})
//! { workersInvocationsAdaptive } }` — answering with deterministic
//! synthetic rows per zone and time, Cloudflare's error shapes (an unknown
//! field, a time range too large, the quota spent: `data` null, status
//! 200), and introspection of that subset.

mod data;
mod schema;

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use graphql_parser::query::{
    Definition, Document, Field, OperationDefinition, Selection, SelectionSet, Value as Gql,
};
use serde_json::{Map, Value, json};

use super::Shared;
use super::tokens::Grant;

/// The permission a token needs to read analytics.
const PERMISSION: &str = "Analytics Read";

/// `POST /graphql` with `{"query", "variables"}`.
pub(super) async fn query(
    State(sandbox): State<Shared>,
    Extension(grant): Extension<Grant>,
    headers: axum::http::HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let text = body["query"].as_str().unwrap_or_default();
    let variables = body["variables"].as_object().cloned().unwrap_or_default();
    let token = ["authorization", "x-auth-key"]
        .iter()
        .find_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
        .unwrap_or_default();
    if sandbox.analytics.check(token).is_some_and(|v| !v.allowed) {
        return failed(
            "rate limiter budget depleted, try again after 5 minutes (320 queries per 5 minutes)",
            "rate_limited",
        );
    }
    match answer(&sandbox, &grant, text, &variables) {
        Ok(data) => Json(json!({"data": data, "errors": null})).into_response(),
        Err((message, code)) => failed(&message, code),
    }
}

/// Cloudflare's answer to a query it refuses: status 200, `data` null.
fn failed(message: &str, code: &str) -> Response {
    Json(json!({
        "data": null,
        "errors": [{"message": message, "path": null, "extensions": {"code": code}}]
    }))
    .into_response()
}

type Failure = (String, &'static str);

fn answer(
    sandbox: &super::Sandbox,
    grant: &Grant,
    text: &str,
    variables: &Map<String, Value>,
) -> Result<Value, Failure> {
    let document: Document<'_, String> =
        graphql_parser::parse_query(text).map_err(|e| (format!("syntax error: {e}"), "parse"))?;
    let mut fragments = HashMap::new();
    let mut operations = Vec::new();
    for definition in &document.definitions {
        match definition {
            Definition::Fragment(f) => {
                fragments.insert(f.name.clone(), f.selection_set.clone());
            }
            Definition::Operation(o) => operations.push(o),
        }
    }
    let [operation] = operations.as_slice() else {
        return Err((
            "exactly one operation is served per request".into(),
            "parse",
        ));
    };
    let (set, defaults) = match operation {
        OperationDefinition::Query(q) => (&q.selection_set, &q.variable_definitions),
        OperationDefinition::SelectionSet(set) => (set, &Vec::new()),
        _ => return Err(("only queries are served".into(), "parse")),
    };
    let mut given = variables.clone();
    for defined in defaults {
        if let (false, Some(default)) = (given.contains_key(&defined.name), &defined.default_value)
        {
            given.insert(defined.name.clone(), json_of(default, &Map::new())?);
        }
    }
    let run = Run {
        sandbox,
        grant,
        fragments: &fragments,
        variables: &given,
    };
    let mut out = Map::new();
    for field in run.fields(set) {
        let value = match field.name.as_str() {
            "viewer" => run.viewer(field)?,
            "__typename" => json!("Query"),
            "__schema" | "__type" => schema::introspect(field, &run)?,
            other => return Err(unknown(other, "Query")),
        };
        out.insert(key(field), value);
    }
    Ok(Value::Object(out))
}

/// One query's evaluation.
struct Run<'a> {
    sandbox: &'a super::Sandbox,
    grant: &'a Grant,
    fragments: &'a HashMap<String, SelectionSet<'a, String>>,
    variables: &'a Map<String, Value>,
}

impl<'a> Run<'a> {
    /// The fields of a selection set, fragments expanded.
    fn fields<'s>(&'s self, set: &'s SelectionSet<'a, String>) -> Vec<&'s Field<'a, String>> {
        let mut out = Vec::new();
        for item in &set.items {
            match item {
                Selection::Field(f) => out.push(f),
                Selection::InlineFragment(i) => out.extend(self.fields(&i.selection_set)),
                Selection::FragmentSpread(s) => {
                    if let Some(set) = self.fragments.get(&s.fragment_name) {
                        out.extend(self.fields(set));
                    }
                }
            }
        }
        out
    }

    fn argument(&self, field: &Field<'_, String>, name: &str) -> Result<Value, Failure> {
        match field.arguments.iter().find(|(n, _)| n == name) {
            Some((_, value)) => json_of(value, self.variables),
            None => Ok(Value::Null),
        }
    }

    fn viewer(&self, viewer: &Field<'a, String>) -> Result<Value, Failure> {
        let mut out = Map::new();
        for field in self.fields(&viewer.selection_set) {
            let value = match field.name.as_str() {
                "zones" => self.scoped(field, true)?,
                "accounts" => self.scoped(field, false)?,
                "__typename" => json!("Viewer"),
                other => return Err(unknown(other, "Viewer")),
            };
            out.insert(key(field), value);
        }
        Ok(Value::Object(out))
    }

    /// `zones(filter:)` or `accounts(filter:)`: each one named and reached.
    fn scoped(&self, field: &Field<'a, String>, zones: bool) -> Result<Value, Failure> {
        let filter = self.argument(field, "filter")?;
        let (tag, tags) = if zones {
            ("zoneTag", "zoneTag_in")
        } else {
            ("accountTag", "accountTag_in")
        };
        let mut named: Vec<String> = filter[tag]
            .as_str()
            .map(str::to_string)
            .into_iter()
            .collect();
        named.extend(
            filter[tags]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().map(str::to_string)),
        );
        let mut out = Vec::new();
        for id in named {
            let reached = if zones {
                self.sandbox
                    .check_zone(self.grant, &id, PERMISSION)
                    .map(|_| ())
            } else {
                self.sandbox.check_account(self.grant, &id, PERMISSION)
            };
            if reached.is_err() {
                return Err((
                    format!(
                        "does not have access to the path: {} {id}",
                        if zones { "zone" } else { "account" }
                    ),
                    "authz",
                ));
            }
            let mut one = Map::new();
            for dataset in self.fields(&field.selection_set) {
                let value = match dataset.name.as_str() {
                    "__typename" => json!(if zones { "zone" } else { "account" }),
                    name => data::dataset(self, dataset, name, &id, zones)?,
                };
                one.insert(key(dataset), value);
            }
            out.push(Value::Object(one));
        }
        Ok(Value::Array(out))
    }
}

/// Cloudflare's refusal of a field its schema does not have.
fn unknown(name: &str, on: &str) -> Failure {
    (
        format!("unknown field \"{name}\" on type \"{on}\""),
        "unknown_field",
    )
}

/// The key a field's value takes: its alias, else its name.
fn key(field: &Field<'_, String>) -> String {
    field.alias.clone().unwrap_or_else(|| field.name.clone())
}

fn json_of(value: &Gql<'_, String>, variables: &Map<String, Value>) -> Result<Value, Failure> {
    Ok(match value {
        Gql::Variable(name) => variables
            .get(name)
            .cloned()
            .ok_or_else(|| (format!("variable \"{name}\" is not given"), "parse"))?,
        Gql::Int(n) => json!(n.as_i64()),
        Gql::Float(f) => json!(f),
        Gql::String(s) | Gql::Enum(s) => json!(s),
        Gql::Boolean(b) => json!(b),
        Gql::Null => Value::Null,
        Gql::List(items) => Value::Array(
            items
                .iter()
                .map(|i| json_of(i, variables))
                .collect::<Result<_, _>>()?,
        ),
        Gql::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), json_of(v, variables)?)))
                .collect::<Result<_, Failure>>()?,
        ),
    })
}
