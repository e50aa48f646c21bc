//! One OpenAPI operation as one catalog entry: its path and arguments,
//! access and permission, group, paging and result shape.

use serde::Serialize;
use serde_json::{Map, Value};

use super::names;
use super::params::{
    body_params, flatten_all_of, hides_scope, names_scope, parameter, path_schema,
};
use super::rules::{Rules, with_access};
use super::schema::Converter;
use crate::catalog::{
    Access, Annotations, Method, Pagination, PathTemplate, Reach, ResultKind, Scope,
};

/// A top-level description is kept whole up to this many characters.
const DESCRIPTION: usize = 1_000;

/// A catalog entry as the import writes it (field order is file order).
#[derive(Debug, Clone, Serialize)]
pub(super) struct OutEndpoint {
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
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    bulk: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    opaque_scope: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    required: Vec<String>,
    annotations: Annotations,
    param: Vec<OutParam>,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct OutParam {
    pub(super) name: String,
    #[serde(rename = "in")]
    pub(super) location: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) part: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) names: Option<&'static str>,
    /// Written as the endpoint's `required` list: a param's own
    /// `required` key is JSON Schema's list of an object's fields.
    #[serde(skip)]
    pub(super) required: bool,
    #[serde(flatten)]
    pub(super) schema: Map<String, Value>,
}

fn is_none_pagination(p: &Pagination) -> bool {
    *p == Pagination::None
}

/// An operation ready to write, and where it goes.
pub(super) struct Planned {
    pub endpoint: OutEndpoint,
    pub group: String,
    pub group_title: String,
    pub group_description: Option<String>,
    pub tag: String,
}

/// Plans the entry for one operation, or says why it cannot be one.
pub(super) fn plan(
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
                names: None,
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
    // Arguments that name a zone or account are judged against the
    // agent's scope; one that hides such a name deeper cannot be.
    // The path's own zone or account (`/zones/{…}/`) is its scope already;
    // an endpoint bound to one zone by its path cannot reach another.
    let scoped_by = path
        .split('/')
        .nth(2)
        .map(|p| p.trim_matches(['{', '}']).to_string());
    let zone_bound = path.starts_with("/zones/");
    let mut opaque_scope = false;
    for param in &mut params {
        let own_scope =
            param.location == "path" && scoped_by.as_deref() == Some(param.name.as_str());
        if zone_bound || own_scope {
            continue;
        }
        param.names = names_scope(param.key.as_deref().unwrap_or(&param.name));
        opaque_scope |= param.location != "path" && hides_scope(&param.schema);
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
    let bulk = is_bulk(&path);
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
            bulk,
            opaque_scope,
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

/// Whether an operation acts on a whole zone's (or account's) worth of
/// objects at once: its path ends in `import`, `export`, `scan` or `batch`
/// (the DNS zone-file upload and download, the record scan, the batch).
fn is_bulk(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or_default();
    matches!(last, "import" | "export" | "scan" | "batch")
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
