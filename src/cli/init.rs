//! `flaregate init [DIR]`: a setup to start from — a commented
//! `flaregate.toml`, a starter policy with one agent (its key printed once,
//! only its SHA-256 written), a `.gitignore` for the files flaregate writes —
//! and the next three commands. Nothing that is there is overwritten.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::Outcome;
use crate::policy;

#[derive(Args)]
pub(super) struct InitArgs {
    /// The folder to set up (made if missing; default: the current one).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// The starter agent's id.
    #[arg(long, default_value = "my-agent")]
    agent: String,
}

const CONFIG: &str = r#"# flaregate configuration. Relative paths are taken from this file's folder.
# Every setting: README.md, "Configuration (flaregate.toml)".

policies = "policies"             # who may do what: *.toml files, reloaded on change
# catalog = "catalog"             # the endpoint catalog; the built-in one when this folder is missing
audit_db = "flaregate-audit.db"   # the tamper-evident log; "postgres://…" for several instances
# audit_key = "flaregate-audit.key"   # made at the first start (mode 0600); keep it apart from backups of the log
audit_sync = "full"               # each decision on disk before its call changes anything
# audit_max_mb = 1024             # past this size every call is refused

[http]
listen = "127.0.0.1:8787"         # MCP at http://127.0.0.1:8787/mcp
# tls_cert = "tls/fullchain.pem"  # off loopback, serve HTTPS (both files, PEM;
# tls_key = "tls/privkey.pem"     # re-read when they change)

[admin]
# listen = "127.0.0.1:8788"       # /health, /ready, /metrics (no key: keep it private)

[cloudflare]
rate_limit = "1200/300s"          # flaregate's share of Cloudflare's budget, for all agents
reserve_percent = 25              # no single agent may spend the last 25% of it

[policy]
on_reload_error = "keep"          # a policy edit that fails keeps the older one; "refuse" stops calls
"#;

const GITIGNORE: &str = "# What flaregate writes: the audit log, its key and head checkpoint.
*.db
*.db-wal
*.db-shm
*.key
*.head
*.demo-keys
";

fn policy_text(agent: &str, hash: &str) -> String {
    format!(
        r#"# Deny by default: an agent sees and may call only what is granted here.
# Every field: README.md, "Policies"; `flaregate schema policy` for editors.

[[agent]]
id = "{agent}"
description = "Reads DNS of one zone"
key_sha256 = ["{hash}"]         # from `flaregate keygen --agent {agent}`; never the key itself
zones = []                        # your zone names or ids, e.g. ["example.com"]; "*" = all
# accounts = ["Example Corp"]

[agent.grants]                    # capability group -> off | read | full (`flaregate check` lists them)
dns = "read"

[agent.limits]
calls_per_minute = 60
writes_per_hour = 30
"#
    )
}

/// Writes the starter files into `args.dir`; prints the agent's key once
/// and what to run next.
pub(super) fn init(args: &InitArgs) -> Outcome {
    policy::check_agent_id(&args.agent).map_err(|e| e.to_string())?;
    let dir = &args.dir;
    let files = [
        dir.join("flaregate.toml"),
        dir.join("policies").join(format!("{}.toml", args.agent)),
        dir.join(".gitignore"),
    ];
    if let Some(there) = files.iter().find(|f| f.exists()) {
        return Err(format!(
            "{} is there already: init writes nothing over an existing setup",
            there.display()
        ));
    }
    let (key, hash) = policy::new_key();
    std::fs::create_dir_all(dir.join("policies"))
        .map_err(|e| format!("cannot make {}: {e}", dir.join("policies").display()))?;
    write(&files[0], CONFIG)?;
    write(&files[1], &policy_text(&args.agent, &hash))?;
    write(&files[2], GITIGNORE)?;
    let config = files[0].display();
    println!(
        "Wrote {config}, {} and {}.",
        files[1].display(),
        files[2].display()
    );
    println!();
    println!(
        "The key of agent {} (shown once; give it to the agent, store it nowhere else):",
        args.agent
    );
    println!();
    println!("  {key}");
    println!();
    println!("Next:");
    println!(
        "  1. Put your zones in {} (zones = [\"example.com\"]), then check it:",
        files[1].display()
    );
    println!("       flaregate check --config {config}");
    println!("  2. Start it with a Cloudflare API token (only flaregate sees it):");
    println!("       CLOUDFLARE_API_TOKEN=… flaregate serve --config {config}");
    println!("  3. Connect a client with the agent's key:");
    println!(
        "       claude mcp add --transport http cloudflare http://127.0.0.1:8787/mcp --header \"Authorization: Bearer {key}\""
    );
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut file| std::io::Write::write_all(&mut file, text.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
