//! Reads catalog TOML files into [`Catalog`], checking every entry so a bad
//! catalog fails at load with the file, line, entry and field named.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use regex::Regex;
use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;

use super::Catalog;
use super::error::CatalogError;
use super::forms::Form;
use super::model::*;
use super::schema::input_schema;

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
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    group: Spanned<RawGroup>,
    #[serde(default)]
    shared: BTreeMap<String, Map<String, Value>>,
    #[serde(default, rename = "endpoint")]
    endpoints: Vec<Spanned<RawEndpoint>>,
}

/// A `[group]` table: a group's definition, or (with only `id`) more
/// endpoints for a group another file defines (an import beside the
/// curated file).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    id: String,
    title: Option<String>,
    description: Option<String>,
    #[serde(default)]
    explicit: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoint {
    tool: String,
    title: String,
    method: Method,
    path: String,
    #[serde(default)]
    shared: Vec<String>,
    #[serde(default)]
    required: Vec<String>,
    access: Access,
    permission: String,
    scope: Reach,
    #[serde(default)]
    pagination: Pagination,
    #[serde(default)]
    response: ResponseKind,
    result: ResultKind,
    items_field: Option<String>,
    #[serde(default)]
    exactly_one_of: Vec<String>,
    description: String,
    deprecation: Option<String>,
    lookup: Option<Lookup>,
    /// The GET that fetches what this call changes, when neither the
    /// lookup nor a GET of the same path does (for previews).
    current: Option<String>,
    #[serde(default)]
    summary: Vec<Phrase>,
    multipart: Option<Multipart>,
    /// How an undo restores what this write changed, beyond the defaults.
    #[serde(default)]
    undo: Undo,
    /// The body argument naming the account or zone when the path does not.
    scope_param: Option<String>,
    annotations: Annotations,
    #[serde(default, rename = "param")]
    params: Vec<Map<String, Value>>,
}

/// Loads every `*.toml` file of `dir` and of its folders one level down
/// (where `catalog import` writes), in name order.
pub fn load_dir(dir: &Path) -> Result<Catalog, CatalogError> {
    load_sources(&read_dir(dir)?)
}

/// The (file, text) of every `*.toml` file of `dir` and of its folders one
/// level down, in name order.
pub fn read_dir(dir: &Path) -> Result<Vec<(PathBuf, String)>, CatalogError> {
    let io = |source| CatalogError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = crate::files::toml_files(dir).map_err(io)?;
    if dir.is_dir() {
        let mut folders: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        folders.sort();
        for folder in folders {
            files.extend(crate::files::toml_files(&folder).map_err(io)?);
        }
    }
    if files.is_empty() {
        return Err(CatalogError::Empty(dir.to_path_buf()));
    }
    let mut sources = Vec::with_capacity(files.len());
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|source| CatalogError::Io {
            path: path.clone(),
            source,
        })?;
        sources.push((path, text));
    }
    Ok(sources)
}

/// Builds a catalog from (file name, TOML text) pairs.
pub fn load_sources(sources: &[(PathBuf, String)]) -> Result<Catalog, CatalogError> {
    let mut files = Vec::with_capacity(sources.len());
    for (file, text) in sources {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start);
            CatalogError::Syntax {
                file: file.clone(),
                line: crate::text::line_of(text, at),
                entry: entry_around(text, at),
                message: e.message().to_string(),
            }
        })?;
        files.push(raw);
    }
    let groups = groups_of(sources, &files)?;
    let mut endpoints: Vec<Endpoint> = Vec::new();
    let mut tools = HashSet::new();
    let mut checked = Patterns::default();
    // Where each endpoint was written: (source index, byte offset).
    let mut origins = Vec::new();
    for (index, ((file, text), raw)) in sources.iter().zip(files).enumerate() {
        let ctx = FileContext { file, text };
        let group = raw.group.into_inner().id;
        for raw_endpoint in raw.endpoints {
            let at = raw_endpoint.span().start;
            let endpoint = ctx.endpoint(
                &group,
                &raw.shared,
                at,
                raw_endpoint.into_inner(),
                &mut checked,
            )?;
            if !tools.insert(endpoint.tool.clone()) {
                return Err(ctx.invalid(
                    at,
                    &endpoint.tool,
                    "tool",
                    "this tool name is already used by another endpoint".into(),
                ));
            }
            endpoints.push(endpoint);
            origins.push((index, at));
        }
    }
    check_lookups(sources, &endpoints, &origins)?;
    Ok(Catalog::new(groups, endpoints))
}

/// The groups the files define, in file order. A `[group]` with a title
/// and description defines its group (once); one with only an `id` adds
/// endpoints to a group defined elsewhere.
fn groups_of(sources: &[(PathBuf, String)], files: &[RawFile]) -> Result<Vec<Group>, CatalogError> {
    let mut groups: Vec<Group> = Vec::new();
    for ((file, text), raw) in sources.iter().zip(files) {
        let ctx = FileContext { file, text };
        let at = raw.group.span().start;
        let group = raw.group.get_ref();
        match (&group.title, &group.description) {
            (Some(title), Some(description)) => {
                if groups.iter().any(|g| g.id == group.id) {
                    return Err(ctx.invalid(
                        at,
                        "[group]",
                        "id",
                        format!("group `{}` is defined twice", group.id),
                    ));
                }
                groups.push(Group {
                    id: group.id.clone(),
                    title: title.clone(),
                    description: description.clone(),
                    explicit: group.explicit,
                });
            }
            (None, None) if !group.explicit => {}
            _ => {
                return Err(ctx.invalid(
                    at,
                    "[group]",
                    "title",
                    "a group is defined with id, title and description (and optionally explicit), or extended with its id alone".into(),
                ));
            }
        }
    }
    for ((file, text), raw) in sources.iter().zip(files) {
        let group = raw.group.get_ref();
        if !groups.iter().any(|g| g.id == group.id) {
            let ctx = FileContext { file, text };
            return Err(ctx.invalid(
                raw.group.span().start,
                "[group]",
                "id",
                format!(
                    "this file adds endpoints to group `{}`, which no file defines (give it a title and description)",
                    group.id
                ),
            ));
        }
    }
    Ok(groups)
}

/// An undo must name a write tool, and its text argument must be one of
/// that tool's arguments.
fn undo_problem(endpoints: &[Endpoint], endpoint: &Endpoint) -> Option<String> {
    let undo = &endpoint.undo;
    if undo.never.is_some() && (undo.tool.is_some() || undo.text.is_some()) {
        return Some("`never` says it cannot be undone: give no `tool` or `text` with it".into());
    }
    let restorer = match &undo.tool {
        Some(tool) => match endpoints.iter().find(|e| &e.tool == tool) {
            Some(e) if e.access == Access::Write => e,
            Some(_) => {
                return Some(format!(
                    "`{tool}` is not a write: it cannot restore anything"
                ));
            }
            None => return Some(format!("there is no tool `{tool}`")),
        },
        None => endpoint,
    };
    match &undo.text {
        Some(text) if restorer.param(text).is_none() => Some(format!(
            "`{text}` is not an argument of `{}`",
            restorer.tool
        )),
        _ => None,
    }
}

/// A lookup (and a `current` read) must name a GET tool whose path
/// arguments the endpoint has, and a lookup's immutable fields must be the
/// endpoint's arguments.
fn check_lookups(
    sources: &[(PathBuf, String)],
    endpoints: &[Endpoint],
    origins: &[(usize, usize)],
) -> Result<(), CatalogError> {
    for (endpoint, &(source, at)) in endpoints.iter().zip(origins) {
        let (file, text) = &sources[source];
        let ctx = FileContext { file, text };
        let has_module = endpoint.params.iter().any(|p| p.part == Some(Part::Module));
        if has_module != endpoint.multipart.is_some() {
            let message = if has_module {
                "a module part needs [endpoint.multipart] (module_file, module_type, main_module_field)"
            } else {
                "[endpoint.multipart] is for endpoints with a `part = \"module\"` parameter"
            };
            return Err(ctx.invalid(at, &endpoint.tool, "multipart", message.into()));
        }
        if let Some(phrase) = endpoint
            .summary
            .iter()
            .find(|p| endpoint.param(&p.arg).is_none())
        {
            return Err(ctx.invalid(
                at,
                &endpoint.tool,
                "summary",
                format!("`{}` is not an argument of this endpoint", phrase.arg),
            ));
        }
        if let Some(current) = &endpoint.current
            && let Some(message) = reader_problem(endpoints, endpoint, current)
        {
            return Err(ctx.invalid(at, &endpoint.tool, "current", message));
        }
        if let Some(message) = undo_problem(endpoints, endpoint) {
            return Err(ctx.invalid(at, &endpoint.tool, "undo", message));
        }
        let Some(lookup) = &endpoint.lookup else {
            continue;
        };
        let problem = reader_problem(endpoints, endpoint, &lookup.tool).or_else(|| {
            lookup
                .immutable
                .iter()
                .find(|f| endpoint.param(f).is_none())
                .map(|f| format!("immutable field `{f}` is not an argument of this endpoint"))
        });
        if let Some(message) = problem {
            return Err(ctx.invalid(at, &endpoint.tool, "lookup", message));
        }
    }
    Ok(())
}

/// Why `tool` cannot fetch what `endpoint` acts on, if it cannot: it must
/// be a GET whose path arguments `endpoint` has.
fn reader_problem(endpoints: &[Endpoint], endpoint: &Endpoint, tool: &str) -> Option<String> {
    match endpoints.iter().find(|e| e.tool == tool) {
        None => Some(format!("no tool named `{tool}`")),
        Some(target) if target.method != Method::Get => Some(format!("`{tool}` is not a GET")),
        Some(target) => target
            .path
            .params()
            .find(|name| endpoint.param(name).is_none())
            .map(|name| format!("`{tool}` needs `{name}`, which this endpoint lacks")),
    }
}

/// Names the `[[endpoint]]` that byte `offset` of `text` falls in, if any.
fn entry_around(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let Some(start) = before.rfind("[[endpoint]]") else {
        return "file".to_string();
    };
    // The entry's own `tool` key: before the next table header, any quoting.
    let tool = text[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('['))
        .find_map(|l| {
            let (key, value) = l.split_once('=')?;
            (key.trim() == "tool").then(|| value.trim().trim_matches(['"', '\'']).to_string())
        })
        .unwrap_or_else(|| "?".into());
    format!("endpoint `{tool}`")
}

struct FileContext<'a> {
    file: &'a Path,
    text: &'a str,
}

impl FileContext<'_> {
    /// An error at byte `at` of the file, in `entry`'s `field`.
    fn invalid(&self, at: usize, entry: &str, field: &str, message: String) -> CatalogError {
        let line = crate::text::line_of(self.text, at);
        let entry = if entry.starts_with('[') {
            entry.to_string()
        } else {
            format!("endpoint `{entry}`")
        };
        CatalogError::Invalid {
            file: self.file.to_path_buf(),
            line,
            entry,
            field: field.to_string(),
            message,
        }
    }

    fn endpoint(
        &self,
        group: &str,
        shared: &BTreeMap<String, Map<String, Value>>,
        at: usize,
        mut raw: RawEndpoint,
        patterns: &mut Patterns,
    ) -> Result<Endpoint, CatalogError> {
        let tool = raw.tool.clone();
        let bad = |field: &str, message: String| self.invalid(at, &tool, field, message);

        let name_ok = Regex::new("^[a-z][a-z0-9_]{0,63}$").expect("literal regex");
        if matches!(
            tool.as_str(),
            "search_api" | "describe_api" | "call_api" | "undo_call"
        ) {
            return Err(bad(
                "tool",
                "is the name of one of flaregate's discovery tools".into(),
            ));
        }
        if !name_ok.is_match(&tool) {
            return Err(bad(
                "tool",
                "must be lowercase snake_case, at most 64 characters".into(),
            ));
        }
        for (field, value) in [
            ("title", &raw.title),
            ("description", &raw.description),
            ("permission", &raw.permission),
        ] {
            if value.trim().is_empty() {
                return Err(bad(field, "must not be empty".into()));
            }
        }
        let path = PathTemplate::parse(&raw.path).map_err(|m| bad("path", m))?;

        let mut params = Vec::new();
        for name in &raw.shared {
            let table = shared
                .get(name)
                .ok_or_else(|| bad("shared", format!("no [shared.{name}] in this file")))?;
            let mut table = table.clone();
            table.insert("name".into(), Value::String(name.clone()));
            params.push(
                parse_param(table, patterns)
                    .map_err(|(f, m)| bad(&format!("shared.{name}.{f}"), m))?,
            );
        }
        for table in std::mem::take(&mut raw.params) {
            let label = table
                .get("name")
                .and_then(|v| v.as_str())
                .unwrap_or("?")
                .to_string();
            params.push(
                parse_param(table, patterns)
                    .map_err(|(f, m)| bad(&format!("param.{label}.{f}"), m))?,
            );
        }
        for name in &raw.required {
            let param = params
                .iter_mut()
                .find(|p| &p.name == name)
                .ok_or_else(|| bad("required", format!("no parameter named `{name}`")))?;
            param.required = true;
        }
        check_params(&path, &params, raw.method).map_err(|(f, m)| bad(&f, m))?;
        let scope_param = scope_param_of(&raw, &path, &params).map_err(|m| bad("scope", m))?;
        check_consistency(&raw, &params).map_err(|(f, m)| bad(f, m))?;

        let mut endpoint = Endpoint {
            tool: raw.tool,
            title: raw.title,
            group: group.to_string(),
            method: raw.method,
            path,
            access: raw.access,
            permission: raw.permission,
            reach: raw.scope,
            description: raw.description,
            params,
            annotations: raw.annotations,
            pagination: raw.pagination,
            response: raw.response,
            result: raw.result,
            items_field: raw.items_field,
            exactly_one_of: raw.exactly_one_of,
            deprecation: raw.deprecation,
            lookup: raw.lookup,
            current: raw.current,
            summary: raw.summary,
            multipart: raw.multipart,
            undo: raw.undo,
            scope_param,
            input_schema: Arc::default(),
        };
        // Each parameter's schema passed the meta-schema (parse_param); the
        // object around them is flaregate's own, valid by construction.
        let schema = Value::Object(input_schema(&mut endpoint));
        // Compiling can still fail where the meta-schema does not look: a
        // pattern the JSON Schema regex engine rejects. The validator itself
        // is compiled on the tool's first call (most tools of a large
        // catalog are never called); each distinct pattern is tried now.
        let mut found = Vec::new();
        patterns_in(&schema, &mut found);
        for pattern in found {
            if patterns.in_json_schema.contains(pattern) {
                continue;
            }
            let alone = serde_json::json!({ "pattern": pattern });
            if let Err(e) = jsonschema::validator_for(&alone) {
                return Err(bad(
                    "param",
                    format!("the arguments' JSON Schema cannot be compiled: {e}"),
                ));
            }
            patterns.in_json_schema.insert(pattern.to_string());
        }
        let Value::Object(schema) = schema else {
            unreachable!("input_schema builds an object");
        };
        endpoint.input_schema = Arc::new(schema);
        Ok(endpoint)
    }
}

/// Patterns compiled during one load: a large catalog repeats a few (a
/// 32-hex id) thousands of times, and a compiled regex is not small.
#[derive(Default)]
struct Patterns {
    /// Path and query patterns, compiled once each (a clone shares it).
    regexes: std::collections::HashMap<String, Regex>,
    /// Patterns the JSON Schema engine compiled already.
    in_json_schema: HashSet<String>,
}

impl Patterns {
    fn regex(&mut self, pattern: &str) -> Result<Regex, regex::Error> {
        if let Some(regex) = self.regexes.get(pattern) {
            return Ok(regex.clone());
        }
        let regex = Regex::new(pattern)?;
        self.regexes.insert(pattern.to_string(), regex.clone());
        Ok(regex)
    }
}

/// Every `pattern` keyword's value in a schema, at any depth.
fn patterns_in<'a>(schema: &'a Value, found: &mut Vec<&'a str>) {
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
fn parse_param(
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
fn scope_param_of(
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
    if own_list {
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
fn check_params(
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
fn check_consistency(raw: &RawEndpoint, params: &[Param]) -> Result<(), (&'static str, String)> {
    if raw.access == Access::Read && raw.method != Method::Get {
        return Err(("access", "a read endpoint must use GET".into()));
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
