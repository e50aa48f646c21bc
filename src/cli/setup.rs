//! Loading what every command needs: configuration, catalog, policy, and
//! (when a credential is set) a Cloudflare client and zone directory.

use std::sync::Arc;
use std::time::Duration;

use super::{LogPaths, Paths};
use crate::catalog::Catalog;
use crate::cloudflare::{Client, ClientConfig, Credential};
use crate::config::Config;
use crate::policy::{self, Policy};
use crate::sandbox::{self, RunningSandbox, SandboxConfig};

/// The configuration with the command line's path overrides applied.
pub(super) fn config(paths: &Paths) -> Result<Config, String> {
    let mut config = Config::load(paths.config.as_deref()).map_err(|e| e.to_string())?;
    if let Some(p) = &paths.catalog {
        config.catalog = p.clone();
    }
    if let Some(p) = &paths.policies {
        config.policies = p.clone();
    }
    if let Some(p) = &paths.audit_db {
        config.audit_db = crate::audit::Database::parse(p);
    }
    Ok(config)
}

/// The configuration for a command on the audit log: `--sandbox` picks
/// the sandbox's log as `serve --sandbox` does. A SQLite log that is not
/// there is an error naming the file tried (and the sandbox's log, when
/// that is the one there).
pub(super) fn log_config(log: &LogPaths) -> Result<Config, String> {
    let paths = log.paths();
    let mut config = config(&paths)?;
    if log.sandbox {
        use_sandbox_log(&mut config, &paths);
    }
    let Some(file) = config.audit_db.file() else {
        return Ok(config);
    };
    if file.exists() {
        return Ok(config);
    }
    let sandbox = file.with_file_name(super::serve::SANDBOX_AUDIT_DB);
    let hint = if !log.sandbox && sandbox.exists() {
        format!(
            "; the sandbox's log is {}: add --sandbox",
            std::path::absolute(&sandbox).unwrap_or(sandbox).display()
        )
    } else {
        " (give --audit-db, --config, or --sandbox for the sandbox's log)".into()
    };
    Err(format!(
        "no audit log at {}{hint}",
        std::path::absolute(file)
            .unwrap_or_else(|_| file.to_path_buf())
            .display()
    ))
}

/// The sandbox's own log (`SANDBOX_AUDIT_DB` beside the configured SQLite
/// log, with its own key) unless `--audit-db` names one: demo calls never
/// land in a production log.
pub(super) fn use_sandbox_log(config: &mut Config, paths: &Paths) {
    if let (None, crate::audit::Database::Sqlite(file)) = (&paths.audit_db, &config.audit_db) {
        config.audit_db =
            crate::audit::Database::Sqlite(file.with_file_name(super::serve::SANDBOX_AUDIT_DB));
        config.audit_key = None;
    }
}

/// The configured catalog, or the built-in one when no catalog folder is
/// there and none was asked for: every command works from any folder.
pub(super) fn catalog(config: &Config, paths: &Paths) -> Result<Arc<Catalog>, String> {
    if config.catalog.is_dir() || paths.catalog.is_some() {
        return Catalog::load(&config.catalog)
            .map(Arc::new)
            .map_err(|e| e.to_string());
    }
    tracing::info!(missing = %config.catalog.display(), "using the built-in catalog");
    Ok(Arc::new(crate::catalog::builtin()))
}

pub(super) fn policy(config: &Config, catalog: Arc<Catalog>) -> Result<Policy, String> {
    let sources = policy::policy_files(&config.policies).map_err(|e| e.to_string())?;
    policy::compile(&sources, catalog).map_err(|e| e.to_string())
}

/// The built-in sandbox, started in this process, and a client for it;
/// `catalog`'s endpoints without a curated route answer from its generic
/// store.
pub(super) async fn sandbox(
    config: &Config,
    catalog: Option<Arc<Catalog>>,
) -> Result<(Client, RunningSandbox), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let mut sandbox_config = SandboxConfig::new();
    sandbox_config.catalog = catalog;
    let running = sandbox::spawn(listener, sandbox_config).map_err(|e| e.to_string())?;
    let mut client_config =
        ClientConfig::new(running.base_url(), Credential::Token(running.token.clone()));
    client_config.rate_limit = config.cloudflare.rate_limit;
    client_config.timeout = Duration::from_secs(config.cloudflare.timeout_secs);
    let client = Client::new(client_config).map_err(|e| e.to_string())?;
    Ok((client, running))
}

/// A client for the configured API, if a credential is in the environment.
pub(super) fn client(config: &Config) -> Result<Option<Client>, String> {
    let Some(credential) = Credential::from_env() else {
        return Ok(None);
    };
    let mut client_config = ClientConfig::new(config.cloudflare.base_url.clone(), credential);
    client_config.rate_limit = config.cloudflare.rate_limit;
    client_config.timeout = Duration::from_secs(config.cloudflare.timeout_secs);
    Client::new(client_config)
        .map(Some)
        .map_err(|e| e.to_string())
}
