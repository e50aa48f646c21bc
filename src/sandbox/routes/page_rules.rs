//! /zones/{zone_id}/pagerules: list (no result_info), create, get, delete.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::routing::get;
use serde_json::{Value, json};

use crate::sandbox::Shared;
use crate::sandbox::access::{check_id, json_body};
use crate::sandbox::ids::{new_id, now};
use crate::sandbox::page::Query as Params;
use crate::sandbox::reply::{self, ApiError, Reply};
use crate::sandbox::store::remove_by_id;
use crate::sandbox::tokens::Grant;

/// Active page rules a zone may hold (the Free plan's quota).
const QUOTA: usize = 3;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/zones/{zone_id}/pagerules", get(list).post(create))
        .route(
            "/zones/{zone_id}/pagerules/{rule_id}",
            get(get_one).delete(delete),
        )
}

async fn list(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path(zone_id): Path<String>,
    Query(q): Query<Params>,
) -> Reply {
    sb.check_zone(&grant, &zone_id, "Page Rules Read")?;
    let store = sb.store.read().expect("store lock");
    let rules = store.in_zone(&zone_id, |z| &z.page_rules);
    let mut rules: Vec<Value> = rules
        .iter()
        .filter(|r| {
            q.get("status")
                .is_none_or(|s| r["status"].as_str() == Some(s))
        })
        .cloned()
        .collect();
    let order = q.get("order").map_or("priority", String::as_str);
    rules.sort_by_key(|r| r[order].to_string());
    if q.get("direction").map(String::as_str) == Some("desc") {
        rules.reverse();
    }
    Ok(reply::ok(Value::Array(rules)))
}

async fn create(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path(zone_id): Path<String>,
    body: Bytes,
) -> Reply {
    sb.check_zone(&grant, &zone_id, "Page Rules Write")?;
    let body = json_body(&body)?;
    let target_ok = body
        .get("targets")
        .and_then(Value::as_array)
        .is_some_and(|t| {
            t.len() == 1 && t[0]["target"] == "url" && t[0]["constraint"]["value"].is_string()
        });
    if !target_ok {
        return Err(ApiError::bad_request(
            1004,
            "Page Rule validation failed: targets must hold one url target",
        ));
    }
    let actions_ok = body
        .get("actions")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty() && a.iter().all(|x| x["id"].is_string()));
    if !actions_ok {
        return Err(ApiError::bad_request(
            1004,
            "Page Rule validation failed: actions must be a non-empty list",
        ));
    }
    let status = body
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("disabled");
    let mut store = sb.store.write().expect("store lock");
    let rules = &mut store.zone_data(&zone_id).page_rules;
    if status == "active" && rules.iter().filter(|r| r["status"] == "active").count() >= QUOTA {
        return Err(ApiError::bad_request(
            1004,
            format!("Page Rule quota exceeded: this zone allows {QUOTA} active rules"),
        ));
    }
    let stamp = now();
    let rule = json!({
        "id": new_id(), "targets": body["targets"], "actions": body["actions"],
        "priority": body.get("priority").cloned().unwrap_or(json!(rules.len() + 1)),
        "status": status, "created_on": stamp, "modified_on": stamp
    });
    rules.push(rule.clone());
    Ok(reply::ok(rule))
}

async fn get_one(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path((zone_id, rule_id)): Path<(String, String)>,
) -> Reply {
    sb.check_zone(&grant, &zone_id, "Page Rules Read")?;
    check_id(&rule_id, &format!("/zones/{zone_id}/pagerules/{rule_id}"))?;
    let store = sb.store.read().expect("store lock");
    store
        .in_zone(&zone_id, |z| &z.page_rules)
        .iter()
        .find(|r| r["id"] == rule_id.as_str())
        .map(|rule| reply::ok(rule.clone()))
        .ok_or_else(|| ApiError::new(404, 1002, "Invalid Page Rule identifier"))
}

async fn delete(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path((zone_id, rule_id)): Path<(String, String)>,
) -> Reply {
    sb.check_zone(&grant, &zone_id, "Page Rules Write")?;
    check_id(&rule_id, &format!("/zones/{zone_id}/pagerules/{rule_id}"))?;
    let mut store = sb.store.write().expect("store lock");
    if !remove_by_id(&mut store.zone_data(&zone_id).page_rules, &rule_id) {
        return Err(ApiError::new(404, 1002, "Invalid Page Rule identifier"));
    }
    Ok(reply::ok(json!({"id": rule_id})))
}
