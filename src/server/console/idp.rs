//! Operators sign in with the organisation's login (`[console.sign_in]`):
//! OpenID Connect's authorization code flow with PKCE and a nonce. The
//! console sends the browser to the provider; back at `/console/callback`
//! it trades the code for an ID token (with its client secret), checks the
//! token as an access token is checked (the provider's keys, issuer, this
//! client as audience, times) and its nonce, and the operator whose claims
//! match (exactly one) is signed in.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Console;
use crate::config::{ConsoleSignIn, Operator};
use crate::oauth::Validator;

/// How long a sign-in may take at the provider.
const PENDING_FOR: Duration = Duration::from_secs(10 * 60);

/// A sign-in sent to the provider and not back yet.
struct Pending {
    verifier: String,
    nonce: String,
    until: Instant,
}

/// The provider's endpoints, from its discovery document.
#[derive(Debug, Clone, Deserialize)]
struct Endpoints {
    authorization_endpoint: String,
    token_endpoint: String,
}

/// The console's side of the login.
pub(super) struct Idp {
    settings: ConsoleSignIn,
    validator: Validator,
    http: reqwest::Client,
    endpoints: tokio::sync::Mutex<Option<Endpoints>>,
    pending: Mutex<HashMap<String, Pending>>,
}

impl Idp {
    pub(super) fn new(settings: ConsoleSignIn) -> Self {
        Self {
            validator: Validator::new(settings.id_token_checks()),
            settings,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a client with a timeout builds"),
            endpoints: tokio::sync::Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
        }
    }

    async fn endpoints(&self) -> Result<Endpoints, String> {
        let mut known = self.endpoints.lock().await;
        if let Some(endpoints) = known.as_ref() {
            return Ok(endpoints.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", self.settings.issuer);
        let answer = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !answer.status().is_success() {
            return Err(format!("{url}: {}", answer.status()));
        }
        let found: Endpoints = answer.json().await.map_err(|e| format!("{url}: {e}"))?;
        *known = Some(found.clone());
        Ok(found)
    }

    /// Where to send the browser: the provider's page, with a new state.
    async fn start(&self) -> Result<String, String> {
        let endpoints = self.endpoints().await?;
        let (state, verifier, nonce) = (random(), random(), random());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let mut url = url::Url::parse(&endpoints.authorization_endpoint)
            .map_err(|e| format!("the provider's authorization endpoint: {e}"))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", &self.settings.redirect_uri)
            .append_pair("scope", "openid email profile")
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        let mut pending = self.pending.lock().expect("lock is never poisoned");
        let now = Instant::now();
        pending.retain(|_, p| p.until > now);
        pending.insert(
            state,
            Pending {
                verifier,
                nonce,
                until: now + PENDING_FOR,
            },
        );
        Ok(url.to_string())
    }

    /// The claims of the person the provider sent back with `code`.
    async fn finish(
        &self,
        state: &str,
        code: &str,
    ) -> Result<serde_json::Map<String, Value>, String> {
        let pending = self
            .pending
            .lock()
            .expect("lock is never poisoned")
            .remove(state)
            .filter(|p| p.until > Instant::now())
            .ok_or("this sign-in is unknown or too old: start again")?;
        let endpoints = self.endpoints().await?;
        let answer = self
            .http
            .post(&endpoints.token_endpoint)
            .basic_auth(
                &self.settings.client_id,
                Some(self.settings.secret.expose()),
            )
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.settings.redirect_uri),
                ("code_verifier", &pending.verifier),
            ])
            .send()
            .await
            .map_err(|e| format!("the provider's token endpoint: {}", e.without_url()))?;
        if !answer.status().is_success() {
            return Err(format!(
                "the provider refused the code ({})",
                answer.status()
            ));
        }
        let tokens: Value = answer
            .json()
            .await
            .map_err(|e| format!("the provider's answer: {e}"))?;
        let id_token = tokens["id_token"]
            .as_str()
            .ok_or("the provider's answer has no ID token")?;
        let identity = self
            .validator
            .validate(id_token)
            .await
            .map_err(|e| format!("the ID token: {e}"))?;
        if identity.claims.get("nonce").and_then(Value::as_str) != Some(pending.nonce.as_str()) {
            return Err("the ID token's nonce is not this sign-in's".into());
        }
        Ok(identity.claims)
    }

    /// The one operator whose claims the login's match.
    fn operator<'a>(
        &self,
        operators: &'a [Operator],
        claims: &serde_json::Map<String, Value>,
    ) -> Result<&'a Operator, String> {
        let matched: Vec<&Operator> = operators
            .iter()
            .filter(|o| {
                o.claims
                    .as_ref()
                    .is_some_and(|m| m.matches(claims, &self.settings.group_claim))
            })
            .collect();
        match matched.as_slice() {
            [one] => Ok(one),
            [] => Err("your login is no operator's: ask for a [[console.operator]] entry".into()),
            _ => Err("your login matches several operators: the configuration must make exactly one match".into()),
        }
    }
}

/// Sends the browser to the provider.
pub(super) async fn start(State(console): State<std::sync::Arc<Console>>) -> Response {
    let Some(idp) = &console.idp else {
        return (StatusCode::NOT_FOUND, "no identity provider is configured").into_response();
    };
    match idp.start().await {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(problem) => {
            tracing::warn!(%problem, "the console cannot reach the identity provider");
            let said = format!("The identity provider cannot be reached: {problem}");
            super::sign_in_page(StatusCode::SERVICE_UNAVAILABLE, Some(&said), true)
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct Back {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
    error: Option<String>,
}

/// Where the provider sends the browser back.
pub(super) async fn callback(
    State(console): State<std::sync::Arc<Console>>,
    Query(back): Query<Back>,
) -> Response {
    let Some(idp) = &console.idp else {
        return (StatusCode::NOT_FOUND, "no identity provider is configured").into_response();
    };
    if let Some(error) = &back.error {
        let said = format!(
            "The identity provider said: {}",
            crate::text::clip(error, 100)
        );
        return super::sign_in_page(StatusCode::UNAUTHORIZED, Some(&said), true);
    }
    let signed = match idp.finish(&back.state, &back.code).await {
        Ok(claims) => idp.operator(&console.operators, &claims),
        Err(problem) => Err(problem),
    };
    let operator = match signed {
        Ok(operator) => operator,
        Err(problem) => {
            tracing::warn!(%problem, "a console sign-in at the identity provider was refused");
            return super::sign_in_page(StatusCode::UNAUTHORIZED, Some(&problem), true);
        }
    };
    tracing::info!(operator = %operator.id, role = operator.role.as_str(), "signed in to the console at the identity provider");
    let cookie = console.sessions.open(operator);
    let mut response = Redirect::to("/console").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    super::page::secured(response)
}

fn random() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS has randomness");
    hex::encode(bytes)
}
