//! /accounts/{account_id}/r2/buckets: list (cursor-paged, `{buckets}`),
//! get, create.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::routing::get;
use serde_json::{Value, json};

use crate::sandbox::Shared;
use crate::sandbox::access::json_body;
use crate::sandbox::ids::now;
use crate::sandbox::page::{self, Query as Params};
use crate::sandbox::reply::{self, ApiError, Reply};
use crate::sandbox::tokens::Grant;

const LOCATIONS: &[&str] = &["apac", "eeur", "enam", "weur", "wnam", "oc"];

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/accounts/{account_id}/r2/buckets", get(list).post(create))
        .route(
            "/accounts/{account_id}/r2/buckets/{bucket_name}",
            get(get_one),
        )
}

fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let inner = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
    (3..=64).contains(&bytes.len())
        && bytes.iter().all(inner)
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

async fn list(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path(account_id): Path<String>,
    Query(q): Query<Params>,
) -> Reply {
    sb.check_account(&grant, &account_id, "Workers R2 Storage Read")?;
    let store = sb.store.read().expect("store lock");
    let mut buckets: Vec<Value> = store
        .account_data
        .get(&account_id)
        .map(|a| a.buckets.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|b| {
            let name = b["name"].as_str().unwrap_or_default();
            q.get("name_contains")
                .is_none_or(|part| name.contains(part.as_str()))
                && q.get("start_after")
                    .is_none_or(|after| name > after.as_str())
        })
        .cloned()
        .collect();
    buckets.sort_by_key(|b| b["name"].to_string());
    if q.get("direction").map(String::as_str) == Some("desc") {
        buckets.reverse();
    }
    let (items, next, per_page) = page::by_cursor(buckets, &q, 20, (1, 1000))?;
    Ok(reply::ok_paged(
        json!({"buckets": items}),
        json!({"cursor": next, "per_page": per_page}),
    ))
}

async fn get_one(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path((account_id, name)): Path<(String, String)>,
) -> Reply {
    sb.check_account(&grant, &account_id, "Workers R2 Storage Read")?;
    let store = sb.store.read().expect("store lock");
    store
        .account_data
        .get(&account_id)
        .and_then(|a| a.buckets.iter().find(|b| b["name"] == name.as_str()))
        .cloned()
        .map(reply::ok)
        .ok_or_else(|| ApiError::new(404, 10006, "The specified bucket does not exist."))
}

async fn create(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path(account_id): Path<String>,
    body: Bytes,
) -> Reply {
    sb.check_account(&grant, &account_id, "Workers R2 Storage Write")?;
    let body = json_body(&body)?;
    let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
    if !valid_name(name) {
        return Err(ApiError::bad_request(
            10005,
            "The specified bucket name is not valid.",
        ));
    }
    let location = body
        .get("locationHint")
        .and_then(Value::as_str)
        .unwrap_or("enam");
    if !LOCATIONS.contains(&location) {
        return Err(ApiError::bad_request(
            10040,
            "The specified location hint is not valid.",
        ));
    }
    let class = body
        .get("storageClass")
        .and_then(Value::as_str)
        .unwrap_or("Standard");
    if !["Standard", "InfrequentAccess"].contains(&class) {
        return Err(ApiError::bad_request(
            10041,
            "The specified storage class is not valid.",
        ));
    }
    let mut store = sb.store.write().expect("store lock");
    let buckets = &mut store.account_data(&account_id).buckets;
    if buckets.iter().any(|b| b["name"] == name) {
        return Err(ApiError::new(
            409,
            10004,
            "The bucket you tried to create already exists, and you own it.",
        ));
    }
    let bucket = json!({
        "name": name, "creation_date": now(), "location": location.to_ascii_uppercase(),
        "storage_class": class, "jurisdiction": "default"
    });
    buckets.push(bucket.clone());
    Ok(reply::ok(bucket))
}
