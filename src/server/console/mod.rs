//! The operator's console, under `/console` on the admin listener, on when
//! flaregate.toml names operators (`[[console.operator]]`): the access
//! matrix (and changing it), the log (live), the approvals inbox, undo
//! from a row, health; sign-in with a key or the organisation's login.
//! Sessions live in this process. Server-rendered: every
//! value goes through maud, which escapes it (agents write much of what
//! the console shows); one small script of its own appends live rows and
//! nothing is fetched from elsewhere; the pages read with JavaScript off.

mod access;
mod agent;
mod approvals;
mod change;
mod explain;
mod guard;
mod health;
mod idp;
mod log;
mod page;
mod token;
mod undo;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Form;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;
use serde::Deserialize;

use crate::audit::{Entry, Filter};
use crate::config::Operator;
use crate::server::Gateway;
use crate::server::reload::Adjust;
use guard::{Sessions, Signed};
use page::{Tab, page, secured};

/// How often a live page's stream looks for news.
const POLL_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// What the console needs from the server that starts it.
pub struct ConsoleSetup {
    /// Who may sign in; the console is off when there is no one.
    pub operators: Vec<Operator>,
    /// The policy files (file or folder) and the checks a new policy must
    /// pass, for changing access; none when the built-in demo runs.
    pub policies: Option<(PathBuf, Adjust)>,
    /// The audit log's files (its key and head checkpoint), for verifying
    /// the chain.
    pub audit: crate::audit::AuditFiles,
    /// Where operators sign in with the organisation's login, if anywhere.
    pub sign_in: Option<crate::config::ConsoleSignIn>,
}

/// What the console's pages share.
pub(crate) struct Console {
    gateway: Arc<Gateway>,
    operators: Vec<Operator>,
    policies: Option<(PathBuf, Adjust)>,
    audit_files: crate::audit::AuditFiles,
    idp: Option<idp::Idp>,
    sessions: Sessions,
}

impl Console {
    /// The audit rows `filter` selects, read off the runtime.
    async fn read(&self, filter: Filter) -> Result<Vec<Entry>, String> {
        let db = self.gateway.audit_db().clone();
        tokio::task::spawn_blocking(move || {
            crate::audit::read(&db, &filter).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()))
    }
}

/// The console's routes, for the admin listener.
pub(crate) fn routes(gateway: Arc<Gateway>, setup: ConsoleSetup) -> Router {
    let console = Arc::new(Console {
        gateway,
        operators: setup.operators,
        policies: setup.policies,
        audit_files: setup.audit,
        idp: setup.sign_in.map(idp::Idp::new),
        sessions: Sessions::default(),
    });
    Router::new()
        .route("/console", get(access::show))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/login/idp", get(idp::start))
        .route("/console/callback", get(idp::callback))
        .route(
            "/console/access/change",
            get(change::preview).post(change::apply),
        )
        .route("/console/access/token", post(token::check))
        .route("/console/explain", get(explain::show))
        .route("/console/log", get(log::show))
        .route("/console/log/stream", get(log::stream))
        .route("/console/log/export", get(log::export))
        .route("/console/log/verify", get(log::verify))
        .route("/console/log/{id}", get(log::row))
        .route(
            "/console/log/{id}/undo",
            get(undo::preview).post(undo::apply),
        )
        .route("/console/approvals", get(approvals::show))
        .route("/console/approvals/stream", get(approvals::stream))
        .route("/console/approvals/{id}", post(approvals::decide))
        .route("/console/health", get(health::show))
        .route("/console/static/console.css", get(stylesheet))
        .route("/console/static/console.js", get(script))
        .with_state(console)
}

async fn login_page(State(console): State<Arc<Console>>) -> Response {
    sign_in_page(StatusCode::OK, None, console.idp.is_some())
}

/// The sign-in page: a key, and the organisation's login when `idp`.
fn sign_in_page(status: StatusCode, problem: Option<&str>, idp: bool) -> Response {
    let body = html! {
        @if let Some(problem) = problem {
            p.problem role="alert" { (problem) }
        }
        @if idp {
            p { a href="/console/login/idp" { "Sign in with your organisation's login" } }
            p { "Or:" }
        }
        form.signin method="post" action="/console/login" {
            label for="key" { "Your operator key" }
            input #key type="password" name="key" autocomplete="current-password" required autofocus;
            button type="submit" { "Sign in" }
        }
        p.note { "An operator's key is made with " code { "flaregate keygen" } " and its hash named in flaregate.toml under " code { "[[console.operator]]" } "." }
    };
    let mut response = page("Sign in", Tab::SignIn, None, body);
    *response.status_mut() = status;
    response
}

#[derive(Deserialize)]
struct SignIn {
    #[serde(default)]
    key: String,
}

async fn login(
    State(console): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    if !guard::same_origin(&headers) {
        return (
            StatusCode::FORBIDDEN,
            "refused: sign in from the console's own page",
        )
            .into_response();
    }
    let Some(operator) = guard::operator_for_key(&console.operators, &form.key) else {
        tracing::warn!("a console sign-in with a key that is no operator's");
        return sign_in_page(
            StatusCode::UNAUTHORIZED,
            Some("That key is no operator's."),
            console.idp.is_some(),
        );
    };
    tracing::info!(operator = %operator.id, role = operator.role.as_str(), "signed in to the console");
    let cookie = console.sessions.open(operator);
    let mut response = Redirect::to("/console").into_response();
    if let Ok(value) = header::HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    secured(response)
}

#[derive(Deserialize)]
struct SignOut {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(console): State<Arc<Console>>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<SignOut>,
) -> Response {
    if let Err(refused) = signed.may_change(&headers, &form.csrf, crate::config::Role::Viewer) {
        return refused.into_response();
    }
    console.sessions.close(&headers);
    let mut response = Redirect::to("/console/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        header::HeaderValue::from_static(
            "flaregate_console=; Path=/console; HttpOnly; Secure; SameSite=Strict; Max-Age=0",
        ),
    );
    response
}

async fn stylesheet() -> Response {
    let mut response = include_str!("static/console.css").into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/css"),
    );
    response
}

async fn script() -> Response {
    let mut response = include_str!("static/console.js").into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/javascript"),
    );
    response
}
