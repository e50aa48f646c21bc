//! Singletons nobody has written yet, as Cloudflare starts them: a zone
//! setting (`/zones/{id}/settings/always_use_https`) answers a GET with its
//! default before anything changes it. What exists, and its default, is
//! read from the catalog's own schemas: an object schema whose `id` names
//! the setting (`enum` or `const`) and whose `value` has a `default`. A
//! name no schema knows stays a 404, as at Cloudflare.

use serde_json::{Value, json};

use crate::catalog::{Catalog, Endpoint, Method, Segment};

/// The state of the singleton at `path` (the object `endpoint` reads or
/// changes) before anything wrote it, if it is one and the catalog knows it.
pub(super) fn seeded(catalog: &Catalog, endpoint: &Endpoint, path: &str) -> Option<Value> {
    if !is_singleton(catalog, endpoint) {
        return None;
    }
    let id = path.rsplit('/').next()?;
    let value = catalog
        .endpoints()
        .iter()
        .filter(|e| e.group == endpoint.group && e.method != Method::Get)
        .find_map(|e| default_of(&Value::Object((*e.input_schema).clone()), id))?;
    Some(json!({"id": id, "value": value, "editable": true, "modified_on": null}))
}

/// An object at a placeholder nobody creates with a POST on its parent
/// (so it exists already), that a PATCH or PUT changes in place.
fn is_singleton(catalog: &Catalog, endpoint: &Endpoint) -> bool {
    if !matches!(endpoint.path.segments.last(), Some(Segment::Param(_))) {
        return false;
    }
    let raw = &endpoint.path.raw;
    let parent = &raw[..raw.rfind('/').unwrap_or(0)];
    let same = |e: &&std::sync::Arc<Endpoint>| e.path.raw == *raw;
    let changed = catalog
        .endpoints()
        .iter()
        .filter(same)
        .any(|e| matches!(e.method, Method::Patch | Method::Put));
    let created = catalog
        .endpoints()
        .iter()
        .any(|e| e.method == Method::Post && e.path.raw == parent);
    changed && !created
}

/// The `value` default of the subschema of `schema` whose `id` is `id`.
fn default_of(schema: &Value, id: &str) -> Option<Value> {
    match schema {
        Value::Object(map) => {
            let names_id = map
                .get("properties")
                .and_then(|p| p.get("id"))
                .is_some_and(|p| {
                    p.get("const").and_then(Value::as_str) == Some(id)
                        || p.get("enum")
                            .and_then(Value::as_array)
                            .is_some_and(|e| e.iter().any(|v| v.as_str() == Some(id)))
                });
            let default = map
                .get("properties")
                .and_then(|p| p.get("value"))
                .and_then(|v| v.get("default"));
            if let (true, Some(default)) = (names_id, default) {
                return Some(default.clone());
            }
            map.values().find_map(|v| default_of(v, id))
        }
        Value::Array(items) => items.iter().find_map(|v| default_of(v, id)),
        _ => None,
    }
}
