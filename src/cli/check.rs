//! `flaregate check`: validates the catalog and policies and reports, per
//! agent, what it is granted and how its tools are offered, and the token
//! permissions the policies need — as text, or one JSON object
//! (`--json`). Names are checked against the API (token set) or the
//! sandbox (`--sandbox`); `--live` also reads once per granted group.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use super::{Outcome, PolicyPaths, setup};
use crate::catalog::Catalog;
use crate::policy::{Agent, AuthMode, Level, Policy};
use crate::policy::{Permission, permissions_text, token_permissions};

/// Past this many groups the agent × group table is too wide to read:
/// each agent's grants are listed instead.
const TABLE_MAX_GROUPS: usize = 16;

#[derive(Args)]
pub(super) struct CheckArgs {
    /// Check zone and account names against the built-in sandbox's demo
    /// data (with CLOUDFLARE_API_TOKEN set and no --sandbox, against the API).
    #[arg(long)]
    sandbox: bool,
    /// Also check that the token can serve every group the policies grant:
    /// one read per group and zone or account (needs CLOUDFLARE_API_TOKEN).
    #[arg(long, conflicts_with = "sandbox")]
    live: bool,
    /// One JSON object instead of the text report.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    paths: PolicyPaths,
}

/// What `check` found.
#[derive(Serialize)]
struct Report {
    catalog: CatalogSummary,
    policies: String,
    agents: Vec<AgentReport>,
    token_permissions: Vec<Permission>,
    warnings: Vec<String>,
    /// Whether zone and account names were checked (a token or --sandbox).
    names_checked: bool,
    unresolved: Vec<String>,
    /// Grants the live token cannot serve (`--live`).
    gaps: Vec<String>,
    live: bool,
    ok: bool,
}

#[derive(Serialize)]
struct CatalogSummary {
    endpoints: usize,
    groups: usize,
    source: String,
}

#[derive(Serialize)]
struct AgentReport {
    id: String,
    /// How it is reached: "key", "oauth", "key+oauth", or "none" (no key,
    /// loopback only).
    auth: &'static str,
    zones: String,
    accounts: String,
    /// Each group granted above off, with its level.
    grants: BTreeMap<String, &'static str>,
    tools: usize,
    /// "typed" or "discovery".
    tool_mode: &'static str,
    listing_bytes: usize,
    /// Tools turned on or off by name against their group's level.
    overrides: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    approvals: Option<String>,
    /// Tools its constraints took away (they cannot be checked on them).
    removed: Vec<String>,
}

/// `flaregate check`: exit 0 when everything is valid and (where checked)
/// every name resolves and the token serves every grant.
pub(super) async fn check(args: &CheckArgs) -> Outcome {
    let paths = &args.paths.paths();
    let config = setup::config(paths)?;
    let catalog = setup::catalog(&config, paths)?;
    // Serving compiles each tool's schema on its first call; check does
    // them all now, so a broken one is found here.
    catalog
        .compile_all()
        .map_err(|e| format!("the catalog: {e}"))?;
    let policy = setup::policy(&config, catalog.clone())?;
    if args.live && setup::client(&config)?.is_none() {
        return Err(
            "--live needs CLOUDFLARE_API_TOKEN (or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY)".into(),
        );
    }
    let (unresolved, gaps) = unresolved_names(&config, &policy, args.sandbox, args.live).await?;
    let names_checked = unresolved.is_some();
    let unresolved = unresolved.unwrap_or_default();
    let report = Report {
        catalog: CatalogSummary {
            endpoints: catalog.endpoints().len(),
            groups: catalog.groups().len(),
            source: if config.catalog.is_dir() {
                config.catalog.display().to_string()
            } else {
                "built in".to_string()
            },
        },
        policies: config.policies.display().to_string(),
        agents: policy
            .agents()
            .iter()
            .map(|agent| agent_report(&catalog, agent))
            .collect(),
        token_permissions: token_permissions(&catalog, &policy),
        warnings: policy.warnings.clone(),
        names_checked,
        ok: unresolved.is_empty() && gaps.is_empty(),
        unresolved,
        gaps,
        live: args.live,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
        return Ok(if report.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    print_report(&report, &catalog);
    if !report.gaps.is_empty() {
        return Err(format!(
            "the token cannot serve {} of the grants",
            report.gaps.len()
        ));
    }
    if !report.unresolved.is_empty() {
        return Err(format!("{} names do not resolve", report.unresolved.len()));
    }
    Ok(ExitCode::SUCCESS)
}

fn agent_report(catalog: &Catalog, agent: &Agent) -> AgentReport {
    let overrides = catalog
        .endpoints()
        .iter()
        .filter(|e| {
            let by_group = agent.level(&e.group);
            let granted = match e.access {
                crate::catalog::Access::Read => by_group >= Level::Read,
                crate::catalog::Access::Write => by_group == Level::Full,
            };
            granted != agent.may_see(catalog, &e.tool)
        })
        .map(|e| {
            let on = if agent.may_see(catalog, &e.tool) {
                "on"
            } else {
                "off"
            };
            format!("{} {on}", e.tool)
        })
        .collect();
    AgentReport {
        id: agent.id.clone(),
        auth: match (
            agent.auth == AuthMode::None,
            agent.has_keys(),
            agent.oauth.is_some(),
        ) {
            (true, _, _) => "none",
            (false, true, true) => "key+oauth",
            (false, false, true) => "oauth",
            (false, _, false) => "key",
        },
        zones: agent.zones.describe(),
        accounts: agent.accounts.describe(),
        grants: catalog
            .groups()
            .iter()
            .filter(|g| agent.level(&g.id) > Level::Off)
            .map(|g| (g.id.clone(), agent.level(&g.id).as_str()))
            .collect(),
        tools: agent.visible_tools(catalog).count(),
        tool_mode: if agent.discover { "discovery" } else { "typed" },
        listing_bytes: agent.listing_bytes,
        overrides,
        approvals: approvals_line(catalog, agent),
        removed: agent.removed.iter().map(|(tool, _)| tool.clone()).collect(),
    }
}

fn print_report(report: &Report, catalog: &Catalog) {
    println!(
        "catalog:  {} endpoints in {} groups ({})",
        report.catalog.endpoints, report.catalog.groups, report.catalog.source
    );
    println!(
        "policies: {} agents ({})",
        report.agents.len(),
        report.policies
    );
    println!();
    if catalog.groups().len() <= TABLE_MAX_GROUPS {
        print!("{}", matrix(catalog, &report.agents));
    } else {
        print!("{}", grant_lists(report.catalog.groups, &report.agents));
    }
    for agent in &report.agents {
        if !agent.overrides.is_empty() {
            println!(
                "  {}: tool overrides: {}",
                agent.id,
                first_few(&agent.overrides)
            );
        }
        if let Some(approvals) = &agent.approvals {
            println!("  {}: {approvals}", agent.id);
        }
        println!("  {}: {}", agent.id, tool_mode_line(agent));
        if !agent.removed.is_empty() {
            println!(
                "  {}: its constraints took away {} tools they cannot be checked on: {} (`flaregate tools --agent {}` says why)",
                agent.id,
                agent.removed.len(),
                first_few(&agent.removed),
                agent.id
            );
        }
    }
    print!("{}", permissions_text(&report.token_permissions));
    for warning in &report.warnings {
        println!("warning: {warning}");
    }
    for gap in &report.gaps {
        eprintln!("{gap}");
    }
    if report.live && report.gaps.is_empty() {
        println!("\nthe token serves every granted group (one read each)");
    }
    for problem in &report.unresolved {
        eprintln!("{problem}");
    }
    if report.gaps.is_empty() && report.unresolved.is_empty() {
        if report.names_checked {
            println!("\nOK (every zone and account name resolves)");
        } else {
            println!(
                "\nOK (names not checked: set CLOUDFLARE_API_TOKEN, or --sandbox for the demo data)"
            );
        }
    }
}

/// The first eight names, and how many more (`--json` has them all).
fn first_few(names: &[String]) -> String {
    if names.len() > 8 {
        format!("{} and {} more", names[..8].join(", "), names.len() - 8)
    } else {
        names.join(", ")
    }
}

/// The agent × group table with each agent's scopes, for a catalog with
/// few enough groups to read across.
fn matrix(catalog: &Catalog, agents: &[AgentReport]) -> String {
    // The scopes are headed apart from the groups of the same names.
    let mut header = vec![
        "agent".to_string(),
        "auth".into(),
        "in zones".into(),
        "in accounts".into(),
    ];
    header.extend(catalog.groups().iter().map(|g| g.id.clone()));
    let mut rows = vec![header];
    for agent in agents {
        let mut row = vec![
            agent.id.clone(),
            agent.auth.into(),
            agent.zones.clone(),
            agent.accounts.clone(),
        ];
        row.extend(catalog.groups().iter().map(|g| {
            agent
                .grants
                .get(&g.id)
                .copied()
                .unwrap_or(Level::Off.as_str())
                .to_string()
        }));
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Each agent's grants as lists by level, for catalogs with many groups
/// (the whole imported API has 55): only what is granted is named.
fn grant_lists(groups: usize, agents: &[AgentReport]) -> String {
    let mut out = String::new();
    for agent in agents {
        out.push_str(&format!(
            "{} ({}; in zones: {}; in accounts: {})\n",
            agent.id,
            match agent.auth {
                "none" => "no key",
                "oauth" => "signs in with OAuth",
                "key+oauth" => "a key, or signs in with OAuth",
                _ => "a key",
            },
            agent.zones,
            agent.accounts
        ));
        for level in [Level::Full, Level::Read] {
            let named: Vec<&str> = agent
                .grants
                .iter()
                .filter(|(_, l)| **l == level.as_str())
                .map(|(group, _)| group.as_str())
                .collect();
            if !named.is_empty() {
                out.push_str(&format!("    {:<5} {}\n", level.as_str(), named.join(", ")));
            }
        }
        out.push_str(&format!(
            "    off   the other {} groups\n",
            groups - agent.grants.len()
        ));
    }
    out
}

/// Who approves the agent's gated calls, and how many of its tools are
/// gated; none if none is.
fn approvals_line(catalog: &Catalog, agent: &Agent) -> Option<String> {
    let gated = agent
        .visible_tools(catalog)
        .filter(|tool| agent.needs_approval(catalog, tool))
        .count();
    let who = match agent.approver {
        crate::policy::Approver::Operator => {
            "approvals by the operator (`flaregate approve`): the agent's client cannot approve its own calls"
        }
        crate::policy::Approver::Client => {
            "approvals by the person at the client when it can ask (trusted: a client that answers yes by itself approves its own calls), else the operator"
        }
    };
    (gated > 0).then(|| format!("{who}; {gated} of its tools need one"))
}

/// The names of `policy` the API (or the sandbox) does not know; `None`
/// when there is nothing to ask.
/// With `live`, also what the token cannot serve (`token_check`).
async fn unresolved_names(
    config: &crate::config::Config,
    policy: &Policy,
    sandbox: bool,
    live: bool,
) -> Result<(Option<Vec<String>>, Vec<String>), String> {
    let (client, _running) = if sandbox {
        let (client, running) = setup::sandbox(config, None).await?;
        (client, Some(running))
    } else {
        match setup::client(config)? {
            Some(client) => (client, None),
            None => return Ok((None, Vec::new())),
        }
    };
    let directory = crate::policy::Directory::fetch(&client, policy.catalog())
        .await
        .map_err(|e| {
            format!(
                "the Cloudflare token cannot list zones and accounts, so names cannot be checked (it needs Zone Read and Account Settings Read): {e}"
            )
        })?;
    let gaps = if live {
        let mut gaps = super::token_check::verified(&client)
            .await
            .err()
            .into_iter()
            .collect::<Vec<_>>();
        gaps.extend(crate::policy::token_gaps::gaps(&client, policy, &directory, true).await);
        gaps
    } else {
        Vec::new()
    };
    Ok((Some(policy.unresolved_names(&directory)), gaps))
}

/// How an agent is offered its tools, and why: typed tools while their
/// `tools/list` stays under [`crate::policy::TYPED_LISTING_MAX_BYTES`] (in
/// `tool_mode = "auto"`), else the three discovery tools.
fn tool_mode_line(agent: &AgentReport) -> String {
    let (tools, kb) = (agent.tools, agent.listing_bytes.div_ceil(1024));
    let limit = crate::policy::TYPED_LISTING_MAX_BYTES / 1024;
    if agent.tool_mode == "discovery" {
        format!(
            "{tools} tools (about {kb} KB typed) are found through search_api, describe_api and call_api (typed up to {limit} KB; tool_mode = \"typed\" to list them all)"
        )
    } else {
        format!(
            "{tools} typed tools, about {kb} KB of tools/list (auto switches to discovery past {limit} KB)"
        )
    }
}
