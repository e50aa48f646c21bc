//! `flaregate serve`: the MCP server, over HTTP or stdio, in front of
//! Cloudflare or (with --sandbox) of the built-in simulated API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::demo_keys::{self, DemoKey};
use super::{Outcome, Paths, setup};
use crate::audit::{AuditLog, Database};
use crate::budget;
use crate::catalog::Catalog;
use crate::cloudflare::{Client, TokenOwner};
use crate::config::Config;
use crate::policy::{self, Engine, Policy};
use crate::sandbox::RunningSandbox;
use crate::server::listen::Listening;
use crate::server::{Gateway, http, reload, stdio};

#[derive(Args)]
pub(super) struct ServeArgs {
    /// Use the built-in sandbox (a simulated Cloudflare API) instead of
    /// Cloudflare, with the demo policy unless policies are configured.
    #[arg(long)]
    sandbox: bool,
    /// Serve MCP over streamable HTTP on ADDR (the default transport;
    /// default address from flaregate.toml, else 127.0.0.1:8787).
    #[arg(long, value_name = "ADDR", conflicts_with = "stdio")]
    http: Option<SocketAddr>,
    /// Serve one agent over stdin/stdout (needs --agent).
    #[arg(long, requires = "agent")]
    stdio: bool,
    /// The agent a stdio process serves.
    #[arg(long)]
    agent: Option<String>,
    /// Serve /health, /ready and /metrics on ADDR (default from
    /// flaregate.toml `[admin] listen`; none if unset). Keep it on loopback
    /// or a private network: it needs no key.
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// Send a trace span for every call to this OTLP/HTTP collector, e.g.
    /// http://127.0.0.1:4318/v1/traces (default from flaregate.toml
    /// `[telemetry] otlp_endpoint`; none if unset).
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
    #[command(flatten)]
    paths: Paths,
}

/// Async worker threads for `serve` unless `TOKIO_WORKER_THREADS` asks for
/// more. Cloudflare takes 1,200 requests per 5 minutes from a user, and one
/// worker answers thousands of calls a second; with no second worker to
/// wake and hand tasks to, each call costs less CPU and time
/// (docs/performance.md, "One async worker").
pub(super) const WORKERS: usize = 1;

/// How often refused calls counted past an agent's refusal budget are
/// written to the log (one row per agent).
const SUPPRESSED_EVERY: Duration = Duration::from_secs(5);

/// The audit database `serve --sandbox` writes unless `--audit-db` names
/// one: demo calls never land in a production log.
pub(super) const SANDBOX_AUDIT_DB: &str = "flaregate-sandbox-audit.db";

pub(super) async fn run(args: ServeArgs) -> Outcome {
    // First: a reload asked for during start-up must not end the process.
    let hangup = reload::hangups();
    let mut config = setup::config(&args.paths)?;
    if args.sandbox {
        setup::use_sandbox_log(&mut config, &args.paths);
    }
    let catalog = setup::catalog(&config, &args.paths)?;
    let (client, sandbox) = upstream(&config, args.sandbox.then(|| catalog.clone())).await?;
    let (mut policy, source) = load_policy(&config, &args, catalog.clone())?;
    let listen = args.http.unwrap_or(config.http.listen);

    // Keys are for HTTP clients; a stdio process already knows its agent.
    let demo_keys = if args.sandbox && !args.stdio {
        demo_keys::load_or_make(&policy, &demo_keys::file_beside(&config.audit_files().key))?
    } else {
        Vec::new()
    };
    let hashes: Vec<(String, [u8; 32])> = demo_keys
        .iter()
        .map(|k| (k.agent.clone(), k.hash))
        .collect();
    let stdio_mode = args.stdio;
    let adjust: reload::Adjust = Arc::new(move |policy: &mut Policy| {
        for (agent, hash) in &hashes {
            policy.add_key_hash(agent, *hash);
        }
        if stdio_mode {
            Ok(())
        } else {
            http::check_listener(policy, listen)
        }
    });
    adjust(&mut policy)?;
    if config.http.oauth.is_none() {
        for agent in policy.agents().iter().filter(|a| a.oauth.is_some()) {
            tracing::warn!(
                agent = %agent.id,
                "the agent is reached by OAuth tokens, but flaregate.toml has no [auth.oauth]: nobody can sign in as it"
            );
        }
    }
    if let Some(agent) = &args.agent
        && policy.agent(agent).is_none()
    {
        return Err(format!("no agent `{agent}` in the policies"));
    }

    let audit = AuditLog::open_with(
        &config.audit_files(),
        config.audit_sync,
        config.audit_max_mb.map(|mb| (mb * 1024.0 * 1024.0) as u64),
    )
    .map_err(|e| {
        // Without a configuration file, files land in the working folder,
        // which a client may have set to `/`.
        if config.folder.as_os_str().is_empty() && args.paths.audit_db.is_none() {
            format!(
                "{e}. With no --config, the log is made in the working folder: give --config FILE \
                 (its paths are taken from its folder) or --audit-db PATH"
            )
        } else {
            e.to_string()
        }
    })?;
    // Serve while names resolve: tools/list does not wait for Cloudflare;
    // a call's decision waits for the names.
    let engine =
        Engine::unresolved(policy, Some(client.clone())).on_reload_error(config.on_reload_error);
    let share = budget::agent_share(
        config.cloudflare.rate_limit,
        config.cloudflare.reserve_percent,
    );
    // With a PostgreSQL log, limits are kept there too: shared by every
    // instance on it.
    let budgets: Arc<dyn budget::Budgets> = match &config.audit_db {
        Database::Postgres(url) => Arc::new(budget::Shared::with_reserve(
            url,
            share,
            config.cloudflare.rate_limit,
            config.cloudflare.reserve_percent,
        )),
        Database::Sqlite(_) => Arc::new(budget::InProcess::with_reserve(
            share,
            config.cloudflare.reserve_percent,
        )),
    };
    // Approvals share the audit database, keyed with its key.
    let files = config.audit_files();
    let key = crate::audit::ChainKey::load(&files.key).map_err(|e| e.to_string())?;
    // Approvals live in the audit database (a file, or the PostgreSQL
    // database every instance shares).
    let approvals = Some((crate::approval::Approvals::new(&files.db), key));
    let gateway = Gateway::new(
        catalog,
        engine,
        client,
        (audit, files.db.clone()),
        args.sandbox,
        budgets,
        approvals,
    );
    tokio::spawn({
        let gateway = gateway.clone();
        let check_grants = sandbox.is_none() && config.cloudflare.check_grants_at_start;
        async move {
            gateway.engine().resolve_names().await;
            if check_grants {
                // Starts anyway; the operator hears what the token lacks.
                let policy = gateway.engine().policy();
                let directory = gateway.engine().directory();
                for gap in
                    crate::policy::token_gaps::gaps(gateway.client(), &policy, &directory, false)
                        .await
                {
                    tracing::error!("{gap}");
                }
            }
        }
    });
    if let Some(endpoint) = args.otlp_endpoint.clone().or(config.otlp_endpoint.clone()) {
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(format!(
                "the OTLP endpoint `{endpoint}` must be an http:// or https:// URL"
            ));
        }
        gateway.trace_with(crate::telemetry::Tracer::start(endpoint));
    }
    let shutdown = CancellationToken::new();
    let console = crate::server::ConsoleSetup {
        operators: config.operators.clone(),
        policies: source.clone().map(|path| (path, adjust.clone())),
        audit: files.clone(),
        sign_in: config.console_sign_in.clone(),
    };
    if let Some(path) = source {
        reload::spawn(gateway.clone(), path, adjust, hangup, shutdown.clone());
    }
    stop_on_signal(shutdown.clone());
    gateway.record_suppressed_every(SUPPRESSED_EVERY, shutdown.clone());
    let admin = match args.admin.or(config.admin_listen) {
        Some(addr) => {
            let listener = Listening::bind(
                addr,
                config.http.tls.as_ref(),
                "the admin routes",
                &shutdown,
            )
            .await?;
            if !config.operators.is_empty() && !addr.ip().is_loopback() && config.http.tls.is_none()
            {
                tracing::warn!(
                    %addr,
                    "the console is served off loopback without TLS: browsers keep its Secure session cookie only over https (set [http] tls_cert and tls_key) or on localhost"
                );
            }
            let url = listener.url("");
            tokio::spawn(http::admin(
                gateway.clone(),
                listener,
                console,
                shutdown.clone(),
            ));
            Some(url)
        }
        None => None,
    };

    if args.stdio {
        let agent = args.agent.expect("clap requires --agent with --stdio");
        announce(
            &mut std::io::stderr(),
            sandbox.as_ref(),
            (None, admin.as_deref()),
            &demo_keys,
            &config,
        );
        let served = stdio::serve(gateway.clone(), agent).await;
        shutdown.cancel();
        gateway.close().await;
        served?;
        return Ok(ExitCode::SUCCESS);
    }
    let listener = Listening::bind(listen, config.http.tls.as_ref(), "MCP", &shutdown).await?;
    let url = listener.url("/mcp");
    if !listener.local_addr().ip().is_loopback() && config.http.tls.is_none() {
        tracing::warn!(
            "MCP is served on {} without TLS: agent keys cross the network in clear unless TLS ends in front of flaregate ([http] tls_cert and tls_key serve it here)",
            listener.local_addr()
        );
    }
    announce(
        &mut std::io::stdout(),
        sandbox.as_ref(),
        (Some(&url), admin.as_deref()),
        &demo_keys,
        &config,
    );
    let served = http::serve(gateway.clone(), listener, &config.http, shutdown).await;
    gateway.close().await;
    served.map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// The configured policies (watched for changes), or in sandbox mode with
/// none at hand, the built-in demo policy.
fn load_policy(
    config: &Config,
    args: &ServeArgs,
    catalog: Arc<Catalog>,
) -> Result<(Policy, Option<PathBuf>), String> {
    if args.sandbox && args.paths.policies.is_none() && !config.policies.exists() {
        let sources = vec![(
            PathBuf::from("policies/demo.toml (built in)"),
            policy::DEMO.to_string(),
        )];
        return policy::compile(&sources, catalog)
            .map(|p| (p, None))
            .map_err(|e| e.to_string());
    }
    Ok((
        setup::policy(config, catalog)?,
        Some(config.policies.clone()),
    ))
}

/// The Cloudflare client: for the in-process sandbox, or for the real API
/// with the token checked now rather than on the first call.
/// In sandbox mode the sandbox answers the catalog's other endpoints too.
async fn upstream(
    config: &Config,
    sandbox_catalog: Option<Arc<crate::catalog::Catalog>>,
) -> Result<(Client, Option<RunningSandbox>), String> {
    if let Some(catalog) = sandbox_catalog {
        let (client, running) = setup::sandbox(config, Some(catalog)).await?;
        return Ok((client, Some(running)));
    }
    let client = setup::client(config)?.ok_or(
        "no Cloudflare credential: set CLOUDFLARE_API_TOKEN (or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY), or try flaregate with --sandbox",
    )?;
    match client.verify_token().await {
        Ok((status, owner)) if status == "active" => {
            match owner {
                TokenOwner::User => {
                    tracing::info!(api = %client.base_url(), "Cloudflare token verified");
                }
                TokenOwner::Account(account) => tracing::info!(
                    api = %client.base_url(), %account,
                    "Cloudflare token verified (owned by the account)"
                ),
            }
            Ok((client, None))
        }
        Ok((status, _)) => Err(format!("the Cloudflare token is {status}, not active")),
        Err(error) => Err(format!(
            "cannot verify the Cloudflare token with {}: {error}",
            client.base_url()
        )),
    }
}

/// The start-up banner: where to connect, and plainly whether this is a sandbox.
fn announce(
    out: &mut dyn std::io::Write,
    sandbox: Option<&RunningSandbox>,
    (url, admin): (Option<&str>, Option<&str>),
    keys: &[DemoKey],
    config: &Config,
) {
    let mut lines = Vec::new();
    if let Some(sandbox) = sandbox {
        lines.push("flaregate is running in SANDBOX mode: calls go to a simulated Cloudflare API, not to Cloudflare.".to_string());
        lines.push(format!("  sandbox API: {}", sandbox.base_url()));
    } else {
        lines.push("flaregate is running in front of the Cloudflare API.".to_string());
    }
    if let Some(url) = url {
        lines.push(format!("  MCP:         {url}"));
    }
    if let Some(admin) = admin {
        lines.push(format!("  admin:       {admin}  (/health /ready /metrics)"));
        if !config.operators.is_empty() {
            lines.push(format!(
                "  console:     {}/console  ({} operators)",
                admin.trim_end_matches('/'),
                config.operators.len()
            ));
        }
    }
    lines.push(format!("  audit log:   {}", config.audit_db));
    for key in keys {
        lines.push(format!("  key for {}: {}", key.agent, key.key));
    }
    if url.is_some() && !keys.is_empty() {
        lines.push("Connect an MCP client with the header  Authorization: Bearer <key>  (each agent sees only its tools).".into());
    }
    lines.push("Ready.".into());
    let _ = writeln!(out, "{}", lines.join("\n"));
    let _ = out.flush();
}

/// Cancels `shutdown` on Ctrl-C or SIGTERM. The handlers are installed
/// before this returns, so a signal right after start-up is not lost.
fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = signal(SignalKind::terminate()).ok();
    let interrupt = signal(SignalKind::interrupt()).ok();
    tokio::spawn(async move {
        tokio::select! {
            () = received(terminate) => {}
            () = received(interrupt) => {}
        }
        tracing::info!("shutting down");
        shutdown.cancel();
    });
}

/// Waits for a signal; forever if its handler could not be installed.
async fn received(signal: Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(mut signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}
