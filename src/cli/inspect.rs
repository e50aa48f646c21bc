//! `flaregate tools --agent ID`: the tools an agent sees, each with its
//! constraints, and its scopes and limits — as text or JSON (`--json`).

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::{Outcome, PolicyPaths, setup};
use crate::policy::Policy;

#[derive(Args)]
pub(super) struct ToolsArgs {
    /// The agent's id.
    #[arg(long)]
    agent: String,
    /// One JSON object instead of the text listing.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    paths: PolicyPaths,
}

/// `flaregate tools --agent ID`: the tools, each with its constraints,
/// and the agent's limits.
pub(super) fn tools(args: &ToolsArgs) -> Outcome {
    let paths = args.paths.paths();
    let config = setup::config(&paths)?;
    let catalog = setup::catalog(&config, &paths)?;
    let policy = setup::policy(&config, catalog.clone())?;
    let agent = policy
        .agent(&args.agent)
        .ok_or_else(|| unknown_agent(&policy, &args.agent))?;
    let visible: Vec<&str> = agent.visible_tools(&catalog).collect();
    if args.json {
        let tools: Vec<_> = visible
            .iter()
            .map(|tool| {
                let endpoint = catalog
                    .endpoint(tool)
                    .expect("visible tools come from the catalog");
                json!({
                    "tool": tool,
                    "group": endpoint.group,
                    "access": format!("{:?}", endpoint.access).to_lowercase(),
                    "permission": endpoint.permission,
                    "needs_approval": agent.needs_approval(&catalog, tool),
                    "constraints": agent
                        .constraints(&catalog, tool)
                        .iter()
                        .map(|c| c.describe_rule())
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        let removed: Vec<_> = agent
            .removed
            .iter()
            .map(|(tool, why)| json!({"tool": tool, "why": why}))
            .collect();
        let listing = json!({
            "agent": agent.id,
            "tools": tools,
            "of": catalog.endpoints().len(),
            "removed": removed,
            "zones": agent.zones.describe(),
            "accounts": agent.accounts.describe(),
            "limits": crate::budget::describe_limits(&agent.limits),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&listing).map_err(|e| e.to_string())?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} sees {} of {} tools:",
        agent.id,
        visible.len(),
        catalog.endpoints().len()
    );
    for tool in visible {
        let endpoint = catalog
            .endpoint(tool)
            .expect("visible tools come from the catalog");
        let access = format!("{:?}", endpoint.access).to_lowercase();
        let gated = if agent.needs_approval(&catalog, tool) {
            "  (needs approval)"
        } else {
            ""
        };
        println!(
            "  {tool:<32} {:<16} {access:<5}  {}{gated}",
            endpoint.group, endpoint.permission
        );
        for constraint in agent.constraints(&catalog, tool) {
            println!("      {}", constraint.describe_rule());
        }
    }
    if !agent.removed.is_empty() {
        println!("taken away by constraints (grant one by name in `tools` to have it anyway):");
        for (tool, why) in &agent.removed {
            println!("  {tool:<32} {why}");
        }
    }
    println!("in zones:    {}", agent.zones.describe());
    println!("in accounts: {}", agent.accounts.describe());
    println!(
        "limits:      {}",
        crate::budget::describe_limits(&agent.limits)
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) fn unknown_agent(policy: &Policy, id: &str) -> String {
    let known: Vec<&str> = policy.agents().iter().map(|a| a.id.as_str()).collect();
    format!(
        "no agent `{id}` in the policies; the agents are {}",
        known.join(", ")
    )
}
