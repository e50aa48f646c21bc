//! /zones/{zone_id}/custom_certificates and ssl/universal/settings.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::routing::get;
use serde_json::{Value, json};

use crate::sandbox::Shared;
use crate::sandbox::access::json_body;
use crate::sandbox::page::{self, Query as Params};
use crate::sandbox::reply::{self, ApiError, Reply};
use crate::sandbox::tokens::Grant;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route(
            "/zones/{zone_id}/custom_certificates",
            get(list_certificates),
        )
        .route(
            "/zones/{zone_id}/ssl/universal/settings",
            get(get_universal).patch(set_universal),
        )
}

async fn list_certificates(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path(zone_id): Path<String>,
    Query(q): Query<Params>,
) -> Reply {
    sb.check_zone(&grant, &zone_id, "SSL and Certificates Read")?;
    let store = sb.store.read().expect("store lock");
    let certificates: Vec<Value> = store
        .in_zone(&zone_id, |z| &z.certificates)
        .iter()
        .filter(|c| {
            q.get("status")
                .is_none_or(|s| c["status"].as_str() == Some(s))
        })
        .cloned()
        .collect();
    let (result, info) = page::by_page(certificates, &q, 20, (5, 50))?;
    Ok(reply::ok_paged(result, info))
}

async fn get_universal(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path(zone_id): Path<String>,
) -> Reply {
    sb.check_zone(&grant, &zone_id, "SSL and Certificates Read")?;
    let store = sb.store.read().expect("store lock");
    let enabled = store
        .zone_data
        .get(&zone_id)
        .is_none_or(|z| z.universal_ssl);
    Ok(reply::ok(json!({"enabled": enabled})))
}

async fn set_universal(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path(zone_id): Path<String>,
    body: Bytes,
) -> Reply {
    sb.check_zone(&grant, &zone_id, "SSL and Certificates Write")?;
    let body = json_body(&body)?;
    let enabled = body
        .get("enabled")
        .and_then(Value::as_bool)
        .ok_or_else(|| ApiError::bad_request(1004, "enabled: a boolean is required"))?;
    let mut store = sb.store.write().expect("store lock");
    store.zone_data(&zone_id).universal_ssl = enabled;
    Ok(reply::ok(json!({"enabled": enabled})))
}
