//! One agent on the access page: what stands behind a cell of the matrix
//! (the group's tools it sees, the zones or accounts they are limited to,
//! the rules on their arguments, the approvals they need, its limits), and
//! its details below the matrix — with, for an admin, the forms that change
//! its zones, accounts and rules (each previewed as a diff first).

use maud::{Markup, html};

use crate::catalog::{Catalog, Scope as Reach};
use crate::policy::{Agent, AuthMode, Scope};

/// What one agent's grant on one group gives it, in place in the matrix.
pub(super) fn behind(catalog: &Catalog, agent: &Agent, group: &str) -> Markup {
    let tools: Vec<&str> = agent
        .visible_tools(catalog)
        .filter(|tool| catalog.endpoint(tool).is_some_and(|e| e.group == group))
        .collect();
    let reaches = |kind: Reach| {
        tools
            .iter()
            .any(|tool| catalog.endpoint(tool).and_then(|e| e.scope()) == Some(kind))
    };
    let mut rules: Vec<String> = tools
        .iter()
        .flat_map(|tool| agent.constraints(catalog, tool))
        .map(|c| format!("{} {} ({})", c.arg, c.describe(), short_source(&c.source)))
        .collect();
    rules.sort();
    rules.dedup();
    let approved: Vec<&&str> = tools
        .iter()
        .filter(|tool| agent.needs_approval(catalog, tool))
        .collect();
    html! {
        dl {
            @if reaches(Reach::Zone) { dt { "Zones" } dd { (agent.zones.describe()) } }
            @if reaches(Reach::Account) { dt { "Accounts" } dd { (agent.accounts.describe()) } }
            dt { "Tools (" (tools.len()) ")" }
            dd { @for tool in &tools { code { (tool) } " " } }
            @if !rules.is_empty() {
                dt { "Rules on arguments" }
                dd { ul { @for rule in &rules { li { (rule) } } } }
            }
            @if !approved.is_empty() {
                dt { "A person approves" }
                dd { @for tool in &approved { code { (tool) } " " } }
            }
            dt { "Limits" } dd { (crate::budget::describe_limits(&agent.limits)) }
        }
    }
}

/// The agent's details, and an admin's forms to change them.
pub(super) fn details(catalog: &Catalog, agent: &Agent, admin: bool) -> Markup {
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
                dt { "Zones" } dd { (agent.zones.describe()) }
                dt { "Accounts" } dd { (agent.accounts.describe()) }
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
            @if admin { (forms(catalog, agent)) }
        }
    }
}

/// Zones, accounts and rules, each a form whose answer is a preview.
fn forms(catalog: &Catalog, agent: &Agent) -> Markup {
    let id = &agent.id;
    html! {
        h3 { "Change " (id) "'s reach" }
        @for (kind, scope, hint) in [
            ("zones", &agent.zones, "example.com, 023e105f4ecef8ad9ca31a8372d0c353, or *"),
            ("accounts", &agent.accounts, "an account name or id, or *"),
        ] {
            form.change method="get" action="/console/access/change" {
                input type="hidden" name="agent" value=(id);
                input type="hidden" name="kind" value=(kind);
                label { "Its " (kind) " " input name="values" size="50" value=(listed(scope)) placeholder=(hint); }
                button type="submit" { "Preview" }
            }
        }
        form.change method="get" action="/console/access/change" {
            input type="hidden" name="agent" value=(id);
            input type="hidden" name="kind" value="constraint";
            label { "A rule on group "
                select name="group" {
                    option value="" { "(a tool instead)" }
                    @for group in catalog.groups() {
                        @if agent.level(&group.id) > crate::policy::Level::Off {
                            option value=(group.id) { (group.title) }
                        }
                    }
                }
            }
            label { "or tool " input name="tool" placeholder="put_worker_script or *_worker_script"; }
            label { "argument " input name="arg" required placeholder="name"; }
            label { "allow " input name="allow" placeholder="*.staging.example.com"; }
            label { "deny " input name="deny" placeholder="prod-*"; }
            button type="submit" { "Preview" }
        }
        p { a href={ "/console/access/change?kind=unconstrain&agent=" (id) } { "Take out one of " (id) "'s rules…" } }
    }
}

/// "console-policy.toml:54" of "/etc/flaregate/policies/console-policy.toml:54".
fn short_source(source: &str) -> &str {
    source.rsplit('/').next().unwrap_or(source)
}

/// A scope as the form edits it: `*`, or the names and ids listed.
fn listed(scope: &Scope) -> String {
    match scope {
        Scope::All => "*".into(),
        Scope::Listed(entries) if entries.is_empty() => String::new(),
        Scope::Listed(_) => scope.describe(),
    }
}

fn sign_in(agent: &Agent) -> &'static str {
    match (
        agent.auth == AuthMode::None,
        agent.has_keys(),
        agent.oauth.is_some(),
    ) {
        (true, _, _) => "nothing (loopback only)",
        (false, true, true) => "a key, or the organisation's login",
        (false, false, true) => "the organisation's login",
        (false, _, false) => "a key",
    }
}
