//! `flaregate explain`: what the server would decide for one call, and
//! why — offline, against the sandbox, or against the live API.

use crate::oauth::TokenAccess;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;
use serde_json::{Map, Value};

use super::inspect::unknown_agent;
use super::{Outcome, PolicyPaths, setup};
use crate::audit::summary;
use crate::policy::{Engine, Verdict, describe_target};
use crate::server::pipeline::{LookupError, fetch_object};

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

/// What `explain` answers; each has its exit code, so a script can tell
/// them apart: 0 allowed (perhaps once a person approves), 1 denied,
/// 2 invalid arguments, 3 undecided (it needs the API: `--live`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Allowed,
    AllowedOnceApproved,
    Denied,
    Invalid,
    Undecided,
}

impl Answer {
    fn exit_code(self) -> ExitCode {
        match self {
            Answer::Allowed | Answer::AllowedOnceApproved => ExitCode::SUCCESS,
            Answer::Denied => ExitCode::from(1),
            Answer::Invalid => ExitCode::from(2),
            Answer::Undecided => ExitCode::from(3),
        }
    }
}

/// The answer with what explains it.
#[derive(Debug, Serialize)]
struct Explained {
    answer: Answer,
    reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<String>,
    /// What was fetched from Cloudflare (or the sandbox) to decide.
    #[serde(skip_serializing_if = "Option::is_none")]
    fetched: Option<String>,
    /// The sentence the audit log would record.
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<String>,
}

impl Explained {
    fn new(answer: Answer, reason: impl Into<String>) -> Self {
        Self {
            answer,
            reason: reason.into(),
            rule: None,
            fetched: None,
            summary: None,
        }
    }

    fn print(&self) {
        if let Some(fetched) = &self.fetched {
            println!("fetched: {fetched}");
        }
        let said = match self.answer {
            Answer::Allowed => "allowed",
            Answer::AllowedOnceApproved => "allowed once a person approves it",
            Answer::Denied => "denied",
            Answer::Invalid => "invalid",
            Answer::Undecided => "undecided",
        };
        println!("{said}: {}", self.reason);
        if let Some(rule) = &self.rule {
            println!("rule:    {rule}");
        }
        if let Some(summary) = &self.summary {
            println!("{summary}");
        }
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
        explained.print();
    }
    Ok(explained.answer.exit_code())
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
    let mut call: Map<String, Value> = match serde_json::from_str(&args.args) {
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
    let offline = resolver.is_none();
    let undecided =
        |reason: &str| Explained::new(Answer::Undecided, format!("{reason} — {OFFLINE}"));
    let engine = Engine::new(policy, resolver.clone()).await;
    let policy = engine.policy();
    let agent = policy.agent(&agent_id).expect("the agent was found above");
    if let Some(endpoint) = catalog.endpoint(&args.tool)
        && !scopes.allows(&endpoint.group, endpoint.access)
    {
        let why = if endpoint.access == crate::catalog::Access::Write
            && scopes.allows(&endpoint.group, crate::catalog::Access::Read)
        {
            format!("the token's scopes allow {agent_id} to read only here: this call writes")
        } else {
            format!(
                "the token's scopes do not cover {} (held: {})",
                endpoint.group,
                scopes.held().join(" ")
            )
        };
        return Ok(Explained {
            rule: Some("token scope".into()),
            ..Explained::new(Answer::Denied, why)
        });
    }
    // Judged as the server judges it: values in the form Cloudflare reads.
    if let Some(endpoint) = catalog.endpoint(&args.tool)
        && let Err(denial) = policy.canonicalise(agent, endpoint, &mut call, &engine.directory())
    {
        if offline && denial.kind == crate::policy::DenyKind::Unresolved {
            return Ok(undecided(&denial.reason));
        }
        return Ok(Explained {
            rule: Some(denial.rule.to_string()),
            ..Explained::new(Answer::Denied, denial.reason.to_string())
        });
    }
    let mut decision = engine.decide(&policy, agent, &args.tool, &call).await;
    if offline
        && (decision == Verdict::NeedsLookup
            || decision.deny_kind() == Some(crate::policy::DenyKind::Unresolved))
    {
        return Ok(undecided(decision.reason()));
    }
    let mut fetched = None;
    if decision == Verdict::NeedsLookup
        && let Some(client) = &resolver
    {
        // The operator's own question: the lookup the server would make.
        let target = catalog
            .endpoint(&args.tool)
            .and_then(|e| e.lookup.as_ref())
            .and_then(|lookup| catalog.endpoint(&lookup.tool));
        let Some(target) = target else {
            return Ok(Explained::new(
                Answer::Undecided,
                "the object this call acts on has no lookup to check it with",
            ));
        };
        let lookup = fetch_object(client, target, &call).await;
        fetched = (!lookup.note.is_empty()).then(|| lookup.note.clone());
        let failed = |reason: String| Explained {
            fetched: fetched.clone(),
            ..Explained::new(Answer::Undecided, reason)
        };
        decision = match lookup.object {
            Ok(current) => engine.decide_with(&policy, agent, &args.tool, &call, &current),
            Err(LookupError::NotFound) => {
                return Ok(failed("the object this call names does not exist".into()));
            }
            Err(LookupError::Failed(problem)) => {
                return Ok(failed(format!(
                    "the object this call acts on must be fetched first: {problem}"
                )));
            }
        };
    }
    let endpoint = catalog.endpoint(&args.tool);
    let target = endpoint.and_then(|e| describe_target(e, &call, &engine.directory()));
    let answer = match (
        decision.is_allowed(),
        agent.needs_approval(&catalog, &args.tool),
    ) {
        (true, true) => Answer::AllowedOnceApproved,
        (true, false) => Answer::Allowed,
        (false, _) => Answer::Denied,
    };
    let approver = match (answer, agent.approver) {
        (Answer::AllowedOnceApproved, crate::policy::Approver::Operator) => {
            " (approved by the operator: `flaregate approve`)"
        }
        (Answer::AllowedOnceApproved, crate::policy::Approver::Client) => {
            " (approved by the person at the client, else the operator)"
        }
        _ => "",
    };
    let summary = summary::decision(
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
        decision.reason(),
    );
    Ok(Explained {
        answer,
        reason: format!("{}{approver}", decision.reason()),
        rule: Some(decision.rule().to_string()),
        fetched,
        summary: Some(summary),
    })
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
