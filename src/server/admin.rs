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
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::server::Gateway;

/// How long `/ready` waits for the audit log to flush.
const AUDIT_WAIT: Duration = Duration::from_secs(1);

/// Serves the admin routes until `shutdown` is cancelled.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(gateway);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Up, and able to serve: a policy in force, an audit log that takes rows
/// (a flush succeeds), and Cloudflare answering.
async fn ready(State(gateway): State<Arc<Gateway>>) -> impl IntoResponse {
    let policy = !gateway.engine().policy().agents().is_empty();
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
        })),
    )
}

async fn metrics(State(gateway): State<Arc<Gateway>>) -> impl IntoResponse {
    let audit = gateway.audit();
    let text = gateway.metrics().render(audit.queue_depth(), audit.times());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
