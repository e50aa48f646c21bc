//! The `flaregate` command line: argument parsing and one module per
//! command family. Commands print for people (or JSON on request) and
//! return an exit code.

mod approvals;
mod audit;
mod catalog;
mod check;
mod demo_keys;
mod explain;
mod hooks;
mod init;
mod inspect;
mod keys;
mod retention;
mod sandbox;
mod serve;
mod setup;
mod token_check;
mod undo;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::logging::{self, LogFormat};

/// An MCP gateway that lets AI agents use the Cloudflare API inside the
/// lines an operator draws, with every decision logged.
#[derive(Parser)]
#[command(name = "flaregate", version, about)]
pub struct Cli {
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides.
    /// Default: info for `serve` and `sandbox`, warn for the commands that
    /// print an answer (their output is the answer, not log lines).
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// Where to find the configuration and what to override in it.
#[derive(Args, Clone, Debug, Default)]
pub struct Paths {
    /// flaregate.toml (default: ./flaregate.toml if present).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The catalog folder.
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// A policy file or folder of them.
    #[arg(long)]
    policies: Option<PathBuf>,
    /// The audit database: a SQLite file or a postgres:// URL (default:
    /// $FLAREGATE_AUDIT_DB, else the configuration's `audit_db`).
    #[arg(long)]
    audit_db: Option<PathBuf>,
}

/// `--config` alone, for the commands that need nothing else from it.
#[derive(Args, Clone, Debug, Default)]
pub struct ConfigPath {
    /// flaregate.toml (default: ./flaregate.toml if present).
    #[arg(long)]
    config: Option<PathBuf>,
}

impl ConfigPath {
    pub fn paths(&self) -> Paths {
        Paths {
            config: self.config.clone(),
            ..Paths::default()
        }
    }
}

/// The configuration, catalog and policies: for the commands that read
/// the policy (`check`, `tools`, `explain`).
#[derive(Args, Clone, Debug, Default)]
pub struct PolicyPaths {
    #[command(flatten)]
    config: ConfigPath,
    /// The catalog folder.
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// A policy file or folder of them.
    #[arg(long)]
    policies: Option<PathBuf>,
}

impl PolicyPaths {
    pub fn paths(&self) -> Paths {
        Paths {
            catalog: self.catalog.clone(),
            policies: self.policies.clone(),
            ..self.config.paths()
        }
    }
}

/// The configuration and the audit database.
#[derive(Args, Clone, Debug, Default)]
pub struct DbPaths {
    #[command(flatten)]
    config: ConfigPath,
    /// The audit database: a SQLite file or a postgres:// URL (default:
    /// $FLAREGATE_AUDIT_DB, else the configuration's `audit_db`).
    #[arg(long)]
    audit_db: Option<PathBuf>,
}

impl DbPaths {
    pub fn paths(&self) -> Paths {
        Paths {
            audit_db: self.audit_db.clone(),
            ..self.config.paths()
        }
    }
}

/// Where the audit log is, for the commands that read it or decide
/// approvals in it: the configured log, or `--sandbox`'s.
#[derive(Args, Clone, Debug, Default)]
pub struct LogPaths {
    #[command(flatten)]
    db: DbPaths,
    /// The log `serve --sandbox` writes (flaregate-sandbox-audit.db beside
    /// the configured one) instead of the configured log.
    #[arg(long)]
    sandbox: bool,
}

impl LogPaths {
    pub fn paths(&self) -> Paths {
        self.db.paths()
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the MCP server (try it: serve --sandbox).
    Serve(serve::ServeArgs),
    /// Set up a folder to start from: flaregate.toml, a starter policy
    /// with one agent and its key, a .gitignore; prints what to run next.
    Init(init::InitArgs),
    /// Run the simulated Cloudflare API (for demos, tests and benchmarks).
    Sandbox(sandbox::SandboxArgs),
    /// Validate the configuration, catalog and policies; print who may do what.
    Check(check::CheckArgs),
    /// List the tools an agent would see.
    Tools(inspect::ToolsArgs),
    /// Show the decision for a call, without calling Cloudflare.
    Explain(explain::ExplainArgs),
    /// Read the audit log, or verify its hash chain.
    Audit(audit::AuditArgs),
    /// Make a new agent key; prints it once with the line for the policy.
    Keygen(keys::KeygenArgs),
    /// Print a JSON Schema (policy: for policy files).
    Schema(keys::SchemaArgs),
    /// Work on the endpoint catalog (import: the whole API from OpenAPI).
    Catalog(catalog::CatalogArgs),
    /// List the calls waiting for a person's approval.
    Approvals(approvals::ListArgs),
    /// Approve a waiting call: the agent may then make it once.
    Approve(approvals::DecideArgs),
    /// Reject a waiting call.
    Reject(approvals::DecideArgs),
    /// Undo a logged write through the running server, as the agent whose
    /// key is in FLAREGATE_KEY (the policy must say `undo = true` for it).
    Undo(undo::UndoArgs),
    /// Where Cloudflare sends alerts (webhook destinations); `hooks new`
    /// makes one.
    Hooks(hooks::HooksArgs),
}

/// Parses the command line and runs the command on a runtime sized for it.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let level = cli.log_level.clone().unwrap_or_else(|| {
        match cli.command {
            Command::Serve(_) | Command::Sandbox(_) => "info",
            _ => "warn",
        }
        .to_string()
    });
    logging::init(cli.log_format, &level);
    let outcome = runtime(&cli.command).and_then(|runtime| runtime.block_on(execute(cli.command)));
    match outcome {
        Ok(code) => code,
        Err(message) => {
            eprintln!("flaregate: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn execute(command: Command) -> Outcome {
    match command {
        Command::Serve(args) => serve::run(args).await,
        Command::Init(args) => init::init(&args),
        Command::Sandbox(args) => sandbox::run(args).await,
        Command::Check(args) => check::check(&args).await,
        Command::Hooks(args) => hooks::run(&args).await,
        Command::Tools(args) => inspect::tools(&args),
        Command::Explain(args) => explain::explain(&args).await,
        Command::Audit(args) => audit::run(&args),
        Command::Keygen(args) => keys::keygen(&args),
        Command::Schema(args) => keys::schema(&args),
        Command::Catalog(args) => catalog::run(&args),
        Command::Approvals(args) => approvals::list(&args),
        Command::Approve(args) => approvals::decide(&args, true),
        Command::Reject(args) => approvals::decide(&args, false),
        Command::Undo(args) => undo::run(&args).await,
    }
}

/// The async runtime: `TOKIO_WORKER_THREADS` worker threads if set, else
/// [`serve::WORKERS`] for `serve` and one per core for the rest.
fn runtime(command: &Command) -> Result<tokio::runtime::Runtime, String> {
    let workers = match command {
        Command::Serve(_) => requested_workers()?.or(Some(serve::WORKERS)),
        _ => requested_workers()?,
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(workers) = workers {
        builder.worker_threads(workers);
    }
    builder
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}"))
}

/// `TOKIO_WORKER_THREADS`, checked here: tokio itself would panic on a bad value.
fn requested_workers() -> Result<Option<usize>, String> {
    match std::env::var("TOKIO_WORKER_THREADS") {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Ok(value) => match value.trim().parse::<usize>() {
            Ok(workers) if workers > 0 => Ok(Some(workers)),
            _ => Err(format!(
                "TOKIO_WORKER_THREADS must be a whole number above 0, not {value:?}"
            )),
        },
        Err(std::env::VarError::NotUnicode(_)) => {
            Err("TOKIO_WORKER_THREADS must be a whole number above 0".into())
        }
    }
}

/// What a command returns: an exit code, or a message for stderr.
type Outcome = Result<ExitCode, String>;
