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
use super::model::*;
use super::params::{
    Patterns, check_consistency, check_params, parse_param, patterns_in, scope_param_of,
};
use super::schema::input_schema;

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
pub(super) struct RawEndpoint {
    pub(super) tool: String,
    pub(super) title: String,
    pub(super) method: Method,
    pub(super) path: String,
    #[serde(default)]
    pub(super) shared: Vec<String>,
    #[serde(default)]
    pub(super) required: Vec<String>,
    pub(super) access: Access,
    pub(super) permission: String,
    pub(super) scope: Reach,
    #[serde(default)]
    pub(super) pagination: Pagination,
    #[serde(default)]
    pub(super) response: ResponseKind,
    pub(super) result: ResultKind,
    pub(super) items_field: Option<String>,
    #[serde(default)]
    pub(super) exactly_one_of: Vec<String>,
    pub(super) description: String,
    pub(super) deprecation: Option<String>,
    #[serde(default)]
    pub(super) bulk: bool,
    #[serde(default)]
    pub(super) opaque_scope: bool,
    #[serde(default)]
    pub(super) probe: bool,
    pub(super) lookup: Option<Lookup>,
    pub(super) graphql: Option<crate::catalog::Graphql>,
    pub(super) quota: Option<crate::catalog::Quota>,
    /// The GET that fetches what this call changes, when neither the
    /// lookup nor a GET of the same path does (for previews).
    pub(super) current: Option<String>,
    #[serde(default)]
    pub(super) summary: Vec<Phrase>,
    pub(super) multipart: Option<Multipart>,
    /// How an undo restores what this write changed, beyond the defaults.
    #[serde(default)]
    pub(super) undo: Undo,
    /// The body argument naming the account or zone when the path does not.
    pub(super) scope_param: Option<String>,
    pub(super) annotations: Annotations,
    #[serde(default, rename = "param")]
    pub(super) params: Vec<Map<String, Value>>,
}

/// Loads every `*.toml` file of `dir` and of its folders one level down
/// (where `catalog import` writes), in name order.
pub(super) fn load_dir(dir: &Path) -> Result<Catalog, CatalogError> {
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
    super::links::check(sources, &endpoints, &origins)?;
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

/// A catalog file being read, so errors name its file, line and entry.
pub(super) struct FileContext<'a> {
    pub(super) file: &'a Path,
    pub(super) text: &'a str,
}

impl FileContext<'_> {
    /// An error at byte `at` of the file, in `entry`'s `field`.
    pub(super) fn invalid(
        &self,
        at: usize,
        entry: &str,
        field: &str,
        message: String,
    ) -> CatalogError {
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
        let path = PathTemplate::parse(&raw.path).map_err(|e| bad("path", e.to_string()))?;

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
            bulk: raw.bulk,
            opaque_scope: raw.opaque_scope,
            probe: raw.probe,
            lookup: raw.lookup,
            graphql: raw.graphql,
            quota: raw.quota,
            current: raw.current,
            summary: raw.summary,
            multipart: raw.multipart,
            undo: raw.undo,
            scope_param,
            input_schema: Arc::default(),
            listing_bytes: 0,
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
        endpoint.listing_bytes = listing_bytes(&endpoint, &schema);
        endpoint.input_schema = Arc::new(schema);
        Ok(endpoint)
    }
}

/// What a tool's entry in `tools/list` weighs, about: its texts and input
/// schema as written, and the annotations and output schema every tool of
/// its kind carries.
fn listing_bytes(endpoint: &Endpoint, schema: &serde_json::Map<String, Value>) -> usize {
    const ANNOTATIONS: usize = 120;
    const OUTPUT_SCHEMA: usize = 560;
    let output = match endpoint.result {
        super::ResultKind::Object => OUTPUT_SCHEMA,
        _ => 0,
    };
    endpoint.tool.len()
        + endpoint.title.len()
        + endpoint.description.len()
        + endpoint.deprecation.as_ref().map_or(0, String::len)
        + serde_json::to_string(schema).map_or(0, |s| s.len())
        + ANNOTATIONS
        + output
}
