//! Introspection of the subset the sandbox serves: `__schema` and
//! `__type(name:)` answered from a small description of its types, in the
//! shape GraphQL gives them (name, kind, fields with their types).

use graphql_parser::query::Field;
use serde_json::{Map, Value, json};

use super::data::DATASETS;
use super::{Failure, Run, key};

/// The types of the subset.
fn types() -> Vec<Value> {
    let object = |name: &str, fields: Vec<(&str, &str, &str)>| {
        let fields: Vec<Value> = fields
            .into_iter()
            .map(|(field, kind, of)| json!({"name": field, "type": {"name": of, "kind": kind}}))
            .collect();
        json!({"name": name, "kind": "OBJECT", "fields": fields})
    };
    let mut types = vec![
        object("Query", vec![("viewer", "OBJECT", "Viewer")]),
        object(
            "Viewer",
            vec![("zones", "LIST", "zone"), ("accounts", "LIST", "account")],
        ),
    ];
    for (owner, zone) in [("zone", true), ("account", false)] {
        let fields = DATASETS
            .iter()
            .filter(|d| d.zone == zone)
            .map(|d| (d.name, "LIST", d.name))
            .collect();
        types.push(object(owner, fields));
    }
    for dataset in DATASETS {
        let fields = dataset
            .fields
            .iter()
            .map(|(name, under)| {
                if under.is_empty() {
                    (*name, "SCALAR", "String")
                } else {
                    (*name, "OBJECT", *name)
                }
            })
            .collect();
        types.push(object(dataset.name, fields));
    }
    types.push(json!({"name": "String", "kind": "SCALAR", "fields": null}));
    types
}

/// `__schema { … }` or `__type(name: "…") { … }`.
pub(super) fn introspect<'a>(field: &Field<'a, String>, run: &Run<'a>) -> Result<Value, Failure> {
    let all = types();
    let whole = if field.name == "__schema" {
        json!({"queryType": {"name": "Query"}, "mutationType": null, "subscriptionType": null, "types": all})
    } else {
        let name = run.argument(field, "name")?;
        all.into_iter()
            .find(|t| t["name"] == name)
            .unwrap_or(Value::Null)
    };
    Ok(select(&whole, field, run))
}

/// The parts of `value` the selection asks for (absent ones are null).
fn select<'a>(value: &Value, field: &Field<'a, String>, run: &Run<'a>) -> Value {
    if field.selection_set.items.is_empty() {
        return value.clone();
    }
    match value {
        Value::Array(items) => Value::Array(items.iter().map(|i| select(i, field, run)).collect()),
        Value::Object(object) => {
            let mut out = Map::new();
            for inner in run.fields(&field.selection_set) {
                let got = object.get(&inner.name).unwrap_or(&Value::Null);
                out.insert(key(inner), select(got, inner, run));
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}
