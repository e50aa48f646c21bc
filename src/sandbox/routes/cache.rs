//! /zones/{zone_id}/purge_cache.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::routing::post;
use serde_json::{Value, json};

use crate::sandbox::Shared;
use crate::sandbox::access::json_body;
use crate::sandbox::ids::new_id;
use crate::sandbox::reply::{self, ApiError, Reply};
use crate::sandbox::tokens::Grant;

const KINDS: &[&str] = &["files", "tags", "hosts", "prefixes", "purge_everything"];

pub(super) fn routes() -> Router<Shared> {
    Router::new().route("/zones/{zone_id}/purge_cache", post(purge))
}

async fn purge(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path(zone_id): Path<String>,
    body: Bytes,
) -> Reply {
    sb.check_zone(&grant, &zone_id, "Cache Purge")?;
    let body = json_body(&body)?;
    let given: Vec<&&str> = KINDS.iter().filter(|k| body.contains_key(**k)).collect();
    if given.len() != 1 {
        return Err(ApiError::bad_request(
            1012,
            "Request must contain one of \"purge_everything\", \"files\", \"tags\", \"hosts\" or \"prefixes\"",
        ));
    }
    let kind = *given[0];
    let valid = match &body[kind] {
        Value::Bool(everything) => kind == "purge_everything" && *everything,
        Value::Array(items) => (1..=100).contains(&items.len()),
        _ => false,
    };
    if !valid {
        return Err(ApiError::bad_request(
            1012,
            format!("\"{kind}\" must be a list of 1 to 100 items, or purge_everything: true"),
        ));
    }
    Ok(reply::ok(json!({"id": new_id()})))
}
