//! Opaque access tokens, checked with the authorization server's
//! introspection endpoint (RFC 7662). flaregate signs in to it as a client
//! (HTTP Basic); an answer that is not `active` is a refusal, and an active
//! one is kept for at most [`KEEP_FOR`] (less when the token expires
//! sooner), so a client's requests do not each wait on the server.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::TokenError;
use crate::config::Introspection as Settings;

/// How long an active answer is used before the server is asked again:
/// a revoked token stops working within this.
pub(super) const KEEP_FOR: Duration = Duration::from_secs(30);
/// Answers kept at most; past it, expired ones go, then all.
const MAX_KEPT: usize = 10_000;

/// An active answer, by the SHA-256 of its token: its claims, and until
/// when they are used.
type Kept = (Map<String, Value>, Instant);

/// Asks one introspection endpoint about tokens.
pub(super) struct Introspector {
    settings: Settings,
    http: reqwest::Client,
    kept: Mutex<HashMap<[u8; 32], Kept>>,
}

impl Introspector {
    pub(super) fn new(settings: Settings) -> Self {
        Self {
            settings,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("a client with a timeout builds"),
            kept: Mutex::new(HashMap::new()),
        }
    }

    /// The claims of an active `token` (`active` taken out), or why not.
    pub(super) async fn claims(&self, token: &str) -> Result<Map<String, Value>, TokenError> {
        let id: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some((claims, until)) = self.kept.lock().await.get(&id)
            && *until > Instant::now()
        {
            return Ok(claims.clone());
        }
        let mut claims = self.ask(token).await?;
        if claims.remove("active") != Some(Value::Bool(true)) {
            return Err(TokenError::Invalid(
                "the authorization server says the token is not active (expired or revoked)".into(),
            ));
        }
        let lives = claims
            .get("exp")
            .and_then(Value::as_u64)
            .map(|exp| Duration::from_secs(exp.saturating_sub(super::now())));
        let keep = lives.map_or(KEEP_FOR, |lives| lives.min(KEEP_FOR));
        let mut kept = self.kept.lock().await;
        if kept.len() >= MAX_KEPT {
            let now = Instant::now();
            kept.retain(|_, (_, until)| *until > now);
            if kept.len() >= MAX_KEPT {
                kept.clear();
            }
        }
        kept.insert(id, (claims.clone(), Instant::now() + keep));
        Ok(claims)
    }

    async fn ask(&self, token: &str) -> Result<Map<String, Value>, TokenError> {
        let unavailable = |why: String| {
            TokenError::Unavailable(format!(
                "the authorization server's introspection endpoint cannot check the token: {why}"
            ))
        };
        let answer = self
            .http
            .post(&self.settings.endpoint)
            .basic_auth(
                &self.settings.client_id,
                Some(self.settings.secret.expose()),
            )
            .header("accept", "application/json")
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        let status = answer.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(unavailable(format!(
                "it refused flaregate's client credentials ({status}): check introspection_client_id and the secret"
            )));
        }
        if !status.is_success() {
            return Err(unavailable(format!("it answered {status}")));
        }
        match answer.json::<Value>().await {
            Ok(Value::Object(claims)) => Ok(claims),
            _ => Err(unavailable("its answer is not a JSON object".into())),
        }
    }
}
