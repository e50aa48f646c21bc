//! Signing in with the organisation's login on the HTTP listener: the
//! protected resource metadata that tells an MCP client where to get a
//! token (RFC 9728), the `401` challenge that sends it there, and the
//! agent a valid token stands for — exactly one, or a clear refusal.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Caller;
use crate::metrics::{Metrics, SignInRefusal};
use crate::oauth::{TokenAccess, TokenError, Validator};
use crate::policy::Policy;

/// `/.well-known/oauth-protected-resource` (and under the resource's
/// path, as clients ask for it): served without a token.
pub(crate) fn metadata_routes(validator: Arc<Validator>) -> Router {
    let metadata = validator.metadata();
    let path = validator
        .metadata_url()
        .split_once("/.well-known/")
        .map(|(_, rest)| format!("/.well-known/{rest}"))
        .unwrap_or_else(|| "/.well-known/oauth-protected-resource".into());
    let answer = move || {
        let metadata = metadata.clone();
        async move { axum::Json(metadata) }
    };
    let mut router =
        Router::new().route("/.well-known/oauth-protected-resource", get(answer.clone()));
    if path != "/.well-known/oauth-protected-resource" {
        router = router.route(&path, get(answer));
    }
    router
}

/// The agent `token` stands for, with the person and client it names, or
/// the answer refusing it.
pub(crate) async fn agent_for_token(
    validator: &Validator,
    policy: &Policy,
    token: &str,
    metrics: &Metrics,
) -> Result<Caller, Response> {
    let identity = match validator.validate(token).await {
        Ok(identity) => identity,
        Err(error) => {
            tracing::info!(%error, "refused an access token");
            metrics.sign_in_refused(reason_of(&error));
            return Err(refused(validator, &error));
        }
    };
    let settings = validator.settings();
    let access = identity.access(settings);
    if access.is_nothing() {
        metrics.sign_in_refused(SignInRefusal::InsufficientScope);
        return Err(step_up(
            validator,
            &[&settings.read_scope],
            &identity.scopes(),
        ));
    }
    caller_for(&identity, policy, &settings.group_claim, access).map_err(|why| {
        metrics.sign_in_refused(SignInRefusal::NoSingleAgent);
        forbidden(why)
    })
}

/// The agent a Cloudflare Access assertion (`Cf-Access-Jwt-Assertion`)
/// stands for. Access grants no flaregate scope: the policy alone limits.
pub(crate) async fn agent_for_assertion(
    access: &Validator,
    policy: &Policy,
    assertion: &str,
    metrics: &Metrics,
) -> Result<Caller, Response> {
    let identity = match access.validate(assertion).await {
        Ok(identity) => identity,
        Err(error) => {
            tracing::info!(%error, "refused a Cloudflare Access assertion");
            metrics.sign_in_refused(reason_of(&error));
            let status = match error {
                TokenError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::UNAUTHORIZED,
            };
            return Err(
                (status, format!("the Cloudflare Access assertion: {error}")).into_response(),
            );
        }
    };
    caller_for(
        &identity,
        policy,
        &access.settings().group_claim,
        TokenAccess::unlimited(),
    )
    .map_err(|why| {
        metrics.sign_in_refused(SignInRefusal::NoSingleAgent);
        forbidden(why)
    })
}

/// The metric's reason for a refused token.
fn reason_of(error: &TokenError) -> SignInRefusal {
    match error {
        TokenError::Unavailable(_) => SignInRefusal::IssuerUnreachable,
        TokenError::Malformed(_) | TokenError::Invalid(_) => SignInRefusal::InvalidToken,
    }
}

/// The one agent whose claim matches the identity's, or why there is none.
fn caller_for(
    identity: &crate::oauth::Identity,
    policy: &Policy,
    group_claim: &str,
    access: TokenAccess,
) -> Result<Caller, String> {
    let who = identity.describe();
    let agent = policy.agent_for_claims(&identity.claims, group_claim, &who)?;
    tracing::debug!(agent = %agent.id, %who, "signed in");
    Ok(Caller {
        agent: agent.id.clone(),
        person: Some(who),
        scopes: access,
    })
}

/// No key or token: `401`, with the way to sign in when OAuth is on.
pub(crate) fn unauthorized(validator: Option<&Validator>) -> Response {
    let (said, challenge) = match validator {
        Some(validator) => (
            "Sign in: an OAuth access token for this server, or a flaregate key (Authorization: Bearer …)",
            validator.challenge(None),
        ),
        None => (
            "A valid bearer key is required (Authorization: Bearer <key>)",
            "Bearer realm=\"flaregate\"".to_string(),
        ),
    };
    with_challenge(StatusCode::UNAUTHORIZED, said.to_string(), &challenge)
}

fn refused(validator: &Validator, error: &TokenError) -> Response {
    match error {
        TokenError::Malformed(_) => with_challenge(
            StatusCode::BAD_REQUEST,
            error.to_string(),
            &validator.challenge(Some(error)),
        ),
        TokenError::Invalid(_) => with_challenge(
            StatusCode::UNAUTHORIZED,
            error.to_string(),
            &validator.challenge(Some(error)),
        ),
        TokenError::Unavailable(_) => {
            let mut response = (StatusCode::SERVICE_UNAVAILABLE, error.to_string()).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            response
        }
    }
}

/// The request of a caller whose scopes are limited, or the `403` that
/// asks for the scope a call in it needs (step-up): a tools/call of a
/// tool, or `call_api` naming an endpoint, its scopes do not cover, or
/// `undo_call` without any write scope.
pub(crate) async fn calls_need_scope(
    validator: &Validator,
    (policy, scopes): (&Policy, &TokenAccess),
    request: axum::extract::Request,
    (limit, metrics): (usize, &Metrics),
) -> Result<axum::extract::Request, Response> {
    if request.method() != axum::http::Method::POST {
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return Err((StatusCode::PAYLOAD_TOO_LARGE, "the request is too large").into_response());
    };
    if let Some(missing) = scope_missing(validator.settings(), (policy, scopes), &bytes) {
        metrics.sign_in_refused(SignInRefusal::InsufficientScope);
        // All the call needs: what the token holds, and the scope it lacks.
        let held = scopes.held();
        let mut needed = held.clone();
        needed.push(&missing);
        return Err(step_up(validator, &needed, &held));
    }
    Ok(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
}

/// The scope a JSON-RPC body (one message or a batch) needs and `scopes`
/// lack, if it calls something they do not cover.
fn scope_missing(
    settings: &crate::config::OAuthSettings,
    (policy, scopes): (&Policy, &TokenAccess),
    body: &[u8],
) -> Option<String> {
    use serde_json::Value;
    let message = serde_json::from_slice::<Value>(body).ok()?;
    let messages = match message {
        Value::Array(batch) => batch,
        one => vec![one],
    };
    messages.iter().find_map(|m| {
        if m.get("method").and_then(Value::as_str) != Some("tools/call") {
            return None;
        }
        let params = m.get("params");
        let name = params.and_then(|p| p.get("name")).and_then(Value::as_str);
        let tool = match name {
            Some("call_api") => params
                .and_then(|p| p.get("arguments"))
                .and_then(|a| a.get("name"))
                .and_then(Value::as_str),
            other => other,
        };
        match tool? {
            "undo_call" if !scopes.writes_somewhere() => Some(settings.write_scope.clone()),
            "undo_call" => None,
            tool => {
                let endpoint = policy.catalog().endpoint(tool)?;
                (!scopes.allows(&endpoint.group, endpoint.access))
                    .then(|| crate::oauth::scope_for(&endpoint.group, endpoint.access, settings))
            }
        }
    })
}

fn step_up(validator: &Validator, needed: &[&str], held: &[&str]) -> Response {
    with_challenge(
        StatusCode::FORBIDDEN,
        format!(
            "insufficient scope: this needs {} (the token has {})",
            needed.join(" "),
            if held.is_empty() {
                "none".to_string()
            } else {
                held.join(" ")
            }
        ),
        &validator.insufficient_scope(needed, held),
    )
}

fn forbidden(said: String) -> Response {
    (StatusCode::FORBIDDEN, said).into_response()
}

fn with_challenge(status: StatusCode, said: String, challenge: &str) -> Response {
    let mut response = (status, said).into_response();
    if let Ok(value) = HeaderValue::from_str(challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}
