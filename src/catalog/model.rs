//! The catalog's data model: what one Cloudflare endpoint is, as every other
//! module sees it. Built once by the loader; read-only afterwards.

use std::fmt;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::forms::Form;

/// A capability group (one catalog file, or several that extend it): the
/// unit a policy grants.
#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub title: String,
    pub description: String,
    /// Its tools are enabled only one by one (`tools.NAME = on`), never by
    /// a group or wildcard grant: for endpoints whose token permission is
    /// not known (fail closed).
    pub explicit: bool,
}

/// Whether an endpoint only reads or also changes state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    Write,
}

/// What a call is scoped to, for policy scope checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Zone,
    Account,
}

/// Whose objects an endpoint reaches: a zone's, an account's, the token
/// owner's (`/user/…`) or nobody's in particular (`/ips`, Radar). Policies
/// scope the first two by zone and account; the last two have nothing to
/// scope, so only a grant by tool name enables them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reach {
    Zone,
    Account,
    User,
    Global,
}

impl Reach {
    /// The policy scope that applies, for zone and account endpoints.
    pub fn scope(self) -> Option<Scope> {
        match self {
            Reach::Zone => Some(Scope::Zone),
            Reach::Account => Some(Scope::Account),
            Reach::User | Reach::Global => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reach::Zone => "zone",
            Reach::Account => "account",
            Reach::User => "user",
            Reach::Global => "global",
        }
    }
}

/// The HTTP methods the Cloudflare API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    /// The method an HTTP method name (any case) names, if flaregate sends it.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Method::Get,
            Method::Post,
            Method::Put,
            Method::Patch,
            Method::Delete,
        ]
        .into_iter()
        .find(|m| m.as_str().eq_ignore_ascii_case(name))
    }

    /// Whether repeating the request has the same effect as sending it once
    /// (RFC 9110), which is what makes a retry safe.
    pub fn is_idempotent(self) -> bool {
        matches!(self, Method::Get | Method::Put | Method::Delete)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a list endpoint pages through its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pagination {
    #[default]
    None,
    Page,
    Cursor,
}

/// What Cloudflare sends back: the JSON envelope, or raw text (Worker code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResponseKind {
    #[default]
    Json,
    Text,
    /// A GraphQL answer: `{"data": …, "errors": […]}`, not the envelope.
    Graphql,
}

/// How a GraphQL endpoint's query names what it reads (`[endpoint.graphql]`):
/// the query is parsed and every zone and account it reaches must be named
/// by a filter on their tags, all inside the agent's scope.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Graphql {
    /// The argument holding the query, and the one holding its variables.
    pub query: String,
    pub variables: String,
    /// The one field a query may select at the top (besides introspection).
    pub root: String,
    /// Under it, the fields that reach zones and accounts.
    pub zones: Tagged,
    pub accounts: Tagged,
    /// Filter keys that bound a dataset's time (`datetime` for
    /// `datetime_geq`, `datetime_lt`, …), for `analytics_max_days`.
    pub time_keys: Vec<String>,
    /// Bounds on a query: its size in bytes, its depth, its fields.
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_fields: usize,
    /// Working queries shown to an agent, its own zone or account put in
    /// for `{zone}` / `{account}`, and `{today}` / `{yesterday}` (UTC).
    #[serde(default, rename = "example")]
    pub examples: Vec<QueryExample>,
}

/// One example query and what it asks, in words.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QueryExample {
    pub says: String,
    pub query: String,
}

/// A field that reaches zones (or accounts), and the filter keys naming
/// them: one tag (`zoneTag`) or a list (`zoneTag_in`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Tagged {
    pub field: String,
    pub filter: String,
    pub tag: String,
    pub tags: String,
}

/// An endpoint's own Cloudflare quota, apart from the REST budget (the
/// GraphQL Analytics API allows 320 queries per five minutes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    pub requests: u32,
    pub per_seconds: u64,
}

/// The JSON shape of the envelope's `result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultKind {
    Object,
    Array,
    Null,
}

/// Where an argument goes in the HTTP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    Path,
    Query,
    Body,
    /// The whole JSON body (for bodies that are not an object of fields:
    /// an array, or one of several shapes).
    Payload,
    Multipart,
}

/// Which part of a multipart upload a `multipart` argument fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    /// A field of the JSON `metadata` part.
    Metadata,
    /// The source of the main ES module.
    Module,
    /// A form field of its own: text as it is, numbers and booleans as
    /// text, objects and lists as JSON; a `format = "binary"` string is
    /// sent as a file of that name.
    Field,
}

/// MCP tool annotations (hints for clients, never trusted for security).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Annotations {
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
}

/// One argument of a tool.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub location: Location,
    /// The name on the wire; dotted for nested body fields (`account.id`).
    pub key: String,
    pub required: bool,
    pub part: Option<Part>,
    /// The argument's JSON Schema while the loader builds the endpoint;
    /// empty afterwards: it lives in the endpoint's input schema, once
    /// (see [`Endpoint::param_schema`]).
    pub schema: Map<String, Value>,
    /// The compiled `pattern`, checked again on path values before any I/O.
    pub pattern: Option<Regex>,
    /// How Cloudflare reads the value, when it reads it in a form of its own.
    pub form: Option<Form>,
    /// Fields of this (object) argument that, when present, decide the
    /// record's name instead of `name` (SRV `data`): refused for an agent
    /// whose names are constrained.
    pub name_fields: Vec<String>,
    /// The zone or account this argument names, if it names one (`names`):
    /// judged against the agent's scope like the path's.
    pub names: Option<Names>,
}

/// How an argument names a zone or account (`names = "…"` in the catalog).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Names {
    /// A zone by its 32-hex id.
    ZoneId,
    /// A zone by its name (`example.com`).
    ZoneName,
    /// A hostname in a zone (`app.example.com` is in example.com).
    Hostname,
    /// An account by its 32-hex id.
    AccountId,
}

/// A path template such as `/zones/{zone_id}/dns_records`.
#[derive(Debug, Clone)]
pub struct PathTemplate {
    pub raw: String,
    pub segments: Vec<Segment>,
}

/// One piece of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Param(String),
}

/// Why a catalog path template is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadPath {
    #[error("must start with '/'")]
    NoLeadingSlash,
    #[error("unclosed '{{' in {0}")]
    Unclosed(String),
    #[error("bad placeholder {{{0}}}")]
    Placeholder(String),
    #[error("stray '}}' in {0}")]
    Stray(String),
}

impl PathTemplate {
    /// Splits a template into literal text and `{name}` placeholders.
    pub fn parse(raw: &str) -> Result<Self, BadPath> {
        if !raw.starts_with('/') {
            return Err(BadPath::NoLeadingSlash);
        }
        let mut segments = Vec::new();
        let mut rest = raw;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                segments.push(Segment::Literal(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| BadPath::Unclosed(raw.to_string()))?
                + open;
            let name = &rest[open + 1..close];
            let well_formed = name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !well_formed {
                return Err(BadPath::Placeholder(name.to_string()));
            }
            segments.push(Segment::Param(name.to_string()));
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return Err(BadPath::Stray(raw.to_string()));
        }
        if !rest.is_empty() {
            segments.push(Segment::Literal(rest.to_string()));
        }
        Ok(Self {
            raw: raw.to_string(),
            segments,
        })
    }

    /// The placeholder a path of the shape `/zones/{…}/…` or
    /// `/accounts/{…}/…` holds the zone's or account's id in, and which.
    pub fn scope_placeholder(&self) -> Option<(Scope, &str)> {
        let [Segment::Literal(first), Segment::Param(name), ..] = self.segments.as_slice() else {
            return None;
        };
        match first.as_str() {
            "/zones/" => Some((Scope::Zone, name)),
            "/accounts/" => Some((Scope::Account, name)),
            _ => None,
        }
    }

    /// The placeholder names, in order.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Param(name) => Some(name.as_str()),
            Segment::Literal(_) => None,
        })
    }
}

/// The read that fetches the object a call acts on (the DNS record an
/// update names only by id), so constraints can check its current fields
/// and calls cannot change fields that must not change.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    /// A GET tool whose path arguments this endpoint also has.
    pub tool: String,
    /// Fields of the fetched object that policy constraints may name.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Arguments a call may not change from the object's current value.
    #[serde(default)]
    pub immutable: Vec<String>,
}

/// A phrase for the audit log, used when the call gives `arg` (true, or a
/// non-empty list or text). `{n}` is the number of items, `{s}` / `{es}`
/// the plural ending when there are several: "purge {n} file{s} from the
/// cache".
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Phrase {
    pub arg: String,
    pub says: String,
}

/// How an upload with a `module` part is laid out (Workers): the name and
/// type of the module's part, and the metadata field that names it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Multipart {
    /// The module's part and file name, e.g. "worker.js".
    pub module_file: String,
    /// Its content type, e.g. "application/javascript+module".
    pub module_type: String,
    /// The metadata field that names the module, e.g. "main_module".
    pub main_module_field: String,
}

/// How an undo puts back what this endpoint changed, where the path's
/// shape does not say (see [`super::Catalog::undo_of`] for the defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Undo {
    /// The tool that puts the prior state back.
    pub tool: Option<String>,
    /// The argument that takes the content of a text read (Worker code).
    pub text: Option<String>,
    /// Why this write cannot be undone (a zone removed, a cache purged).
    pub never: Option<String>,
}

/// One Cloudflare API endpoint, exposed as one MCP tool.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub tool: String,
    pub title: String,
    pub group: String,
    pub method: Method,
    pub path: PathTemplate,
    pub access: Access,
    pub permission: String,
    pub reach: Reach,
    pub description: String,
    pub params: Vec<Param>,
    pub annotations: Annotations,
    pub pagination: Pagination,
    pub response: ResponseKind,
    pub result: ResultKind,
    /// For results shaped `{field: [...]}` (R2), the field holding the items.
    pub items_field: Option<String>,
    /// Body arguments of which exactly one must be given (purge_cache).
    pub exactly_one_of: Vec<String>,
    pub deprecation: Option<String>,
    /// The write `check --live` sends to learn whether the token holds its
    /// permission without changing anything: a DELETE of an object that
    /// cannot exist (`probe = true`; 404 = held, 403 = lacking).
    pub probe: bool,
    /// Its body or query may name zones or accounts in a way flaregate
    /// cannot read (nested, or in a free-form body): a group grant does not
    /// give it to an agent whose zones or accounts are limited
    /// (`opaque_scope = true`).
    pub opaque_scope: bool,
    /// It acts on a whole zone's (or account's) worth of objects at once —
    /// an import, export, scan or batch — so no constraint on one object's
    /// argument can be checked on it (`bulk = true`).
    pub bulk: bool,
    /// How to fetch the object this call acts on, so policies can check it.
    pub lookup: Option<Lookup>,
    /// A GraphQL endpoint: how its query names zones and accounts.
    pub graphql: Option<Graphql>,
    /// Its own quota at Cloudflare, apart from the REST budget.
    pub quota: Option<Quota>,
    /// The argument naming the call's zone or account (see [`Endpoint::scope_param`]).
    pub scope_param: Option<String>,
    /// The GET that fetches what this call changes, shown by a preview
    /// (see [`super::Catalog::reader_of`] for the defaults).
    pub current: Option<String>,
    /// The layout of a multipart upload, for endpoints with a module part.
    pub multipart: Option<Multipart>,
    /// How an undo restores what this write changed, beyond the defaults.
    pub undo: Undo,
    /// How the audit log says what an allowed call does, by the argument it
    /// gives; the first whose argument is given speaks (else the title).
    pub summary: Vec<Phrase>,
    /// The JSON Schema of the tool's arguments (the MCP inputSchema),
    /// shared with the tool table.
    pub input_schema: std::sync::Arc<Map<String, Value>>,
    /// About what the tool takes in a `tools/list` answer (name, title,
    /// description, schemas), in bytes: what a typed tool costs a model's
    /// context, so `tool_mode = "auto"` can switch to discovery by size.
    pub listing_bytes: usize,
}

impl Endpoint {
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// The JSON Schema of argument `name`, as published.
    pub fn param_schema(&self, name: &str) -> Option<&Map<String, Value>> {
        self.input_schema.get("properties")?.get(name)?.as_object()
    }

    /// The zone or account scope policies check, if the endpoint has one.
    pub fn scope(&self) -> Option<Scope> {
        self.reach.scope()
    }

    /// The argument that names this call's zone or account, if it has one:
    /// the placeholder after `/zones/` or `/accounts/` in the path, or the
    /// one the catalog names (`scope_param`, for a body field).
    pub fn scope_param(&self) -> Option<&Param> {
        self.scope_param
            .as_deref()
            .and_then(|name| self.param(name))
    }
}
