//! Checks between a catalog's endpoints, once all are read: a lookup or
//! `current` read names a GET tool whose path arguments the endpoint has,
//! an undo names a write, summaries and multipart parts name arguments.

use std::path::PathBuf;

use super::error::CatalogError;
use super::loader::FileContext;
use super::model::{Access, Endpoint, Method, Part};

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
pub(super) fn check(
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
