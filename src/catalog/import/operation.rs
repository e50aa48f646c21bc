//! One OpenAPI operation as one catalog entry: its path and arguments,
//! access and permission, group, paging and result shape.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::names;
use super::rules::{Rules, with_access};
use super::schema::Converter;
use crate::catalog::{
    Access, Annotations, Method, Pagination, PathTemplate, Reach, ResultKind, Scope,
};

/// A top-level description is kept whole up to this many characters.
const DESCRIPTION: usize = 1_000;

/// A catalog entry as the import writes it (field order is file order).
#[derive(Debug, Clone, Serialize)]
pub struct OutEndpoint {
    pub tool: String,
    title: String,
    method: Method,
    path: String,
    access: Access,
    permission: String,
    scope: Reach,
    #[serde(skip_serializing_if = "is_none_pagination")]
    pagination: Pagination,
    result: ResultKind,
    description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    deprecation: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    required: Vec<String>,
    annotations: Annotations,
    param: Vec<OutParam>,
}

#[derive(Debug, Clone, Serialize)]
struct OutParam {
    name: String,
    #[serde(rename = "in")]
    location: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    part: Option<&'static str>,
    /// Written as the endpoint's `required` list: a param's own
    /// `required` key is JSON Schema's list of an object's fields.
    #[serde(skip)]
    required: bool,
    #[serde(flatten)]
    schema: Map<String, Value>,
}

fn is_none_pagination(p: &Pagination) -> bool {
    *p == Pagination::None
}

/// An operation ready to write, and where it goes.
pub struct Planned {
    pub endpoint: OutEndpoint,
    pub group: String,
    pub group_title: String,
    pub group_description: Option<String>,
    pub tag: String,
}

/// Plans the entry for one operation, or says why it cannot be one.
pub fn plan(
    converter: &mut Converter,
    rules: &Rules,
    path: &str,
    method: Method,
    operation: &Value,
    shared: Option<&Value>,
) -> Result<Planned, String> {
    let id = operation
        .get("operationId")
        .and_then(Value::as_str)
        .ok_or("it has no operationId to name its tool after")?;
    let tag = operation
        .pointer("/tags/0")
        .and_then(Value::as_str)
        .unwrap_or("Untagged")
        .to_string();
    let access = if method == Method::Get {
        Access::Read
    } else {
        Access::Write
    };
    let (path, renamed) = rename_placeholders(path)?;
    let mut params = Vec::new();
    let listed = shared
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            operation
                .get("parameters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
    for parameter in listed {
        let parameter = converter
            .follow(parameter)
            .ok_or("a parameter's $ref does not resolve")?;
        if let Some(param) = self::parameter(converter, parameter, &renamed)? {
            // An operation's own parameter overrides the path item's.
            params.retain(|p: &OutParam| p.name != param.name);
            params.push(param);
        }
    }
    // A placeholder the schema forgot to describe, or described as a query
    // parameter, is still an id-like path segment.
    for (_, name) in &renamed {
        if let Some(misplaced) = params
            .iter_mut()
            .find(|p| &p.name == name && p.location != "path")
        {
            misplaced.location = "path";
            misplaced.key = None;
            misplaced.required = true;
            misplaced.schema = path_schema(std::mem::take(&mut misplaced.schema));
        }
        if !params
            .iter()
            .any(|p| &p.name == name && p.location == "path")
        {
            let mut schema = Map::new();
            schema.insert(
                "description".into(),
                Value::from(format!("The {}.", name.replace('_', " "))),
            );
            params.push(OutParam {
                name: name.clone(),
                location: "path",
                key: None,
                part: None,
                required: true,
                schema: path_schema(schema),
            });
        }
    }
    // The zone or account id: Cloudflare's 32-hex form, said plainly.
    if let Some((scope, name)) = scope_of(&path)
        && let Some(param) = params.iter_mut().find(|p| p.name == name)
    {
        let noun = match scope {
            Scope::Zone => "zone",
            Scope::Account => "account",
        };
        param.schema.remove("maxLength");
        param
            .schema
            .insert("pattern".into(), Value::from("^[0-9a-f]{32}$"));
        param.schema.insert(
            "description".into(),
            Value::from(format!(
                "The {noun}'s 32-character hex id (see list_{noun}s)."
            )),
        );
    }
    if let Some(body) = operation.get("requestBody") {
        body_params(converter, body, method, &mut params)?;
    }
    let placement = rules.place(&tag);
    let permission = permission(operation, rules, placement.permission, access);
    let (group, group_title, group_description) = match &permission {
        Some(_) => (
            placement.group,
            placement.title,
            placement.description.map(str::to_string),
        ),
        None => (
            super::UNCLASSIFIED.to_string(),
            "Permission not known".to_string(),
            Some("Operations whose Cloudflare token permission flaregate cannot tell: each is granted only by name (tools.NAME = \"on\").".to_string()),
        ),
    };
    let title = operation
        .get("summary")
        .and_then(Value::as_str)
        .map_or_else(|| id.to_string(), |s| crate::text::clip(s.trim(), 120));
    let mut description = operation
        .get("description")
        .and_then(Value::as_str)
        .filter(|d| !d.trim().is_empty())
        .map_or_else(
            || title.clone(),
            |d| crate::text::clip(d.trim(), DESCRIPTION),
        );
    if access == Access::Write {
        description.push_str(&format!(
            "\n\nA write here changes your Cloudflare account ({group_title})."
        ));
    }
    let query = |name: &str| {
        params
            .iter()
            .any(|p| p.location == "query" && p.name == name)
    };
    let pagination = if query("page") {
        Pagination::Page
    } else if query("cursor") {
        Pagination::Cursor
    } else {
        Pagination::None
    };
    let deprecation = (operation.get("deprecated") == Some(&Value::Bool(true)))
        .then(|| "Cloudflare marks this operation deprecated.".to_string());
    Ok(Planned {
        endpoint: OutEndpoint {
            tool: names::tool_name(id),
            title,
            method,
            scope: reach_of(&path),
            path,
            access,
            permission: permission.unwrap_or_else(|| "unknown".into()),
            pagination,
            result: result_kind(converter, operation),
            description,
            deprecation,
            required: params
                .iter()
                .filter(|p| p.required)
                .map(|p| p.name.clone())
                .collect(),
            annotations: Annotations {
                read_only: access == Access::Read,
                destructive: matches!(method, Method::Delete | Method::Put),
                idempotent: method.is_idempotent(),
            },
            param: params,
        },
        group,
        group_title,
        group_description,
        tag,
    })
}

/// The zone or account placeholder of a path, read as the loader reads it.
fn scope_of(path: &str) -> Option<(Scope, String)> {
    let template = PathTemplate::parse(path).ok()?;
    template
        .scope_placeholder()
        .map(|(scope, name)| (scope, name.to_string()))
}

/// Whose objects a path reaches, from its shape.
fn reach_of(path: &str) -> Reach {
    match scope_of(path) {
        Some((Scope::Zone, _)) => Reach::Zone,
        Some((Scope::Account, _)) => Reach::Account,
        None if path == "/user" || path.starts_with("/user/") => Reach::User,
        None => Reach::Global,
    }
}

/// `{accountId}` → `{account_id}`: placeholders name arguments, which are
/// snake case. Returns the new path and (schema name, argument name) pairs.
fn rename_placeholders(path: &str) -> Result<(String, Vec<(String, String)>), String> {
    let mut out = String::with_capacity(path.len());
    let mut renamed = Vec::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').ok_or("its path has an unclosed {")? + open;
        let original = &rest[open + 1..close];
        let name = names::argument(original);
        out.push('{');
        out.push_str(&name);
        out.push('}');
        renamed.push((original.to_string(), name));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok((out, renamed))
}

/// One path or query parameter; `None` for an optional one flaregate
/// does not send (headers, cookies, objects in the query).
fn parameter(
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
                required,
                schema: with_type(schema),
            }))
        }
        other => unsent(format!("it needs the {other} parameter `{wire}`")),
    }
}

/// A path value must be a string of a safe shape: the schema's own anchored
/// pattern, its values, or ids and names without separators.
fn path_schema(mut schema: Map<String, Value>) -> Map<String, Value> {
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
fn with_type(mut schema: Map<String, Value>) -> Map<String, Value> {
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
fn body_params(
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
                required,
                schema: with_type(schema),
            });
        }
    }
    Ok(())
}

/// `allOf` of objects merged into one object (Cloudflare composes request
/// bodies that way), so its fields can be arguments.
fn flatten_all_of(mut schema: Map<String, Value>) -> Map<String, Value> {
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

/// The permission: the schema's `x-api-token-group`, else its
/// `x-cfPermissionsRequired`, else the tag's rule; `None` if none says.
fn permission(
    operation: &Value,
    rules: &Rules,
    by_tag: Option<&str>,
    access: Access,
) -> Option<String> {
    if let Some(Value::Array(groups)) = operation.get("x-api-token-group") {
        let names: Vec<&str> = groups.iter().filter_map(Value::as_str).collect();
        if !names.is_empty() {
            return Some(names.join(" or "));
        }
    }
    if let Some(first) = operation
        .pointer("/x-cfPermissionsRequired/enum/0")
        .and_then(Value::as_str)
    {
        return Some(rules.permission_name(first, access));
    }
    by_tag.map(|name| with_access(name, access))
}

/// The shape of the success answer's `result`: an object or a list when
/// the schema says so; otherwise unknown (no output schema is published).
fn result_kind(converter: &mut Converter, operation: &Value) -> ResultKind {
    let Some(responses) = operation.get("responses").and_then(Value::as_object) else {
        return ResultKind::Null;
    };
    let success = ["200", "201", "202", "2XX"]
        .iter()
        .find_map(|code| responses.get(*code))
        .and_then(|r| converter.follow(r))
        .and_then(|r| r.pointer("/content/application~1json/schema"));
    let Some(schema) = success else {
        return ResultKind::Null;
    };
    let schema = flatten_all_of(converter.convert(schema));
    match schema
        .get("properties")
        .and_then(|p| p.get("result"))
        .map(|r| flatten_all_of(r.as_object().cloned().unwrap_or_default()))
        .and_then(|r| r.get("type").cloned())
    {
        Some(Value::String(kind)) if kind == "array" => ResultKind::Array,
        Some(Value::String(kind)) if kind == "object" => ResultKind::Object,
        _ => ResultKind::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_reach_by_shape_and_placeholders_become_arguments() {
        assert_eq!(reach_of("/zones/{zone_identifier}/x"), Reach::Zone);
        assert_eq!(reach_of("/accounts/{account_id}/x"), Reach::Account);
        assert_eq!(reach_of("/user/tokens"), Reach::User);
        assert_eq!(reach_of("/radar/http"), Reach::Global);
        assert_eq!(reach_of("/zones"), Reach::Global);
        let (path, renamed) = rename_placeholders("/accounts/{accountId}/x/{id}").unwrap();
        assert_eq!(path, "/accounts/{account_id}/x/{id}");
        assert_eq!(
            renamed[0],
            ("accountId".to_string(), "account_id".to_string())
        );
    }
}
