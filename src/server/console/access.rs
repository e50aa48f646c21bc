//! The access page: agents × capability groups, each cell Off / Read /
//! Full, with the zones and accounts each agent holds; a cell opens in
//! place to what stands behind it (the tools, the rules on their
//! arguments, the approvals they need, the limits), and each agent's
//! details follow the matrix.

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
    let body = html! { (matrix(&policy, admin)) (super::token::form(&signed)) };
    page("Access", Tab::Access, Some(&signed), body)
}

/// Past this many groups held, the matrix shows families of groups (the
/// whole imported API has 55).
const COLUMNS: usize = 16;

/// Groups shown as one column: one group, or a family of them.
struct Column<'a> {
    title: String,
    groups: Vec<&'a crate::catalog::Group>,
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
    let columns = columns(&held);
    html! {
        p { "What each agent may do, per capability group, as the policy files say (deny by default)." }
        div.scroll {
            table.matrix {
                caption {
                    (policy.agents().len()) " agents × " (held.len()) " groups held"
                    @if columns.len() < held.len() { ", in " (columns.len()) " families" }
                }
                thead {
                    tr {
                        th scope="col" { "Agent" }
                        th scope="col" { "Zones" }
                        th scope="col" { "Accounts" }
                        @for column in &columns {
                            th scope="col" { (column.title) }
                        }
                    }
                }
                tbody {
                    @for agent in policy.agents() {
                        tr {
                            th scope="row" { a href={ "#agent-" (agent.id) } { (agent.id) } }
                            td { (agent.zones.describe()) }
                            td { (agent.accounts.describe()) }
                            @for column in &columns {
                                (cell(catalog, agent, column, admin))
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
            (super::agent::details(catalog, agent, admin))
        }
        (token_permissions(policy))
    }
}

/// A column per group, or past [`COLUMNS`], per family: groups whose ids
/// begin with the same word (`workers`, `workers_ai`, `workers_kv_namespace`).
fn columns<'a>(held: &[&'a crate::catalog::Group]) -> Vec<Column<'a>> {
    if held.len() <= COLUMNS {
        return held
            .iter()
            .map(|g| Column {
                title: g.title.clone(),
                groups: vec![*g],
            })
            .collect();
    }
    // The id's first word, a plural `s` aside (`accounts`, `account_admin`).
    let family = |id: &str| {
        let first = id.split('_').next().unwrap_or(id);
        match first.strip_suffix('s') {
            Some(singular) if singular.len() > 3 => singular.to_string(),
            _ => first.to_string(),
        }
    };
    let mut columns: Vec<(String, Column<'a>)> = Vec::new();
    for group in held {
        let name = family(&group.id);
        match columns.iter_mut().find(|(f, _)| *f == name) {
            Some((_, column)) => column.groups.push(group),
            None => {
                let column = Column {
                    title: String::new(),
                    groups: vec![*group],
                };
                columns.push((name, column));
            }
        }
    }
    columns
        .into_iter()
        .map(|(_, mut column)| {
            column.title = match column.groups.as_slice() {
                [one] => one.title.clone(),
                many => {
                    let first = &many[0].id;
                    let word = first.split('_').next().unwrap_or(first);
                    format!("{word}… ({})", many.len())
                }
            };
            column
        })
        .collect()
}

/// An agent's level on a column, opening in place to what stands behind
/// it (and, for an admin, the switches that change it); for a family, the
/// highest level, with each group's a click away.
fn cell(catalog: &Catalog, agent: &Agent, column: &Column<'_>, admin: bool) -> Markup {
    let levels: Vec<(&crate::catalog::Group, Level)> = column
        .groups
        .iter()
        .map(|g| (*g, agent.level(&g.id)))
        .collect();
    let top = levels.iter().map(|(_, l)| *l).max().unwrap_or(Level::Off);
    let held = levels.iter().filter(|(_, l)| *l > Level::Off).count();
    html! {
        td class={ "level " (top.as_str()) } {
            @if top == Level::Off && !admin {
                (word(top))
            } @else {
                details {
                    summary {
                        (word(top))
                        @if levels.len() > 1 { " (" (held) " of " (levels.len()) ")" }
                    }
                    div.behind {
                        @for (group, level) in &levels {
                            @if levels.len() > 1 { p { strong { (group.title) } ": " (word(*level)) } }
                            @if *level > Level::Off { (super::agent::behind(catalog, agent, &group.id)) }
                            @if admin { (switches(agent, group, *level)) }
                        }
                    }
                }
            }
        }
    }
}

/// Off / Read / Full for one agent's grant on one group: each button
/// previews that change (nothing is written before its diff is seen).
fn switches(agent: &Agent, group: &crate::catalog::Group, now: Level) -> Markup {
    html! {
        form.switches method="get" action="/console/access/change" {
            input type="hidden" name="agent" value=(agent.id);
            input type="hidden" name="group" value=(group.id);
            span { "Set " (group.title) " to " }
            @for level in [Level::Off, Level::Read, Level::Full] {
                @if level != now {
                    button type="submit" name="level" value=(level.as_str()) { (word(level)) }
                }
            }
        }
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
            p.note { "Which of them the token in use lacks: the button below (or `flaregate check --live`)." }
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
            label { input type="checkbox" name="read" value="on"; " Read what it acts on, if the answer needs it" }
            button type="submit" { "Ask" }
        }
    }
}

/// Picks one agent's grant on one group; the next page shows the change
/// to the policy file before anything is written.
fn change_form(policy: &Policy) -> Markup {
    html! {
        h2 { "Change access" }
        form.change #change-grant method="get" action="/console/access/change" {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn group(id: &str) -> crate::catalog::Group {
        crate::catalog::Group {
            id: id.into(),
            title: id.to_uppercase(),
            description: String::new(),
            explicit: false,
        }
    }

    #[test]
    fn many_groups_fold_into_families_and_few_stay_apart() {
        let few: Vec<_> = ["dns", "dns_advanced", "cache"].map(group).into();
        let held: Vec<_> = few.iter().collect();
        assert_eq!(columns(&held).len(), 3);

        let ids = [
            "dns",
            "dns_advanced",
            "workers",
            "workers_ai",
            "workers_kv_namespace",
            "accounts",
            "account_admin",
            "zone_settings",
            "zone_subscription",
            "cache",
            "ssl",
            "ssl_advanced",
            "r2",
            "firewall",
            "firewall_legacy",
            "pages",
            "stream",
        ];
        let many: Vec<_> = ids.map(group).into();
        let held: Vec<_> = many.iter().collect();
        let folded = columns(&held);
        let titles: Vec<&str> = folded.iter().map(|c| c.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "dns… (2)",
                "workers… (3)",
                "accounts… (2)",
                "zone… (2)",
                "CACHE",
                "ssl… (2)",
                "R2",
                "firewall… (2)",
                "PAGES",
                "STREAM"
            ]
        );
        assert_eq!(
            folded.iter().map(|c| c.groups.len()).sum::<usize>(),
            ids.len()
        );
    }
}
