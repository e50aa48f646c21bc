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
    pub decision: Decision,
    pub reason: String,
    pub rule: String,
    /// A sentence: "dns-editor was denied delete_dns_record on example.com: …".
    pub summary: String,
    /// What flaregate fetched from Cloudflare to decide, if anything:
    /// "GET /zones/…/dns_records/… → 200 in 4 ms".
    pub lookup: String,
    /// Written while serving the built-in sandbox, not Cloudflare.
    pub sandbox: bool,
}

/// What was decided of a call: the kinds a row's `decision` column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    /// A dry run: decided and shown, never sent.
    Preview,
    /// A person approved a request for approval (the operator, on the
    /// host); the call it allows has its own row when it is made.
    Approved,
    /// A person rejected a request for approval.
    Rejected,
    /// An operator changed the policy (in the console): who, which agent's
    /// access, the old and the new.
    Policy,
    /// Cloudflare sent an alert to one of flaregate's webhooks: the alert,
    /// kept in the chain, for the agents whose scope it is in.
    Alert,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
            Decision::Preview => "preview",
            Decision::Approved => "approved",
            Decision::Rejected => "rejected",
            Decision::Policy => "policy",
            Decision::Alert => "alert",
        }
    }

    /// The decision a stored row names (anything else reads as a denial:
    /// the schema allows nothing else).
    pub fn parse(text: &str) -> Self {
        match text {
            "allow" => Decision::Allow,
            "preview" => Decision::Preview,
            "approved" => Decision::Approved,
            "rejected" => Decision::Rejected,
            "policy" => Decision::Policy,
            "alert" => Decision::Alert,
            _ => Decision::Deny,
        }
    }
}

/// What the reason of a call that undoes row `row` ends with, so the rows
/// of an undo can be found (`flaregate audit show`).
pub fn undo_note(row: i64) -> String {
    format!("(undo of row {row})")
}

/// The rule every audit row of approval `id`'s story carries (the request,
/// the decision, the call), so `flaregate audit --approval ID` finds them.
pub fn approval_rule(id: &str) -> String {
    format!("{APPROVAL_RULE}{id}")
}

/// How an approval's rule starts.
const APPROVAL_RULE: &str = "approval ";

impl CallRecord {
    /// The approval this row belongs to (stored in its own column, which
    /// `verify` checks against this hashed rule).
    pub fn approval(&self) -> Option<&str> {
        self.rule.strip_prefix(APPROVAL_RULE)
    }
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
    /// For a write with a snapshot: its answer (JSON), or for code the
    /// SHA-256 of what it sent; kept to tell a later change. Not hashed.
    pub after: Option<String>,
    /// The id of what the write created (also in `text`, which is hashed).
    pub created: Option<String>,
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

/// A stored row's arguments never take more than this many bytes, however
/// large or deep the call's arguments were: one agent cannot fill the log.
pub const MAX_ARGS_BYTES: usize = 8 * 1024;

/// Strings longer than this are stored as a prefix, size and digest.
const MAX_STRING: usize = 1024;
/// The prefix kept of a long string.
const PREFIX: usize = 256;
/// Items of a list, or fields of an object, kept; the rest are summarised.
const MAX_ITEMS: usize = 32;
/// Nesting kept; deeper values are summarised.
const MAX_DEPTH: usize = 4;
/// Argument names longer than this are cut.
const MAX_NAME: usize = 64;

/// The arguments as stored, as JSON of at most [`MAX_ARGS_BYTES`]: secrets
/// masked, Worker code by size and digest, and anything the tool does not
/// declare (every argument of an unknown tool), long strings, long lists
/// and deep objects summarised by size and SHA-256.
pub fn stored_args(endpoint: Option<&Endpoint>, args: &Map<String, Value>) -> String {
    let mut out = Map::new();
    for (index, (name, value)) in args.iter().enumerate() {
        if index == MAX_ITEMS {
            out.insert("…".into(), summary_of_rest(args.iter().skip(MAX_ITEMS)));
            break;
        }
        let param = endpoint.and_then(|e| e.param(name));
        let stored = match (param, value) {
            (None, _) => json!({ "undeclared": true, "sha256_bytes": digest_of(value) }),
            (Some(p), Value::String(code)) if p.part == Some(Part::Module) => digest(code),
            (Some(_), _) => redact_value(name, value, 0),
        };
        out.insert(crate::text::clip(name, MAX_NAME), stored);
    }
    let stored = serde_json::to_string(&out).expect("JSON values always serialise");
    if stored.len() <= MAX_ARGS_BYTES {
        return stored;
    }
    let whole = Value::Object(args.clone());
    json!({
        "too_large": true,
        "arguments": args.len(),
        "names": args.keys().take(16).map(|n| crate::text::clip(n, MAX_NAME)).collect::<Vec<_>>(),
        "sha256_bytes": digest_of(&whole),
    })
    .to_string()
}

fn redact_value(name: &str, value: &Value, depth: usize) -> Value {
    let lowered = name.to_ascii_lowercase();
    if SECRET_NAMES.iter().any(|s| lowered.contains(s)) {
        return json!("[redacted]");
    }
    match value {
        Value::String(s) if looks_secret(s) => json!("[redacted]"),
        Value::String(s) if s.len() > MAX_STRING => {
            let mut cut = PREFIX;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            json!({"prefix": &s[..cut], "bytes": s.len(), "sha256": sha256_hex(s.as_bytes())})
        }
        Value::Object(_) | Value::Array(_) if depth >= MAX_DEPTH => {
            json!({ "too_deep": true, "sha256_bytes": digest_of(value) })
        }
        Value::Object(fields) => {
            let mut kept: Map<String, Value> = fields
                .iter()
                .take(MAX_ITEMS)
                .map(|(k, v)| {
                    (
                        crate::text::clip(k, MAX_NAME),
                        redact_value(k, v, depth + 1),
                    )
                })
                .collect();
            if fields.len() > MAX_ITEMS {
                kept.insert("…".into(), summary_of_rest(fields.iter().skip(MAX_ITEMS)));
            }
            Value::Object(kept)
        }
        Value::Array(items) => {
            let mut kept: Vec<Value> = items
                .iter()
                .take(MAX_ITEMS)
                .map(|v| redact_value(name, v, depth + 1))
                .collect();
            if items.len() > MAX_ITEMS {
                let rest: Vec<&Value> = items.iter().skip(MAX_ITEMS).collect();
                kept.push(json!({
                    "more_items": rest.len(),
                    "sha256_bytes": digest_of(&rest),
                }));
            }
            Value::Array(kept)
        }
        other => other.clone(),
    }
}

/// The fields past the ones kept: how many, and their digest.
fn summary_of_rest<'a>(rest: impl Iterator<Item = (&'a String, &'a Value)>) -> Value {
    let rest: Map<String, Value> = rest.map(|(k, v)| (k.clone(), v.clone())).collect();
    json!({ "more_fields": rest.len(), "sha256_bytes": digest_of(&rest) })
}

/// "SHA-256 hex:size in bytes" of a value's compact JSON: enough to match
/// it against a copy, nothing of its content.
fn digest_of(value: &impl serde::Serialize) -> String {
    let json = serde_json::to_vec(value).expect("JSON values always serialise");
    format!("{}:{}", sha256_hex(&json), json.len())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Values that are credentials whatever their argument's name.
fn looks_secret(text: &str) -> bool {
    let t = text.trim_start();
    t.starts_with("Bearer ") || t.starts_with("fgk_") || t.contains("PRIVATE KEY-----")
}

/// Worker code is recorded by size and SHA-256, never stored.
fn digest(code: &str) -> Value {
    json!({"bytes": code.len(), "sha256": sha256_hex(code.as_bytes())})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(endpoint: Option<&Endpoint>, args: Value) -> Value {
        let text = stored_args(endpoint, args.as_object().expect("object"));
        assert!(text.len() <= MAX_ARGS_BYTES, "{} bytes", text.len());
        serde_json::from_str(&text).expect("stored arguments are JSON")
    }

    fn dns_endpoint() -> Endpoint {
        crate::catalog::builtin()
            .endpoint("create_dns_record")
            .expect("a shipped tool")
            .as_ref()
            .clone()
    }

    #[test]
    fn secrets_are_masked_and_long_values_shortened() {
        let endpoint = dns_endpoint();
        let args = json!({
            "name": "www", "comment": "Bearer xyz", "data": {"password": "p", "value": "Bearer xyz"},
            "content": "x".repeat(5000)
        });
        let stored = stored(Some(&endpoint), args);
        assert_eq!(stored["name"], "www");
        assert_eq!(stored["comment"], "[redacted]");
        assert_eq!(stored["data"]["password"], "[redacted]");
        assert_eq!(stored["data"]["value"], "[redacted]");
        assert_eq!(stored["content"]["bytes"], 5000);
        assert_eq!(
            stored["content"]["prefix"].as_str().map(str::len),
            Some(PREFIX)
        );
    }

    #[test]
    fn undeclared_arguments_are_stored_by_digest_only() {
        let endpoint = dns_endpoint();
        let stored = stored(
            Some(&endpoint),
            json!({"name": "www", "x-extra": "secret stuff"}),
        );
        assert_eq!(stored["name"], "www");
        assert_eq!(stored["x-extra"]["undeclared"], true);
        assert!(!stored.to_string().contains("secret stuff"));
        let unknown_tool = stored_args(None, json!({"zone_id": "abc"}).as_object().unwrap());
        assert!(!unknown_tool.contains("abc"), "{unknown_tool}");
    }

    #[test]
    fn every_shape_of_huge_argument_is_bounded() {
        let endpoint = dns_endpoint();
        let mut deep = json!("bottom");
        for _ in 0..120 {
            deep = json!({ "d": deep });
        }
        let many_keys: Map<String, Value> =
            (0..10_000).map(|i| (format!("k{i}"), json!(i))).collect();
        let shapes = [
            json!({ "content": "x".repeat(10_000_000) }),
            json!({ "tags": vec!["t".repeat(900); 10_000] }),
            json!({ "data": deep }),
            json!({ "data": Value::Object(many_keys.clone()) }),
            Value::Object(many_keys),
            json!({ "n".repeat(100_000): 1 }),
            json!({ "comment": "c".repeat(1000), "content": "d".repeat(1000), "name": "e".repeat(1000),
                    "tags": vec!["t".repeat(1000); 32] }),
        ];
        for shape in shapes {
            stored(Some(&endpoint), shape.clone());
            stored(None, shape);
        }
    }
}
