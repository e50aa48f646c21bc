//! /zones: list, get, create, delete.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::routing::get;
use serde_json::{Value, json};

use crate::sandbox::Shared;
use crate::sandbox::access::json_body;
use crate::sandbox::ids::new_id;
use crate::sandbox::page::{self, Query as Params};
use crate::sandbox::reply::{self, ApiError, Reply};
use crate::sandbox::seed;
use crate::sandbox::store::ZoneData;
use crate::sandbox::tokens::Grant;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/zones", get(list).post(create))
        .route("/zones/{zone_id}", get(get_one).delete(delete))
}

async fn list(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Query(q): Query<Params>,
) -> Reply {
    sb.check_permission(&grant, "Zone Read")?;
    let store = sb.store.read().expect("store lock");
    let matches = |zone: &&Value| {
        let field =
            |key: &str, value: &Value| q.get(key).is_none_or(|want| value.as_str() == Some(want));
        grant.reaches_zone(
            zone["id"].as_str().unwrap_or(""),
            zone["name"].as_str().unwrap_or(""),
        ) && field("name", &zone["name"])
            && field("status", &zone["status"])
            && field("account.id", &zone["account"]["id"])
            && field("account.name", &zone["account"]["name"])
    };
    let mut zones: Vec<Value> = store.zones.iter().filter(matches).cloned().collect();
    if q.get("direction").map(String::as_str) == Some("desc") {
        zones.reverse();
    }
    let (result, info) = page::by_page(zones, &q, 20, (5, 50))?;
    Ok(reply::ok_paged(result, info))
}

async fn get_one(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path(zone_id): Path<String>,
) -> Reply {
    sb.check_zone(&grant, &zone_id, "Zone Read")?;
    let store = sb.store.read().expect("store lock");
    Ok(reply::ok(store.zone(&zone_id).cloned().unwrap_or_default()))
}

async fn create(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    body: Bytes,
) -> Reply {
    let body = json_body(&body)?;
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let account_id = body
        .get("account")
        .and_then(|a| a["id"].as_str())
        .unwrap_or_default()
        .to_string();
    if account_id.is_empty() {
        return Err(ApiError::bad_request(1002, "account.id is required"));
    }
    sb.check_account(&grant, &account_id, "Zone Write")?;
    let valid_name = name.contains('.')
        && name.len() <= 253
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !valid_name {
        return Err(ApiError::bad_request(
            1097,
            "Invalid domain name: it must be a registered domain such as example.net",
        ));
    }
    let kind = body.get("type").and_then(Value::as_str).unwrap_or("full");
    if !["full", "partial", "secondary"].contains(&kind) {
        return Err(ApiError::bad_request(
            1002,
            "type must be full, partial or secondary",
        ));
    }
    let mut store = sb.store.write().expect("store lock");
    if store.zones.iter().any(|z| z["name"] == name.as_str()) {
        return Err(ApiError::bad_request(
            1061,
            format!("{name} already exists"),
        ));
    }
    let id = new_id();
    let mut zone = seed::zone(&id, &name, "free");
    zone["status"] = json!("pending");
    zone["type"] = json!(kind);
    zone["activated_on"] = Value::Null;
    store.zones.push(zone.clone());
    store.zone_data.insert(
        id,
        ZoneData {
            universal_ssl: true,
            ..ZoneData::default()
        },
    );
    Ok(reply::ok(zone))
}

async fn delete(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path(zone_id): Path<String>,
) -> Reply {
    sb.check_zone(&grant, &zone_id, "Zone Write")?;
    let mut store = sb.store.write().expect("store lock");
    store.zones.retain(|z| z["id"] != zone_id.as_str());
    store.zone_data.remove(&zone_id);
    Ok(reply::ok(json!({"id": zone_id})))
}
