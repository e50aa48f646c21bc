//! Turns an endpoint and its arguments into a request, with no I/O: path
//! values are checked and percent-encoded, query values flattened, body
//! fields placed (dotted keys nest), multipart parts assembled. Anything
//! that could change the request's target is refused here.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value};

use super::error::CloudflareError;
use crate::catalog::{Endpoint, Location, Param, Part, Segment};

/// Bytes left as they are in a path segment: RFC 3986 unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A fully built request, kept as data so a retry can rebuild the body.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedRequest {
    pub method: crate::catalog::Method,
    /// The path below the base URL, percent-encoded, e.g. `/zones/0a…/dns_records`.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Body,
    /// The endpoint's own quota, when it has one (not the REST budget).
    pub quota: Option<crate::catalog::Quota>,
}

/// What travels in the request body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    None,
    Json(Value),
    /// A multipart form of fields, in parameter order.
    Form(Vec<FormField>),
    /// A multipart upload: the `metadata` JSON part and one module, laid
    /// out as the catalog says.
    Module {
        metadata: Value,
        module: String,
        layout: crate::catalog::Multipart,
    },
}

/// One field of a multipart form.
#[derive(Debug, Clone, PartialEq)]
pub struct FormField {
    /// The field's name on the wire.
    pub name: String,
    pub text: String,
    /// Sent as a file (named after the field), for `format: binary`.
    pub file: bool,
}

fn invalid(field: &str, reason: impl Into<String>) -> CloudflareError {
    CloudflareError::InvalidArgument {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// Builds the request for `endpoint` from `args`.
pub fn build(
    endpoint: &Endpoint,
    args: &Map<String, Value>,
) -> Result<PreparedRequest, CloudflareError> {
    for name in args.keys() {
        if endpoint.param(name).is_none() {
            return Err(invalid(name, "is not an argument of this tool"));
        }
    }
    let mut path = String::with_capacity(endpoint.path.raw.len() + 64);
    for segment in &endpoint.path.segments {
        match segment {
            Segment::Literal(text) => path.push_str(text),
            Segment::Param(name) => {
                let param = endpoint
                    .param(name)
                    .expect("the loader checked every placeholder");
                let value = args
                    .get(name)
                    .ok_or_else(|| invalid(name, "is required but missing"))?;
                path.extend(utf8_percent_encode(
                    check_path_value(param, value)?,
                    SEGMENT,
                ));
            }
        }
    }
    check_sent_as_built(&path)?;

    let mut query = Vec::new();
    let mut json = Map::new();
    let mut metadata = Map::new();
    let mut module = None;
    let mut payload = None;
    let mut form = Vec::new();
    for param in &endpoint.params {
        let Some(value) = args.get(&param.name) else {
            if param.required && param.location != Location::Path {
                return Err(invalid(&param.name, "is required but missing"));
            }
            continue;
        };
        match param.location {
            Location::Path => {}
            Location::Query => match value {
                // A list repeats its key (OpenAPI's form style, exploded).
                Value::Array(items) => {
                    for item in items {
                        query.push((param.key.clone(), query_value(param, item)?));
                    }
                }
                single => query.push((param.key.clone(), query_value(param, single)?)),
            },
            Location::Body => insert_dotted(&mut json, &param.key, value.clone()),
            Location::Payload => payload = Some(value.clone()),
            Location::Multipart => match param.part {
                Some(Part::Field) => form.push(FormField {
                    name: param.key.clone(),
                    text: match value {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    },
                    file: endpoint
                        .param_schema(&param.name)
                        .and_then(|s| s.get("format"))
                        .is_some_and(|f| f == "binary"),
                }),
                Some(Part::Module) => {
                    let source = value
                        .as_str()
                        .ok_or_else(|| invalid(&param.name, "must be a string"))?;
                    module = Some(source.to_string());
                }
                _ => {
                    metadata.insert(param.key.clone(), value.clone());
                }
            },
        }
    }

    let body = if let (Some(module), Some(layout)) = (module, &endpoint.multipart) {
        metadata.insert(
            layout.main_module_field.clone(),
            Value::from(layout.module_file.clone()),
        );
        Body::Module {
            metadata: Value::Object(metadata),
            module,
            layout: layout.clone(),
        }
    } else if endpoint.params.iter().any(|p| p.part == Some(Part::Field)) {
        Body::Form(form)
    } else if let Some(payload) = payload {
        Body::Json(payload)
    } else if endpoint.params.iter().any(|p| p.location == Location::Body) {
        Body::Json(Value::Object(json))
    } else {
        Body::None
    };
    Ok(PreparedRequest {
        method: endpoint.method,
        path,
        query,
        body,
        quota: endpoint.quota,
    })
}

/// The path must reach Cloudflare as it was built (and logged): a URL
/// parser that would rewrite it (a dot segment, say) would send another.
fn check_sent_as_built(path: &str) -> Result<(), CloudflareError> {
    let parsed = url::Url::parse(&format!("http://cloudflare.invalid{path}"))
        .map_err(|e| invalid("path", format!("does not read as a URL path: {e}")))?;
    if parsed.path() != path {
        return Err(invalid(
            "path",
            format!("would be sent as {} rather than as built", parsed.path()),
        ));
    }
    Ok(())
}

/// A path value must be a string that cannot step out of its segment, and
/// must match the parameter's pattern.
fn check_path_value<'a>(param: &Param, value: &'a Value) -> Result<&'a str, CloudflareError> {
    let name = &param.name;
    let text = value
        .as_str()
        .ok_or_else(|| invalid(name, "must be a string"))?;
    if text.is_empty() {
        return Err(invalid(name, "must not be empty"));
    }
    if let Some(bad) = text
        .chars()
        .find(|c| matches!(c, '/' | '\\' | '?' | '#' | '%') || c.is_control())
    {
        let shown = if bad.is_control() {
            format!("U+{:04X}", bad as u32)
        } else {
            bad.to_string()
        };
        return Err(invalid(name, format!("must not contain {shown}")));
    }
    if text.contains("..") {
        return Err(invalid(name, "must not contain .."));
    }
    if text == "." {
        // A URL parser drops a `.` segment: the request would name the
        // parent path.
        return Err(invalid(name, "must not be ."));
    }
    if let Some(pattern) = &param.pattern
        && !pattern.is_match(text)
    {
        return Err(invalid(name, format!("must match {}", pattern.as_str())));
    }
    Ok(text)
}

/// Query values are scalars (a list is sent as one key per item); objects
/// have no agreed encoding.
fn query_value(param: &Param, value: &Value) -> Result<String, CloudflareError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(invalid(&param.name, "must be a string, number or boolean")),
    }
}

/// Puts `value` at `key` in `object`, where `a.b` means `{"a": {"b": …}}`.
fn insert_dotted(object: &mut Map<String, Value>, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            object.insert(key.to_string(), value);
        }
        Some((head, rest)) => {
            let child = object
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Value::Object(child) = child {
                insert_dotted(child, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::json;

    use super::*;

    /// A delete whose path value may hold dots (a hostname, say).
    const CATALOG: &str = r#"
[group]
id = "hosts"
title = "Hosts"
description = "Hostnames."

[[endpoint]]
tool = "delete_host"
title = "Delete a host"
method = "DELETE"
path = "/zones/{zone_id}/hosts/{hostname}"
access = "write"
permission = "SSL and Certificates Write"
scope = "zone"
result = "object"
description = "Delete a host. A write here removes it."
annotations = { read_only = false, destructive = true, idempotent = true }

[[endpoint.param]]
name = "zone_id"
in = "path"
type = "string"
required = true
pattern = "^[0-9a-f]{32}$"
description = "The zone."

[[endpoint.param]]
name = "hostname"
in = "path"
type = "string"
required = true
pattern = "^[a-z0-9.-]{1,253}$"
description = "The host."
"#;

    #[test]
    fn a_path_value_a_url_parser_would_rewrite_is_refused() {
        let catalog =
            crate::catalog::load_sources(&[(PathBuf::from("hosts.toml"), CATALOG.into())])
                .expect("loads");
        let endpoint = catalog.endpoint("delete_host").expect("tool");
        let zone = "023e105f4ecef8ad9ca31a8372d0c353";
        let args = |host: &str| {
            json!({"zone_id": zone, "hostname": host})
                .as_object()
                .cloned()
                .expect("object")
        };
        let sent = build(endpoint, &args("app.example.com")).expect("a hostname");
        assert_eq!(sent.path, format!("/zones/{zone}/hosts/app.example.com"));
        // `.` would send DELETE /zones/{zone}/hosts/ — the collection.
        for rewritten in [".", ".."] {
            let refused = build(endpoint, &args(rewritten)).expect_err(rewritten);
            assert!(
                refused.to_string().contains("hostname"),
                "{rewritten}: {refused}"
            );
        }
        assert!(check_sent_as_built("/zones/a/hosts/./x").is_err());
        assert!(check_sent_as_built("/zones/a/hosts/x").is_ok());
    }
}
