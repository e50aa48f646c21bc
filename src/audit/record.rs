//! What the audit log records about one call, with secrets and Worker code
//! kept out of it.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::catalog::{Endpoint, Part};

/// The decision half of a row, written before any upstream call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    /// RFC 3339, UTC.
    pub ts: String,
    pub ts_unix_ms: i64,
    pub agent: String,
    pub tool: String,
    pub method: String,
    pub path: String,
    /// "zone example.com (023e…)" or "account Example Corp (a1b2…)".
    pub target: String,
    /// The arguments, redacted, as JSON.
    pub args: String,
    pub allowed: bool,
    pub reason: String,
    pub rule: String,
    /// A sentence: "dns-editor was denied delete_dns_record on example.com: …".
    pub summary: String,
}

/// The outcome half, written after the upstream call (or at once for a
/// denial).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub status: Option<u16>,
    pub cf_codes: Vec<i64>,
    pub error: Option<String>,
    pub duration_ms: Option<u64>,
    /// A sentence: "Cloudflare answered 200 in 142 ms."
    pub text: String,
}

/// Argument names whose values are never stored.
const SECRET_NAMES: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "authorization",
    "credential",
    "private",
    "api_key",
    "apikey",
];

/// Strings longer than this are stored as a prefix, size and digest.
const MAX_STORED: usize = 1024;

/// The arguments as stored: secrets masked, Worker code as size and digest.
pub fn redact(endpoint: Option<&Endpoint>, args: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for (name, value) in args {
        let is_code = endpoint
            .and_then(|e| e.param(name))
            .is_some_and(|p| p.part == Some(Part::Module));
        let stored = match value {
            Value::String(code) if is_code => digest(code),
            _ => redact_value(name, value),
        };
        out.insert(name.clone(), stored);
    }
    Value::Object(out)
}

fn redact_value(name: &str, value: &Value) -> Value {
    let lowered = name.to_ascii_lowercase();
    if SECRET_NAMES.iter().any(|s| lowered.contains(s)) {
        return json!("[redacted]");
    }
    match value {
        Value::String(s) if looks_secret(s) => json!("[redacted]"),
        Value::String(s) if s.len() > MAX_STORED => {
            let mut cut = MAX_STORED;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            json!({"prefix": &s[..cut], "bytes": s.len(), "sha256": hex::encode(Sha256::digest(s.as_bytes()))})
        }
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), redact_value(k, v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| redact_value(name, v)).collect()),
        other => other.clone(),
    }
}

/// Values that are credentials whatever their argument's name.
fn looks_secret(text: &str) -> bool {
    let t = text.trim_start();
    t.starts_with("Bearer ") || t.starts_with("fgk_") || t.contains("PRIVATE KEY-----")
}

/// Worker code is recorded by size and SHA-256, never stored.
fn digest(code: &str) -> Value {
    json!({"bytes": code.len(), "sha256": hex::encode(Sha256::digest(code.as_bytes()))})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_long_values_shortened() {
        let args = json!({
            "name": "www", "api_token": "abc", "data": {"password": "p", "value": "Bearer xyz"},
            "content": "x".repeat(5000)
        });
        let stored = redact(None, args.as_object().expect("object"));
        assert_eq!(stored["name"], "www");
        assert_eq!(stored["api_token"], "[redacted]");
        assert_eq!(stored["data"]["password"], "[redacted]");
        assert_eq!(stored["data"]["value"], "[redacted]");
        assert_eq!(stored["content"]["bytes"], 5000);
        assert_eq!(
            stored["content"]["prefix"].as_str().map(str::len),
            Some(MAX_STORED)
        );
    }
}
