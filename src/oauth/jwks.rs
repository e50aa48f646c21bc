//! The issuers' signing keys: found through discovery (RFC 8414, else
//! OpenID Connect), cached, fetched again for a key id not yet seen — at
//! most once per `[auth.oauth] key_refresh_secs` — and kept while the issuer cannot be
//! reached, for at most [`STALE_FOR`]. An issuer never reached gives no
//! key: its tokens are refused.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde::Deserialize;
use tokio::sync::Mutex;

/// Keys are read again this long after they were fetched (revoked keys go).
pub(super) const REFETCH_AFTER: Duration = Duration::from_secs(15 * 60);
/// Keys last fetched longer ago than this are not used while the issuer
/// cannot be reached.
pub(super) const STALE_FOR: Duration = Duration::from_secs(60 * 60);

/// Why no key could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The issuer (or its key set) could not be read, and no fresh enough
    /// copy is kept.
    #[error("the token's issuer cannot be reached to check it: {0}")]
    Unreachable(String),
    /// The issuer's key set has no key of that id.
    #[error("the issuer has no signing key `{0}`")]
    UnknownKey(String),
}

struct Cached {
    set: JwkSet,
    fetched: Instant,
    tried: Instant,
}

/// Each issuer's keys.
pub struct Keys {
    http: reqwest::Client,
    /// A key id not in the cache fetches the set again at most this often.
    refresh_every: Duration,
    cached: Mutex<HashMap<String, Cached>>,
}

#[derive(Deserialize)]
struct Discovery {
    jwks_uri: String,
}

impl Keys {
    pub fn new(refresh_every: Duration) -> Self {
        Self {
            refresh_every,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("a client with a timeout builds"),
            cached: Mutex::new(HashMap::new()),
        }
    }

    /// Issuer `issuer`'s key `kid`; its keys are at `jwks_uri` when given,
    /// else where its discovery document says.
    pub async fn key(
        &self,
        issuer: &str,
        jwks_uri: Option<&str>,
        kid: &str,
    ) -> Result<Jwk, KeyError> {
        let mut cached = self.cached.lock().await;
        let now = Instant::now();
        let (young, known, may_fetch) = match cached.get(issuer) {
            Some(entry) => (
                entry.fetched.elapsed() < REFETCH_AFTER,
                entry.set.find(kid).is_some(),
                entry.tried.elapsed() >= self.refresh_every,
            ),
            None => (false, false, true),
        };
        if !(young && known) && may_fetch {
            match self.fetch(issuer, jwks_uri).await {
                Ok(set) => {
                    cached.insert(
                        issuer.to_string(),
                        Cached {
                            set,
                            fetched: now,
                            tried: now,
                        },
                    );
                }
                Err(problem) => {
                    let Some(entry) = cached.get_mut(issuer) else {
                        return Err(KeyError::Unreachable(problem));
                    };
                    entry.tried = now;
                    tracing::warn!(%issuer, %problem, "cannot refresh the issuer's keys");
                }
            }
        }
        let entry = cached
            .get(issuer)
            .expect("fetched above, or kept from before");
        if entry.fetched.elapsed() >= STALE_FOR {
            return Err(KeyError::Unreachable(format!(
                "its keys were last read {} s ago",
                entry.fetched.elapsed().as_secs()
            )));
        }
        entry
            .set
            .find(kid)
            .cloned()
            .ok_or_else(|| KeyError::UnknownKey(kid.to_string()))
    }

    async fn fetch(&self, issuer: &str, jwks_uri: Option<&str>) -> Result<JwkSet, String> {
        if let Some(uri) = jwks_uri {
            return self.get::<JwkSet>(uri).await;
        }
        let base = issuer.trim_end_matches('/');
        let mut jwks_uri = None;
        for well_known in [
            "/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration",
        ] {
            let found = self.get::<Discovery>(&format!("{base}{well_known}")).await;
            if let Ok(found) = found {
                jwks_uri = Some(found.jwks_uri);
                break;
            }
        }
        let jwks_uri = jwks_uri.ok_or_else(|| format!("no discovery document at {base}"))?;
        self.get::<JwkSet>(&jwks_uri).await
    }

    async fn get<T: for<'de> Deserialize<'de>>(&self, url: &str) -> Result<T, String> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url}: {}", response.status()));
        }
        response.json().await.map_err(|e| format!("{url}: {e}"))
    }
}
