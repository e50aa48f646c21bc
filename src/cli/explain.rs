//! `flaregate explain`: what the server would decide for one call, and
//! why — offline, against the sandbox, or against the live API.

use std::process::ExitCode;

use clap::Args;
use serde_json::{Map, Value};

use super::inspect::unknown_agent;
use super::{Outcome, Paths, setup};
use crate::audit::summary;
use crate::policy::{Engine, Verdict, describe_target};
use crate::server::pipeline::{LookupError, fetch_object};

/// What `explain` says when it cannot decide without asking Cloudflare.
const OFFLINE: &str = "nothing was sent to Cloudflare; run with --live to ask the API, or --sandbox for the demo data";

#[derive(Args)]
pub struct ExplainArgs {
    /// The agent's id.
    #[arg(long)]
    agent: String,
    /// The tool.
    #[arg(long)]
    tool: String,
    /// The call's arguments, as a JSON object.
    #[arg(long, default_value = "{}")]
    args: String,
    /// Resolve names and fetch objects through the Cloudflare API (needs
    /// CLOUDFLARE_API_TOKEN). Without it nothing is sent to Cloudflare.
    #[arg(long, conflicts_with = "sandbox")]
    live: bool,
    /// Decide against the built-in sandbox's demo data.
    #[arg(long)]
    sandbox: bool,
    #[command(flatten)]
    paths: Paths,
}

/// Exit codes a script can tell apart: 0 allowed (perhaps once a person
/// approves), these otherwise.
const DENIED: u8 = 1;
const INVALID: u8 = 2;
const UNDECIDED: u8 = 3;

/// `flaregate explain`: exit 0 when the call would be allowed; 1 denied,
/// 2 invalid arguments, 3 undecided (it needs the API: `--live`).
pub async fn explain(args: &ExplainArgs) -> Outcome {
    let config = setup::config(&args.paths)?;
    let catalog = setup::catalog(&config, &args.paths)?;
    let policy = setup::policy(&config, catalog.clone())?;
    if policy.agent(&args.agent).is_none() {
        return Err(unknown_agent(&policy, &args.agent));
    }
    let mut call: Map<String, Value> = match serde_json::from_str(&args.args) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err("--args must be a JSON object, e.g. '{\"zone_id\": \"…\"}'".into()),
        Err(e) => return Err(format!("--args is not valid JSON: {e}")),
    };
    if catalog.endpoint(&args.tool).is_some()
        && let Err(invalid) = catalog.validate_arguments(&args.tool, &call)
    {
        println!("invalid: {invalid}");
        return Ok(ExitCode::from(INVALID));
    }
    // Kept running while the decision is made (the sandbox serves from it).
    let (resolver, _sandbox) = if args.sandbox {
        let (client, running) = setup::sandbox(&config, None).await?;
        (Some(client), Some(running))
    } else if args.live {
        let client = setup::client(&config)?.ok_or(
            "--live needs CLOUDFLARE_API_TOKEN (or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY)",
        )?;
        (Some(client), None)
    } else {
        (None, None)
    };
    let offline = resolver.is_none();
    let engine = Engine::new(policy, resolver.clone()).await;
    let policy = engine.policy();
    let agent = policy
        .agent(&args.agent)
        .expect("the agent was found above");
    // Judged as the server judges it: values in the form Cloudflare reads.
    if let Some(endpoint) = catalog.endpoint(&args.tool)
        && let Err(denial) = policy.canonicalise(agent, endpoint, &mut call, &engine.directory())
    {
        if offline && denial.kind == crate::policy::DenyKind::Unresolved {
            println!("undecided: {} — {OFFLINE}", denial.reason);
            return Ok(ExitCode::from(UNDECIDED));
        }
        println!("denied: {}", denial.reason);
        println!("rule:    {}", denial.rule);
        return Ok(ExitCode::from(DENIED));
    }
    let mut decision = engine.decide(&policy, agent, &args.tool, &call).await;
    if offline
        && (decision == Verdict::NeedsLookup
            || decision.deny_kind() == Some(crate::policy::DenyKind::Unresolved))
    {
        println!("undecided: {} — {OFFLINE}", decision.reason());
        return Ok(ExitCode::from(UNDECIDED));
    }
    if decision == Verdict::NeedsLookup
        && let Some(client) = &resolver
    {
        // The operator's own question: the lookup the server would make.
        let target = catalog
            .endpoint(&args.tool)
            .and_then(|e| e.lookup.as_ref())
            .and_then(|lookup| catalog.endpoint(&lookup.tool));
        let Some(target) = target else {
            println!("undecided: the object this call acts on has no lookup to check it with");
            return Ok(ExitCode::from(UNDECIDED));
        };
        let lookup = fetch_object(client, target, &call).await;
        if !lookup.note.is_empty() {
            println!("fetched: {}", lookup.note);
        }
        decision = match lookup.object {
            Ok(current) => engine.decide_with(&policy, agent, &args.tool, &call, &current),
            Err(LookupError::NotFound) => {
                println!("undecided: the object this call names does not exist");
                return Ok(ExitCode::from(UNDECIDED));
            }
            Err(LookupError::Failed(problem)) => {
                println!(
                    "undecided: the object this call acts on must be fetched first: {problem}"
                );
                return Ok(ExitCode::from(UNDECIDED));
            }
        };
    }
    let endpoint = catalog.endpoint(&args.tool);
    let target = endpoint.and_then(|e| describe_target(e, &call, &engine.directory()));
    let verdict = match (
        decision.is_allowed(),
        agent.needs_approval(&catalog, &args.tool),
    ) {
        (true, true) => match agent.approver {
            crate::policy::Approver::Operator => {
                "allowed once a person approves it (the operator: `flaregate approve`)"
            }
            crate::policy::Approver::Client => {
                "allowed once a person approves it (the person at the client, else the operator)"
            }
        },
        (true, false) => "allowed",
        (false, _) => "denied",
    };
    println!("{verdict}: {}", decision.reason());
    println!("rule:    {}", decision.rule());
    println!(
        "{}",
        summary::decision(
            &agent.id,
            endpoint.map(|e| &**e),
            &args.tool,
            target.as_deref(),
            &call,
            if decision.is_allowed() {
                crate::audit::Decision::Allow
            } else {
                crate::audit::Decision::Deny
            },
            decision.reason()
        )
    );
    Ok(if decision.is_allowed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(DENIED)
    })
}
