//! One endpoint's parameters as the catalog writes them: flaregate's own
//! keys and the JSON Schema keywords, parsed into [`Param`]s and checked
//! against the endpoint's path, method and scope.

use std::collections::HashSet;

use regex::Regex;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::forms::Form;
use super::loader::RawEndpoint;
use super::model::*;

/// JSON Schema keywords a parameter may use besides flaregate's own keys.
const SCHEMA_KEYWORDS: &[&str] = &[
    "type",
    "description",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "items",
    "properties",
    "default",
    "format",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "additionalProperties",
    "patternProperties",
    "required",
    "const",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "title",
    "deprecated",
];

/// flaregate's own parameter keys (not JSON Schema).
const PARAM_KEYS: &[&str] = &[
    "name",
    "in",
    "key",
    "required",
    "part",
    "form",
    "name_fields",
    "names",
];

/// Patterns compiled during one load: a large catalog repeats a few (a
/// 32-hex id) thousands of times, and a compiled regex is not small.
#[derive(Default)]
pub(super) struct Patterns {
    /// Path and query patterns, compiled once each (a clone shares it).
    regexes: std::collections::HashMap<String, Regex>,
    /// Patterns the JSON Schema engine compiled already.
    pub(super) in_json_schema: HashSet<String>,
}

impl Patterns {
    pub(super) fn regex(&mut self, pattern: &str) -> Result<Regex, regex::Error> {
        if let Some(regex) = self.regexes.get(pattern) {
            return Ok(regex.clone());
        }
        let regex = Regex::new(pattern)?;
        self.regexes.insert(pattern.to_string(), regex.clone());
        Ok(regex)
    }
}

/// Every `pattern` keyword's value in a schema, at any depth.
pub(super) fn patterns_in<'a>(schema: &'a Value, found: &mut Vec<&'a str>) {
    match schema {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("pattern", Value::String(p)) => found.push(p),
                    // Values, not schemas: a property may be named "pattern".
                    ("enum" | "const" | "default", _) => {}
                    _ => patterns_in(value, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| patterns_in(i, found)),
        _ => {}
    }
}

/// Turns one `[[endpoint.param]]` (or `[shared.*]`) table into a [`Param`];
/// errors carry the offending key.
pub(super) fn parse_param(
    mut table: Map<String, Value>,
    patterns: &mut Patterns,
) -> Result<Param, (String, String)> {
    let take_str =
        |table: &mut Map<String, Value>, key: &str| -> Result<Option<String>, (String, String)> {
            match table.remove(key) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err((key.to_string(), "must be a string".into())),
            }
        };
    let name =
        take_str(&mut table, "name")?.ok_or(("name".to_string(), "is missing".to_string()))?;
    if name == super::DRY_RUN {
        return Err((
            "name".into(),
            "`dry_run` is flaregate's own argument (previews); name this one otherwise and give its wire name as `key`".into(),
        ));
    }
    let location: Location = match take_str(&mut table, "in")? {
        Some(s) => Location::deserialize(Value::String(s.clone())).map_err(|_| {
            (
                "in".to_string(),
                format!("`{s}` is not one of path, query, body, payload, multipart"),
            )
        })?,
        None => return Err(("in".into(), "is missing".into())),
    };
    let key = take_str(&mut table, "key")?.unwrap_or_else(|| name.clone());
    // `required = true` is flaregate's; a list is JSON Schema's keyword
    // (the fields an object argument must have) and stays in the schema.
    let required = match table.get("required") {
        None | Some(Value::Array(_)) => false,
        Some(Value::Bool(b)) => {
            let b = *b;
            table.remove("required");
            b
        }
        Some(_) => {
            return Err((
                "required".into(),
                "must be true or false (or, for an object, the list of its required fields)".into(),
            ));
        }
    };
    let part: Option<Part> = take_enum(&mut table, "part", "metadata, module or field")?;
    let form: Option<Form> = take_enum(
        &mut table,
        "form",
        "record_name, hostname, url or url_prefix",
    )?;
    let names: Option<Names> = take_enum(
        &mut table,
        "names",
        "zone_id, zone_name, hostname or account_id",
    )?;
    let name_fields = match table.remove("name_fields") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                _ => Err((
                    "name_fields".to_string(),
                    "must be a list of strings".to_string(),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(("name_fields".into(), "must be a list of strings".into())),
    };
    for key in table.keys() {
        if !SCHEMA_KEYWORDS.contains(&key.as_str()) {
            return Err((
                key.clone(),
                format!(
                    "unknown key; expected one of {} or a JSON Schema keyword ({})",
                    PARAM_KEYS.join(", "),
                    SCHEMA_KEYWORDS.join(", ")
                ),
            ));
        }
    }
    let shaped = ["type", "allOf", "anyOf", "oneOf", "enum", "const"]
        .iter()
        .any(|k| table.contains_key(*k));
    if !shaped {
        return Err(("type".into(), "is missing".into()));
    }
    if !table.contains_key("description") {
        return Err(("description".into(), "is missing: agents need it".into()));
    }
    let pattern = match table.get("pattern") {
        None => None,
        Some(Value::String(p)) => Some(
            patterns
                .regex(p)
                .map_err(|e| ("pattern".to_string(), format!("invalid regex: {e}")))?,
        ),
        Some(_) => return Err(("pattern".into(), "must be a string".into())),
    };
    let as_value = Value::Object(table);
    if let Err(e) = jsonschema::meta::validate(&as_value) {
        let at = e
            .instance_path()
            .as_str()
            .trim_start_matches('/')
            .replace('/', ".");
        let field = if at.is_empty() {
            "type".to_string()
        } else {
            at
        };
        return Err((field, format!("is not valid JSON Schema: {e}")));
    }
    let Value::Object(schema) = as_value else {
        unreachable!("built as an object above");
    };
    Ok(Param {
        name,
        location,
        key,
        required,
        part,
        schema,
        pattern,
        form,
        name_fields,
        names,
    })
}

/// A string key of a parameter table read as one of an enum's values.
fn take_enum<T: for<'de> Deserialize<'de>>(
    table: &mut Map<String, Value>,
    key: &str,
    expected: &str,
) -> Result<Option<T>, (String, String)> {
    match table.remove(key) {
        None => Ok(None),
        Some(Value::String(s)) => T::deserialize(Value::String(s.clone()))
            .map(Some)
            .map_err(|_| (key.to_string(), format!("`{s}` is not {expected}"))),
        Some(_) => Err((key.to_string(), "must be a string".into())),
    }
}

/// The argument that names an endpoint's zone or account: the path's own
/// placeholder (`/zones/{zone_identifier}/…`, whatever it is called), or the
/// body argument the catalog names. A zone or account endpoint with neither
/// is a load error, unless it is the list of zones or accounts itself
/// (whose answer is cut to the agent's scope instead).
pub(super) fn scope_param_of(
    raw: &RawEndpoint,
    path: &PathTemplate,
    params: &[Param],
) -> Result<Option<String>, String> {
    let reach = raw.scope.as_str();
    let Some(scope) = raw.scope.scope() else {
        // A user-level or global endpoint has no zone or account to check,
        // so it must not be one in disguise.
        if let Some((shape, name)) = path.scope_placeholder() {
            return Err(format!(
                "the path names a {} ({{{name}}}) but the endpoint is marked {reach}",
                noun(shape)
            ));
        }
        if raw.scope_param.is_some() {
            return Err(format!("a {reach} endpoint has no scope_param"));
        }
        return Ok(None);
    };
    let noun = noun(scope);
    if let Some((shape, name)) = path.scope_placeholder() {
        if shape != scope {
            return Err(format!(
                "the path names a {} ({{{name}}}) but the endpoint is {noun}-scoped",
                self::noun(shape)
            ));
        }
        if raw
            .scope_param
            .as_deref()
            .is_some_and(|given| given != name)
        {
            return Err(format!(
                "the path's placeholder is `{name}`; scope_param must not name another"
            ));
        }
        return Ok(Some(name.to_string()));
    }
    if let Some(name) = &raw.scope_param {
        if !params.iter().any(|p| &p.name == name) {
            return Err(format!(
                "scope_param `{name}` is not a parameter of this endpoint"
            ));
        }
        return Ok(Some(name.clone()));
    }
    let own_list = raw.method == Method::Get && raw.path == format!("/{noun}s");
    // A GraphQL endpoint names its zones in its query (`[endpoint.graphql]`).
    if own_list || raw.graphql.is_some() {
        return Ok(None);
    }
    Err(format!(
        "a {noun}-scoped endpoint must name its {noun} in the path (/{noun}s/{{…}}/…) or in `scope_param`; one that reaches neither is `scope = \"user\"` or `\"global\"`"
    ))
}

fn noun(scope: Scope) -> &'static str {
    match scope {
        Scope::Zone => "zone",
        Scope::Account => "account",
    }
}

/// Checks how parameters fit the path and the method.
pub(super) fn check_params(
    path: &PathTemplate,
    params: &[Param],
    method: Method,
) -> Result<(), (String, String)> {
    let mut seen = HashSet::new();
    for p in params {
        let field = |f: &str| format!("param.{}.{f}", p.name);
        if !seen.insert(p.name.as_str()) {
            return Err((field("name"), "parameter defined twice".into()));
        }
        match p.location {
            Location::Path => {
                if !path.params().any(|n| n == p.name) {
                    return Err((
                        field("in"),
                        format!("path {} has no {{{}}}", path.raw, p.name),
                    ));
                }
                if !p.required
                    || p.schema.get("type") != Some(&Value::from("string"))
                    || p.pattern.is_none()
                {
                    return Err((
                        field("pattern"),
                        "a path parameter must be a required string with a pattern".into(),
                    ));
                }
                let anchored = p
                    .pattern
                    .as_ref()
                    .is_some_and(|r| r.as_str().starts_with('^') && r.as_str().ends_with('$'));
                if !anchored {
                    return Err((
                        field("pattern"),
                        "a path parameter's pattern must be anchored with ^ and $".into(),
                    ));
                }
            }
            Location::Multipart if p.part.is_none() => {
                return Err((
                    field("part"),
                    "a multipart parameter needs part = metadata, module or field".into(),
                ));
            }
            Location::Body | Location::Payload | Location::Multipart if method == Method::Get => {
                return Err((field("in"), "a GET request has no body".into()));
            }
            _ if p.part.is_some() && p.location != Location::Multipart => {
                return Err((
                    field("part"),
                    "only multipart parameters have a part".into(),
                ));
            }
            _ => {}
        }
    }
    for name in path.params() {
        if !params
            .iter()
            .any(|p| p.name == name && p.location == Location::Path)
        {
            return Err((
                "path".into(),
                format!("{{{name}}} has no parameter with in = \"path\""),
            ));
        }
    }
    let payloads = params
        .iter()
        .filter(|p| p.location == Location::Payload)
        .count();
    let fields = params
        .iter()
        .any(|p| matches!(p.location, Location::Body | Location::Multipart));
    if payloads > 1 || (payloads == 1 && fields) {
        return Err((
            "param".into(),
            "a payload parameter is the whole body: it goes alone, without body or multipart parameters".into(),
        ));
    }
    let count = |part: Part| params.iter().filter(|p| p.part == Some(part)).count();
    let (modules, metadata, fields) = (
        count(Part::Module),
        count(Part::Metadata),
        count(Part::Field),
    );
    if fields > 0 && modules + metadata > 0 {
        return Err((
            "param".into(),
            "a multipart upload is either a module with metadata, or fields: not both".into(),
        ));
    }
    if metadata > 0 && modules != 1 {
        return Err((
            "param".into(),
            "a multipart upload needs exactly one part = \"module\"".into(),
        ));
    }
    Ok(())
}

/// Checks that the endpoint's attributes agree with each other.
pub(super) fn check_consistency(
    raw: &RawEndpoint,
    params: &[Param],
) -> Result<(), (&'static str, String)> {
    // A GraphQL query is a POST that reads (its mutations are refused).
    let graphql_read = raw.graphql.is_some() && raw.method == Method::Post;
    if raw.access == Access::Read && raw.method != Method::Get && !graphql_read {
        return Err((
            "access",
            "a read endpoint must use GET (or POST a GraphQL query)".into(),
        ));
    }
    // A probe must change nothing: a DELETE of an object named by a path
    // argument besides its zone or account, which `check` fills with a
    // value no object has.
    let placeholders = raw.path.matches('{').count();
    if raw.probe && (raw.method != Method::Delete || placeholders < 2) {
        return Err((
            "probe",
            "a probe is a DELETE whose path names an object besides its zone or account".into(),
        ));
    }
    if raw.annotations.read_only != (raw.access == Access::Read) {
        return Err((
            "annotations",
            "read_only must be true exactly for read endpoints".into(),
        ));
    }
    if raw.access == Access::Write && !raw.description.contains("A write here") {
        return Err((
            "description",
            "a write endpoint's description must carry its risk line (\"A write here …\")".into(),
        ));
    }
    let query = |name: &str| {
        params
            .iter()
            .any(|p| p.name == name && p.location == Location::Query)
    };
    match raw.pagination {
        Pagination::Page if !query("page") => {
            return Err((
                "pagination",
                "page pagination needs a `page` query parameter".into(),
            ));
        }
        Pagination::Cursor if !query("cursor") => {
            return Err((
                "pagination",
                "cursor pagination needs a `cursor` query parameter".into(),
            ));
        }
        _ => {}
    }
    if raw.response == ResponseKind::Text && raw.method != Method::Get {
        return Err(("response", "only a GET can answer with raw text".into()));
    }
    for name in &raw.exactly_one_of {
        match params.iter().find(|p| &p.name == name) {
            Some(p) if p.location == Location::Body && !p.required => {}
            Some(_) => {
                return Err((
                    "exactly_one_of",
                    format!("`{name}` must be an optional body parameter"),
                ));
            }
            None => return Err(("exactly_one_of", format!("no parameter named `{name}`"))),
        }
    }
    Ok(())
}
