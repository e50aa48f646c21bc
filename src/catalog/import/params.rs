//! An operation's arguments as catalog parameters: path and query
//! parameters, and a JSON or form body's fields (or the whole body).

use serde_json::{Map, Value, json};

use super::names;
use super::operation::OutParam;
use super::schema::Converter;
use crate::catalog::Method;

/// One path or query parameter; `None` for an optional one flaregate
/// does not send (headers, cookies, objects in the query).
pub(super) fn parameter(
    converter: &mut Converter,
    parameter: &Value,
    renamed: &[(String, String)],
) -> Result<Option<OutParam>, String> {
    let wire = parameter
        .get("name")
        .and_then(Value::as_str)
        .ok_or("a parameter has no name")?;
    let location = parameter.get("in").and_then(Value::as_str).unwrap_or("");
    let required = parameter.get("required") == Some(&Value::Bool(true));
    let unsent = |what: String| {
        if required { Err(what) } else { Ok(None) }
    };
    let mut schema = converter.convert(parameter.get("schema").unwrap_or(&Value::Null));
    let description = parameter
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            schema
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| format!("The {}.", wire.replace(['_', '-'], " ")));
    schema.insert(
        "description".into(),
        Value::from(crate::text::clip(description.trim(), 400)),
    );
    match location {
        "path" => {
            let name = renamed
                .iter()
                .find(|(original, _)| original == wire)
                .map(|(_, name)| name.clone())
                .ok_or_else(|| format!("path parameter `{wire}` is not in the path"))?;
            Ok(Some(OutParam {
                name,
                location: "path",
                key: None,
                part: None,
                names: None,
                required: true,
                schema: path_schema(schema),
            }))
        }
        "query" => {
            let exploded = parameter.get("explode") != Some(&Value::Bool(false));
            let form = parameter
                .get("style")
                .and_then(Value::as_str)
                .is_none_or(|s| s == "form");
            let kind = schema.get("type").and_then(Value::as_str);
            let scalar_items = schema
                .get("items")
                .and_then(|i| i.get("type"))
                .and_then(Value::as_str)
                .is_some_and(|t| t != "object" && t != "array");
            match kind {
                Some("object") => return unsent(format!("query parameter `{wire}` is an object")),
                Some("array") if !(scalar_items && exploded && form) => {
                    return unsent(format!(
                        "query parameter `{wire}` is a list flaregate cannot encode"
                    ));
                }
                _ => {}
            }
            let name = names::argument(wire);
            Ok(Some(OutParam {
                key: (name != wire).then(|| wire.to_string()),
                name,
                location: "query",
                part: None,
                names: None,
                required,
                schema: with_type(schema),
            }))
        }
        other => unsent(format!("it needs the {other} parameter `{wire}`")),
    }
}

/// A path value must be a string of a safe shape: the schema's own anchored
/// pattern, its values, or ids and names without separators.
pub(super) fn path_schema(mut schema: Map<String, Value>) -> Map<String, Value> {
    let anchored = schema
        .get("pattern")
        .and_then(Value::as_str)
        .is_some_and(|p| p.starts_with('^') && p.ends_with('$'));
    let pattern = if anchored {
        schema["pattern"].as_str().unwrap_or_default().to_string()
    } else if let Some(Value::Array(values)) = schema.get("enum") {
        let alternatives: Vec<String> = values
            .iter()
            .map(|v| match v {
                Value::String(s) => regex::escape(s),
                other => regex::escape(&other.to_string()),
            })
            .collect();
        format!("^({})$", alternatives.join("|"))
    } else if matches!(
        schema.get("type").and_then(Value::as_str),
        Some("integer" | "number")
    ) {
        "^[0-9]{1,20}$".to_string()
    } else {
        "^[A-Za-z0-9][A-Za-z0-9._~:@+=,-]{0,254}$".to_string()
    };
    if let Some(Value::Array(values)) = schema.get_mut("enum") {
        for value in values.iter_mut() {
            if !value.is_string() {
                *value = Value::from(value.to_string());
            }
        }
    }
    for numeric in [
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "format",
    ] {
        schema.remove(numeric);
    }
    schema.insert("type".into(), Value::from("string"));
    schema.insert("pattern".into(), Value::from(pattern));
    schema
}

/// The loader wants a `type` on every argument; a schema that accepts any
/// value says so with every type.
pub(super) fn with_type(mut schema: Map<String, Value>) -> Map<String, Value> {
    let shaped = ["type", "allOf", "anyOf", "oneOf", "enum", "const"]
        .iter()
        .any(|k| schema.contains_key(*k));
    if !shaped {
        schema.insert(
            "type".into(),
            json!(["object", "array", "string", "number", "boolean"]),
        );
    }
    schema
}

/// The JSON body's fields as arguments, or the whole body as one.
pub(super) fn body_params(
    converter: &mut Converter,
    body: &Value,
    method: Method,
    params: &mut Vec<OutParam>,
) -> Result<(), String> {
    let body = converter
        .follow(body)
        .ok_or("its request body's $ref does not resolve")?;
    let required = body.get("required") == Some(&Value::Bool(true));
    let content = body.get("content").and_then(Value::as_object);
    let media_of = |prefix: &str| {
        content.and_then(|c| {
            c.iter()
                .find(|(kind, _)| kind.starts_with(prefix))
                .map(|(_, media)| media)
        })
    };
    // JSON when the operation takes it, else a form of fields.
    let (media, location, part) = match (
        media_of("application/json"),
        media_of("multipart/form-data"),
    ) {
        (Some(media), _) => (Some(media), "body", None),
        (None, Some(media)) => (Some(media), "multipart", Some("field")),
        (None, None) => (None, "body", None),
    };
    let Some(media) = media else {
        let kind = content
            .and_then(|c| c.keys().next().cloned())
            .unwrap_or_else(|| "missing".into());
        return if required {
            Err(format!("its request body is {kind}, not JSON"))
        } else {
            Ok(())
        };
    };
    if method == Method::Get {
        return if required {
            Err("it is a GET with a body".into())
        } else {
            Ok(())
        };
    }
    let schema = flatten_all_of(converter.convert(media.get("schema").unwrap_or(&Value::Null)));
    let is_object = schema.get("type").is_none_or(|t| t == "object")
        && !schema.contains_key("oneOf")
        && !schema.contains_key("anyOf");
    let fields = schema.get("properties").and_then(Value::as_object);
    if location == "multipart" {
        let Some(fields) = fields.filter(|f| is_object && !f.is_empty()) else {
            return Err("its multipart body is not a form of named fields".into());
        };
        if fields
            .keys()
            .any(|k| !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(
                "its multipart parts are named by the upload itself (a Worker module upload: curated as put_worker_script)".into(),
            );
        }
    }
    match fields {
        Some(fields) if is_object && !fields.is_empty() => {
            let listed: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for (field, field_schema) in fields {
                if field.contains('.') {
                    return Err(format!("its body field `{field}` has a dot in its name"));
                }
                let mut name = names::argument(field);
                if params.iter().any(|p| p.name == name) {
                    name = format!("body_{name}");
                }
                let mut field_schema = field_schema.as_object().cloned().unwrap_or_default();
                field_schema
                    .entry("description")
                    .or_insert_with(|| Value::from(format!("The {}.", field.replace('_', " "))));
                params.push(OutParam {
                    key: (&name != field).then(|| field.clone()),
                    name,
                    location,
                    part,
                    names: None,
                    required: required && listed.contains(&field.as_str()),
                    schema: with_type(field_schema),
                });
            }
        }
        _ => {
            let mut schema = schema;
            schema
                .entry("description")
                .or_insert_with(|| Value::from("The request body, as JSON."));
            params.push(OutParam {
                name: if params.iter().any(|p| p.name == "body") {
                    "request_body".into()
                } else {
                    "body".into()
                },
                location: "payload",
                key: None,
                part: None,
                names: None,
                required,
                schema: with_type(schema),
            });
        }
    }
    Ok(())
}

/// `allOf` of objects merged into one object (Cloudflare composes request
/// bodies that way), so its fields can be arguments.
pub(super) fn flatten_all_of(mut schema: Map<String, Value>) -> Map<String, Value> {
    if let Some(Value::Array(branches)) = schema.get_mut("allOf") {
        for branch in branches.iter_mut() {
            if let Value::Object(map) = branch {
                *map = flatten_all_of(std::mem::take(map));
            }
        }
    }
    let Some(Value::Array(branches)) = schema.get("allOf") else {
        return schema;
    };
    let all_objects = branches.iter().all(|b| {
        b.get("type").is_none_or(|t| t == "object")
            && b.get("oneOf").is_none()
            && b.get("anyOf").is_none()
            && b.get("allOf").is_none()
    });
    if !all_objects {
        return schema;
    }
    let Some(Value::Array(branches)) = schema.remove("allOf") else {
        return schema;
    };
    let mut properties = Map::new();
    let mut required: Vec<Value> = Vec::new();
    for branch in branches {
        if let Some(Value::Object(p)) = branch.get("properties") {
            properties.extend(p.clone());
        }
        if let Some(Value::Array(r)) = branch.get("required") {
            required.extend(r.iter().cloned());
        }
        if let Some(text) = branch.get("description") {
            schema.entry("description").or_insert_with(|| text.clone());
        }
    }
    schema.insert("type".into(), Value::from("object"));
    schema.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        schema.insert("required".into(), Value::Array(required));
    }
    schema
}

/// What a field's wire name says it names, in the catalog's words
/// (`names = "…"`): a zone by id or name, a hostname, an account by id.
pub(super) fn names_scope(wire: &str) -> Option<&'static str> {
    let field = wire.rsplit('.').next().unwrap_or(wire);
    match field.to_ascii_lowercase().replace('-', "_").as_str() {
        "zone_id" | "zone_tag" | "zone_identifier" | "zoneid" | "zonetag" => Some("zone_id"),
        "zone_name" | "zonename" => Some("zone_name"),
        "hostname" | "hostnames" | "host_name" => Some("hostname"),
        "account_id" | "account_tag" | "account_identifier" | "accountid" => Some("account_id"),
        _ => None,
    }
}

/// Whether an argument's schema holds a property that names a zone or
/// account (an object field, or a whole body sent as one argument): no
/// argument of its own shows it, so flaregate cannot judge it.
pub(super) fn hides_scope(schema: &Map<String, Value>) -> bool {
    fn below(value: &Value) -> bool {
        match value {
            Value::Object(map) => map.iter().any(|(key, value)| {
                let named = key == "properties"
                    && value
                        .as_object()
                        .is_some_and(|p| p.keys().any(|k| names_scope(k).is_some()));
                named || below(value)
            }),
            Value::Array(items) => items.iter().any(below),
            _ => false,
        }
    }
    below(&Value::Object(schema.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn an_argument_hiding_a_zone_or_account_is_told() {
        assert_eq!(names_scope("zone_tag"), Some("zone_id"));
        assert_eq!(names_scope("account.id"), None);
        assert_eq!(names_scope("settings.hostname"), Some("hostname"));
        assert_eq!(names_scope("name"), None);
        // A whole body naming a zone, and an object field holding one.
        let body = schema(json!({"type": "object", "properties": {"zone_id": {"type": "string"}}}));
        assert!(hides_scope(&body));
        let nested = schema(json!({"type": "array", "items": {"type": "object",
            "properties": {"rule": {"type": "object", "properties": {"hostname": {"type": "string"}}}}}}));
        assert!(hides_scope(&nested));
        // A plain value, or an object of other things, hides nothing.
        assert!(!hides_scope(&schema(json!({"type": "string"}))));
        let other =
            schema(json!({"type": "object", "properties": {"service": {"type": "string"}}}));
        assert!(!hides_scope(&other));
    }
}
