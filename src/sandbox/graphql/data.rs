//! The sandbox's analytics: which datasets it serves, what each row holds,
//! and the synthetic numbers — a pure function of the zone (or account)
//! and the hour, so one day's `httpRequests1dGroups` sums exactly its
//! hours' `httpRequestsAdaptiveGroups` counts and a test can check them.

use graphql_parser::query::Field;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{Failure, Run, key, unknown};

/// One dataset of the subset served.
pub(super) struct Dataset {
    pub name: &'static str,
    /// Under `zones` (else under `accounts`).
    pub zone: bool,
    /// Daily rows with `date_*` bounds (else hourly, `datetime_*`).
    pub daily: bool,
    /// The longest time range a query may ask for, in days.
    pub max_days: u64,
    /// Its row's fields: a leaf, or a group with the leaves under it.
    pub fields: &'static [(&'static str, &'static [&'static str])],
}

/// The subset of Cloudflare's datasets the sandbox serves.
pub(super) const DATASETS: &[Dataset] = &[
    Dataset {
        name: "httpRequestsAdaptiveGroups",
        zone: true,
        daily: false,
        max_days: 7,
        fields: &[
            ("count", &[]),
            (
                "dimensions",
                &[
                    "datetimeHour",
                    "date",
                    "clientCountryName",
                    "edgeResponseStatus",
                    "clientRequestHTTPHost",
                ],
            ),
            ("sum", &["edgeResponseBytes", "visits"]),
            ("avg", &["sampleInterval"]),
        ],
    },
    Dataset {
        name: "httpRequests1dGroups",
        zone: true,
        daily: true,
        max_days: 366,
        fields: &[
            ("dimensions", &["date"]),
            (
                "sum",
                &[
                    "requests",
                    "bytes",
                    "cachedRequests",
                    "cachedBytes",
                    "threats",
                    "pageViews",
                ],
            ),
            ("uniq", &["uniques"]),
        ],
    },
    Dataset {
        name: "firewallEventsAdaptive",
        zone: true,
        daily: false,
        max_days: 7,
        fields: &[
            ("action", &[]),
            ("clientIP", &[]),
            ("clientCountryName", &[]),
            ("datetime", &[]),
            ("ruleId", &[]),
            ("source", &[]),
            ("clientRequestPath", &[]),
        ],
    },
    Dataset {
        name: "workersInvocationsAdaptive",
        zone: false,
        daily: false,
        max_days: 7,
        fields: &[
            ("dimensions", &["scriptName", "datetimeHour", "status"]),
            ("sum", &["requests", "errors", "subrequests"]),
            ("quantiles", &["cpuTimeP50", "cpuTimeP99"]),
        ],
    },
];

const HOUR: i64 = 3_600;

/// A dataset field's rows for zone (or account) `id`.
pub(super) fn dataset(
    run: &Run<'_>,
    field: &Field<'_, String>,
    name: &str,
    id: &str,
    zone: bool,
) -> Result<Value, Failure> {
    let on = if zone { "zone" } else { "account" };
    let spec = DATASETS
        .iter()
        .find(|d| d.name == name && d.zone == zone)
        .ok_or_else(|| unknown(name, on))?;
    let limit = run.argument(field, "limit")?.as_u64().ok_or_else(|| {
        (
            format!("{name} needs a limit (at most 10000)"),
            "bad_request",
        )
    })?;
    let filter = run.argument(field, "filter")?;
    let (from, to) = range(spec, &filter)?;
    if to - from > spec.max_days as i64 * 24 * HOUR {
        return Err((
            format!(
                "the time range is too large: {name} takes at most {} days per query",
                spec.max_days
            ),
            "bad_request",
        ));
    }
    let step = if spec.daily { 24 * HOUR } else { HOUR };
    let mut rows = Vec::new();
    let mut at = from - from.rem_euclid(step);
    while at < to && (rows.len() as u64) < limit.min(10_000) {
        rows.push(row(spec, field, id, at)?);
        at += step;
    }
    Ok(Value::Array(rows))
}

/// The time bounds of a filter, in Unix seconds: both are required.
fn range(spec: &Dataset, filter: &Value) -> Result<(i64, i64), Failure> {
    let key = if spec.daily { "date" } else { "datetime" };
    let bound = |ops: [&str; 2]| {
        ops.iter()
            .find_map(|op| filter[format!("{key}_{op}")].as_str())
            .and_then(seconds)
    };
    match (bound(["geq", "gt"]), bound(["lt", "leq"])) {
        (Some(from), Some(to)) if from < to => Ok((from, to)),
        (Some(_), Some(_)) => Err(("the time range ends before it starts".into(), "bad_request")),
        _ => Err((
            format!(
                "{} needs a time range in its filter: {key}_geq and {key}_lt",
                spec.name
            ),
            "bad_request",
        )),
    }
}

/// "2026-12-03" or "2026-12-03T00:00:00Z" in Unix seconds.
fn seconds(text: &str) -> Option<i64> {
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_string()
    };
    let at = humantime::parse_rfc3339(&full).ok()?;
    let since = at.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(since.as_secs()).ok()
}

/// One row: the fields the query selects, in its shape.
fn row(spec: &Dataset, field: &Field<'_, String>, id: &str, at: i64) -> Result<Value, Failure> {
    let mut out = Map::new();
    for selected in leaves(&field.selection_set) {
        let name = selected.name.as_str();
        let Some((_, under)) = spec.fields.iter().find(|(f, _)| *f == name) else {
            if name == "__typename" {
                out.insert(key(selected), json!(format!("{}Row", spec.name)));
                continue;
            }
            return Err(unknown(name, spec.name));
        };
        let value = if under.is_empty() {
            leaf(spec, name, id, at)
        } else {
            let mut group = Map::new();
            for inner in leaves(&selected.selection_set) {
                if !under.contains(&inner.name.as_str()) {
                    return Err(unknown(&inner.name, &format!("{}{name}", spec.name)));
                }
                group.insert(key(inner), leaf(spec, &inner.name, id, at));
            }
            Value::Object(group)
        };
        out.insert(key(selected), value);
    }
    Ok(Value::Object(out))
}

/// The fields directly selected (inline fragments opened).
fn leaves<'s, 'a>(
    set: &'s graphql_parser::query::SelectionSet<'a, String>,
) -> Vec<&'s Field<'a, String>> {
    let mut out = Vec::new();
    for item in &set.items {
        match item {
            graphql_parser::query::Selection::Field(f) => out.push(f),
            graphql_parser::query::Selection::InlineFragment(i) => {
                out.extend(leaves(&i.selection_set))
            }
            graphql_parser::query::Selection::FragmentSpread(_) => {}
        }
    }
    out
}

/// One value of a row, from the zone, the time and the field's name.
fn leaf(spec: &Dataset, name: &str, id: &str, at: i64) -> Value {
    let day = at - at.rem_euclid(24 * HOUR);
    let requests = if spec.daily {
        (0..24).map(|h| hourly(id, day + h * HOUR)).sum::<u64>()
    } else {
        hourly(id, at)
    };
    let pick =
        |choices: &[&str]| json!(choices[(mix(id, at, name) % choices.len() as u64) as usize]);
    match name {
        "count" | "requests" => json!(requests),
        "edgeResponseBytes" | "bytes" => json!(requests * 24_000),
        "cachedRequests" => json!(requests * 3 / 5),
        "cachedBytes" => json!(requests * 3 / 5 * 24_000),
        "visits" | "pageViews" => json!(requests / 4),
        "uniques" => json!(requests / 9),
        "threats" | "errors" => json!(requests / 200),
        "subrequests" => json!(requests * 2),
        "sampleInterval" => json!(1),
        "cpuTimeP50" => json!(1_200),
        "cpuTimeP99" => json!(9_800),
        "datetimeHour" | "datetime" => {
            json!(humantime::format_rfc3339_seconds(time(at)).to_string())
        }
        "date" => json!(humantime::format_rfc3339_seconds(time(day)).to_string()[..10]),
        "clientCountryName" => pick(&["US", "DE", "GB", "JP", "BR"]),
        "edgeResponseStatus" => {
            json!([200, 200, 200, 304, 404, 500][(mix(id, at, name) % 6) as usize])
        }
        "clientRequestHTTPHost" | "clientRequestPath" => pick(&["/", "/app.js", "/login"]),
        "action" => pick(&["block", "challenge", "log"]),
        "clientIP" => json!(format!("198.51.100.{}", mix(id, at, name) % 250)),
        "ruleId" => json!(format!("{:032x}", mix(id, at, "rule") as u128)),
        "source" => pick(&["waf", "firewallrules", "ratelimit"]),
        "scriptName" => json!("site-app"),
        "status" => pick(&["success", "success", "clientDisconnected"]),
        _ => Value::Null,
    }
}

/// Requests in one hour of one zone: 800 to 1199.
fn hourly(id: &str, hour: i64) -> u64 {
    800 + mix(id, hour, "requests") % 400
}

fn mix(id: &str, at: i64, what: &str) -> u64 {
    let digest = Sha256::digest(format!("{id}/{at}/{what}").as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

fn time(seconds: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds.max(0) as u64)
}
