//! `flaregate audit` (read the log) and `flaregate audit verify`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use super::{Outcome, Paths, setup};
use crate::audit::{self, Filter, Verdict};
use crate::text;

#[derive(Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    action: Option<AuditAction>,
    /// Only this agent's calls.
    #[arg(long)]
    agent: Option<String>,
    /// Only calls of this tool.
    #[arg(long)]
    tool: Option<String>,
    /// Only allowed or only denied calls.
    #[arg(long, value_enum)]
    decision: Option<DecisionFilter>,
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
    paths: Paths,
}

#[derive(Subcommand)]
enum AuditAction {
    /// Check the hash chain: reports the first row that does not match.
    Verify {
        #[command(flatten)]
        paths: Paths,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum DecisionFilter {
    Allow,
    Deny,
}

pub fn run(args: &AuditArgs) -> Outcome {
    if let Some(AuditAction::Verify { paths }) = &args.action {
        return verify(paths);
    }
    let config = setup::config(&args.paths)?;
    let filter = Filter {
        agent: args.agent.clone(),
        tool: args.tool.clone(),
        allowed: args.decision.map(|d| matches!(d, DecisionFilter::Allow)),
        since: args.since,
        limit: args.limit,
    };
    let entries = audit::read(&config.audit_db, &filter).map_err(|e| e.to_string())?;
    for entry in &entries {
        if args.json {
            println!(
                "{}",
                serde_json::to_string(entry).map_err(|e| e.to_string())?
            );
        } else {
            // Escaped again here: rows written by older versions, or by
            // hand, must not print as more than one line either.
            println!(
                "{:>6}  {}  {:<5}  {}",
                entry.id,
                text::escape(&entry.ts),
                text::escape(&entry.decision),
                text::escape(&entry.summary)
            );
        }
    }
    if entries.is_empty() && !args.json {
        eprintln!("no matching calls in {}", config.audit_db.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(paths: &Paths) -> Outcome {
    let config = setup::config(paths)?;
    match audit::verify(&config.audit_db).map_err(|e| e.to_string())? {
        Verdict::Valid { rows, events } => {
            println!(
                "all {rows} rows verify ({events} chained events) in {}",
                config.audit_db.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Verdict::Broken { row, problem } => {
            println!("the chain is broken at row {row}: {problem}");
            Ok(ExitCode::FAILURE)
        }
    }
}
