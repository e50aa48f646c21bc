//! /zones/{zone_id}/rulesets: list (cursor-paged, without rules), get (with
//! rules), replace the rules (a new version).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::routing::get;
use serde_json::{Value, json};

use crate::sandbox::Shared;
use crate::sandbox::access::{check_id, json_body};
use crate::sandbox::ids::{is_id, new_id, now};
use crate::sandbox::page::{self, Query as Params};
use crate::sandbox::reply::{self, ApiError, Reply};
use crate::sandbox::store::by_id;
use crate::sandbox::tokens::Grant;

const ACTIONS: &[&str] = &[
    "block",
    "challenge",
    "js_challenge",
    "managed_challenge",
    "log",
    "skip",
    "execute",
    "rewrite",
    "redirect",
    "route",
    "score",
    "set_config",
    "serve_error",
];

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/zones/{zone_id}/rulesets", get(list))
        .route(
            "/zones/{zone_id}/rulesets/{ruleset_id}",
            get(get_one).put(replace),
        )
}

fn not_found() -> ApiError {
    ApiError::new(404, 10003, "could not find ruleset")
}

async fn list(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path(zone_id): Path<String>,
    Query(q): Query<Params>,
) -> Reply {
    sb.check_zone(&grant, &zone_id, "Zone WAF Read")?;
    let store = sb.store.read().expect("store lock");
    let summaries: Vec<Value> = store
        .in_zone(&zone_id, |z| &z.rulesets)
        .iter()
        .map(|r| {
            let mut summary = r.clone();
            if let Some(fields) = summary.as_object_mut() {
                fields.remove("rules");
            }
            summary
        })
        .collect();
    let (items, next, per_page) = page::by_cursor(summaries, &q, 50, (1, 50))?;
    let mut info = json!({"per_page": per_page, "count": items.len()});
    if !next.is_empty() {
        info["cursors"] = json!({"after": next});
    }
    Ok(reply::ok_paged(Value::Array(items), info))
}

async fn get_one(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path((zone_id, ruleset_id)): Path<(String, String)>,
) -> Reply {
    sb.check_zone(&grant, &zone_id, "Zone WAF Read")?;
    check_id(
        &ruleset_id,
        &format!("/zones/{zone_id}/rulesets/{ruleset_id}"),
    )?;
    let store = sb.store.read().expect("store lock");
    let rulesets = store.in_zone(&zone_id, |z| &z.rulesets);
    Ok(reply::ok(
        by_id(rulesets, &ruleset_id)
            .cloned()
            .ok_or_else(not_found)?,
    ))
}

async fn replace(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path((zone_id, ruleset_id)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    sb.check_zone(&grant, &zone_id, "Zone WAF Write")?;
    check_id(
        &ruleset_id,
        &format!("/zones/{zone_id}/rulesets/{ruleset_id}"),
    )?;
    let body = json_body(&body)?;
    let Some(Value::Array(rules)) = body.get("rules") else {
        return Err(ApiError::bad_request(
            20021,
            "rules: this field is required and must be a list",
        ));
    };
    let stamp = now();
    let mut stored = Vec::with_capacity(rules.len());
    for (i, rule) in rules.iter().enumerate() {
        let action = rule["action"].as_str().unwrap_or_default();
        if !ACTIONS.contains(&action) {
            return Err(ApiError::bad_request(
                20021,
                format!("rules[{i}].action: '{action}' is not a valid action"),
            ));
        }
        if rule["expression"].as_str().is_none_or(str::is_empty) {
            return Err(ApiError::bad_request(
                20021,
                format!("rules[{i}].expression: this field is required"),
            ));
        }
        let mut rule = rule.clone();
        if !rule["id"].as_str().is_some_and(is_id) {
            rule["id"] = json!(new_id());
        }
        rule["enabled"] = json!(rule["enabled"].as_bool().unwrap_or(true));
        rule["last_updated"] = json!(stamp);
        stored.push(rule);
    }
    let mut store = sb.store.write().expect("store lock");
    let rulesets = &mut store.zone_data(&zone_id).rulesets;
    let ruleset = rulesets
        .iter_mut()
        .find(|r| r["id"] == ruleset_id.as_str())
        .ok_or_else(not_found)?;
    let version = ruleset["version"]
        .as_str()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    ruleset["rules"] = Value::Array(stored);
    ruleset["version"] = json!(version.to_string());
    ruleset["last_updated"] = json!(stamp);
    for field in ["description", "name"] {
        if let Some(value) = body.get(field) {
            ruleset[field] = value.clone();
        }
    }
    Ok(reply::ok(ruleset.clone()))
}
