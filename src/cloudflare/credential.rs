//! The Cloudflare credential. It is read from the environment once and is
//! never printed: `Debug` shows only its kind, and headers carrying it are
//! marked sensitive so HTTP-level logging hides them too.

use std::fmt;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use super::error::CloudflareError;

/// An API token (preferred) or the legacy global API key.
#[derive(Clone)]
pub enum Credential {
    Token(String),
    LegacyKey { email: String, key: String },
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Token(_) => f.write_str("Credential::Token(<redacted>)"),
            Credential::LegacyKey { .. } => f.write_str("Credential::LegacyKey(<redacted>)"),
        }
    }
}

impl Credential {
    /// `CLOUDFLARE_API_TOKEN`, else `CLOUDFLARE_EMAIL` + `CLOUDFLARE_API_KEY`.
    pub fn from_env() -> Option<Self> {
        let var = |name| {
            std::env::var(name)
                .ok()
                .filter(|v: &String| !v.trim().is_empty())
        };
        if let Some(token) = var("CLOUDFLARE_API_TOKEN") {
            return Some(Credential::Token(token.trim().to_string()));
        }
        match (var("CLOUDFLARE_EMAIL"), var("CLOUDFLARE_API_KEY")) {
            (Some(email), Some(key)) => Some(Credential::LegacyKey {
                email: email.trim().to_string(),
                key: key.trim().to_string(),
            }),
            _ => None,
        }
    }

    /// The authentication headers, marked sensitive.
    pub fn headers(&self) -> Result<HeaderMap, CloudflareError> {
        let sensitive = |value: &str| {
            HeaderValue::from_str(value)
                .map(|mut v| {
                    v.set_sensitive(true);
                    v
                })
                .map_err(|_| {
                    CloudflareError::Credential("it holds characters not allowed in an HTTP header")
                })
        };
        let mut headers = HeaderMap::new();
        match self {
            Credential::Token(token) => {
                headers.insert(AUTHORIZATION, sensitive(&format!("Bearer {token}"))?);
            }
            Credential::LegacyKey { email, key } => {
                headers.insert("X-Auth-Email", sensitive(email)?);
                headers.insert("X-Auth-Key", sensitive(key)?);
            }
        }
        Ok(headers)
    }
}
