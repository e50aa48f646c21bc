//! /zones/{zone_id}/dns_records: list, get, create, replace, patch, delete,
//! with Cloudflare's validation (duplicates, CNAME conflicts, TTL, type).

use std::net::{Ipv4Addr, Ipv6Addr};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::routing::get;
use serde_json::{Map, Value, json};

use crate::sandbox::Shared;
use crate::sandbox::access::{check_id, json_body};
use crate::sandbox::ids::{new_id, now};
use crate::sandbox::page::{self, Query as Params};
use crate::sandbox::reply::{self, ApiError, Reply};
use crate::sandbox::seed::dns_record;
use crate::sandbox::store::{by_id, remove_by_id};
use crate::sandbox::tokens::Grant;

const FIELDS: &[&str] = &[
    "name", "type", "content", "ttl", "proxied", "priority", "comment", "tags", "data",
];

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/zones/{zone_id}/dns_records", get(list).post(create))
        .route(
            "/zones/{zone_id}/dns_records/{record_id}",
            get(get_one).put(replace).patch(patch).delete(delete),
        )
}

fn not_found() -> ApiError {
    ApiError::new(404, 81044, "Record does not exist.")
}

async fn list(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path(zone_id): Path<String>,
    Query(q): Query<Params>,
) -> Reply {
    sb.check_zone(&grant, &zone_id, "DNS Read")?;
    let store = sb.store.read().expect("store lock");
    let filters: Vec<(&str, &String)> = ["type", "name", "content", "proxied"]
        .into_iter()
        .filter_map(|key| q.get(key).map(|v| (key, v)))
        .collect();
    let any = q.get("match").map(String::as_str) == Some("any");
    let search = q.get("search").map(|s| s.to_ascii_lowercase());
    let keep = |record: &&Value| {
        let hit = |(key, want): &(&str, &String)| match &record[*key] {
            Value::String(s) => s.eq_ignore_ascii_case(want),
            Value::Bool(b) => want.parse::<bool>() == Ok(*b),
            other => other.as_i64().is_some_and(|n| want.parse::<i64>() == Ok(n)),
        };
        let filtered = filters.is_empty()
            || if any {
                filters.iter().any(hit)
            } else {
                filters.iter().all(hit)
            };
        let searched = search
            .as_ref()
            .is_none_or(|s| record.to_string().to_ascii_lowercase().contains(s.as_str()));
        filtered && searched
    };
    let mut records: Vec<Value> = store
        .in_zone(&zone_id, |z| &z.dns)
        .iter()
        .filter(keep)
        .cloned()
        .collect();
    if let Some(order) = q.get("order") {
        records.sort_by_key(|r| r[order.as_str()].to_string());
    }
    if q.get("direction").map(String::as_str) == Some("desc") {
        records.reverse();
    }
    let (result, info) = page::by_page(records, &q, 100, (5, 5_000_000))?;
    Ok(reply::ok_paged(result, info))
}

async fn get_one(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path((zone_id, record_id)): Path<(String, String)>,
) -> Reply {
    sb.check_zone(&grant, &zone_id, "DNS Read")?;
    check_id(
        &record_id,
        &format!("/zones/{zone_id}/dns_records/{record_id}"),
    )?;
    let store = sb.store.read().expect("store lock");
    let record = by_id(store.in_zone(&zone_id, |z| &z.dns), &record_id)
        .cloned()
        .ok_or_else(not_found)?;
    Ok(reply::ok(record))
}

async fn create(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path(zone_id): Path<String>,
    body: Bytes,
) -> Reply {
    let zone_name = sb.check_zone(&grant, &zone_id, "DNS Write")?;
    let body = json_body(&body)?;
    let kind = body.get("type").and_then(Value::as_str).unwrap_or_default();
    let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
    let mut record = dns_record(
        &new_id(),
        (&zone_id, &zone_name),
        kind,
        &full_name(name, &zone_name),
        "",
        false,
    );
    apply(&mut record, &body);
    record["created_on"] = json!(now());
    record["modified_on"] = record["created_on"].clone();
    let mut store = sb.store.write().expect("store lock");
    let records = &mut store.zone_data(&zone_id).dns;
    validate(&record, records)?;
    records.push(record.clone());
    Ok(reply::ok(record))
}

async fn replace(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path((zone_id, record_id)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    update(sb, grant, zone_id, record_id, body, true).await
}

async fn patch(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path((zone_id, record_id)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    update(sb, grant, zone_id, record_id, body, false).await
}

/// PUT (`replace`: fields left out are reset) and PATCH (merge).
async fn update(
    sb: Shared,
    grant: Grant,
    zone_id: String,
    record_id: String,
    body: Bytes,
    replace: bool,
) -> Reply {
    let zone_name = sb.check_zone(&grant, &zone_id, "DNS Write")?;
    check_id(
        &record_id,
        &format!("/zones/{zone_id}/dns_records/{record_id}"),
    )?;
    let body = json_body(&body)?;
    let mut store = sb.store.write().expect("store lock");
    let records = &mut store.zone_data(&zone_id).dns;
    let at = records
        .iter()
        .position(|r| r["id"] == record_id.as_str())
        .ok_or_else(not_found)?;
    let old = records[at].clone();
    if let Some(kind) = body.get("type").and_then(Value::as_str)
        && old["type"].as_str() != Some(kind)
    {
        return Err(ApiError::bad_request(
            1004,
            "A record's type cannot be changed (ended 2026-06-30): delete the record and create a new one",
        ));
    }
    let mut record = if replace {
        let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
        let kind = old["type"].as_str().unwrap_or_default();
        dns_record(
            &record_id,
            (&zone_id, &zone_name),
            kind,
            &full_name(name, &zone_name),
            "",
            false,
        )
    } else {
        old.clone()
    };
    apply(&mut record, &body);
    if let Some(name) = body.get("name").and_then(Value::as_str) {
        record["name"] = json!(full_name(name, &zone_name));
    }
    record["created_on"] = old["created_on"].clone();
    record["modified_on"] = json!(now());
    let others: Vec<Value> = records
        .iter()
        .filter(|r| r["id"] != record_id.as_str())
        .cloned()
        .collect();
    validate(&record, &others)?;
    records[at] = record.clone();
    Ok(reply::ok(record))
}

async fn delete(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path((zone_id, record_id)): Path<(String, String)>,
) -> Reply {
    sb.check_zone(&grant, &zone_id, "DNS Write")?;
    check_id(
        &record_id,
        &format!("/zones/{zone_id}/dns_records/{record_id}"),
    )?;
    let mut store = sb.store.write().expect("store lock");
    if !remove_by_id(&mut store.zone_data(&zone_id).dns, &record_id) {
        return Err(not_found());
    }
    Ok(reply::ok(json!({"id": record_id})))
}

/// `www` in zone example.com means www.example.com; `@` means the apex.
fn full_name(name: &str, zone: &str) -> String {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name == "@" || name.is_empty() {
        zone.to_string()
    } else if name == zone || name.ends_with(&format!(".{zone}")) {
        name
    } else {
        format!("{name}.{zone}")
    }
}

/// Copies the known record fields of `body` onto `record`.
fn apply(record: &mut Value, body: &Map<String, Value>) {
    for field in FIELDS.iter().filter(|f| **f != "name") {
        if let Some(value) = body.get(*field) {
            record[*field] = value.clone();
        }
    }
}

/// A DNS name as Cloudflare accepts one: labels of 1-63 letters, digits,
/// '-' or '_' (a leading '*' label where `wildcard`), 253 characters at most.
fn is_hostname(name: &str, wildcard: bool) -> bool {
    name.len() <= 253
        && name.split('.').enumerate().all(|(i, label)| {
            (wildcard && i == 0 && label == "*")
                || (!label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        })
}

/// Cloudflare's checks on a record about to be stored among `others`.
fn validate(record: &Value, others: &[Value]) -> Result<(), ApiError> {
    let kind = record["type"].as_str().unwrap_or_default();
    let name = record["name"].as_str().unwrap_or_default();
    let content = record["content"].as_str().unwrap_or_default();
    if kind.is_empty() {
        return Err(ApiError::bad_request(9004, "DNS record type is required"));
    }
    if name.is_empty() || name == "." {
        return Err(ApiError::bad_request(9007, "DNS record name is required"));
    }
    if !is_hostname(name, true) {
        return Err(ApiError::bad_request(9000, "DNS name is invalid."));
    }
    let ttl = record["ttl"].as_i64().unwrap_or(-1);
    if !(ttl == 1 || (60..=86400).contains(&ttl)) {
        return Err(ApiError::bad_request(
            9021,
            "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.",
        ));
    }
    let content_ok = match kind {
        "A" => content.parse::<Ipv4Addr>().is_ok(),
        "AAAA" => content.parse::<Ipv6Addr>().is_ok(),
        "CNAME" | "MX" | "NS" | "PTR" => is_hostname(content.trim_end_matches('.'), false),
        "TXT" => !content.is_empty() && content.len() <= 4096,
        _ => !content.is_empty() || record["data"].is_object(),
    };
    if !content_ok {
        return Err(ApiError::bad_request(
            9005,
            format!("Content for {kind} record is invalid."),
        ));
    }
    if record["proxied"] == true && !matches!(kind, "A" | "AAAA" | "CNAME") {
        return Err(ApiError::bad_request(
            9004,
            format!("{kind} records cannot be proxied."),
        ));
    }
    let same_name = |r: &&Value| r["name"].as_str() == Some(name);
    if others
        .iter()
        .filter(same_name)
        .any(|r| r["type"] == kind && r["content"].as_str() == Some(content))
    {
        return Err(ApiError::bad_request(81057, "Record already exists."));
    }
    let cname_clash = if kind == "CNAME" {
        others.iter().any(|r| same_name(&r))
    } else {
        others
            .iter()
            .filter(same_name)
            .any(|r| r["type"] == "CNAME")
    };
    if cname_clash {
        return Err(ApiError::bad_request(
            81054,
            "A record with the same name already exists and conflicts with a CNAME.",
        ));
    }
    Ok(())
}
