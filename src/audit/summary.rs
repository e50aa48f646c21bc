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
    decision: super::Decision,
    reason: &str,
) -> String {
    let on = target.map(|t| format!(" on {t}")).unwrap_or_default();
    let sentence = match (endpoint, decision) {
        (Some(endpoint), super::Decision::Allow) => {
            format!("{agent} was allowed to {}{on}", action(endpoint, args))
        }
        (Some(endpoint), super::Decision::Preview) => format!(
            "{agent} previewed how to {}{on} (nothing sent): {reason}",
            action(endpoint, args)
        ),
        _ => format!("{agent} was denied {tool}{on}: {reason}"),
    };
    // One line, whatever the caller put in a name or a value.
    crate::text::escape(&sentence).into_owned()
}

/// "purge 3 files from the cache" (the catalog's phrase for the argument
/// given), else the title: "create a DNS record (name www.example.com)".
fn action(endpoint: &Endpoint, args: &Map<String, Value>) -> String {
    if let Some(read) = endpoint.graphql.as_ref().and_then(|spec| query(spec, args)) {
        return read;
    }
    if let Some(phrase) = endpoint
        .summary
        .iter()
        .find_map(|p| phrase(&p.says, args.get(&p.arg)?))
    {
        return phrase;
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

/// What a GraphQL query reads: "read analytics httpRequests1dGroups
/// (2026-12-03 to 2026-12-04)".
fn query(spec: &crate::catalog::Graphql, args: &Map<String, Value>) -> Option<String> {
    let reading = crate::policy::graphql::read_call(spec, args)?;
    let names = crate::policy::graphql::dataset_names(&reading);
    if names.is_empty() {
        return Some("read the analytics schema (introspection)".into());
    }
    let from = reading
        .datasets
        .iter()
        .filter_map(|d| d.from.as_deref())
        .min();
    let to = reading
        .datasets
        .iter()
        .filter_map(|d| d.to.as_deref())
        .max();
    let when = match (from, to) {
        (Some(from), Some(to)) => format!(" ({} to {})", short(from), short(to)),
        _ => String::new(),
    };
    Some(format!("read analytics {}{when}", names.join(", ")))
}

/// `says` for a given value: `{n}` items, `{s}`/`{es}` plural endings;
/// `None` when the value is false, empty or null (not given, in effect).
fn phrase(says: &str, value: &Value) -> Option<String> {
    let n = match value {
        Value::Bool(true) => 1,
        Value::Array(items) if !items.is_empty() => items.len(),
        Value::String(text) if !text.is_empty() => 1,
        Value::Number(_) | Value::Object(_) => 1,
        _ => return None,
    };
    let (s, es) = if n == 1 { ("", "") } else { ("s", "es") };
    Some(
        says.replace("{n}", &n.to_string())
            .replace("{s}", s)
            .replace("{es}", es),
    )
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn says(args: Value) -> String {
        let catalog = crate::catalog::builtin();
        let purge = catalog.endpoint("purge_cache").expect("a shipped tool");
        action(purge, args.as_object().expect("object"))
    }

    #[test]
    fn the_catalog_says_what_a_purge_does() {
        assert_eq!(
            says(json!({"purge_everything": true})),
            "purge everything from the cache"
        );
        assert_eq!(says(json!({"files": ["a"]})), "purge 1 file from the cache");
        assert_eq!(
            says(json!({"files": ["a", "b", "c"]})),
            "purge 3 files from the cache"
        );
        assert_eq!(
            says(json!({"prefixes": ["a", "b"]})),
            "purge 2 prefixes from the cache"
        );
        assert_eq!(
            says(json!({"purge_everything": false, "tags": ["t"]})),
            "purge 1 tag from the cache"
        );
    }
}
