//! `flaregate approvals`, `approve ID`, `reject ID`: the operator's side of
//! approvals, on the host that holds the audit database. Whoever can run
//! these (and read the database) can approve: the trust model of the
//! operator path.

use std::process::ExitCode;

use clap::Args;

use super::{LogPaths, Outcome, setup};
use crate::approval::{Approval, Approvals};

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    paths: LogPaths,
}

#[derive(Args)]
pub struct DecideArgs {
    #[command(flatten)]
    paths: LogPaths,
    /// The approval id the agent was given.
    id: String,
    /// Who decides, as the audit log will say (default: $USER).
    #[arg(long)]
    by: Option<String>,
}

/// Lists the requests waiting for a decision.
pub fn list(args: &ListArgs) -> Outcome {
    let approvals = store(&args.paths)?;
    let pending = approvals
        .pending(crate::audit::now_unix_ms())
        .map_err(|e| format!("cannot read the approvals: {e}"))?;
    if pending.is_empty() {
        println!("no approvals waiting");
    }
    for approval in pending {
        print_one(&approval);
    }
    Ok(ExitCode::SUCCESS)
}

/// Approves (`approve`) or rejects a waiting request.
pub fn decide(args: &DecideArgs, approve: bool) -> Outcome {
    let approvals = store(&args.paths)?;
    let by = args
        .by
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "the operator".into());
    let by = crate::text::clip(&by, 64);
    let approval = approvals
        .decide(&args.id, approve, &by, crate::audit::now_unix_ms())
        .map_err(|refused| format!("approval {}: {refused}", crate::text::clip(&args.id, 40)))?;
    println!(
        "{} {} for agent {}: {}",
        if approve { "approved" } else { "rejected" },
        approval.id,
        approval.agent,
        crate::text::escape(&approval.summary)
    );
    if approve {
        println!(
            "The agent may now repeat that exact call once, with approval_id = \"{}\".",
            approval.id
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn store(paths: &LogPaths) -> Result<Approvals, String> {
    let config = setup::log_config(paths)?;
    Ok(Approvals::new(&config.audit_db))
}

fn print_one(approval: &Approval) {
    let at = crate::approval::time_of;
    println!(
        "{}  agent {}  asked {}  expires {}\n    {}\n    preview: {}",
        approval.id,
        approval.agent,
        at(approval.requested_ms),
        at(approval.expires_ms),
        crate::text::escape(&approval.summary),
        crate::text::escape(&approval.preview)
    );
}
