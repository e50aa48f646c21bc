//! Every catalog endpoint the curated routes do not simulate (the imported
//! API), answered from one in-memory store keyed by resource path: POST
//! creates an object with a 32-hex id under the path, GET gets an object
//! or lists the objects below a path (paged), PUT replaces and PATCH
//! merges (creating a singleton such as a zone setting), DELETE removes.
//! Zone and account paths need the zone or account to exist and the token
//! to reach it, as Cloudflare's do.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::page::{self, Query};
use super::reply::{self, ApiError};
use super::tokens::Grant;
use super::{API_PREFIX, Shared};
use crate::catalog::{Endpoint, Method, Reach, Segment};

/// Objects by resource path (`/zones/…/settings/always_use_https`).
pub(super) type Resources = BTreeMap<String, Value>;

/// The largest request body the generic store keeps.
const MAX_BODY: usize = 1 << 20;

/// Answers a request no curated route took, if a catalog endpoint has its
/// method and path; `None` otherwise.
pub(super) async fn answer(sandbox: &Shared, request: Request) -> Option<Response> {
    let catalog = sandbox.catalog.as_ref()?;
    let method = Method::from_name(request.method().as_str())?;
    let path = request.uri().path();
    let path = path.strip_prefix(API_PREFIX).unwrap_or(path).to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let endpoint = catalog
        .endpoints()
        .iter()
        .filter(|e| e.method == method)
        .filter_map(|e| matches(e, &segments).map(|literals| (literals, e)))
        .max_by_key(|(literals, _)| *literals)
        .map(|(_, e)| e.clone())?;
    let grant = request.extensions().get::<Grant>().cloned()?;
    let query: Query = request
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let body = fields(request).await;
    Some(
        respond(sandbox, &grant, &endpoint, &path, &query, body)
            .unwrap_or_else(axum::response::IntoResponse::into_response),
    )
}

/// How many literal segments of `endpoint`'s path match, if all of it does.
fn matches(endpoint: &Endpoint, segments: &[&str]) -> Option<usize> {
    let template: Vec<&str> = endpoint
        .path
        .raw
        .trim_start_matches('/')
        .split('/')
        .collect();
    if template.len() != segments.len() {
        return None;
    }
    let mut literals = 0;
    for (want, got) in template.iter().zip(segments) {
        if want.starts_with('{') && want.ends_with('}') {
            if got.is_empty() {
                return None;
            }
        } else if want == got {
            literals += 1;
        } else {
            return None;
        }
    }
    Some(literals)
}

fn respond(
    sandbox: &Shared,
    grant: &Grant,
    endpoint: &Endpoint,
    path: &str,
    query: &Query,
    body: Result<Map<String, Value>, ApiError>,
) -> Result<Response, ApiError> {
    let mut parts = path.trim_start_matches('/').split('/');
    let owner = parts.nth(1).unwrap_or_default();
    match endpoint.reach {
        Reach::Zone => {
            sandbox.check_zone(grant, owner, &endpoint.permission)?;
        }
        Reach::Account => sandbox.check_account(grant, owner, &endpoint.permission)?,
        Reach::User | Reach::Global => {}
    }
    let now = super::ids::now();
    let mut resources = sandbox
        .resources
        .write()
        .expect("resources lock is never poisoned");
    match endpoint.method {
        Method::Get => match resources.get(path) {
            Some(object) => Ok(reply::ok(object.clone())),
            None if ends_in_placeholder(endpoint) => seeded(sandbox, endpoint, path)
                .map(reply::ok)
                .ok_or_else(|| not_found(path)),
            None => {
                let items = children(&resources, path);
                let (result, info) = page::by_page(items, query, 20, (1, 1000))?;
                Ok(reply::ok_paged(result, info))
            }
        },
        Method::Post => {
            let id = format!("{:032x}", fastrand::u128(..));
            let mut object = body?;
            object.insert("id".into(), json!(id));
            object.insert("created_on".into(), json!(now));
            object.insert("modified_on".into(), json!(now));
            let object = Value::Object(object);
            resources.insert(format!("{path}/{id}"), object.clone());
            Ok(reply::ok(object))
        }
        Method::Put | Method::Patch => {
            let given = body?;
            let id = path.rsplit('/').next().unwrap_or_default();
            let existing = resources
                .remove(path)
                .or_else(|| seeded(sandbox, endpoint, path));
            let mut object = match (endpoint.method, existing) {
                (Method::Patch, Some(Value::Object(existing))) => existing,
                _ => Map::new(),
            };
            object.extend(given);
            object.insert("id".into(), json!(id));
            object.insert("modified_on".into(), json!(now));
            let object = Value::Object(object);
            resources.insert(path.to_string(), object.clone());
            Ok(reply::ok(object))
        }
        Method::Delete => match resources.remove(path) {
            Some(object) => {
                let below = format!("{path}/");
                resources.retain(|key, _| !key.starts_with(&below));
                Ok(reply::ok(
                    json!({"id": object.get("id").cloned().unwrap_or(Value::Null)}),
                ))
            }
            None => Err(not_found(path)),
        },
    }
}

/// The objects one level below `path`, in creation order of their keys.
fn children(resources: &Resources, path: &str) -> Vec<Value> {
    let prefix = format!("{path}/");
    resources
        .range(prefix.clone()..)
        .take_while(|(key, _)| key.starts_with(&prefix))
        .filter(|(key, _)| !key[prefix.len()..].contains('/'))
        .map(|(_, object)| object.clone())
        .collect()
}

/// A singleton nobody wrote yet, as Cloudflare starts it.
fn seeded(sandbox: &Shared, endpoint: &Endpoint, path: &str) -> Option<Value> {
    let catalog = sandbox.catalog.as_ref()?;
    super::singletons::seeded(catalog, endpoint, path)
}

fn ends_in_placeholder(endpoint: &Endpoint) -> bool {
    matches!(endpoint.path.segments.last(), Some(Segment::Param(_)))
}

/// The request's fields: a JSON body's (one that is not an object is kept
/// under `value`), or a multipart form's, as text.
async fn fields(request: Request) -> Result<Map<String, Value>, ApiError> {
    let is_form = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("multipart/form-data"));
    if is_form {
        return form_fields(request).await;
    }
    let body = axum::body::to_bytes(request.into_body(), MAX_BODY)
        .await
        .map_err(|_| ApiError::bad_request(1001, "Request body too large"))?;
    json_fields(body)
}

async fn form_fields(request: Request) -> Result<Map<String, Value>, ApiError> {
    use axum::extract::FromRequest;
    let malformed = || ApiError::bad_request(6007, "Malformed multipart body");
    let mut form = axum::extract::Multipart::from_request(request, &())
        .await
        .map_err(|_| malformed())?;
    let mut fields = Map::new();
    while let Some(field) = form.next_field().await.map_err(|_| malformed())? {
        let name = field.name().unwrap_or_default().to_string();
        let text = field.text().await.map_err(|_| malformed())?;
        fields.insert(name, Value::String(text));
    }
    Ok(fields)
}

fn json_fields(body: Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Ok(Map::from_iter([("value".to_string(), other)])),
        Err(_) => Err(ApiError::bad_request(
            6007,
            "Malformed JSON in request body",
        )),
    }
}

fn not_found(path: &str) -> ApiError {
    ApiError::new(
        404,
        7003,
        format!("Could not route to {path}, perhaps your object identifier is invalid?"),
    )
}

/// The fallback of every unrouted request: the generic store, else
/// Cloudflare's "no route".
pub(super) async fn fallback(State(sandbox): State<Shared>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    match answer(&sandbox, request).await {
        Some(response) => response,
        None => super::no_route_for(&path),
    }
}
