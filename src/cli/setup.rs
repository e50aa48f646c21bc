//! Loading what every command needs: configuration, catalog, policy, and
//! (when a credential is set) a Cloudflare client and zone directory.

use std::sync::Arc;
use std::time::Duration;

use super::Paths;
use crate::catalog::Catalog;
use crate::cloudflare::{Client, ClientConfig, Credential};
use crate::config::Config;
use crate::policy::{self, Policy};

/// The configuration with the command line's path overrides applied.
pub fn config(paths: &Paths) -> Result<Config, String> {
    let mut config = Config::load(paths.config.as_deref()).map_err(|e| e.to_string())?;
    if let Some(p) = &paths.catalog {
        config.catalog = p.clone();
    }
    if let Some(p) = &paths.policies {
        config.policies = p.clone();
    }
    if let Some(p) = &paths.audit_db {
        config.audit_db = p.clone();
    }
    Ok(config)
}

pub fn catalog(config: &Config) -> Result<Arc<Catalog>, String> {
    Catalog::load(&config.catalog)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

pub fn policy(config: &Config, catalog: Arc<Catalog>) -> Result<Policy, String> {
    let sources = policy::policy_files(&config.policies).map_err(|e| e.to_string())?;
    policy::compile(&sources, catalog).map_err(|e| e.to_string())
}

/// A client for the configured API, if a credential is in the environment.
pub fn client(config: &Config) -> Result<Option<Client>, String> {
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

/// The client that resolves names and looks up objects for decisions; none
/// (with a note on stderr) without a credential.
pub fn resolver(config: &Config) -> Result<Option<Client>, String> {
    let client = client(config)?;
    if client.is_none() {
        eprintln!(
            "note: no CLOUDFLARE_API_TOKEN set, so zone and account names in policies are not resolved"
        );
    }
    Ok(client)
}
