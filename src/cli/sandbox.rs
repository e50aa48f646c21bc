//! `flaregate sandbox`: the simulated Cloudflare API as its own process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::Outcome;
use crate::cloudflare::RateSpec;
use crate::sandbox::{self, Fault, SandboxConfig, Tokens};

#[derive(Args)]
pub(super) struct SandboxArgs {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8790")]
    listen: SocketAddr,
    /// The full-access token to accept (random when not given).
    #[arg(long, env = "FLAREGATE_SANDBOX_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A TOML file of extra [[token]] entries with limited permissions.
    #[arg(long)]
    tokens_file: Option<PathBuf>,
    /// Cloudflare's rate limit per token, e.g. 1200/300s, or off.
    #[arg(long, default_value = "1200/300s")]
    rate_limit: RateSpec,
    /// Inject a fault: METHOD:PATH_GLOB:STATUS[:COUNT] (repeatable).
    #[arg(long = "fault")]
    faults: Vec<Fault>,
    /// Delay every answer by this many milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// A catalog folder whose endpoints without a simulated route (the
    /// imported API) are answered from a generic in-memory store.
    #[arg(long)]
    catalog: Option<std::path::PathBuf>,
}

pub(super) async fn run(args: SandboxArgs) -> Outcome {
    let mut config = SandboxConfig::new();
    if let Some(token) = args.token {
        config.tokens = Tokens::new(token);
    }
    if let Some(path) = &args.tokens_file {
        config.tokens.load_file(path)?;
    }
    config.rate_limit = args.rate_limit;
    config.faults = args.faults;
    config.latency = Duration::from_millis(args.latency_ms);
    if let Some(dir) = &args.catalog {
        let catalog = crate::catalog::Catalog::load(dir).map_err(|e| e.to_string())?;
        config.catalog = Some(std::sync::Arc::new(catalog));
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let running = sandbox::spawn(listener, config).map_err(|e| e.to_string())?;
    println!(
        "flaregate sandbox: a simulated Cloudflare API for trying and testing flaregate. It is not Cloudflare."
    );
    println!("  API:   {}", running.base_url());
    println!("  token: {}", running.token);
    println!(
        "Try: curl -H 'Authorization: Bearer {}' {}/zones",
        running.token,
        running.base_url()
    );
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}
