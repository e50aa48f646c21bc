//! Plain-English sentences for the audit log, so an operator reading it
//! needs no decoder ring.

use serde_json::{Map, Value};

use crate::catalog::Endpoint;

/// Arguments that name what a call acts on, in order of preference.
const SUBJECTS: &[&str] = &[
    "name",
    "script_name",
    "bucket_name",
    "dns_record_id",
    "ruleset_id",
    "pagerule_id",
];

/// "site-deployer was allowed to purge 3 files from the cache of example.com"
/// or "site-deployer was denied delete_dns_record on example.com: your DNS grant is off".
pub fn decision(
    agent: &str,
    endpoint: Option<&Endpoint>,
    tool: &str,
    target: Option<&str>,
    args: &Map<String, Value>,
    allowed: bool,
    reason: &str,
) -> String {
    let on = target.map(|t| format!(" on {t}")).unwrap_or_default();
    let sentence = match endpoint {
        Some(endpoint) if allowed => {
            format!("{agent} was allowed to {}{on}", action(endpoint, args))
        }
        _ => format!("{agent} was denied {tool}{on}: {reason}"),
    };
    // One line, whatever the caller put in a name or a value.
    crate::text::escape(&sentence).into_owned()
}

/// "purge 3 files from the cache", "create a DNS record (name www.example.com)".
fn action(endpoint: &Endpoint, args: &Map<String, Value>) -> String {
    if endpoint.tool == "purge_cache" {
        return purge_action(args);
    }
    let mut title = endpoint.title.clone();
    if let Some(first) = title.get_mut(..1) {
        first.make_ascii_lowercase();
    }
    let subject = SUBJECTS.iter().find_map(|name| {
        args.get(*name)
            .and_then(Value::as_str)
            .map(|value| (name, value))
    });
    match subject {
        Some((name, value)) => format!("{title} ({name} {})", short(value)),
        None => title,
    }
}

fn purge_action(args: &Map<String, Value>) -> String {
    if args.get("purge_everything") == Some(&Value::Bool(true)) {
        return "purge everything from the cache".to_string();
    }
    for (kind, noun) in [
        ("files", "file"),
        ("tags", "tag"),
        ("hosts", "host"),
        ("prefixes", "prefix"),
    ] {
        if let Some(items) = args.get(kind).and_then(Value::as_array) {
            let n = items.len();
            let plural = if n == 1 {
                noun.to_string()
            } else if noun == "prefix" {
                "prefixes".into()
            } else {
                format!("{noun}s")
            };
            return format!("purge {n} {plural} from the cache");
        }
    }
    "purge the cache".to_string()
}

/// "Cloudflare answered 200 in 142 ms." / "Cloudflare answered 404 (81044) in 12 ms."
pub fn outcome(
    status: Option<u16>,
    codes: &[i64],
    error: Option<&str>,
    duration_ms: u64,
) -> String {
    let codes = if codes.is_empty() {
        String::new()
    } else {
        format!(
            " ({})",
            codes
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    match (status, error) {
        (Some(status), _) => format!("Cloudflare answered {status}{codes} in {duration_ms} ms"),
        (None, Some(error)) => format!("the call failed after {duration_ms} ms: {}", short(error)),
        (None, None) => format!("done in {duration_ms} ms"),
    }
}

fn short(text: &str) -> String {
    crate::text::clip(text, 120)
}
