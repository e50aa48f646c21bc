//! The `flaregate` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use flaregate::cloudflare::RateSpec;
use flaregate::logging::{self, LogFormat};
use flaregate::sandbox::{self, Fault, SandboxConfig, Tokens};

/// An MCP gateway that lets AI agents use the Cloudflare API inside the
/// lines an operator draws, with every decision logged.
#[derive(Parser)]
#[command(name = "flaregate", version, about)]
struct Cli {
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides.
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the simulated Cloudflare API (for demos, tests and benchmarks).
    Sandbox(SandboxArgs),
}

#[derive(Args)]
struct SandboxArgs {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8788")]
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
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format, &cli.log_level);
    let outcome = match cli.command {
        Command::Sandbox(args) => run_sandbox(args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("flaregate: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run_sandbox(args: SandboxArgs) -> Result<(), String> {
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
    Ok(())
}
