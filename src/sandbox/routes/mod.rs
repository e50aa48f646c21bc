//! The simulated endpoints, one file per capability group.

mod accounts;
mod cache;
mod dns;
mod firewall;
mod load_balancers;
mod page_rules;
mod r2;
mod ssl;
mod workers;
mod zones;

use axum::Router;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::json;

use super::Shared;
use super::reply::{self, Reply};
use super::tokens::Grant;

/// Every route below /client/v4.
pub(super) fn api() -> Router<Shared> {
    Router::new()
        .route("/user/tokens/verify", get(verify_token))
        .route("/graphql", axum::routing::post(super::graphql::query))
        .route(
            "/accounts/{account_id}/tokens/verify",
            get(verify_account_token),
        )
        .merge(zones::routes())
        .merge(dns::routes())
        .merge(firewall::routes())
        .merge(page_rules::routes())
        .merge(cache::routes())
        .merge(workers::routes())
        .merge(r2::routes())
        .merge(ssl::routes())
        .merge(load_balancers::routes())
        .merge(accounts::routes())
        .method_not_allowed_fallback(method_not_allowed)
}

/// `GET /user/tokens/verify`: a user's token may ask about itself; an
/// account-owned one is not a user's token, as Cloudflare answers.
async fn verify_token(State(_): State<Shared>, Extension(grant): Extension<Grant>) -> Reply {
    if grant.account.is_some() {
        return Err(reply::ApiError::new(401, 1000, "Invalid API Token"));
    }
    Ok(token_status())
}

/// `GET /accounts/{id}/tokens/verify`: a token owned by that account.
async fn verify_account_token(
    State(_): State<Shared>,
    Extension(grant): Extension<Grant>,
    axum::extract::Path(account_id): axum::extract::Path<String>,
) -> Reply {
    if grant.account.as_deref() != Some(account_id.as_str()) {
        return Err(reply::ApiError::new(401, 1000, "Invalid API Token"));
    }
    Ok(token_status())
}

/// A verified token's answer.
fn token_status() -> Response {
    reply::ok(json!({
        "id": "ed17574386854bf78a67040be0a770b0",
        "status": "active",
        "not_before": null,
        "expires_on": null
    }))
}

/// A curated path with another method: the generic store may know it
/// (an imported endpoint beside a curated one), else Cloudflare's 405.
async fn method_not_allowed(
    State(sandbox): State<Shared>,
    request: axum::extract::Request,
) -> Response {
    match super::generic::answer(&sandbox, request).await {
        Some(response) => response,
        None => reply::failure(
            StatusCode::METHOD_NOT_ALLOWED,
            &[(10405, "Method not allowed for this path")],
        ),
    }
}
