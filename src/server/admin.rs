//! The admin listener: `/health`, `/ready` and `/metrics` on an address of
//! their own (loopback unless the operator says otherwise), outside the
//! agent-key layer — a load balancer or Prometheus needs no agent key, and
//! no agent reaches these through the MCP listener.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::metrics::Scrape;
use crate::server::Gateway;

/// How long `/ready` waits for the audit log to flush.
const AUDIT_WAIT: Duration = Duration::from_secs(1);

/// Serves the admin routes until `shutdown` is cancelled.
/// The console is served beside them when `console` names operators.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: crate::server::listen::Listening,
    console: super::ConsoleSetup,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut app = Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(gateway.clone());
    if !console.operators.is_empty() {
        app = app.merge(super::console::routes(gateway, console));
    }
    listener.serve(app, shutdown).await
}

/// Up, and able to serve: a policy in force, an audit log that takes rows
/// (a flush succeeds), and Cloudflare answering.
async fn ready(State(gateway): State<Arc<Gateway>>) -> impl IntoResponse {
    let freshness = gateway.engine().freshness();
    let stale = freshness.stale();
    // A stale policy is shown; it makes the server unready only where the
    // operator chose to refuse calls until a policy loads.
    let policy = !gateway.engine().policy().agents().is_empty() && freshness.refusing().is_none();
    let audit = matches!(
        tokio::time::timeout(AUDIT_WAIT, gateway.audit().probe()).await,
        Ok(Ok(()))
    );
    let upstream = gateway.metrics().upstream_reachable();
    let status = if policy && audit && upstream {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(json!({
            "ready": status == StatusCode::OK,
            "policy": policy,
            "audit": audit,
            "upstream": upstream,
            "policy_stale": stale.map(|f| f.to_string()),
        })),
    )
}

async fn metrics(State(gateway): State<Arc<Gateway>>) -> impl IntoResponse {
    let audit = gateway.audit();
    let pending = match gateway.approvals() {
        Some(approvals) => {
            let approvals = approvals.clone();
            tokio::task::spawn_blocking(move || approvals.pending(crate::audit::now_unix_ms()))
                .await
                .ok()
                .and_then(Result::ok)
                .map(|waiting| waiting.len())
        }
        None => None,
    };
    let freshness = gateway.engine().freshness();
    let text = gateway.metrics().render(&Scrape {
        audit_queue: audit.queue_depth(),
        audit_times: audit.times(),
        audit_size: audit.size(),
        approvals_pending: pending,
        policy_stale: freshness.stale(),
        policy_loaded_at: freshness.loaded_at(),
    });
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
