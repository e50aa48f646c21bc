//! `[auth]`: flaregate as an OAuth resource server (`[auth.oauth]`) and
//! behind Cloudflare Access (`[auth.cloudflare_access]`), checked as read.

use serde::Deserialize;

/// flaregate as an OAuth resource server: whose tokens it takes, for which
/// resource, and how it reads them.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthSettings {
    /// Issuer URLs, compared exactly with a token's `iss`; their keys are
    /// found through RFC 8414 (else OpenID) discovery.
    pub issuers: Vec<String>,
    /// The MCP endpoint's canonical URL (RFC 9728 `resource`).
    pub resource: String,
    /// A token's `aud` must be one of these (canonical form).
    pub audiences: Vec<String>,
    pub scopes_supported: Vec<String>,
    /// The scope that lets a token read (`flaregate:read`) and the one
    /// that lets it also write (`flaregate:write`): a token's scopes narrow
    /// what the policy grants, never widen it.
    pub read_scope: String,
    pub write_scope: String,
    /// Groups offered a scope of their own (`flaregate:GROUP:read`,
    /// `flaregate:GROUP:write`), for a token that may touch only them.
    pub group_scopes: Vec<String>,
    /// Signature algorithms accepted (asymmetric only).
    pub algorithms: Vec<String>,
    /// The claim groups are read from.
    pub group_claim: String,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway_secs: u64,
    /// A key id not seen yet fetches the issuer's keys again at most this
    /// often (a rotation is picked up; a flood of made-up ids is not).
    pub key_refresh_secs: u64,
    /// Where the keys are, when the issuer has no discovery document.
    pub jwks_uri: Option<String>,
    /// Where opaque (non-JWT) tokens are checked (RFC 7662), if anywhere.
    pub introspection: Option<Introspection>,
}

/// The authorization server's introspection endpoint and flaregate's
/// client credentials for it (the secret from the environment only).
#[derive(Debug, Clone, PartialEq)]
pub struct Introspection {
    pub endpoint: String,
    pub client_id: String,
    pub secret: Secret,
}

/// A secret that is never printed (`{:?}` shows that it is set).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub(super) fn new(secret: String) -> Self {
        Self(secret)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// The environment variable holding flaregate's client secret for the
/// introspection endpoint.
pub const CLIENT_SECRET_VARIABLE: &str = "FLAREGATE_OAUTH_CLIENT_SECRET";

/// flaregate behind Cloudflare Access: the team whose assertions
/// (`Cf-Access-Jwt-Assertion`) are taken, and the application's audience tag.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessSettings {
    /// `https://TEAM.cloudflareaccess.com`: the assertions' issuer.
    pub team_domain: String,
    /// The Access application's Audience (AUD) tag.
    pub audience: String,
}

impl AccessSettings {
    /// The same checks as an OAuth token's, against the team's keys
    /// (`/cdn-cgi/access/certs`) and the application's tag; Access signs
    /// with RS256 and grants no flaregate scope, so the policy alone limits.
    pub fn as_oauth(&self, leeway_secs: u64) -> OAuthSettings {
        let team = self.team_domain.trim_end_matches('/').to_string();
        OAuthSettings {
            issuers: vec![team.clone()],
            resource: team.clone(),
            audiences: vec![self.audience.clone()],
            scopes_supported: Vec::new(),
            read_scope: String::new(),
            write_scope: String::new(),
            group_scopes: Vec::new(),
            algorithms: vec!["RS256".into(), "ES256".into()],
            group_claim: "groups".into(),
            leeway_secs,
            key_refresh_secs: 30,
            jwks_uri: Some(format!("{team}/cdn-cgi/access/certs")),
            introspection: None,
        }
    }
}

/// The asymmetric algorithms a token may be signed with; never `none`, never
/// HMAC (a public key must not become a shared secret).
pub const OAUTH_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    pub(super) oauth: Option<RawOAuth>,
    pub(super) cloudflare_access: Option<RawAccess>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccess {
    pub(super) team_domain: String,
    pub(super) audience: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOAuth {
    issuers: Vec<String>,
    resource: String,
    audiences: Option<Vec<String>>,
    scopes_supported: Option<Vec<String>>,
    read_scope: Option<String>,
    write_scope: Option<String>,
    group_scopes: Option<Vec<String>>,
    algorithms: Option<Vec<String>>,
    group_claim: Option<String>,
    leeway_secs: Option<u64>,
    key_refresh_secs: Option<u64>,
    jwks_uri: Option<String>,
    introspection_endpoint: Option<String>,
    introspection_client_id: Option<String>,
}

/// `[auth.oauth]` checked: issuers and resource are URLs (https, or http
/// on loopback for testing), algorithms asymmetric.
pub(super) fn oauth_settings(raw: RawOAuth) -> Result<OAuthSettings, String> {
    if raw.jwks_uri.is_some() && raw.issuers.len() != 1 {
        return Err("auth.oauth.jwks_uri is for one issuer: name exactly one in issuers".into());
    }
    if raw.issuers.is_empty() {
        return Err(
            "auth.oauth.issuers is empty: name the issuer whose tokens are accepted".into(),
        );
    }
    for issuer in raw.issuers.iter().chain([&raw.resource]) {
        if !super::secure_url(issuer) {
            return Err(format!(
                "auth.oauth: `{issuer}` is not an https:// URL (http:// only on loopback)"
            ));
        }
    }
    let introspection = introspection(
        raw.introspection_endpoint.as_deref(),
        raw.introspection_client_id.as_deref(),
    )?;
    let algorithms = raw.algorithms.unwrap_or_else(|| {
        vec![
            "RS256".into(),
            "PS256".into(),
            "ES256".into(),
            "EdDSA".into(),
        ]
    });
    if let Some(bad) = algorithms
        .iter()
        .find(|a| !OAUTH_ALGORITHMS.contains(&a.as_str()))
    {
        return Err(format!(
            "auth.oauth.algorithms: `{bad}` is not accepted; one of {} (never none or HMAC)",
            OAUTH_ALGORITHMS.join(", ")
        ));
    }
    let audiences = raw
        .audiences
        .unwrap_or_else(|| vec![raw.resource.clone()])
        .iter()
        .map(|a| canonical_url(a))
        .collect();
    let read_scope = raw.read_scope.unwrap_or_else(|| "flaregate:read".into());
    let write_scope = raw.write_scope.unwrap_or_else(|| "flaregate:write".into());
    let group_scopes = raw.group_scopes.unwrap_or_default();
    if let Some(bad) = group_scopes.iter().find(|g| {
        g.is_empty()
            || !g
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    }) {
        return Err(format!(
            "auth.oauth.group_scopes: `{bad}` is not a capability group id (lowercase letters, digits, '_' and '-')"
        ));
    }
    let mut supported = vec![read_scope.clone(), write_scope.clone()];
    for group in &group_scopes {
        for level in ["read", "write"] {
            supported.push(format!("flaregate:{group}:{level}"));
        }
    }
    Ok(OAuthSettings {
        resource: canonical_url(&raw.resource),
        issuers: raw.issuers,
        audiences,
        scopes_supported: raw.scopes_supported.unwrap_or(supported),
        read_scope,
        write_scope,
        group_scopes,
        algorithms,
        group_claim: raw.group_claim.unwrap_or_else(|| "groups".into()),
        leeway_secs: raw.leeway_secs.unwrap_or(60),
        key_refresh_secs: raw.key_refresh_secs.unwrap_or(30).max(1),
        jwks_uri: raw.jwks_uri,
        introspection,
    })
}

/// The introspection endpoint and client, both given or neither, with the
/// secret in the environment.
fn introspection(
    endpoint: Option<&str>,
    client_id: Option<&str>,
) -> Result<Option<Introspection>, String> {
    let (endpoint, client_id) = match (endpoint, client_id) {
        (None, None) => return Ok(None),
        (Some(endpoint), Some(client_id)) => (endpoint, client_id),
        _ => {
            return Err(
                "auth.oauth: give introspection_endpoint and introspection_client_id together"
                    .into(),
            );
        }
    };
    if !super::secure_url(endpoint) {
        return Err(format!(
            "auth.oauth.introspection_endpoint: `{endpoint}` is not an https:// URL (http:// only on loopback)"
        ));
    }
    let secret = super::env_value(CLIENT_SECRET_VARIABLE).ok_or_else(|| {
        format!(
            "auth.oauth.introspection_endpoint needs flaregate's client secret in {CLIENT_SECRET_VARIABLE}"
        )
    })?;
    Ok(Some(Introspection {
        endpoint: endpoint.to_string(),
        client_id: client_id.to_string(),
        secret: Secret(secret),
    }))
}

/// A URL as resource indicators compare it: lowercase scheme and host, no
/// trailing slash.
pub fn canonical_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(url) => url.to_string().trim_end_matches('/').to_string(),
        Err(_) => text.trim_end_matches('/').to_string(),
    }
}
