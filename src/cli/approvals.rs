//! `flaregate approvals`, `approve ID`, `reject ID`: the operator's side of
//! approvals, on the host that holds the audit database. Whoever can run
//! these (and read the database) can approve: the trust model of the
//! operator path.

use std::process::ExitCode;

use clap::Args;

use super::{LogPaths, Outcome, setup};
use serde_json::{Value, json};

use crate::approval::{Approval, Approvals};
use crate::text;

#[derive(Args)]
pub(super) struct ListArgs {
    #[command(flatten)]
    paths: LogPaths,
    /// One JSON object per request, the preview whole.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(super) struct DecideArgs {
    #[command(flatten)]
    paths: LogPaths,
    /// The approval id the agent was given.
    id: String,
    /// Who decides, as the audit log will say (default: $USER).
    #[arg(long)]
    by: Option<String>,
    /// Why, in a few words, kept with the decision in the audit log.
    #[arg(long)]
    note: Option<String>,
}

/// Lists the requests waiting for a decision.
pub(super) fn list(args: &ListArgs) -> Outcome {
    let approvals = store(&args.paths)?;
    let pending = approvals
        .pending(crate::audit::now_unix_ms())
        .map_err(|e| format!("cannot read the approvals: {e}"))?;
    if args.json {
        for approval in pending {
            println!("{}", as_json(&approval));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if pending.is_empty() {
        println!("no approvals waiting");
    }
    for approval in pending {
        print_one(&approval);
    }
    Ok(ExitCode::SUCCESS)
}

/// Approves (`approve`) or rejects a waiting request.
pub(super) fn decide(args: &DecideArgs, approve: bool) -> Outcome {
    let approvals = store(&args.paths)?;
    let by = args
        .by
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "the operator".into());
    let by = crate::text::clip(&by, 64);
    let approval = approvals
        .decide(
            &args.id,
            approve,
            (
                &by,
                args.note
                    .as_deref()
                    .map(|n| text::one_line(n, 500))
                    .as_deref(),
            ),
            crate::audit::now_unix_ms(),
        )
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

/// A request as a person reads it: who asked and when, the call, its
/// arguments as a table, and what it would change.
fn print_one(approval: &Approval) {
    let at = crate::approval::time_of;
    println!(
        "{}  agent {}  asked {}  expires {}",
        approval.id,
        approval.agent,
        at(approval.requested_ms),
        at(approval.expires_ms)
    );
    println!("    {}", text::escape(&approval.summary));
    if let Some(who) = &approval.asked_by {
        println!("    asked by:  {}", text::escape(who));
    }
    let Ok(preview) = serde_json::from_str::<Value>(&approval.preview) else {
        println!("    preview: {}", text::escape(&approval.preview));
        return;
    };
    let request = &preview["request"];
    if let (Some(method), Some(path)) = (request["method"].as_str(), request["path"].as_str()) {
        println!("    request:   {method} {}", text::escape(path));
    }
    if let Some(arguments) = preview["arguments"].as_object() {
        println!("    arguments:");
        let width = arguments.keys().map(String::len).max().unwrap_or(0);
        // Whole: the person approves the exact call. A list shows an item
        // a line.
        let shown = |value: &Value| match value {
            Value::String(s) => text::escape(s).into_owned(),
            other => text::escape(&other.to_string()).into_owned(),
        };
        for (name, value) in arguments {
            match value {
                Value::Array(items) if !items.is_empty() => {
                    for (i, item) in items.iter().enumerate() {
                        let label = if i == 0 { name.as_str() } else { "" };
                        println!("      {label:<width$}  {}", shown(item));
                    }
                }
                value => println!("      {name:<width$}  {}", shown(value)),
            }
        }
    }
    let (label, what) = match preview.get("changes") {
        Some(changes) => ("changes", changes),
        None => ("now", &preview["current"]),
    };
    if !what.is_null() {
        println!("    {label}:");
        let pretty = serde_json::to_string_pretty(what).unwrap_or_default();
        for line in pretty.lines().take(40) {
            println!("      {}", text::escape(line));
        }
    }
}

/// A request as one JSON object (`approvals --json`).
fn as_json(approval: &Approval) -> Value {
    let at = |ms| crate::approval::time_of(ms).to_string();
    json!({
        "id": approval.id,
        "agent": approval.agent,
        "tool": approval.tool,
        "summary": approval.summary,
        "requested": at(approval.requested_ms),
        "asked_by": approval.asked_by,
        "expires": at(approval.expires_ms),
        "preview": serde_json::from_str::<Value>(&approval.preview)
            .unwrap_or_else(|_| Value::String(approval.preview.clone())),
    })
}
