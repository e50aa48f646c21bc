//! An in-memory simulated Cloudflare API v4: the 33 catalog endpoints and
//! `GET /user/tokens/verify`, answering as Cloudflare does (envelope, codes,
//! pagination, auth, rate limit). Used by the demo, the tests and the
//! benchmarks, so it never blocks and never holds a lock across an await.

mod access;
mod alerts;
mod faults;
mod generic;
mod graphql;
mod ids;
mod limits;
mod log;
mod page;
mod reply;
mod routes;
mod seed;
mod singletons;
mod store;
mod tokens;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

pub use faults::Fault;
pub use log::LoggedRequest;
pub use seed::{ACCOUNT_ID, ACCOUNT_NAME, EXAMPLE_COM, EXAMPLE_ORG};
pub use tokens::{Grant, Tokens};

use crate::cloudflare::RateSpec;
use faults::Faults;
use limits::RateWindow;
use log::RequestLog;
use reply::ApiError;
use store::SandboxState;

/// The path prefix of the API, as on api.cloudflare.com.
pub const API_PREFIX: &str = "/client/v4";

/// How the sandbox behaves.
#[derive(Debug)]
pub struct SandboxConfig {
    /// The catalog whose endpoints without a curated route the generic
    /// store answers (the imported API); `None`: curated routes only.
    pub catalog: Option<Arc<crate::catalog::Catalog>>,
    pub tokens: Tokens,
    pub rate_limit: RateSpec,
    pub faults: Vec<Fault>,
    pub latency: Duration,
}

impl SandboxConfig {
    /// Default settings with a fresh random full-access token.
    pub fn new() -> Self {
        let token = format!("sandbox-{:032x}", fastrand::u128(..));
        Self {
            catalog: None,
            tokens: Tokens::new(token),
            rate_limit: RateSpec::default(),
            faults: Vec::new(),
            latency: Duration::ZERO,
        }
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Shared state of a running sandbox.
struct Sandbox {
    store: RwLock<SandboxState>,
    catalog: Option<Arc<crate::catalog::Catalog>>,
    resources: RwLock<generic::Resources>,
    tokens: Tokens,
    rate: RateWindow,
    /// GraphQL Analytics' own quota per token: 320 queries per five minutes.
    analytics: RateWindow,
    faults: Faults,
    latency: Duration,
    log: RequestLog,
}

type Shared = Arc<Sandbox>;

/// A sandbox serving on a socket.
pub struct RunningSandbox {
    pub addr: SocketAddr,
    pub token: String,
    task: tokio::task::JoinHandle<()>,
}

impl RunningSandbox {
    /// The base URL to give a Cloudflare client.
    pub fn base_url(&self) -> String {
        format!("http://{}{API_PREFIX}", self.addr)
    }
}

impl Drop for RunningSandbox {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the sandbox on `listener` in a background task.
pub fn spawn(listener: TcpListener, config: SandboxConfig) -> std::io::Result<RunningSandbox> {
    let addr = listener.local_addr()?;
    let token = config.tokens.default_token.clone();
    let app = router(config);
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener.tap_io(crate::net::no_delay), app).await {
            tracing::error!(%error, "sandbox stopped");
        }
    });
    Ok(RunningSandbox { addr, token, task })
}

/// The sandbox as an axum router.
pub fn router(config: SandboxConfig) -> Router {
    let shared: Shared = Arc::new(Sandbox {
        store: RwLock::new(seed::demo()),
        catalog: config.catalog,
        resources: RwLock::default(),
        tokens: config.tokens,
        rate: RateWindow::new(config.rate_limit),
        analytics: RateWindow::new(RateSpec::Limit {
            requests: 320,
            per: Duration::from_secs(300),
        }),
        faults: Faults(config.faults),
        latency: config.latency,
        log: RequestLog::default(),
    });
    let api = routes::api()
        .fallback(generic::fallback)
        .layer(middleware::from_fn_with_state(shared.clone(), gate));
    Router::new()
        .nest(API_PREFIX, api)
        .merge(log::routes())
        .merge(alerts::routes())
        .with_state(shared)
}

/// Everything a request meets before its handler, in order: the request
/// log, injected latency, injected faults, authentication, rate limit.
async fn gate(State(sandbox): State<Shared>, mut request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_string();
    let path = request
        .uri()
        .path()
        .strip_prefix(API_PREFIX)
        .unwrap_or(request.uri().path())
        .to_string();
    sandbox.log.record(&request, &path);
    if !sandbox.latency.is_zero() {
        tokio::time::sleep(sandbox.latency).await;
    }
    if let Some(injected) = sandbox.faults.answer(&method, &path).await {
        return injected;
    }
    let headers = request.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let legacy = headers.get("x-auth-key").and_then(|v| v.to_str().ok());
    let presented = bearer.or(legacy).unwrap_or_default().to_string();
    let grant = match sandbox.tokens.authenticate(bearer, legacy) {
        Ok(grant) => grant,
        Err(refused) => return refused.into_response(),
    };
    let verdict = sandbox.rate.check(&presented);
    if let Some(verdict) = verdict.as_ref().filter(|v| !v.allowed) {
        let mut response = ApiError::new(
            429,
            971,
            "Please wait and consider throttling your request speed",
        )
        .into_response();
        verdict.write_headers(response.headers_mut());
        return response;
    }
    request.extensions_mut().insert(grant);
    let mut response = next.run(request).await;
    if let Some(verdict) = verdict {
        verdict.write_headers(response.headers_mut());
    }
    response
}

/// Cloudflare's answer for a path it has no route for.
fn no_route_for(path: &str) -> Response {
    let path = path.strip_prefix(API_PREFIX).unwrap_or(path);
    reply::failure(
        axum::http::StatusCode::NOT_FOUND,
        &[
            (
                7003,
                &format!("Could not route to {path}, perhaps your object identifier is invalid?"),
            ),
            (7000, "No route for that URI"),
        ],
    )
}
