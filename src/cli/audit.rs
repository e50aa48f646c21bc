//! `flaregate audit` (read the log) and `flaregate audit verify`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use super::{LogPaths, Outcome, retention, setup};
use crate::audit::{self, ChainVerdict, Filter, Head};
use crate::text;

#[derive(Args)]
pub(super) struct AuditArgs {
    #[command(subcommand)]
    action: Option<AuditAction>,
    /// Only this agent's calls.
    #[arg(long)]
    agent: Option<String>,
    /// Only calls of this tool.
    #[arg(long)]
    tool: Option<String>,
    /// Only calls on this zone (name or id).
    #[arg(long)]
    zone: Option<String>,
    /// Keep printing rows as they are written, until interrupted.
    #[arg(long)]
    follow: bool,
    /// Only allowed or only denied calls.
    #[arg(long, value_enum)]
    decision: Option<DecisionFilter>,
    /// The story of one request for approval: the request, the person's
    /// decision and the call, with their reasons.
    #[arg(long, value_name = "ID")]
    approval: Option<String>,
    /// Only calls in this last stretch of time: 30s, 15m, 1h, 7d.
    #[arg(long, value_parser = humantime::parse_duration)]
    since: Option<Duration>,
    /// At most this many (the newest).
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    paths: LogPaths,
}

#[derive(Subcommand)]
enum AuditAction {
    /// Check the chain with the audit key, against the head checkpoint and
    /// (if given) a head you saved: reports the first row that does not
    /// match, and rows cut off the end.
    Verify {
        /// A head printed earlier by `flaregate audit head` (EVENTS:HASH)
        /// and kept where flaregate cannot write: the log must still hold it.
        #[arg(long, value_name = "EVENTS:HASH")]
        expect_head: Option<Head>,
        /// Check an export or archive file instead of the log, with the
        /// same audit key.
        #[arg(long, value_name = "FILE", conflicts_with = "expect_head")]
        file: Option<PathBuf>,
        #[command(flatten)]
        paths: LogPaths,
    },
    /// Write the rows decided in a stretch of time as JSON lines that
    /// verify on their own with the audit key (`audit verify --file`); the
    /// first line says which chain events they span.
    Export {
        /// From this time: 2026-11-01, 2026-11-01T12:00:00Z, or 30d (ago).
        #[arg(long, value_parser = retention::moment)]
        since: Option<i64>,
        /// Up to (not including) this time.
        #[arg(long, value_parser = retention::moment)]
        until: Option<i64>,
        /// A new file to write (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        paths: LogPaths,
    },
    /// Move the rows decided before a time out of the log into a new file
    /// (as `export` writes, with their snapshots). The chain is verified
    /// first; the log then starts where the archive ends and still
    /// verifies. Frees room under `audit_max_mb`.
    Archive {
        /// Rows decided before this time: 2026-11-01, or 90d (ago).
        #[arg(long, value_parser = retention::moment)]
        before: i64,
        /// The archive file to create.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        paths: LogPaths,
    },
    /// One row in full: the call, the decision, the state before it (kept
    /// for undo), the request and Cloudflare's answer.
    Show {
        /// The row id (`flaregate audit` prints it first on each line).
        row: i64,
        #[command(flatten)]
        paths: LogPaths,
    },
    /// Print the end of the chain as EVENTS:HASH, to keep somewhere safe
    /// and pass to `audit verify --expect-head` later.
    Head {
        #[command(flatten)]
        paths: LogPaths,
    },
    /// Make the audit key before the first start (where `audit_key` says,
    /// else beside the log), to copy to every instance of one log. The log
    /// records the key's fingerprint at its first row; an instance with
    /// another key refuses to start.
    InitKey {
        #[command(flatten)]
        paths: super::DbPaths,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum DecisionFilter {
    Allow,
    Deny,
    Preview,
    Approved,
    Rejected,
    /// Changes operators made to the policy in the console.
    Policy,
    /// Alerts Cloudflare sent to flaregate's webhooks.
    Alert,
}

pub(super) fn run(args: &AuditArgs) -> Outcome {
    match &args.action {
        Some(AuditAction::Verify {
            paths,
            file: Some(file),
            ..
        }) => return retention::verify_file(paths, file),
        Some(AuditAction::Verify {
            paths, expect_head, ..
        }) => {
            return verify(paths, expect_head.as_ref());
        }
        Some(AuditAction::Export {
            since,
            until,
            out,
            paths,
        }) => return retention::export(paths, *since, *until, out.as_deref()),
        Some(AuditAction::Archive { before, out, paths }) => {
            return retention::archive(paths, *before, out);
        }
        Some(AuditAction::Head { paths }) => return head(paths),
        Some(AuditAction::InitKey { paths }) => return init_key(paths),
        Some(AuditAction::Show { row, paths }) => return show(paths, *row),
        None => {}
    }
    let config = setup::log_config(&args.paths)?;
    check_names(args, &config)?;
    let mut filter = Filter {
        agent: args.agent.clone(),
        tool: args.tool.clone(),
        decision: args.decision.map(|d| match d {
            DecisionFilter::Allow => crate::audit::Decision::Allow,
            DecisionFilter::Deny => crate::audit::Decision::Deny,
            DecisionFilter::Preview => crate::audit::Decision::Preview,
            DecisionFilter::Approved => crate::audit::Decision::Approved,
            DecisionFilter::Rejected => crate::audit::Decision::Rejected,
            DecisionFilter::Policy => crate::audit::Decision::Policy,
            DecisionFilter::Alert => crate::audit::Decision::Alert,
        }),
        approval: args.approval.clone(),
        id: None,
        since: args.since,
        zone: args.zone.clone(),
        after_id: None,
        limit: args.limit,
    };
    let entries = audit::read(&config.audit_db, &filter).map_err(|e| e.to_string())?;
    if let (Some(id), false) = (&args.approval, args.json) {
        return story(&config.audit_db, id, &entries);
    }
    print_entries(&entries, args.json)?;
    if entries.is_empty() && !args.json && !args.follow {
        eprintln!("no matching calls in {}", config.audit_db);
    }
    if args.follow {
        // New rows as they come, oldest first, until interrupted.
        filter.since = None;
        filter.limit = 10_000;
        let mut last = entries.last().map_or(0, |e| e.id);
        loop {
            std::thread::sleep(FOLLOW_EVERY);
            filter.after_id = Some(last);
            let fresh = audit::read(&config.audit_db, &filter).map_err(|e| e.to_string())?;
            print_entries(&fresh, args.json)?;
            last = fresh.last().map_or(last, |e| e.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How often `audit --follow` looks for new rows.
const FOLLOW_EVERY: Duration = Duration::from_millis(300);

fn print_entries(entries: &[audit::Entry], json: bool) -> Result<(), String> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for entry in entries {
        if json {
            let line = serde_json::to_string(entry).map_err(|e| e.to_string())?;
            let _ = writeln!(out, "{line}");
        } else {
            // Escaped again here: rows written by older versions, or by
            // hand, must not print as more than one line either.
            let sandbox = if entry.sandbox { "[sandbox] " } else { "" };
            let _ = writeln!(
                out,
                "{:>6}  {}  {:<5}  {sandbox}{}",
                entry.id,
                text::escape(&entry.ts),
                text::escape(&entry.decision),
                text::escape(&entry.summary)
            );
        }
    }
    let _ = out.flush();
    Ok(())
}

/// One request for approval as a story: what was asked, who decided and
/// when, and each row of the chain that belongs to it, with its reason.
fn story(db: &audit::Database, id: &str, entries: &[audit::Entry]) -> Outcome {
    use crate::approval::{Approvals, time_of};
    let approval = Approvals::new(db)
        .get(id)
        .map_err(|e| format!("cannot read the approvals: {e}"))?
        .ok_or_else(|| format!("there is no approval {} in {}", text::clip(id, 40), db))?;
    println!(
        "Approval {}: agent {} asked to run {}.",
        approval.id,
        approval.agent,
        text::escape(&approval.summary)
    );
    println!(
        "Requested at {}, valid until {}; {}.",
        time_of(approval.requested_ms),
        time_of(approval.expires_ms),
        match (&approval.decided_by, approval.decided_ms) {
            (Some(by), Some(at)) => format!(
                "{} by {} at {}{}",
                approval.status.as_str(),
                text::escape(by),
                time_of(at),
                if approval.used {
                    ", and used"
                } else {
                    ", not used"
                }
            ),
            _ => "no one has decided it".to_string(),
        }
    );
    if entries.is_empty() {
        println!("The log has no rows of it yet.");
    }
    for entry in entries {
        let sandbox = if entry.sandbox { "[sandbox] " } else { "" };
        println!(
            "{:>6}  {}  {:<8}  {sandbox}{}",
            entry.id,
            text::escape(&entry.ts),
            text::escape(&entry.decision),
            text::escape(&entry.summary),
        );
        // An allowed call's sentence does not say why; its reason does.
        if !entry.summary.contains(entry.reason.trim_end_matches('.')) {
            println!("{:>8}why: {}", "", text::escape(&entry.reason));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An agent or tool in a filter that cannot match anything is a typo, not
/// "no matching calls": say so, with what there is.
fn check_names(args: &AuditArgs, config: &crate::config::Config) -> Result<(), String> {
    if let Some(tool) = &args.tool {
        let catalog = setup::catalog(config, &args.paths.paths())?;
        if catalog.endpoint(tool).is_none() {
            return Err(format!(
                "there is no tool `{tool}` (flaregate tools --agent ID lists them)"
            ));
        }
    }
    if let Some(agent) = &args.agent {
        let known = audit::agents(&config.audit_db).map_err(|e| e.to_string())?;
        let in_policy = setup::catalog(config, &args.paths.paths())
            .and_then(|catalog| setup::policy(config, catalog))
            .is_ok_and(|policy| policy.agent(agent).is_some());
        if !in_policy && !known.contains(agent) {
            return Err(format!(
                "there is no agent `{agent}` in the policies or the log; the log has calls by {}",
                if known.is_empty() {
                    "nobody yet".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
    }
    Ok(())
}

fn verify(paths: &LogPaths, expect: Option<&Head>) -> Outcome {
    let config = setup::log_config(paths)?;
    let files = config.audit_files();
    match audit::verify(&files, expect).map_err(|e| e.to_string())? {
        ChainVerdict::Valid { rows, head } => {
            println!(
                "all {rows} rows verify ({} chained events, with the audit key and the head checkpoint) in {}",
                head.events, files.db
            );
            println!("head: {head}");
            Ok(ExitCode::SUCCESS)
        }
        ChainVerdict::Broken {
            row: Some(row),
            problem,
        } => {
            println!("the chain is broken at row {row}: {problem}");
            Ok(ExitCode::FAILURE)
        }
        ChainVerdict::Broken { row: None, problem } => {
            println!("the log does not verify: {problem}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn show(paths: &LogPaths, row: i64) -> Outcome {
    use crate::audit::Prior;
    let config = setup::log_config(paths)?;
    let (entry, stored) = audit::read_row(&config.audit_db, row)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("there is no row {row} in {}", config.audit_db))?;
    let line = |label: &str, value: &str| println!("{label:<10} {}", text::escape(value));
    line("row", &entry.id.to_string());
    line("time", &entry.ts);
    line("agent", &entry.agent);
    line(
        "call",
        &format!("{} {} {}", entry.tool, entry.method, entry.path),
    );
    line("arguments", &entry.args.to_string());
    line("decision", &format!("{}: {}", entry.decision, entry.reason));
    line("rule", &entry.rule);
    if !entry.lookup.is_empty() {
        line("fetched", &entry.lookup);
    }
    match stored.as_ref().map(|s| &s.prior) {
        None => line("before", "not kept"),
        Some(Prior::Object(object)) => {
            let pretty = serde_json::from_str::<serde_json::Value>(object)
                .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
                .unwrap_or_else(|_| object.clone());
            println!("before");
            for l in pretty.lines() {
                println!("    {}", text::escape(l));
            }
        }
        Some(Prior::Text(code)) => {
            use sha2::Digest;
            let digest = hex::encode(sha2::Sha256::digest(code.as_bytes()));
            line(
                "before",
                &format!("code, {} bytes, sha256 {digest}", code.len()),
            );
        }
        Some(Prior::Missing) => line("before", "it did not exist"),
        Some(Prior::Nothing) => line("before", "nothing: the call creates something"),
    }
    if let Some(created) = stored.as_ref().and_then(|s| s.created.as_deref()) {
        line("created", created);
    }
    line("outcome", &entry.summary);
    let undos = audit::undos_of(&config.audit_db, row).map_err(|e| e.to_string())?;
    for undo in undos {
        line(
            "undone",
            &format!("by row {} ({}, {})", undo.id, undo.decision, undo.ts),
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn head(paths: &LogPaths) -> Outcome {
    let config = setup::log_config(paths)?;
    let head = audit::head(&config.audit_files()).map_err(|e| e.to_string())?;
    println!("{head}");
    Ok(ExitCode::SUCCESS)
}

fn init_key(paths: &super::DbPaths) -> Outcome {
    let config = setup::config(&paths.paths())?;
    let path = config.audit_files().key;
    let shown = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
    if path.exists() {
        let key = audit::ChainKey::load(&path).map_err(|e| e.to_string())?;
        return Err(format!(
            "the audit key {} is there already (fingerprint {}); it is not replaced",
            shown.display(),
            key.fingerprint()
        ));
    }
    let key = audit::ChainKey::create(&path).map_err(|e| e.to_string())?;
    println!(
        "made the audit key {} (fingerprint {})",
        shown.display(),
        key.fingerprint()
    );
    println!(
        "Copy it (mode 0600) to every instance that writes {}, before their first start.",
        config.audit_db
    );
    Ok(ExitCode::SUCCESS)
}
