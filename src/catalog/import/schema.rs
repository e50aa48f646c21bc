//! OpenAPI 3.0 schemas to the JSON Schema a tool publishes and validates
//! against: every `$ref` inlined, `nullable` and boolean
//! `exclusiveMinimum`/`exclusiveMaximum` rewritten, what only documents the
//! response (`readOnly` fields, examples, `x-` extensions) dropped.

use serde_json::{Map, Value};

/// How deep `$ref`s are followed inside one schema; past it (or on a
/// cycle) a value is accepted as is and Cloudflare judges it.
const MAX_DEPTH: usize = 12;
/// Nested descriptions are clipped: the top level says what matters, and
/// every byte is paid for in each agent's context.
const NESTED_DESCRIPTION: usize = 240;

/// Resolves references against one OpenAPI document.
pub(super) struct Converter<'a> {
    root: &'a Value,
    /// Patterns dropped because Rust's regex engine cannot compile them.
    pub dropped_patterns: usize,
}

impl<'a> Converter<'a> {
    pub(super) fn new(root: &'a Value) -> Self {
        Self {
            root,
            dropped_patterns: 0,
        }
    }

    /// The object a local `$ref` ("#/components/…") points to.
    pub(super) fn resolve(&self, reference: &str) -> Option<&'a Value> {
        let pointer = reference.strip_prefix('#')?;
        self.root.pointer(pointer)
    }

    /// Follows `$ref`s of a non-schema object (a parameter, a request body).
    pub(super) fn follow(&self, value: &'a Value) -> Option<&'a Value> {
        let mut value = value;
        for _ in 0..MAX_DEPTH {
            match value.get("$ref").and_then(Value::as_str) {
                Some(reference) => value = self.resolve(reference)?,
                None => return Some(value),
            }
        }
        None
    }

    /// The JSON Schema for an OpenAPI schema, in values TOML can hold.
    pub(super) fn convert(&mut self, schema: &Value) -> Map<String, Value> {
        let mut converted = Value::Object(self.convert_at(schema, 0, &mut Vec::new()));
        tomlable(&mut converted);
        match converted {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    fn convert_at(
        &mut self,
        schema: &Value,
        depth: usize,
        seen: &mut Vec<String>,
    ) -> Map<String, Value> {
        let Value::Object(source) = schema else {
            return Map::new();
        };
        if let Some(reference) = source.get("$ref").and_then(Value::as_str) {
            let target = self
                .resolve(reference)
                .filter(|_| depth < MAX_DEPTH && !seen.iter().any(|r| r == reference));
            let Some(target) = target else {
                return any_value();
            };
            seen.push(reference.to_string());
            let mut converted = self.convert_at(target, depth + 1, seen);
            seen.pop();
            // Siblings of a $ref (a description) win over the target's.
            if let Some(Value::String(text)) = source.get("description") {
                converted.insert("description".into(), describe(text, depth));
            }
            return converted;
        }
        let mut out = Map::new();
        for (key, value) in source {
            match key.as_str() {
                "type" | "enum" | "const" | "format" | "minimum" | "maximum" | "minLength"
                | "maxLength" | "minItems" | "maxItems" | "uniqueItems" | "minProperties"
                | "maxProperties" | "multipleOf" | "deprecated" => {
                    out.insert(key.clone(), value.clone());
                }
                "default" if !value.is_null() => {
                    out.insert(key.clone(), value.clone());
                }
                "description" => {
                    if let Value::String(text) = value {
                        out.insert(key.clone(), describe(text, depth));
                    }
                }
                "pattern" => {
                    if let Value::String(pattern) = value {
                        if regex::Regex::new(pattern).is_ok() {
                            out.insert(key.clone(), value.clone());
                        } else {
                            self.dropped_patterns += 1;
                        }
                    }
                }
                "required" => {
                    if let Value::Array(names) = value {
                        let names: Vec<Value> = names
                            .iter()
                            .filter(|n| !self.is_read_only(source, n))
                            .cloned()
                            .collect();
                        if !names.is_empty() {
                            out.insert(key.clone(), Value::Array(names));
                        }
                    }
                }
                "properties" | "patternProperties" => {
                    if let Value::Object(properties) = value {
                        let mut converted = Map::new();
                        for (name, property) in properties {
                            if !self.read_only(property) {
                                let schema = self.convert_at(property, depth + 1, seen);
                                converted.insert(name.clone(), Value::Object(schema));
                            }
                        }
                        out.insert(key.clone(), Value::Object(converted));
                    }
                }
                "items" | "not" => {
                    out.insert(
                        key.clone(),
                        Value::Object(self.convert_at(value, depth + 1, seen)),
                    );
                }
                "additionalProperties" => {
                    let converted = match value {
                        Value::Bool(b) => Value::Bool(*b),
                        other => Value::Object(self.convert_at(other, depth + 1, seen)),
                    };
                    out.insert(key.clone(), converted);
                }
                "allOf" | "anyOf" | "oneOf" => {
                    if let Value::Array(branches) = value {
                        let converted: Vec<Value> = branches
                            .iter()
                            .map(|b| Value::Object(self.convert_at(b, depth + 1, seen)))
                            .collect();
                        out.insert(key.clone(), Value::Array(converted));
                    }
                }
                "exclusiveMinimum" | "exclusiveMaximum" => {
                    // OpenAPI 3.0: a flag on minimum/maximum; JSON Schema: the bound.
                    let bound = if key == "exclusiveMinimum" {
                        "minimum"
                    } else {
                        "maximum"
                    };
                    match value {
                        Value::Bool(true) => {
                            if let Some(limit) = source.get(bound) {
                                out.insert(key.clone(), limit.clone());
                            }
                        }
                        Value::Number(_) => {
                            out.insert(key.clone(), value.clone());
                        }
                        _ => {}
                    }
                }
                // Documentation, examples, response-only and vendor keys.
                _ => {}
            }
        }
        for (flag, bound) in [
            ("exclusiveMinimum", "minimum"),
            ("exclusiveMaximum", "maximum"),
        ] {
            if out.get(flag).is_some_and(Value::is_number)
                && source.get(flag) == Some(&Value::Bool(true))
            {
                out.remove(bound);
            }
        }
        if source.get("nullable") == Some(&Value::Bool(true)) {
            make_nullable(&mut out);
        }
        // Nulls cannot be written in TOML; a null member only allowed null.
        if let Some(Value::Array(values)) = out.get_mut("enum") {
            values.retain(|v| !v.is_null());
            if values.is_empty() {
                out.remove("enum");
            }
        }
        if out.get("const").is_some_and(Value::is_null) {
            out.remove("const");
        }
        out
    }

    /// Whether a property schema is marked `readOnly` (directly or via its `$ref`).
    fn read_only(&self, property: &Value) -> bool {
        let mut value = property;
        for _ in 0..MAX_DEPTH {
            if value.get("readOnly") == Some(&Value::Bool(true)) {
                return true;
            }
            match value
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| self.resolve(r))
            {
                Some(target) => value = target,
                None => return false,
            }
        }
        false
    }

    fn is_read_only(&self, object: &Map<String, Value>, name: &Value) -> bool {
        name.as_str()
            .and_then(|n| object.get("properties")?.get(n))
            .is_some_and(|p| self.read_only(p))
    }
}

/// TOML has no null and no integers past i64: nulls (in defaults and
/// enums) are dropped and such integers become floats.
fn tomlable(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(tomlable);
        }
        Value::Array(items) => {
            items.retain(|v| !v.is_null());
            items.iter_mut().for_each(tomlable);
        }
        Value::Number(n) if n.is_u64() && n.as_i64().is_none() => {
            if let Some(f) = n.as_f64().and_then(serde_json::Number::from_f64) {
                *n = f;
            }
        }
        _ => {}
    }
}

/// A schema that accepts anything, for a reference too deep or circular.
fn any_value() -> Map<String, Value> {
    let mut map = Map::new();
    map.insert(
        "description".into(),
        Value::from("Any JSON value (its shape nests too deep to spell out here)."),
    );
    map
}

fn describe(text: &str, depth: usize) -> Value {
    let text = text.trim();
    if depth == 0 {
        Value::from(text)
    } else {
        Value::from(crate::text::clip(text, NESTED_DESCRIPTION))
    }
}

fn make_nullable(schema: &mut Map<String, Value>) {
    match schema.get_mut("type") {
        Some(Value::String(kind)) => {
            let kind = std::mem::take(kind);
            schema.insert("type".into(), serde_json::json!([kind, "null"]));
        }
        Some(Value::Array(kinds)) if !kinds.contains(&Value::from("null")) => {
            kinds.push(Value::from("null"));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refs_are_inlined_and_openapi_only_keywords_rewritten() {
        let root = json!({"components": {"schemas": {
            "ttl": {"type": "integer", "minimum": 1, "exclusiveMinimum": true, "example": 3600},
            "node": {"type": "object", "properties": {"next": {"$ref": "#/components/schemas/node"}}},
            "record": {"type": "object", "required": ["id", "ttl"], "properties": {
                "id": {"type": "string", "readOnly": true},
                "ttl": {"$ref": "#/components/schemas/ttl"},
                "comment": {"type": "string", "nullable": true, "x-auditable": true}
            }}
        }}});
        let mut converter = Converter::new(&root);
        let record = converter.convert(&json!({"$ref": "#/components/schemas/record"}));
        assert_eq!(
            Value::Object(record),
            json!({"type": "object", "required": ["ttl"], "properties": {
                "ttl": {"type": "integer", "exclusiveMinimum": 1},
                "comment": {"type": ["string", "null"]}
            }})
        );
        // A cycle ends in "any value" instead of recursing for ever.
        let node = converter.convert(&json!({"$ref": "#/components/schemas/node"}));
        assert_eq!(node["properties"]["next"], json!(any_value()));
    }
}
