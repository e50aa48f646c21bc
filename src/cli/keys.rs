//! `keygen` and `schema`.

use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::Outcome;
use crate::policy;

#[derive(Args)]
pub(super) struct KeygenArgs {
    /// The agent the key is for (printed in the instructions).
    #[arg(long)]
    agent: String,
}

/// Prints a new key once, and the line to paste into the agent's policy.
pub(super) fn keygen(args: &KeygenArgs) -> Outcome {
    policy::check_agent_id(&args.agent).map_err(|e| e.to_string())?;
    let (key, hash) = policy::new_key();
    println!(
        "New key for agent {} (shown once; give it to the agent, store it nowhere else):",
        args.agent
    );
    println!();
    println!("  {key}");
    println!();
    println!("Add to the [[agent]] entry with id = \"{}\":", args.agent);
    println!();
    println!("  key_sha256 = [\"{hash}\"]");
    Ok(ExitCode::SUCCESS)
}

#[derive(Clone, Copy, ValueEnum)]
pub(super) enum SchemaKind {
    /// Policy files (policies/*.toml).
    Policy,
}

#[derive(Args)]
pub(super) struct SchemaArgs {
    kind: SchemaKind,
}

pub(super) fn schema(args: &SchemaArgs) -> Outcome {
    match args.kind {
        SchemaKind::Policy => {
            let text =
                serde_json::to_string_pretty(&policy::json_schema()).map_err(|e| e.to_string())?;
            println!("{text}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
