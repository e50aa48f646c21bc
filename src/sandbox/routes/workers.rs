//! /accounts/{account_id}/workers/scripts: list, get the code (raw
//! JavaScript), upload (multipart with a metadata part), delete.

use axum::Router;
use axum::extract::{Extension, Multipart, Path, Query, State};
use axum::routing::{get, put};
use serde_json::{Value, json};

use crate::sandbox::Shared;
use crate::sandbox::ids::now;
use crate::sandbox::page::Query as Params;
use crate::sandbox::reply::{self, ApiError, Reply};
use crate::sandbox::seed::script_meta;
use crate::sandbox::store::Script;
use crate::sandbox::tokens::Grant;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/accounts/{account_id}/workers/scripts", get(list))
        .route(
            "/accounts/{account_id}/workers/scripts/{script_name}",
            get(get_code).delete(delete),
        )
        .route(
            "/accounts/{account_id}/workers/scripts/{script_name}/content",
            put(upload),
        )
}

fn not_found() -> ApiError {
    ApiError::new(404, 10007, "This Worker does not exist on your account.")
}

fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.len() <= 63
}

async fn list(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path(account_id): Path<String>,
    Query(q): Query<Params>,
) -> Reply {
    sb.check_account(&grant, &account_id, "Workers Scripts Read")?;
    let store = sb.store.read().expect("store lock");
    let wanted: Vec<&str> = q
        .get("tags")
        .map(|t| t.split(',').collect())
        .unwrap_or_default();
    let scripts: Vec<Value> = store
        .account_data
        .get(&account_id)
        .map(|a| a.scripts.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|s| {
            wanted.is_empty()
                || s.meta["tags"]
                    .as_array()
                    .is_some_and(|tags| wanted.iter().any(|w| tags.iter().any(|t| t == *w)))
        })
        .map(|s| s.meta.clone())
        .collect();
    Ok(reply::ok(Value::Array(scripts)))
}

async fn get_code(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path((account_id, name)): Path<(String, String)>,
) -> Reply {
    sb.check_account(&grant, &account_id, "Workers Scripts Read")?;
    let store = sb.store.read().expect("store lock");
    let script = store
        .account_data
        .get(&account_id)
        .and_then(|a| a.scripts.iter().find(|s| s.meta["id"] == name.as_str()))
        .ok_or_else(not_found)?;
    Ok(reply::javascript(script.content.clone()))
}

async fn upload(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path((account_id, name)): Path<(String, String)>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Reply {
    sb.check_account(&grant, &account_id, "Workers Scripts Write")?;
    if !valid_name(&name) {
        return Err(ApiError::bad_request(
            10016,
            "Invalid Worker name: use lowercase letters, digits, - and _",
        ));
    }
    let mut multipart = multipart
        .map_err(|_| ApiError::bad_request(10021, "Expected a multipart/form-data upload"))?;
    let mut metadata = None;
    let mut parts = Vec::new();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(10021, format!("Malformed multipart upload: {e}")))?
    {
        let part_name = field.name().unwrap_or_default().to_string();
        let content_type = field.content_type().unwrap_or_default().to_string();
        let text = field.text().await.map_err(|e| {
            ApiError::bad_request(10021, format!("Unreadable part {part_name}: {e}"))
        })?;
        if part_name == "metadata" {
            metadata = Some(serde_json::from_str::<Value>(&text).map_err(|_| {
                ApiError::bad_request(10021, "The metadata part is not valid JSON")
            })?);
        } else {
            parts.push((part_name, content_type, text));
        }
    }
    let metadata =
        metadata.ok_or_else(|| ApiError::bad_request(10021, "A metadata part is required"))?;
    let main = metadata["main_module"]
        .as_str()
        .or(metadata["body_part"].as_str())
        .unwrap_or_default();
    let (_, content_type, code) = parts
        .into_iter()
        .find(|(part, _, _)| part == main)
        .ok_or_else(|| {
            ApiError::bad_request(
                10021,
                format!("No such module: the main module part `{main}` is missing"),
            )
        })?;
    if metadata["main_module"].is_string() && content_type != "application/javascript+module" {
        return Err(ApiError::bad_request(
            10021,
            "The main module must have content type application/javascript+module",
        ));
    }
    let date = metadata["compatibility_date"]
        .as_str()
        .unwrap_or("2024-09-23");
    let meta = script_meta(&name, date, &now());
    let mut store = sb.store.write().expect("store lock");
    let scripts = &mut store.account_data(&account_id).scripts;
    let script = Script {
        meta: meta.clone(),
        content: code,
    };
    match scripts.iter_mut().find(|s| s.meta["id"] == name.as_str()) {
        Some(existing) => *existing = script,
        None => scripts.push(script),
    }
    Ok(reply::ok(meta))
}

async fn delete(
    State(sb): State<Shared>,
    Extension(grant): Extension<Grant>,
    Path((account_id, name)): Path<(String, String)>,
) -> Reply {
    sb.check_account(&grant, &account_id, "Workers Scripts Write")?;
    let mut store = sb.store.write().expect("store lock");
    let scripts = &mut store.account_data(&account_id).scripts;
    let before = scripts.len();
    scripts.retain(|s| s.meta["id"] != name.as_str());
    if scripts.len() == before {
        return Err(not_found());
    }
    Ok(reply::ok(json!(null)))
}
