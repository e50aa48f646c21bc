//! `POST /__sandbox/alerts`: the sandbox sends one of Cloudflare's alerts
//! to a webhook destination, as Cloudflare's notifications would — the
//! payload's shape (`name`, `text`, `data`, `ts`, `account_id`,
//! `alert_type`) and the destination's secret in `cf-webhook-auth`.
//!
//! Asked with `{"url", "secret", "alert_type", "zone"}` (the zone by name
//! or id; `text` overrides the canned sentence).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Shared;
use super::seed::ACCOUNT_ID;

pub(super) fn routes() -> Router<Shared> {
    Router::new().route("/__sandbox/alerts", post(fire))
}

#[derive(Debug, Deserialize)]
struct Fire {
    url: String,
    secret: String,
    alert_type: String,
    #[serde(default)]
    zone: Option<String>,
    #[serde(default)]
    text: Option<String>,
}

/// The sentence Cloudflare sends for each alert type the sandbox knows.
fn sentence(alert_type: &str, zone: &str) -> Option<String> {
    Some(match alert_type {
        "universal_ssl_event_type" => format!("SSL certificate for {zone} expires in 14 days"),
        "http_alert_origin_error" => {
            format!("Origin error rate above 5% for {zone} in the last 5 minutes")
        }
        "clickhouse_alert_fw_anomaly" => format!("Spike in security events for {zone}"),
        "dos_attack_l7" => format!("HTTP DDoS attack mitigated for {zone}"),
        _ => return None,
    })
}

async fn fire(State(sandbox): State<Shared>, Json(asked): Json<Fire>) -> (StatusCode, Json<Value>) {
    let zone = asked.zone.as_deref().and_then(|wanted| {
        let store = sandbox.store.read().expect("store lock is never poisoned");
        store
            .zones
            .iter()
            .find(|z| z["id"] == wanted || z["name"] == wanted)
            .map(|z| {
                (
                    z["id"].as_str().unwrap_or_default().to_string(),
                    z["name"].as_str().unwrap_or_default().to_string(),
                )
            })
    });
    let name = zone
        .as_ref()
        .map_or("your account", |(_, name)| name.as_str());
    let Some(text) = asked
        .text
        .clone()
        .or_else(|| sentence(&asked.alert_type, name))
    else {
        let known = "universal_ssl_event_type, http_alert_origin_error, clickhouse_alert_fw_anomaly, dos_attack_l7";
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error": format!("unknown alert_type; the sandbox sends {known} (or give text)")}),
            ),
        );
    };
    let mut data = json!({});
    if let Some((id, name)) = &zone {
        data = json!({"zone_tag": id, "zone_name": name});
    }
    let payload = json!({
        "name": asked.alert_type, "text": text, "data": data,
        "ts": crate::clock::now_unix_ms() / 1000, "account_id": ACCOUNT_ID,
        "policy_id": "0b5c1c6a2e3a4d1f8c9e7a6b5d4c3b2a", "alert_type": asked.alert_type,
    });
    let sent = reqwest::Client::new()
        .post(&asked.url)
        .header("cf-webhook-auth", &asked.secret)
        .json(&payload)
        .send()
        .await;
    match sent {
        Ok(answer) => (
            StatusCode::OK,
            Json(json!({"sent": payload, "status": answer.status().as_u16()})),
        ),
        Err(error) => (
            StatusCode::BAD_GATEWAY,
            Json(
                json!({"error": format!("the destination did not answer: {}", error.without_url())}),
            ),
        ),
    }
}
