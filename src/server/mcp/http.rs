//! Streamable HTTP on /mcp: bearer keys to agents, sessions bound to the
//! agent that opened them, Host/Origin checks, a body limit and graceful
//! shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use super::direct::{Direct, Routed};
use super::handler::{Caller, Handler};
use super::sessions::{ScopesChanged, Seen, Sessions};
use super::sign_in;
use crate::config::HttpSettings;
use crate::oauth::Validator;
use crate::policy::{AuthMode, Policy};
use crate::server::Gateway;
use crate::server::listen::Listening;

const SESSION_HEADER: &str = "mcp-session-id";
/// The identity assertion Cloudflare Access adds in front of an application.
const ACCESS_HEADER: &str = "cf-access-jwt-assertion";

/// Who may use the listener, and which agent owns each session.
struct Guard {
    gateway: Arc<Gateway>,
    loopback: bool,
    sessions: Sessions,
    /// Stateless tools/call requests answered without rmcp's per-request
    /// service (`None` when the operator turned it off).
    direct: Option<Direct>,
    handler: Handler,
    /// Access tokens from the organisation's login (`[auth.oauth]`).
    oauth: Option<Arc<Validator>>,
    /// Assertions from Cloudflare Access (`[auth.cloudflare_access]`).
    access: Option<Arc<Validator>>,
    /// The largest request body read (to see what a read-only token calls).
    max_body: usize,
}

/// Refuses a policy that this listener cannot serve safely.
pub fn check_listener(policy: &Policy, addr: SocketAddr) -> Result<(), String> {
    let open: Vec<&str> = policy
        .agents()
        .iter()
        .filter(|a| a.auth == AuthMode::None)
        .map(|a| a.id.as_str())
        .collect();
    if !open.is_empty() && !addr.ip().is_loopback() {
        return Err(format!(
            "agent {} has auth = \"none\", which is only allowed on a loopback listener, not {addr}",
            open.join(", ")
        ));
    }
    if open.len() > 1 {
        return Err(format!(
            "only one agent may have auth = \"none\"; found {}",
            open.join(", ")
        ));
    }
    Ok(())
}

/// Serves the admin routes (and the console, when it names operators)
/// until `shutdown` is cancelled (errors logged).
pub async fn admin(
    gateway: Arc<Gateway>,
    listener: Listening,
    console: crate::server::ConsoleSetup,
    shutdown: CancellationToken,
) {
    if let Err(error) = crate::server::admin::serve(gateway, listener, console, shutdown).await {
        tracing::error!(%error, "the admin listener stopped");
    }
}

/// Serves MCP over HTTP until `shutdown` is cancelled.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: Listening,
    settings: &HttpSettings,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let addr = listener.local_addr();
    let mut config = StreamableHttpServerConfig::default()
        .with_allowed_origins(settings.allowed_origins.clone())
        .with_max_request_body_bytes(settings.max_body_bytes)
        .with_json_response(true)
        .with_cancellation_token(shutdown.child_token());
    if !settings.allowed_hosts.is_empty() {
        config = config.with_allowed_hosts(settings.allowed_hosts.clone());
    }
    let hooks = (!settings.hooks.is_empty())
        .then(|| crate::server::hooks::routes(gateway.clone(), settings.hooks.clone()));
    let handler = Handler::new(gateway.clone(), None);
    let live = Arc::new(LocalSessionManager::default());
    let direct = Direct::new(&config);
    let oauth = settings.oauth.clone().map(|s| Arc::new(Validator::new(s)));
    let guard = Arc::new(Guard {
        oauth: oauth.clone(),
        access: settings
            .cloudflare_access
            .as_ref()
            .map(|a| Arc::new(Validator::new(a.as_oauth(60)))),
        max_body: settings.max_body_bytes,
        gateway,
        loopback: addr.ip().is_loopback(),
        sessions: Sessions::new(live.clone()),
        direct,
        handler: handler.clone(),
    });
    let service = StreamableHttpService::new(move || Ok(handler.clone()), live, config);
    let mut app = Router::new()
        .nest_service("/mcp", service)
        .layer(middleware::from_fn_with_state(guard, authenticate));
    if let Some(validator) = oauth {
        app = app.merge(sign_in::metadata_routes(validator));
    }
    if let Some(hooks) = hooks {
        app = app.merge(hooks);
    }
    listener.serve(app, shutdown).await
}

/// Finds the agent for the request and checks its session is its own.
async fn authenticate(
    State(guard): State<Arc<Guard>>,
    mut request: Request,
    next: Next,
) -> Response {
    let policy = guard.gateway.engine().policy();
    let caller = match identify(&guard, &policy, request.headers()).await {
        Ok(caller) => caller,
        Err(refused) => return refused,
    };
    let Some(caller) = caller else {
        return sign_in::unauthorized(guard.oauth.as_deref());
    };
    let agent = caller.agent.clone();
    request = match guard.within_scopes(&policy, &caller, request).await {
        Ok(request) => request,
        Err(step_up) => return step_up,
    };
    let session = request
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(session) = &session {
        match guard.sessions.check(session, &caller) {
            Seen::Foreign => {
                tracing::warn!(%agent, "refused a session this agent did not open");
                return (StatusCode::NOT_FOUND, "Session not found").into_response();
            }
            Seen::ScopesChanged => {
                request.extensions_mut().insert(ScopesChanged);
            }
            Seen::Same => {}
        }
    }
    let deleting = request.method() == Method::DELETE;
    request.extensions_mut().insert(caller.clone());
    if session.is_none()
        && let Some(direct) = &guard.direct
    {
        request = match direct.route(&guard.handler, &caller, request).await {
            Routed::Answered(response) => return response,
            Routed::Onward(request) => request,
        };
    }
    let mut response = next.run(request).await;
    if deleting && response.status() == StatusCode::ACCEPTED {
        // rmcp answers a session DELETE with 202; clients (the Python SDK)
        // expect 200 or 204 and log a failure otherwise.
        *response.status_mut() = StatusCode::OK;
    }
    let opened = response
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let closed = deleting && response.status().is_success();
    guard.sessions.note(session, opened, closed, &caller).await;
    response
}

impl Guard {
    /// The request, or the step-up `403` when it calls what the caller's
    /// token scopes do not cover (a key's are unlimited).
    async fn within_scopes(
        &self,
        policy: &Policy,
        caller: &Caller,
        request: Request,
    ) -> Result<Request, Response> {
        match &self.oauth {
            Some(validator) if !caller.scopes.is_unlimited() => {
                let limits = (self.max_body, self.gateway.metrics());
                sign_in::calls_need_scope(validator, (policy, &caller.scopes), request, limits)
                    .await
            }
            _ => Ok(request),
        }
    }
}

/// Who the request speaks for: the Cloudflare Access assertion when there
/// is one, else a flaregate key, else an OAuth access token, else (on
/// loopback) the agent that needs no key. `Err` is the refusal to send.
async fn identify(
    guard: &Guard,
    policy: &Policy,
    headers: &axum::http::HeaderMap,
) -> Result<Option<Caller>, Response> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .unwrap_or("")
        });
    let assertion = headers
        .get(ACCESS_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok(match (assertion, bearer.map(str::trim)) {
        // Behind Cloudflare Access, its assertion says who it is.
        (Some(assertion), _) if guard.access.is_some() => {
            let access = guard.access.as_deref().expect("checked above");
            match sign_in::agent_for_assertion(access, policy, &assertion, guard.gateway.metrics())
                .await
            {
                Ok(caller) => Some(caller),
                Err(refused) => return Err(refused),
            }
        }
        (_, bearer) => match bearer {
            Some(key) => match (policy.agent_for_key(key), &guard.oauth) {
                (Some(agent), _) => Some(Caller::agent(&agent.id)),
                (None, Some(validator)) if validator.takes(key) => {
                    match sign_in::agent_for_token(validator, policy, key, guard.gateway.metrics())
                        .await
                    {
                        Ok(caller) => Some(caller),
                        Err(refused) => return Err(refused),
                    }
                }
                (None, _) => None,
            },
            None if guard.loopback => policy
                .agents()
                .iter()
                .find(|a| a.auth == AuthMode::None)
                .map(|a| Caller::agent(&a.id)),
            None => None,
        },
    })
}
