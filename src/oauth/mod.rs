//! flaregate as an OAuth 2.1 resource server (the MCP authorization
//! specification): an access token from a configured issuer stands for the
//! agent whose `[agent.oauth]` claims it matches. Tokens are checked and
//! refused closed — signature against the issuer's keys, an asymmetric
//! algorithm from the allowlist, `iss` exactly, `aud` this resource, the
//! times with a small leeway — and never passed on: Cloudflare only ever
//! sees flaregate's own token.

mod introspect;
mod jwks;
mod scopes;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value, json};

use crate::config::{OAuthSettings, canonical_url};
pub use jwks::{KeyError, Keys};
pub use scopes::{ScopeLevel, TokenAccess, group_scope, scope_for};

/// Why a token was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token at all (HTTP 400).
    #[error("{0}")]
    Malformed(String),
    /// A token flaregate does not accept (HTTP 401, `invalid_token`).
    #[error("{0}")]
    Invalid(String),
    /// It cannot be checked now: the issuer cannot be reached (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
}

/// Who a valid token speaks for, as its claims say.
#[derive(Debug, Clone)]
pub struct Identity {
    pub claims: Map<String, Value>,
}

impl Identity {
    /// The scopes in `scope` (space-separated) or `scp` (Entra ID: a list
    /// or a string).
    pub fn scopes(&self) -> Vec<&str> {
        let mut scopes = Vec::new();
        for name in ["scope", "scp"] {
            match self.claims.get(name) {
                Some(Value::String(text)) => scopes.extend(text.split_whitespace()),
                Some(Value::Array(items)) => scopes.extend(items.iter().filter_map(Value::as_str)),
                _ => {}
            }
        }
        scopes
    }

    /// What its scopes let it do under `settings`.
    pub fn access(&self, settings: &OAuthSettings) -> TokenAccess {
        TokenAccess::of(&self.scopes(), settings)
    }

    /// "alice@example.com via client claude-ai" for logs and rows.
    pub fn describe(&self) -> String {
        let text = |name: &str| self.claims.get(name).and_then(Value::as_str);
        // The issuer's text, so kept short; rows are escaped when shown.
        let clip = |s: &str| crate::text::clip(s, 96);
        let who = clip(text("email").or_else(|| text("sub")).unwrap_or("someone"));
        match text("client_id").or_else(|| text("azp")) {
            Some(client) => format!("{who} via client {}", clip(client)),
            None => who,
        }
    }
}

/// Checks access tokens for one resource.
pub struct Validator {
    settings: OAuthSettings,
    keys: Keys,
    /// Where opaque tokens are checked, if anywhere.
    introspector: Option<introspect::Introspector>,
}

impl Validator {
    pub fn new(settings: OAuthSettings) -> Self {
        Self {
            keys: Keys::new(std::time::Duration::from_secs(settings.key_refresh_secs)),
            introspector: settings
                .introspection
                .clone()
                .map(introspect::Introspector::new),
            settings,
        }
    }

    pub fn settings(&self) -> &OAuthSettings {
        &self.settings
    }

    /// Whether `token` has a JWT's three parts.
    pub fn looks_like_jwt(token: &str) -> bool {
        token.split('.').count() == 3
    }

    /// Whether a bearer that is no flaregate key is this validator's to
    /// check: a JWT, or any other token where opaque ones are introspected
    /// (never one shaped like a flaregate key: that is not sent out).
    pub fn takes(&self, token: &str) -> bool {
        Self::looks_like_jwt(token)
            || (self.introspector.is_some() && !token.starts_with(crate::policy::KEY_PREFIX))
    }

    /// The token's claims, once every check has passed.
    pub async fn validate(&self, token: &str) -> Result<Identity, TokenError> {
        if !Self::looks_like_jwt(token) {
            return match &self.introspector {
                Some(introspector) if self.takes(token) => {
                    let claims = introspector.claims(token).await?;
                    self.check_introspected(&claims)?;
                    Ok(Identity { claims })
                }
                _ => Err(TokenError::Malformed(
                    "the bearer token is not a JWT access token".into(),
                )),
            };
        }
        let invalid = |why: String| TokenError::Invalid(why);
        let header = jsonwebtoken::decode_header(token).map_err(|e| {
            invalid(format!(
                "the token's header cannot be read, or names an algorithm flaregate never accepts: {e}"
            ))
        })?;
        let alg = format!("{:?}", header.alg);
        if !self.settings.algorithms.contains(&alg) {
            return Err(invalid(format!(
                "tokens signed with {alg} are not accepted (accepted: {})",
                self.settings.algorithms.join(", ")
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| invalid("the token names no signing key (kid)".into()))?;
        let issuer = unverified_issuer(token, header.alg)?;
        if !self.settings.issuers.contains(&issuer) {
            return Err(invalid(format!("tokens from `{issuer}` are not accepted")));
        }
        let jwks_uri = self.settings.jwks_uri.as_deref();
        let jwk = self
            .keys
            .key(&issuer, jwks_uri, &kid)
            .await
            .map_err(|e| match e {
                KeyError::Unreachable(_) => TokenError::Unavailable(e.to_string()),
                KeyError::UnknownKey(_) => invalid(e.to_string()),
            })?;
        if let Some(key_alg) = jwk.common.key_algorithm
            && format!("{key_alg:?}") != alg
        {
            return Err(invalid(format!(
                "key `{kid}` is for {key_alg:?}, the token says {alg}"
            )));
        }
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|e| invalid(format!("the issuer's key `{kid}` cannot be used: {e}")))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&issuer]);
        validation.validate_aud = false;
        validation.validate_nbf = true;
        validation.leeway = self.settings.leeway_secs;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| invalid(format!("the token does not hold: {e}")))?
            .claims;
        self.check_audience(&claims)?;
        let now = now();
        if claims
            .get("iat")
            .and_then(Value::as_u64)
            .is_some_and(|iat| iat > now + self.settings.leeway_secs)
        {
            return Err(invalid("the token was issued in the future".into()));
        }
        Ok(Identity { claims })
    }

    /// An introspection answer's claims, checked as a JWT's are: its
    /// issuer (when it names one) and audience (which it must name)
    /// accepted, its times valid.
    fn check_introspected(&self, claims: &Map<String, Value>) -> Result<(), TokenError> {
        let invalid = |why: String| TokenError::Invalid(why);
        if let Some(issuer) = claims.get("iss").and_then(Value::as_str)
            && !self.settings.issuers.iter().any(|i| i == issuer)
        {
            return Err(invalid(format!("tokens from `{issuer}` are not accepted")));
        }
        self.check_audience(claims)?;
        let (now, leeway) = (now(), self.settings.leeway_secs);
        let time = |name: &str| claims.get(name).and_then(Value::as_u64);
        if time("exp").is_some_and(|exp| exp + leeway <= now) {
            return Err(invalid("the token has expired".into()));
        }
        if time("nbf").is_some_and(|nbf| nbf > now + leeway) {
            return Err(invalid("the token is not valid yet".into()));
        }
        Ok(())
    }

    fn check_audience(&self, claims: &Map<String, Value>) -> Result<(), TokenError> {
        let audiences: Vec<&str> = match claims.get("aud") {
            Some(Value::String(one)) => vec![one.as_str()],
            Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if audiences
            .iter()
            .any(|aud| self.settings.audiences.contains(&canonical_url(aud)))
        {
            return Ok(());
        }
        Err(TokenError::Invalid(format!(
            "the token is not for this resource ({}): its audience is {}",
            self.settings.resource,
            audiences.join(", ")
        )))
    }

    /// The protected resource metadata (RFC 9728).
    pub fn metadata(&self) -> Value {
        json!({
            "resource": self.settings.resource,
            "authorization_servers": self.settings.issuers,
            "scopes_supported": self.settings.scopes_supported,
            "bearer_methods_supported": ["header"],
            "resource_name": "flaregate",
        })
    }

    /// Where the metadata is: the resource's path under
    /// `/.well-known/oauth-protected-resource` on its origin.
    pub fn metadata_url(&self) -> String {
        match url::Url::parse(&self.settings.resource) {
            Ok(url) => format!(
                "{}/.well-known/oauth-protected-resource{}",
                url.origin().ascii_serialization(),
                url.path().trim_end_matches('/')
            ),
            Err(_) => self.settings.resource.clone(),
        }
    }

    /// The `WWW-Authenticate` value of a `403` that asks for more scopes
    /// (step-up): every scope the operation needs, and those held.
    pub fn insufficient_scope(&self, needed: &[&str], held: &[&str]) -> String {
        format!(
            "Bearer error=\"insufficient_scope\", scope=\"{}\", resource_metadata=\"{}\", error_description=\"the token's scopes ({}) do not allow this\"",
            needed.join(" "),
            self.metadata_url(),
            if held.is_empty() {
                "none".to_string()
            } else {
                held.join(" ").replace(['"', '\\'], "'")
            }
        )
    }

    /// The `WWW-Authenticate` value that sends a client to sign in, with
    /// the error when a token was given and refused.
    pub fn challenge(&self, error: Option<&TokenError>) -> String {
        let mut value = format!(
            "Bearer resource_metadata=\"{}\", scope=\"{}\"",
            self.metadata_url(),
            self.settings.scopes_supported.join(" ")
        );
        if let Some(error) = error {
            let code = match error {
                TokenError::Malformed(_) => "invalid_request",
                _ => "invalid_token",
            };
            let said = error.to_string().replace(['"', '\\'], "'");
            value.push_str(&format!(", error=\"{code}\", error_description=\"{said}\""));
        }
        value
    }
}

/// The token's `iss`, read before its signature is checked only to choose
/// whose keys check it.
fn unverified_issuer(token: &str, alg: Algorithm) -> Result<String, TokenError> {
    let mut peek = Validation::new(alg);
    peek.insecure_disable_signature_validation();
    peek.validate_exp = false;
    peek.validate_aud = false;
    peek.set_required_spec_claims::<&str>(&[]);
    let data =
        jsonwebtoken::decode::<Map<String, Value>>(token, &DecodingKey::from_secret(&[]), &peek)
            .map_err(|e| TokenError::Invalid(format!("the token's claims cannot be read: {e}")))?;
    data.claims
        .get("iss")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| TokenError::Invalid("the token names no issuer (iss)".into()))
}

/// Seconds since the epoch.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
