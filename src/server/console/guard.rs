//! Who is using the console: operators sign in with their key; a session
//! lives in a cookie (`HttpOnly; Secure; SameSite=Strict`, twelve hours);
//! every change carries the session's CSRF token and comes from the
//! console's own origin; each change needs a role.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::Console;
use crate::config::{Operator, Role};

/// The session cookie's name.
pub(super) const COOKIE: &str = "flaregate_console";
/// How long a session lasts from sign-in.
const SESSION_FOR: Duration = Duration::from_secs(12 * 60 * 60);

/// A signed-in operator, for one request.
#[derive(Debug, Clone)]
pub(super) struct Signed {
    pub(super) operator: String,
    pub(super) role: Role,
    /// The token every change must carry.
    pub(super) csrf: String,
}

struct Session {
    signed: Signed,
    until: Instant,
}

/// The console's sessions, by the cookie's random id.
#[derive(Default)]
pub(super) struct Sessions {
    open: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// A new session for `operator`: the cookie to set.
    pub(super) fn open(&self, operator: &Operator) -> String {
        let id = random_hex();
        let signed = Signed {
            operator: operator.id.clone(),
            role: operator.role,
            csrf: random_hex(),
        };
        let mut open = self.lock();
        let now = Instant::now();
        open.retain(|_, s| s.until > now);
        open.insert(
            id.clone(),
            Session {
                signed,
                until: now + SESSION_FOR,
            },
        );
        format!(
            "{COOKIE}={id}; Path=/console; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
            SESSION_FOR.as_secs()
        )
    }

    pub(super) fn close(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers) {
            self.lock().remove(&id);
        }
    }

    fn find(&self, headers: &HeaderMap) -> Option<Signed> {
        let id = cookie(headers)?;
        let open = self.lock();
        let session = open.get(&id).filter(|s| s.until > Instant::now())?;
        Some(session.signed.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.open.lock().expect("session lock is never poisoned")
    }
}

/// The operator whose key this is.
pub(super) fn operator_for_key<'a>(operators: &'a [Operator], key: &str) -> Option<&'a Operator> {
    let hash: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(key.trim().as_bytes()).into();
    operators.iter().find(|o| {
        o.key_hashes
            .iter()
            .any(|h| bool::from(subtle::ConstantTimeEq::ct_eq(&h[..], &hash[..])))
    })
}

/// A page asked for without a session goes to the sign-in page.
impl FromRequestParts<std::sync::Arc<Console>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &std::sync::Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        console
            .sessions
            .find(&parts.headers)
            .ok_or_else(|| Redirect::to("/console/login").into_response())
    }
}

/// Why a change is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// No or a wrong CSRF token, or another origin.
    Forged,
    /// The operator's role does not allow it.
    Role(Role),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let said = match self {
            Refusal::Forged => {
                "refused: this change did not come from a console page (its form token or origin is wrong); nothing changed".to_string()
            }
            Refusal::Role(needed) => format!(
                "refused: this needs the {} role; nothing changed",
                needed.as_str()
            ),
        };
        (StatusCode::FORBIDDEN, said).into_response()
    }
}

impl Signed {
    /// Whether a change may go ahead: the form's token is the session's,
    /// the request comes from the console's own origin, and the role is
    /// `needed` or above.
    pub(super) fn may_change(
        &self,
        headers: &HeaderMap,
        token: &str,
        needed: Role,
    ) -> Result<(), Refusal> {
        let same_token = bool::from(subtle::ConstantTimeEq::ct_eq(
            token.as_bytes(),
            self.csrf.as_bytes(),
        ));
        if !same_token || !same_origin(headers) {
            return Err(Refusal::Forged);
        }
        if self.role < needed {
            return Err(Refusal::Role(needed));
        }
        Ok(())
    }
}

/// Whether a state-changing request comes from the console's own origin:
/// `Sec-Fetch-Site` (when the browser sends it) is same-origin, and
/// `Origin` (when sent) names the host the request was sent to.
pub(super) fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if text("sec-fetch-site").is_some_and(|site| site != "same-origin" && site != "none") {
        return false;
    }
    match (text("origin"), text(header::HOST.as_str())) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest == host),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS has randomness");
    hex::encode(bytes)
}
