//! `POST /hooks/cloudflare/{name}`: flaregate as the webhook destination
//! of Cloudflare's notifications. The secret Cloudflare sends
//! (`cf-webhook-auth`) is checked against the hook's hash in constant time
//! before the body is read as anything; bodies are bounded; an alert
//! delivered twice (Cloudflare retries) is kept once. Each alert is a row
//! of the audit chain, and sessions subscribed to alerts hear of it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::alerts::{Alert, MAX_BYTES};
use crate::config::Hook;
use crate::server::Gateway;

/// The header Cloudflare sends a webhook's secret in.
pub const SECRET_HEADER: &str = "cf-webhook-auth";

/// Digests of alerts kept lately, so a retried delivery is not a second
/// alert.
const REMEMBERED: usize = 10_000;

struct Receiver {
    gateway: Arc<Gateway>,
    hooks: Vec<Hook>,
    seen: Mutex<VecDeque<String>>,
}

/// The hooks' routes, for the HTTP listener (outside agent sign-in).
pub(crate) fn routes(gateway: Arc<Gateway>, hooks: Vec<Hook>) -> Router {
    let receiver = Arc::new(Receiver {
        gateway,
        hooks,
        seen: Mutex::default(),
    });
    Router::new()
        .route("/hooks/cloudflare/{name}", post(receive))
        .layer(DefaultBodyLimit::max(MAX_BYTES))
        .with_state(receiver)
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(hook) = receiver.hooks.iter().find(|h| h.name == name) else {
        return (StatusCode::NOT_FOUND, "no such hook").into_response();
    };
    let given = headers
        .get(SECRET_HEADER)
        .map(|v| Sha256::digest(v.as_bytes()))
        .unwrap_or_default();
    let same = bool::from(subtle::ConstantTimeEq::ct_eq(
        given.as_slice(),
        hook.secret_sha256.as_slice(),
    ));
    if !same {
        tracing::warn!(hook = %hook.name, "refused an alert without the hook's secret");
        return (
            StatusCode::UNAUTHORIZED,
            "refused: wrong or missing cf-webhook-auth",
        )
            .into_response();
    }
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(payload @ Value::Object(_)) => payload,
        _ => return (StatusCode::BAD_REQUEST, "the body is not a JSON object").into_response(),
    };
    let alert = Alert::from_payload(&hook.name, payload);
    let digest = alert.digest();
    // Marked seen before it is recorded, so two deliveries at once make
    // one row; unmarked if it cannot be recorded (Cloudflare retries).
    {
        let mut seen = receiver.seen();
        if seen.contains(&digest) {
            return axum::Json(json!({"duplicate": true})).into_response();
        }
        if seen.len() == REMEMBERED {
            seen.pop_front();
        }
        seen.push_back(digest.clone());
    }
    let record = alert.record(receiver.gateway.sandbox());
    match receiver
        .gateway
        .audit()
        .record(record, crate::audit::Outcome::default())
        .await
    {
        Ok(row) => {
            tracing::info!(hook = %hook.name, row = row.id, alert_type = %crate::text::escape(&alert.alert_type), "Cloudflare alert received");
            receiver.gateway.alerts().published(row.id);
            axum::Json(json!({"stored": row.id})).into_response()
        }
        Err(error) => {
            receiver.seen().retain(|kept| *kept != digest);
            tracing::error!(%error, "an alert could not be recorded");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the audit log cannot take the alert now",
            )
                .into_response()
        }
    }
}

impl Receiver {
    fn seen(&self) -> std::sync::MutexGuard<'_, VecDeque<String>> {
        self.seen
            .lock()
            .expect("the seen list's lock is never poisoned")
    }
}
