//! flaregate.toml and the environment: where the catalog, policies and
//! audit log live, how to reach Cloudflare, and how to listen for HTTP.
//! Relative paths are taken from the config file's folder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::audit::{AuditFiles, Durability};
use crate::cloudflare::{DEFAULT_BASE_URL, RateSpec};

mod auth;
mod console;
mod hooks;

pub use auth::{
    AccessSettings, CLIENT_SECRET_VARIABLE, Introspection, OAUTH_ALGORITHMS, OAuthSettings, Secret,
    canonical_url,
};
use auth::{RawAuth, oauth_settings};
use console::RawConsole;
pub use console::{CONSOLE_SECRET_VARIABLE, ConsoleSignIn, Operator, Role};
pub use hooks::{Hook, check_hook_name};

/// The file looked for when `--config` is not given.
pub const DEFAULT_FILE: &str = "flaregate.toml";

/// Everything flaregate.toml can say, with defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub catalog: PathBuf,
    pub policies: PathBuf,
    pub audit_db: crate::audit::Database,
    /// The chain's HMAC key; beside the database unless set.
    pub audit_key: Option<PathBuf>,
    pub audit_sync: Durability,
    /// A cap on the audit database's size; past it calls are refused.
    pub audit_max_mb: Option<f64>,
    pub cloudflare: CloudflareSettings,
    pub http: HttpSettings,
    /// Where `/health`, `/ready` and `/metrics` are served; none if unset.
    pub admin_listen: Option<SocketAddr>,
    /// The people who may use the console (served on the admin listener
    /// when any are named).
    pub operators: Vec<Operator>,
    /// Where operators sign in with the organisation's login, if anywhere.
    pub console_sign_in: Option<ConsoleSignIn>,
    /// Where call spans go (OTLP/HTTP traces URL); none if unset.
    pub otlp_endpoint: Option<String>,
    /// While a policy reload has failed: keep the older policy in force
    /// (`keep`) or refuse calls until one loads (`refuse`).
    pub on_reload_error: crate::policy::OnReloadError,
    /// The configuration file's folder: relative paths in it, and files
    /// flaregate makes by default, are taken from here, never from the
    /// process's working folder (Claude Desktop starts servers in `/`).
    pub folder: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CloudflareSettings {
    pub base_url: String,
    /// flaregate's own budget of Cloudflare requests, shared by all agents.
    pub rate_limit: RateSpec,
    /// The part of that budget no single agent can spend (0–90 %): each
    /// agent may use the rest, so one cannot starve the others.
    pub reserve_percent: u8,
    /// At start (real token), read once per granted group and scope to
    /// report permissions the token lacks.
    pub check_grants_at_start: bool,
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// Origins a browser-borne request may come from (globs on port: `http://localhost:*`).
    pub allowed_origins: Vec<String>,
    /// Host header values accepted (DNS-rebinding protection); empty = loopback names only.
    pub allowed_hosts: Vec<String>,
    pub max_body_bytes: usize,
    /// TLS for the MCP and admin listeners (`tls_cert`, `tls_key`); plain
    /// HTTP when unset.
    pub tls: Option<TlsFiles>,
    /// Agents reached by OAuth access tokens from these issuers
    /// (`[auth.oauth]`); keys only when unset.
    pub oauth: Option<OAuthSettings>,
    /// Agents reached through Cloudflare Access (`[auth.cloudflare_access]`).
    pub cloudflare_access: Option<AccessSettings>,
    /// Webhook destinations of Cloudflare's notifications (`[[hook]]`),
    /// served at `/hooks/cloudflare/{name}`.
    pub hooks: Vec<Hook>,
}

/// The certificate chain and private key files (PEM) the listeners serve
/// TLS with (`server::tls` reads them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    catalog: Option<PathBuf>,
    policies: Option<PathBuf>,
    audit_db: Option<PathBuf>,
    audit_key: Option<PathBuf>,
    #[serde(default)]
    audit_sync: Durability,
    audit_max_mb: Option<f64>,
    #[serde(default)]
    cloudflare: RawCloudflare,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    telemetry: RawTelemetry,
    #[serde(default)]
    policy: RawPolicySettings,
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    console: RawConsole,
    #[serde(default, rename = "hook")]
    hooks: Vec<hooks::RawHook>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicySettings {
    #[serde(default)]
    on_reload_error: crate::policy::OnReloadError,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTelemetry {
    otlp_endpoint: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<SocketAddr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCloudflare {
    base_url: Option<String>,
    rate_limit: Option<String>,
    reserve_percent: Option<u8>,
    check_grants_at_start: Option<bool>,
    timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<SocketAddr>,
    allowed_origins: Option<Vec<String>>,
    allowed_hosts: Option<Vec<String>>,
    max_body_bytes: Option<usize>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

impl Config {
    /// Reads `path`, or `./flaregate.toml` if it exists, or the defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let (raw, base) = match path {
            Some(path) => (read(path)?, parent(path)),
            None if Path::new(DEFAULT_FILE).is_file() => {
                (read(Path::new(DEFAULT_FILE))?, PathBuf::new())
            }
            None => (RawConfig::default(), PathBuf::new()),
        };
        let invalid = |message: String| ConfigError::Invalid {
            path: path.map_or_else(|| PathBuf::from(DEFAULT_FILE), Path::to_path_buf),
            line: 0,
            message,
        };
        let rate_limit = match raw.cloudflare.rate_limit {
            Some(text) => text
                .parse()
                .map_err(|e| invalid(format!("cloudflare.rate_limit: {e}")))?,
            None => RateSpec::default(),
        };
        let reserve_percent = raw.cloudflare.reserve_percent.unwrap_or(25);
        if reserve_percent > 90 {
            return Err(invalid(format!(
                "cloudflare.reserve_percent = {reserve_percent}: at most 90, so each agent keeps a share"
            )));
        }
        let base_url = env_value("CLOUDFLARE_API_BASE_URL")
            .or(raw.cloudflare.base_url)
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(invalid(format!(
                "cloudflare.base_url `{base_url}` must start with https:// or http://"
            )));
        }
        let resolve = |p: Option<PathBuf>, default: &str| {
            let p = p.unwrap_or_else(|| PathBuf::from(default));
            if p.is_absolute() { p } else { base.join(p) }
        };
        let oauth = raw
            .auth
            .oauth
            .map(oauth_settings)
            .transpose()
            .map_err(invalid)?;
        let console_sign_in = console::sign_in(&raw.console).map_err(invalid)?;
        let operators = console::operators(raw.console).map_err(invalid)?;
        let hooks = hooks::hooks(raw.hooks).map_err(invalid)?;
        let cloudflare_access = match raw.auth.cloudflare_access {
            Some(access) => {
                if !secure_url(&access.team_domain) || access.audience.trim().is_empty() {
                    return Err(invalid(
                        "auth.cloudflare_access: team_domain must be https://TEAM.cloudflareaccess.com and audience the application's AUD tag".into(),
                    ));
                }
                Some(AccessSettings {
                    team_domain: access.team_domain,
                    audience: access.audience,
                })
            }
            None => None,
        };
        let tls = match (raw.http.tls_cert, raw.http.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: resolve(Some(cert), ""),
                key: resolve(Some(key), ""),
            }),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "http.tls_cert and http.tls_key go together: give both, or neither for plain HTTP"
                        .into(),
                ));
            }
        };
        Ok(Config {
            catalog: resolve(raw.catalog, "catalog"),
            policies: resolve(raw.policies, "policies"),
            // A PostgreSQL URL is kept as written; a file is found from here.
            // FLAREGATE_AUDIT_DB keeps a URL with a password out of the file.
            audit_db: match env_value(AUDIT_DB_VARIABLE)
                .map(PathBuf::from)
                .or(raw.audit_db)
                .map(crate::audit::Database::from)
            {
                Some(url @ crate::audit::Database::Postgres(_)) => url,
                Some(crate::audit::Database::Sqlite(file)) => resolve(Some(file), "").into(),
                None => resolve(None, "flaregate-audit.db").into(),
            },
            audit_key: raw.audit_key.map(|p| resolve(Some(p), "")),
            audit_sync: raw.audit_sync,
            audit_max_mb: raw.audit_max_mb,
            cloudflare: CloudflareSettings {
                base_url,
                rate_limit,
                reserve_percent,
                check_grants_at_start: raw.cloudflare.check_grants_at_start.unwrap_or(true),
                timeout_secs: raw.cloudflare.timeout_secs.unwrap_or(30).max(1),
            },
            http: HttpSettings {
                listen: raw
                    .http
                    .listen
                    .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8787))),
                allowed_origins: raw.http.allowed_origins.unwrap_or_else(|| {
                    vec!["http://localhost:*".into(), "http://127.0.0.1:*".into()]
                }),
                allowed_hosts: raw.http.allowed_hosts.unwrap_or_default(),
                max_body_bytes: raw.http.max_body_bytes.unwrap_or(16 * 1024 * 1024),
                tls,
                oauth,
                cloudflare_access,
                hooks,
            },
            admin_listen: raw.admin.listen,
            operators,
            console_sign_in,
            otlp_endpoint: raw.telemetry.otlp_endpoint,
            on_reload_error: raw.policy.on_reload_error,
            folder: base,
        })
    }
}

impl Config {
    /// The audit database, its key (`audit_key`, else beside the database;
    /// for PostgreSQL, `flaregate-audit.key` in the configuration's folder)
    /// and its head checkpoint (beside the key).
    pub fn audit_files(&self) -> AuditFiles {
        match (&self.audit_key, &self.audit_db) {
            (Some(key), _) => AuditFiles::with_key(&self.audit_db, key),
            (None, crate::audit::Database::Postgres(_)) => AuditFiles::with_key(
                &self.audit_db,
                &self.folder.join(crate::audit::POSTGRES_KEY_FILE),
            ),
            (None, crate::audit::Database::Sqlite(_)) => AuditFiles::beside(&self.audit_db),
        }
    }
}

/// The environment variable that, when set, replaces `audit_db`.
pub const AUDIT_DB_VARIABLE: &str = "FLAREGATE_AUDIT_DB";

/// Whether `text` is a URL a secret or token may be sent to: https, or
/// http on loopback (for testing).
fn secure_url(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|u| {
        u.scheme() == "https"
            || (u.scheme() == "http"
                && matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")))
    })
}

/// A variable's value, unless unset or blank.
fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn read(path: &Path) -> Result<RawConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Invalid {
        path: path.to_path_buf(),
        line: e.span().map_or(1, |s| crate::text::line_of(&text, s.start)),
        message: e.message().trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("flaregate.toml");
        std::fs::write(&path, text).expect("write");
        let config = Config::load(Some(&path)).expect("loads");
        (dir, config)
    }

    #[test]
    fn relative_paths_and_default_files_are_taken_from_the_files_folder() {
        let (dir, config) = load("catalog = \"cat\"\naudit_db = \"logs/a.db\"\n");
        assert_eq!(config.catalog, dir.path().join("cat"));
        assert_eq!(config.policies, dir.path().join("policies"));
        assert_eq!(config.audit_files().key, dir.path().join("logs/a.key"));
        let (dir, config) = load("audit_db = \"postgres://u@127.0.0.1/db\"\n");
        let files = config.audit_files();
        assert_eq!(files.key, dir.path().join("flaregate-audit.key"));
        assert_eq!(files.head, dir.path().join("flaregate-audit.head"));
    }

    #[test]
    fn oauth_takes_asymmetric_algorithms_and_https_issuers_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("flaregate.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).expect("write");
            Config::load(Some(&path))
        };
        let base = "[auth.oauth]\nissuers = [\"https://login.example.com\"]\nresource = \"https://Flaregate.Example.com/mcp/\"\n";
        let config = load(base).expect("loads");
        let oauth = config.http.oauth.expect("on");
        assert_eq!(oauth.resource, "https://flaregate.example.com/mcp");
        assert_eq!(oauth.audiences, vec![oauth.resource.clone()]);
        let hmac = load(&format!("{base}algorithms = [\"HS256\"]\n")).expect_err("HMAC refused");
        assert!(hmac.to_string().contains("never none or HMAC"), "{hmac}");
        let plain = load("[auth.oauth]\nissuers = [\"http://login.example.com\"]\nresource = \"https://f.example.com/mcp\"\n")
            .expect_err("plain http refused");
        assert!(plain.to_string().contains("https://"), "{plain}");
    }
}
