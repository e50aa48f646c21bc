//! /zones/{zone_id}/load_balancers: list, create, delete.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::routing::get;
use serde_json::{Value, json};

use crate::sandbox::Shared;
use crate::sandbox::access::{check_id, json_body};
use crate::sandbox::ids::{new_id, now};
use crate::sandbox::reply::{self, ApiError, Reply};
use crate::sandbox::seed::{POOL_FALLBACK, POOL_PRIMARY};
use crate::sandbox::store::remove_by_id;
use crate::sandbox::tokens::Grant;

const POOLS: &[&str] = &[POOL_PRIMARY, POOL_FALLBACK];

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/zones/{zone_id}/load_balancers", get(list).post(create))
        .route(
            "/zones/{zone_id}/load_balancers/{balancer_id}",
            axum::routing::delete(delete),
        )
}

async fn delete(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path((zone_id, balancer_id)): Path<(String, String)>,
) -> Reply {
    sb.check_zone(&grant, &zone_id, "Load Balancers Write")?;
    check_id(
        &balancer_id,
        &format!("/zones/{zone_id}/load_balancers/{balancer_id}"),
    )?;
    let mut store = sb.store.write().expect("store lock");
    if !remove_by_id(&mut store.zone_data(&zone_id).load_balancers, &balancer_id) {
        return Err(ApiError::new(404, 1002, "Load balancer not found"));
    }
    Ok(reply::ok(json!({"id": balancer_id})))
}

async fn list(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path(zone_id): Path<String>,
) -> Reply {
    sb.check_zone(&grant, &zone_id, "Load Balancers Read")?;
    let store = sb.store.read().expect("store lock");
    let balancers = store.in_zone(&zone_id, |z| &z.load_balancers).to_vec();
    Ok(reply::ok(Value::Array(balancers)))
}

async fn create(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path(zone_id): Path<String>,
    body: Bytes,
) -> Reply {
    let zone_name = sb.check_zone(&grant, &zone_id, "Load Balancers Write")?;
    let body = json_body(&body)?;
    let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
    if name != zone_name && !name.ends_with(&format!(".{zone_name}")) {
        return Err(ApiError::bad_request(
            1002,
            format!("name must be a hostname in {zone_name}"),
        ));
    }
    let pools: Vec<&str> = body
        .get("default_pools")
        .and_then(Value::as_array)
        .map(|p| p.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let fallback = body
        .get("fallback_pool")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if pools.is_empty() {
        return Err(ApiError::bad_request(
            1002,
            "default_pools must list at least one pool",
        ));
    }
    if let Some(unknown) = pools.iter().chain([&fallback]).find(|p| !POOLS.contains(p)) {
        return Err(ApiError::bad_request(
            1002,
            format!("pool {unknown} not found"),
        ));
    }
    let mut store = sb.store.write().expect("store lock");
    let balancers = &mut store.zone_data(&zone_id).load_balancers;
    if balancers.iter().any(|b| b["name"] == name) {
        return Err(ApiError::bad_request(
            1003,
            format!("a load balancer for {name} already exists"),
        ));
    }
    let stamp = now();
    let mut balancer = json!({
        "id": new_id(), "name": name, "description": "", "enabled": true, "proxied": false, "ttl": 30,
        "default_pools": pools, "fallback_pool": fallback, "steering_policy": "off",
        "session_affinity": "none", "region_pools": {}, "country_pools": {}, "pop_pools": {},
        "rules": [], "created_on": stamp, "modified_on": stamp
    });
    for field in [
        "description",
        "enabled",
        "proxied",
        "ttl",
        "steering_policy",
        "session_affinity",
        "region_pools",
        "country_pools",
        "pop_pools",
        "rules",
    ] {
        if let Some(value) = body.get(field) {
            balancer[field] = value.clone();
        }
    }
    balancers.push(balancer.clone());
    Ok(reply::ok(balancer))
}
