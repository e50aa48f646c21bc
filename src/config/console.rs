//! `[[console.operator]]`: the people who may use the console, each with
//! their own key (its SHA-256, as agents' keys are kept) or the claims of
//! their login at the identity provider (`[console.sign_in]`), and a role.

use serde::Deserialize;

/// What an operator may do in the console, each role all that the one
/// before may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees access, the log and the approvals.
    Viewer,
    /// Also approves and rejects requests.
    Approver,
    /// Also changes access and undoes calls.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }
}

/// One person who may use the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub id: String,
    /// SHA-256 of each of their keys.
    pub key_hashes: Vec<[u8; 32]>,
    /// The claims of their login that make them this operator.
    pub claims: Option<crate::policy::ClaimMatch>,
    pub role: Role,
}

/// Operators sign in at the identity provider (OpenID Connect,
/// authorization code with PKCE): flaregate is a client of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsoleSignIn {
    pub issuer: String,
    pub client_id: String,
    /// Where the provider sends the browser back: the console's
    /// `/console/callback` as the browser reaches it.
    pub redirect_uri: String,
    /// The claim groups are read from.
    pub group_claim: String,
    pub secret: super::auth::Secret,
}

impl ConsoleSignIn {
    /// The checks an ID token must pass: signed by the issuer's keys, for
    /// this client, unexpired.
    pub fn id_token_checks(&self) -> super::OAuthSettings {
        super::OAuthSettings {
            issuers: vec![self.issuer.clone()],
            resource: self.client_id.clone(),
            audiences: vec![self.client_id.clone()],
            scopes_supported: Vec::new(),
            read_scope: String::new(),
            write_scope: String::new(),
            group_scopes: Vec::new(),
            algorithms: ["RS256", "PS256", "ES256", "EdDSA"]
                .map(String::from)
                .to_vec(),
            group_claim: self.group_claim.clone(),
            leeway_secs: 60,
            key_refresh_secs: 30,
            jwks_uri: None,
            introspection: None,
        }
    }
}

/// The environment variable holding the console's client secret.
pub const CONSOLE_SECRET_VARIABLE: &str = "FLAREGATE_CONSOLE_CLIENT_SECRET";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsole {
    #[serde(default)]
    operator: Vec<RawOperator>,
    sign_in: Option<RawSignIn>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignIn {
    issuer: String,
    client_id: String,
    redirect_uri: String,
    group_claim: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOperator {
    id: String,
    #[serde(default)]
    key_sha256: Vec<String>,
    oauth: Option<crate::policy::ClaimMatch>,
    role: Role,
}

/// The identity provider operators sign in at, if one is named: URLs
/// https (http on loopback), the secret in the environment.
pub(super) fn sign_in(raw: &RawConsole) -> Result<Option<ConsoleSignIn>, String> {
    let Some(raw) = &raw.sign_in else {
        return Ok(None);
    };
    for url in [&raw.issuer, &raw.redirect_uri] {
        if !super::secure_url(url) {
            return Err(format!(
                "console.sign_in: `{url}` is not an https:// URL (http:// only on loopback)"
            ));
        }
    }
    let secret = super::env_value(CONSOLE_SECRET_VARIABLE).ok_or_else(|| {
        format!("console.sign_in needs the console's client secret in {CONSOLE_SECRET_VARIABLE}")
    })?;
    Ok(Some(ConsoleSignIn {
        issuer: raw.issuer.trim_end_matches('/').to_string(),
        client_id: raw.client_id.clone(),
        redirect_uri: raw.redirect_uri.clone(),
        group_claim: raw.group_claim.clone().unwrap_or_else(|| "groups".into()),
        secret: super::auth::Secret::new(secret),
    }))
}

/// The operators, each checked: an id, a key of 64 hex characters or the
/// claims of a login (with `[console.sign_in]`), no key shared.
pub(super) fn operators(raw: RawConsole) -> Result<Vec<Operator>, String> {
    let signs_in = raw.sign_in.is_some();
    let mut operators: Vec<Operator> = Vec::new();
    for raw in raw.operator {
        crate::policy::check_agent_id(&raw.id).map_err(|e| {
            format!(
                "console.operator: {}",
                e.to_string().replace("agent id", "operator id")
            )
        })?;
        if operators.iter().any(|o| o.id == raw.id) {
            return Err(format!("console.operator `{}` is given twice", raw.id));
        }
        if raw.key_sha256.is_empty() && raw.oauth.is_none() {
            return Err(format!(
                "console.operator `{}` has no key_sha256 (`flaregate keygen --agent {}` makes a key and prints its hash) and no oauth claims",
                raw.id, raw.id
            ));
        }
        if let Some(claims) = &raw.oauth {
            if !signs_in {
                return Err(format!(
                    "console.operator `{}` signs in with claims: name the identity provider in [console.sign_in]",
                    raw.id
                ));
            }
            if claims.is_empty() {
                return Err(format!(
                    "console.operator `{}`'s oauth names no claim, so every login would be them: name a sub, groups or email_domain",
                    raw.id
                ));
            }
        }
        let mut key_hashes = Vec::new();
        for text in &raw.key_sha256 {
            let mut hash = [0u8; 32];
            if text.trim().len() != 64 || hex::decode_to_slice(text.trim(), &mut hash).is_err() {
                return Err(format!(
                    "console.operator `{}`: key_sha256 must be 64 hex characters (the SHA-256 of the key)",
                    raw.id
                ));
            }
            if operators.iter().any(|o| o.key_hashes.contains(&hash)) {
                return Err(format!(
                    "console.operator `{}`: this key_sha256 is another operator's",
                    raw.id
                ));
            }
            key_hashes.push(hash);
        }
        operators.push(Operator {
            id: raw.id,
            key_hashes,
            claims: raw.oauth,
            role: raw.role,
        });
    }
    Ok(operators)
}
