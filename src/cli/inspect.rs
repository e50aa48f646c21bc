//! `check`, `tools` and `explain`: what the policy says. Nothing is sent to
//! Cloudflare unless asked (`--live`); `--sandbox` asks the built-in sandbox
//! instead, so answers match the demo data.

use std::process::ExitCode;

use clap::Args;

use super::{Outcome, Paths, setup};
use crate::catalog::Catalog;
use crate::policy::{AuthMode, Policy};

#[derive(Args)]
pub struct CheckArgs {
    /// Check zone and account names against the built-in sandbox's demo
    /// data (with CLOUDFLARE_API_TOKEN set and no --sandbox, against the API).
    #[arg(long)]
    sandbox: bool,
    /// Also check that the token can serve every group the policies grant:
    /// one read per group and zone or account (needs CLOUDFLARE_API_TOKEN).
    #[arg(long, conflicts_with = "sandbox")]
    live: bool,
    #[command(flatten)]
    paths: Paths,
}

/// `flaregate check`: validates everything and prints the agent × group
/// matrix; with a token or `--sandbox`, also that every name resolves;
/// with `--live`, that the token can serve what is granted.
pub async fn check(args: &CheckArgs) -> Outcome {
    let paths = &args.paths;
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
    let catalog_source = if config.catalog.is_dir() {
        config.catalog.display().to_string()
    } else {
        "built in".to_string()
    };
    println!(
        "catalog:  {} endpoints in {} groups ({catalog_source})",
        catalog.endpoints().len(),
        catalog.groups().len(),
    );
    println!(
        "policies: {} agents ({})",
        policy.agents().len(),
        config.policies.display()
    );
    println!();
    print!("{}", matrix(&catalog, &policy));
    for agent in policy.agents() {
        let overrides: Vec<String> = catalog
            .endpoints()
            .iter()
            .filter(|e| {
                let by_group = agent.level(&e.group);
                let granted = match e.access {
                    crate::catalog::Access::Read => by_group >= crate::policy::Level::Read,
                    crate::catalog::Access::Write => by_group == crate::policy::Level::Full,
                };
                granted != agent.may_see(&catalog, &e.tool)
            })
            .map(|e| {
                format!(
                    "{} {}",
                    e.tool,
                    if agent.may_see(&catalog, &e.tool) {
                        "on"
                    } else {
                        "off"
                    }
                )
            })
            .collect();
        if !overrides.is_empty() {
            println!("  {}: tool overrides: {}", agent.id, overrides.join(", "));
        }
        if let Some(approvals) = approvals_line(&catalog, agent) {
            println!("  {}: {approvals}", agent.id);
        }
        println!("  {}: {}", agent.id, tool_mode_line(&catalog, agent));
        if !agent.removed.is_empty() {
            let names: Vec<&str> = agent
                .removed
                .iter()
                .map(|(tool, _)| tool.as_str())
                .collect();
            let shown = if names.len() > 8 {
                format!("{} and {} more", names[..8].join(", "), names.len() - 8)
            } else {
                names.join(", ")
            };
            println!(
                "  {}: its constraints took away {} tools they cannot be checked on: {shown} (`flaregate tools --agent {}` says why)",
                agent.id,
                names.len(),
                agent.id
            );
        }
    }
    print!("{}", token_permissions(&catalog, &policy));
    for warning in &policy.warnings {
        println!("warning: {warning}");
    }
    for gap in &gaps {
        eprintln!("{gap}");
    }
    if !gaps.is_empty() {
        return Err(format!(
            "the token cannot serve {} of the grants",
            gaps.len()
        ));
    }
    if args.live {
        println!("\nthe token serves every granted group (one read each)");
    }
    match unresolved {
        Some(problems) if !problems.is_empty() => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            Err(format!("{} names do not resolve", problems.len()))
        }
        Some(_) => {
            println!("\nOK (every zone and account name resolves)");
            Ok(ExitCode::SUCCESS)
        }
        None => {
            println!(
                "\nOK (names not checked: set CLOUDFLARE_API_TOKEN, or --sandbox for the demo data)"
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Who approves the agent's gated calls, and how many of its tools are
/// gated; none if none is.
fn approvals_line(catalog: &Catalog, agent: &crate::policy::Agent) -> Option<String> {
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

/// The Cloudflare token permissions the policies need, with the zones or
/// accounts each is needed on: create the token with exactly these.
fn token_permissions(catalog: &Catalog, policy: &Policy) -> String {
    use crate::policy::{Scope, ScopeRef};
    use std::collections::{BTreeMap, BTreeSet};
    // Per permission: on which kind, and the entries (None: all of them).
    let mut needed: BTreeMap<&str, (&str, Option<BTreeSet<String>>)> = BTreeMap::new();
    for agent in policy.agents() {
        // Each tool the agent may call, and the reads flaregate makes for
        // it: the lookup that checks it, the read a snapshot keeps.
        let mut endpoints = Vec::new();
        for tool in agent.visible_tools(catalog) {
            let endpoint = catalog
                .endpoint(tool)
                .expect("visible tools come from the catalog");
            endpoints.push(&**endpoint);
            let lookup = endpoint
                .lookup
                .as_ref()
                .and_then(|l| catalog.endpoint(&l.tool));
            endpoints.extend(lookup.map(|e| &**e));
            if agent.snapshots != crate::policy::Snapshots::Off {
                endpoints.extend(catalog.reader_of(endpoint));
            }
        }
        for endpoint in endpoints {
            let Some(scope_kind) = endpoint.scope() else {
                // A user-level or global permission: no zones or accounts.
                needed
                    .entry(&endpoint.permission)
                    .or_insert((endpoint.reach.as_str(), None));
                continue;
            };
            let kind = match scope_kind {
                crate::catalog::Scope::Zone => "zones",
                crate::catalog::Scope::Account => "accounts",
            };
            let scope = agent.scope(scope_kind);
            let entry = needed
                .entry(&endpoint.permission)
                .or_insert_with(|| (kind, Some(BTreeSet::new())));
            match (scope, &mut entry.1) {
                (Scope::All, on) => *on = None,
                (Scope::Listed(refs), Some(on)) => on.extend(refs.iter().map(|r| match r {
                    ScopeRef::Id(s) | ScopeRef::Name(s) => s.clone(),
                })),
                (Scope::Listed(_), None) => {}
            }
        }
    }
    if needed.is_empty() {
        return String::new();
    }
    let labels: Vec<(String, &str, String)> = needed
        .into_iter()
        .map(|(permission, (kind, on))| {
            let on = match on {
                None => format!("{kind}: all"),
                Some(on) if on.is_empty() => format!("{kind}: none held"),
                Some(on) => format!("{kind}: {}", on.into_iter().collect::<Vec<_>>().join(", ")),
            };
            (dashboard_label(permission, kind), permission, on)
        })
        .collect();
    let width = labels
        .iter()
        .map(|(l, ..)| l.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::from(
        "\nCloudflare token permissions the policies need (as the dashboard lists them, then the API's name):\n",
    );
    for (label, permission, on) in labels {
        let pad = width - label.chars().count();
        out.push_str(&format!("  {label}{:pad$}  {permission:<28}  {on}\n", ""));
    }
    out
}

/// A permission as the dashboard's token form lists it: "Zone · DNS ·
/// Edit" for the API's "DNS Write" on zones.
fn dashboard_label(permission: &str, kind: &str) -> String {
    let (resource, level) = match permission.rsplit_once(' ') {
        Some((resource, "Read")) => (resource, "Read"),
        Some((resource, "Write")) => (resource, "Edit"),
        Some((_, last)) => (permission, last),
        None => (permission, "Edit"),
    };
    let on = match kind {
        "zones" => "Zone",
        "accounts" => "Account",
        _ => "User",
    };
    format!("{on} · {resource} · {level}")
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
        gaps.extend(super::token_check::gaps(&client, policy, &directory, true).await);
        gaps
    } else {
        Vec::new()
    };
    Ok((Some(policy.unresolved_names(&directory)), gaps))
}

/// The agent × group table with each agent's scopes.
fn matrix(catalog: &Catalog, policy: &Policy) -> String {
    // The scopes are headed apart from the groups of the same names.
    let mut header = vec![
        "agent".to_string(),
        "auth".into(),
        "in zones".into(),
        "in accounts".into(),
    ];
    header.extend(catalog.groups().iter().map(|g| g.id.clone()));
    let mut rows = vec![header];
    for agent in policy.agents() {
        let auth = if agent.auth == AuthMode::None {
            "none"
        } else {
            "key"
        };
        let mut row = vec![
            agent.id.clone(),
            auth.into(),
            agent.zones.describe(),
            agent.accounts.describe(),
        ];
        row.extend(
            catalog
                .groups()
                .iter()
                .map(|g| agent.level(&g.id).as_str().to_string()),
        );
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

#[derive(Args)]
pub struct ToolsArgs {
    /// The agent's id.
    #[arg(long)]
    agent: String,
    #[command(flatten)]
    paths: Paths,
}

/// `flaregate tools --agent ID`: the tools, each with its constraints,
/// and the agent's limits.
pub fn tools(args: &ToolsArgs) -> Outcome {
    let config = setup::config(&args.paths)?;
    let catalog = setup::catalog(&config, &args.paths)?;
    let policy = setup::policy(&config, catalog.clone())?;
    let agent = policy
        .agent(&args.agent)
        .ok_or_else(|| unknown_agent(&policy, &args.agent))?;
    let visible: Vec<&str> = agent.visible_tools(&catalog).collect();
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

/// How an agent is offered its tools, and why: typed tools while their
/// `tools/list` stays under [`crate::policy::TYPED_LISTING_MAX_BYTES`] (in
/// `tool_mode = "auto"`), else the three discovery tools.
fn tool_mode_line(catalog: &crate::catalog::Catalog, agent: &crate::policy::Agent) -> String {
    let tools = agent.visible_tools(catalog).count();
    let kb = agent.listing_bytes.div_ceil(1024);
    let limit = crate::policy::TYPED_LISTING_MAX_BYTES / 1024;
    if agent.discover {
        format!(
            "{tools} tools (about {kb} KB typed) are found through search_api, describe_api and call_api (typed up to {limit} KB; tool_mode = \"typed\" to list them all)"
        )
    } else {
        format!(
            "{tools} typed tools, about {kb} KB of tools/list (auto switches to discovery past {limit} KB)"
        )
    }
}
