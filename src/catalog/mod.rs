//! The endpoint catalog: one TOML file per capability group describing each
//! Cloudflare endpoint flaregate exposes. Adding an endpoint is a TOML edit.

mod arguments;
mod error;
mod forms;
pub mod import;
mod links;
mod loader;
mod model;
mod params;
mod schema;
mod undo;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

pub use arguments::ArgumentError;
pub use error::CatalogError;
pub use forms::{Canonical, Form};
pub use loader::{load_sources, read_dir};
pub use model::*;
pub use schema::DRY_RUN;
pub use undo::{Made, Restore};

/// The catalog shipped with flaregate (catalog/*.toml at build time), for
/// when no catalog folder is at hand (`serve --sandbox` from anywhere).
pub fn builtin() -> Catalog {
    load_sources(&builtin_sources()).expect("the shipped catalog is checked by the test suite")
}

/// The shipped catalog's files, as (name, text).
pub fn builtin_sources() -> Vec<(std::path::PathBuf, String)> {
    let files = [
        ("accounts.toml", include_str!("../../catalog/accounts.toml")),
        ("alerts.toml", include_str!("../../catalog/alerts.toml")),
        (
            "analytics.toml",
            include_str!("../../catalog/analytics.toml"),
        ),
        ("cache.toml", include_str!("../../catalog/cache.toml")),
        ("dns.toml", include_str!("../../catalog/dns.toml")),
        ("firewall.toml", include_str!("../../catalog/firewall.toml")),
        (
            "load_balancers.toml",
            include_str!("../../catalog/load_balancers.toml"),
        ),
        (
            "page_rules.toml",
            include_str!("../../catalog/page_rules.toml"),
        ),
        ("r2.toml", include_str!("../../catalog/r2.toml")),
        ("ssl.toml", include_str!("../../catalog/ssl.toml")),
        ("workers.toml", include_str!("../../catalog/workers.toml")),
        ("zones.toml", include_str!("../../catalog/zones.toml")),
    ];
    files
        .iter()
        .map(|(name, text)| (Path::new("catalog (built in)").join(name), text.to_string()))
        .collect()
}

/// Every endpoint of the catalog, indexed by tool name, with each tool's
/// argument validator compiled on its first call: a large catalog loads
/// fast and only pays for the tools that are used.
#[derive(Debug, Clone)]
pub struct Catalog {
    groups: Vec<Group>,
    endpoints: Vec<Arc<Endpoint>>,
    validators: Arc<[OnceLock<Compiled>]>,
    by_tool: HashMap<String, usize>,
}

/// A tool's compiled validator, or why its schema does not compile.
type Compiled = Result<jsonschema::Validator, String>;

impl Catalog {
    /// Loads and validates every `*.toml` file in `dir`.
    pub fn load(dir: &Path) -> Result<Self, CatalogError> {
        loader::load_dir(dir)
    }

    fn new(groups: Vec<Group>, endpoints: Vec<Endpoint>) -> Self {
        let validators = endpoints.iter().map(|_| OnceLock::new()).collect();
        let by_tool = endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| (e.tool.clone(), i))
            .collect();
        Self {
            groups,
            endpoints: endpoints.into_iter().map(Arc::new).collect(),
            validators,
            by_tool,
        }
    }

    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.id == id)
    }

    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }

    /// The endpoint behind an MCP tool name.
    pub fn endpoint(&self, tool: &str) -> Option<&Arc<Endpoint>> {
        self.by_tool.get(tool).map(|&i| &self.endpoints[i])
    }

    /// The GET that fetches what `endpoint` changes, for a preview: the
    /// catalog's `current`, else its lookup, else a GET of the same path
    /// (not for a POST: the GET of a POST's path lists what it adds to).
    pub fn reader_of(&self, endpoint: &Endpoint) -> Option<&Endpoint> {
        let named = endpoint
            .current
            .as_deref()
            .or(endpoint.lookup.as_ref().map(|l| l.tool.as_str()));
        match named {
            Some(tool) => self.endpoint(tool).map(|e| &**e),
            None if endpoint.method == Method::Post => None,
            None => self
                .endpoints
                .iter()
                .find(|e| e.method == Method::Get && e.path.raw == endpoint.path.raw)
                .map(|e| &**e),
        }
    }

    /// The position of `tool` in [`Catalog::endpoints`], for per-tool tables.
    pub fn index_of(&self, tool: &str) -> Option<usize> {
        self.by_tool.get(tool).copied()
    }

    /// The endpoints of one capability group.
    pub fn group_endpoints<'a>(
        &'a self,
        group: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Endpoint>> {
        self.endpoints.iter().filter(move |e| e.group == group)
    }

    /// Checks a call's arguments against the tool's schema; the error names
    /// the field and what was expected. Unknown tools are the caller's
    /// concern (they never reach here).
    pub fn validate_arguments(
        &self,
        tool: &str,
        args: &Map<String, Value>,
    ) -> Result<(), ArgumentError> {
        let &i = self
            .by_tool
            .get(tool)
            .ok_or_else(|| ArgumentError::new("tool", "an existing tool name"))?;
        let validator = self.validator(i).map_err(|problem| {
            // Fail closed: arguments that cannot be checked are not sent.
            ArgumentError::new("arguments", format!("checkable ones: {problem}"))
        })?;
        arguments::validate(&self.endpoints[i], validator, args)
    }

    fn validator(&self, index: usize) -> Result<&jsonschema::Validator, &str> {
        self.validators[index]
            .get_or_init(|| {
                let schema = Value::Object((*self.endpoints[index].input_schema).clone());
                jsonschema::validator_for(&schema)
                    .map_err(|e| format!("the catalog's schema of this tool does not compile: {e}"))
            })
            .as_ref()
            .map_err(String::as_str)
    }

    /// Compiles every tool's validator now (`flaregate check`, the import):
    /// the first schema that does not compile, by tool.
    pub fn compile_all(&self) -> Result<(), UncompiledSchema> {
        for (index, endpoint) in self.endpoints.iter().enumerate() {
            self.validator(index).map_err(|problem| UncompiledSchema {
                tool: endpoint.tool.clone(),
                problem: problem.to_string(),
            })?;
        }
        Ok(())
    }
}

/// A tool whose argument schema does not compile into a validator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{tool}: {problem}")]
pub struct UncompiledSchema {
    pub tool: String,
    pub problem: String,
}
