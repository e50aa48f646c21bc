//! Checks a call's arguments against the endpoint's schema before anything
//! else looks at them; errors name the field and what was expected.

use serde_json::{Map, Value};

use super::model::Endpoint;

/// Why a call's arguments were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid argument `{field}`: {expected}")]
pub struct ArgumentError {
    /// The argument at fault (a JSON pointer below the top level, e.g.
    /// `rules/0/action`), or `arguments` for the object as a whole.
    pub field: String,
    pub expected: String,
}

impl ArgumentError {
    pub fn new(field: impl Into<String>, expected: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            expected: expected.into(),
        }
    }
}

/// Validates `args` for `endpoint`: the JSON Schema, then the rules a schema
/// cannot say without confusing MCP clients (exactly one of several fields).
pub(super) fn validate(
    endpoint: &Endpoint,
    validator: &jsonschema::Validator,
    args: &Map<String, Value>,
) -> Result<(), ArgumentError> {
    let instance = Value::Object(args.clone());
    if let Some(error) = validator.iter_errors(&instance).next() {
        return Err(describe(&error));
    }
    if !endpoint.exactly_one_of.is_empty() {
        let given: Vec<&str> = endpoint
            .exactly_one_of
            .iter()
            .filter(|name| args.contains_key(name.as_str()))
            .map(String::as_str)
            .collect();
        if given.len() != 1 {
            return Err(ArgumentError::new(
                endpoint.exactly_one_of.join("|"),
                format!(
                    "exactly one of {} is required, got {}",
                    endpoint.exactly_one_of.join(", "),
                    if given.is_empty() {
                        "none".to_string()
                    } else {
                        given.join(", ")
                    }
                ),
            ));
        }
    }
    Ok(())
}

/// Turns a schema error into field + expectation without echoing the value
/// (it may be huge or secret).
fn describe(error: &jsonschema::ValidationError<'_>) -> ArgumentError {
    use jsonschema::error::ValidationErrorKind as Kind;
    let path = error
        .instance_path()
        .as_str()
        .trim_start_matches('/')
        .to_string();
    let field = if path.is_empty() {
        "arguments".to_string()
    } else {
        crate::text::clip(&path, 64)
    };
    let expected = match error.kind() {
        Kind::Required { property } => {
            let name = property.as_str().unwrap_or("?");
            return ArgumentError::new(below(&path, name), "is required but missing");
        }
        Kind::AdditionalProperties { unexpected } => {
            let name = unexpected.first().map_or("?", String::as_str);
            return ArgumentError::new(
                below(&path, &crate::text::clip(name, 64)),
                "is not an accepted argument",
            );
        }
        _ => error.masked_with("the value").to_string(),
    };
    ArgumentError::new(field, expected)
}

/// `name` below the JSON pointer `path` (top level when `path` is empty).
fn below(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{}/{name}", crate::text::clip(path, 64))
    }
}
