//! `flaregate explain`: what the server would decide for one call, and
//! why — offline, against the sandbox, or against the live API.

use crate::oauth::TokenAccess;
use std::process::ExitCode;

use clap::Args;
use serde_json::{Map, Value};

use super::inspect::unknown_agent;
use super::{Outcome, PolicyPaths, setup};
use crate::policy::Engine;
use crate::server::explain::{self, Answer, Explained, Question};

/// What `explain` says when it cannot decide without asking Cloudflare.
const OFFLINE: &str = "nothing was sent to Cloudflare; run with --live to ask the API, or --sandbox for the demo data";

#[derive(Args)]
pub(super) struct ExplainArgs {
    /// The agent's id.
    #[arg(long, required_unless_present = "token_claims")]
    agent: Option<String>,
    /// Instead of --agent: a JSON file of an OAuth token's claims; the
    /// agent is the one its claims match, its scopes narrow the grant.
    #[arg(long, value_name = "FILE", conflicts_with = "agent")]
    token_claims: Option<std::path::PathBuf>,
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
    /// One JSON object: {"answer", "reason", "rule", "fetched", "summary"}.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    paths: PolicyPaths,
}

/// Each answer's exit code, so a script can tell them apart: 0 allowed
/// (perhaps once a person approves), 1 denied, 2 invalid arguments,
/// 3 undecided (it needs the API: `--live`).
fn exit_code(answer: Answer) -> ExitCode {
    match answer {
        Answer::Allowed | Answer::AllowedOnceApproved => ExitCode::SUCCESS,
        Answer::Denied => ExitCode::from(1),
        Answer::Invalid => ExitCode::from(2),
        Answer::Undecided => ExitCode::from(3),
    }
}

fn print(explained: &Explained) {
    if let Some(fetched) = &explained.fetched {
        println!("fetched: {fetched}");
    }
    println!("{}: {}", explained.answer.as_str(), explained.reason);
    if let Some(rule) = &explained.rule {
        println!("rule:    {rule}");
    }
    if let Some(summary) = &explained.summary {
        println!("{summary}");
    }
}

/// `flaregate explain`: the decision the server would make, printed (or
/// as JSON) with its exit code.
pub(super) async fn explain(args: &ExplainArgs) -> Outcome {
    let explained = decide(args).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&explained).map_err(|e| e.to_string())?
        );
    } else {
        print(&explained);
    }
    Ok(exit_code(explained.answer))
}

async fn decide(args: &ExplainArgs) -> Result<Explained, String> {
    let paths = args.paths.paths();
    let config = setup::config(&paths)?;
    let catalog = setup::catalog(&config, &paths)?;
    let policy = setup::policy(&config, catalog.clone())?;
    let (agent_id, scopes) = match (&args.agent, &args.token_claims) {
        (Some(agent), _) => (agent.clone(), TokenAccess::unlimited()),
        (None, Some(file)) => match token_agent(&config, &policy, file)? {
            Ok(found) => found,
            Err(refused) => return Ok(refused),
        },
        (None, None) => unreachable!("clap requires --agent or --token-claims"),
    };
    if policy.agent(&agent_id).is_none() {
        return Err(unknown_agent(&policy, &agent_id));
    }
    let call: Map<String, Value> = match serde_json::from_str(&args.args) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err("--args must be a JSON object, e.g. '{\"zone_id\": \"…\"}'".into()),
        Err(e) => return Err(format!("--args is not valid JSON: {e}")),
    };
    if catalog.endpoint(&args.tool).is_some()
        && let Err(invalid) = catalog.validate_arguments(&args.tool, &call)
    {
        return Ok(Explained::new(Answer::Invalid, invalid.to_string()));
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
    let engine = Engine::new(policy, resolver.clone()).await;
    let question = Question {
        agent: agent_id,
        tool: args.tool.clone(),
        args: call,
        access: scopes,
    };
    Ok(explain::explain(&engine, question, resolver.as_ref(), OFFLINE).await)
}

/// The agent a token with the claims in `file` stands for, and whether its
/// scopes allow reading only — or the answer refusing it.
fn token_agent(
    config: &crate::config::Config,
    policy: &crate::policy::Policy,
    file: &std::path::Path,
) -> Result<Result<(String, TokenAccess), Explained>, String> {
    use crate::oauth::Identity;
    let settings = config.http.oauth.as_ref().ok_or(
        "--token-claims needs [auth.oauth] in flaregate.toml (the group claim and scopes come from it)",
    )?;
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let claims = match serde_json::from_str(&text) {
        Ok(Value::Object(claims)) => claims,
        _ => return Err(format!("{} is not a JSON object of claims", file.display())),
    };
    let identity = Identity { claims };
    let access = identity.access(settings);
    let who = identity.describe();
    if access.is_nothing() {
        return Ok(Err(Explained::new(
            Answer::Denied,
            format!(
                "the token of {who} has neither {} nor {}",
                settings.read_scope, settings.write_scope
            ),
        )));
    }
    Ok(
        match policy.agent_for_claims(&identity.claims, &settings.group_claim, &who) {
            Ok(agent) => Ok((agent.id.clone(), access)),
            Err(why) => Err(Explained::new(Answer::Denied, why)),
        },
    )
}
