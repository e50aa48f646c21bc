//! The access page: agents × capability groups, each cell Off / Read /
//! Full, with the zones and accounts each agent holds; an agent's details
//! (how it signs in, its limits, approval rules, constraints, the tools it
//! sees) open below the matrix.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};

use super::Console;
use super::guard::Signed;
use super::page::{Tab, page};
use crate::catalog::Catalog;
use crate::policy::{Agent, Level, Policy};

pub(super) async fn show(State(console): State<Arc<Console>>, signed: Signed) -> Response {
    let policy = console.gateway.engine().policy();
    let admin = signed.role >= crate::config::Role::Admin;
    page("Access", Tab::Access, Some(&signed), matrix(&policy, admin))
}

fn matrix(policy: &Policy, admin: bool) -> Markup {
    let catalog = policy.catalog();
    // Groups some agent holds; the rest are one line below.
    let held: Vec<_> = catalog
        .groups()
        .iter()
        .filter(|g| policy.agents().iter().any(|a| a.level(&g.id) > Level::Off))
        .collect();
    let others = catalog.groups().len() - held.len();
    html! {
        p { "What each agent may do, per capability group, as the policy files say (deny by default)." }
        div.scroll {
            table.matrix {
                caption { (policy.agents().len()) " agents × " (held.len()) " groups held" }
                thead {
                    tr {
                        th scope="col" { "Agent" }
                        th scope="col" { "Zones" }
                        th scope="col" { "Accounts" }
                        @for group in &held {
                            th scope="col" title=(group.description) { (group.title) }
                        }
                    }
                }
                tbody {
                    @for agent in policy.agents() {
                        tr {
                            th scope="row" { a href={ "#agent-" (agent.id) } { (agent.id) } }
                            td { (agent.zones.describe()) }
                            td { (agent.accounts.describe()) }
                            @for group in &held {
                                @let level = agent.level(&group.id);
                                td class={ "level " (level.as_str()) } { (word(level)) }
                            }
                        }
                    }
                }
            }
        }
        @if others > 0 {
            p.note { (others) " other groups: no agent holds them." }
        }
        (explain_form(policy))
        @if admin {
            (change_form(policy))
        }
        @for agent in policy.agents() {
            (details(catalog, agent))
        }
        (token_permissions(policy))
    }
}

/// The permissions flaregate's Cloudflare token needs for these grants,
/// as `flaregate check` lists them: make the token with exactly these.
fn token_permissions(policy: &Policy) -> Markup {
    let needed = crate::policy::token_permissions(policy.catalog(), policy);
    html! {
        h2 { "The Cloudflare token these grants need" }
        @if needed.is_empty() {
            p.note { "None: no agent is granted anything." }
        } @else {
            table {
                thead { tr { th scope="col" { "Permission (as the dashboard lists it)" } th scope="col" { "API name" } th scope="col" { "On" } } }
                tbody {
                    @for permission in &needed {
                        tr { td { (permission.label) } td { code { (permission.permission) } } td { (permission.on) } }
                    }
                }
            }
            p.note { "`flaregate check --live` says which of them the token in use lacks." }
        }
    }
}

/// Asks the policy about one call, as `flaregate explain` does.
fn explain_form(policy: &Policy) -> Markup {
    html! {
        h2 { "What may an agent do?" }
        form.change method="get" action="/console/explain" {
            label { "Agent "
                select name="agent" { @for agent in policy.agents() { option value=(agent.id) { (agent.id) } } }
            }
            label { "Tool " input name="tool" required placeholder="create_dns_record"; }
            label { "Arguments (JSON) " input name="args" size="50" placeholder=r#"{"zone_id": "…", "name": "www.example.com"}"#; }
            button type="submit" { "Ask" }
        }
    }
}

/// Picks one agent's grant on one group; the next page shows the change
/// to the policy file before anything is written.
fn change_form(policy: &Policy) -> Markup {
    html! {
        h2 { "Change access" }
        form.change method="get" action="/console/access/change" {
            label { "Agent "
                select name="agent" { @for agent in policy.agents() { option value=(agent.id) { (agent.id) } } }
            }
            label { "Group "
                select name="group" {
                    @for group in policy.catalog().groups() { option value=(group.id) { (group.title) } }
                }
            }
            label { "Level "
                select name="level" {
                    option value="off" { "Off" } option value="read" { "Read" } option value="full" { "Full" }
                }
            }
            button type="submit" { "Preview the change" }
        }
    }
}

fn word(level: Level) -> &'static str {
    match level {
        Level::Off => "Off",
        Level::Read => "Read",
        Level::Full => "Full",
    }
}

fn details(catalog: &Catalog, agent: &Agent) -> Markup {
    let tools: Vec<&str> = agent.visible_tools(catalog).collect();
    let constrained: Vec<(String, String)> = tools
        .iter()
        .flat_map(|tool| {
            agent
                .constraints(catalog, tool)
                .iter()
                .map(move |c| (tool.to_string(), format!("{} {}", c.arg, c.describe())))
        })
        .collect();
    html! {
        details id={ "agent-" (agent.id) } {
            summary { (agent.id) ": " (tools.len()) " tools" }
            dl {
                @if !agent.description.is_empty() {
                    dt { "About" } dd { (agent.description) }
                }
                dt { "Signs in with" } dd { (sign_in(agent)) }
                dt { "Limits" } dd { (crate::budget::describe_limits(&agent.limits)) }
                @if !constrained.is_empty() {
                    dt { "Rules on arguments" }
                    dd { ul { @for (tool, rule) in &constrained { li { code { (tool) } ": " (rule) } } } }
                }
                dt { "Tools it sees" }
                dd { @for tool in &tools { code { (tool) } " " } }
                @if !agent.removed.is_empty() {
                    dt { "Not granted (a rule could not cover them)" }
                    dd { ul { @for (tool, why) in &agent.removed { li { code { (tool) } ": " (why) } } } }
                }
            }
        }
    }
}

fn sign_in(agent: &Agent) -> &'static str {
    match (
        agent.auth == crate::policy::AuthMode::None,
        agent.has_keys(),
        agent.oauth.is_some(),
    ) {
        (true, _, _) => "nothing (loopback only)",
        (false, true, true) => "a key, or the organisation's login",
        (false, false, true) => "the organisation's login",
        (false, _, false) => "a key",
    }
}
