//! The health page: whether the policy, the audit log and Cloudflare are
//! as they should be, requests waiting for a person, each agent's calls in
//! the last hour beside its limits, and calls per minute by decision (a
//! chart drawn as SVG on the server: no script).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};

use super::Console;
use super::guard::Signed;
use super::page::{Tab, page};
use crate::audit::{Entry, Filter};

/// How far back the chart and the counts look.
const WINDOW: Duration = Duration::from_secs(60 * 60);
/// The most rows read for them.
const MAX_ROWS: usize = 20_000;
/// Minutes the chart shows.
const MINUTES: usize = 30;

pub(super) async fn show(State(console): State<Arc<Console>>, signed: Signed) -> Response {
    let gateway = &console.gateway;
    let freshness = gateway.engine().freshness();
    let policy = gateway.engine().policy();
    let audit = matches!(
        tokio::time::timeout(Duration::from_secs(1), gateway.audit().probe()).await,
        Ok(Ok(()))
    );
    let upstream = gateway.metrics().upstream_reachable();
    let pending = match gateway.approvals().cloned() {
        Some(approvals) => tokio::task::spawn_blocking(move || {
            approvals
                .pending(crate::audit::now_unix_ms())
                .map(|p| p.len())
        })
        .await
        .ok()
        .and_then(Result::ok),
        None => None,
    };
    let rows = console
        .read(Filter {
            since: Some(WINDOW),
            limit: MAX_ROWS,
            ..Filter::default()
        })
        .await
        .unwrap_or_default();
    let loaded = humantime::format_rfc3339_seconds(freshness.loaded_at()).to_string();
    let (reloads, reload_failures) = gateway.metrics().reload_counts();
    let answers = gateway.metrics().upstream_counts();
    let answers = if answers.is_empty() {
        "none yet".to_string()
    } else {
        let each: Vec<String> = answers
            .iter()
            .map(|(class, n)| format!("{n} {class}"))
            .collect();
        each.join(", ")
    };
    let budget = match gateway.client().budget() {
        (rate, Some(free)) => format!("{free} requests free now, of {rate} (this instance)"),
        (_, None) => "unlimited here (no [cloudflare] rate_limit)".to_string(),
    };
    let body = html! {
        h2 { "State" }
        dl.health {
            dt { "Policy" }
            dd {
                (policy.agents().len()) " agents, loaded " (loaded)
                @if let Some(failure) = freshness.stale() {
                    strong.problem { " — the last reload failed: " (failure.to_string()) }
                }
            }
            dt { "Audit log" } dd { @if audit { "takes rows" } @else { strong.problem { "cannot take rows: calls are refused" } } }
            dt { "Cloudflare" } dd { @if upstream { "answering" } @else { strong.problem { "not answering" } } }
            dt { "Its answers since start" } dd { (answers) }
            dt { "Cloudflare budget" } dd { (budget) }
            dt { "Policy reloads" } dd { (reloads) " since start, " (reload_failures) " failed" }
            dt { "Waiting for a person" } dd { (pending.map_or("—".to_string(), |n| n.to_string())) }
        }
        h2 { "Calls per minute, last " (MINUTES) " minutes" }
        (chart(&rows))
        h2 { "Each agent, last hour" }
        table {
            thead { tr { th scope="col" { "Agent" } th scope="col" { "Allowed" } th scope="col" { "Denied" } th scope="col" { "Limits" } } }
            tbody {
                @for agent in policy.agents() {
                    @let mine = rows.iter().filter(|r| r.agent == agent.id);
                    @let (allowed, denied) = mine.fold((0, 0), |(a, d), r| match r.decision.as_str() {
                        "allow" => (a + 1, d),
                        "deny" => (a, d + 1),
                        _ => (a, d),
                    });
                    tr {
                        th scope="row" { (agent.id) }
                        td { (allowed) } td { (denied) }
                        td { (crate::budget::describe_limits(&agent.limits)) }
                    }
                }
            }
        }
        @if rows.len() >= MAX_ROWS {
            p.note { "Counted from the newest " (MAX_ROWS) " rows." }
        }
    };
    page("Health", Tab::Health, Some(&signed), body)
}

/// Allowed and denied calls per minute as stacked bars, with the counts
/// also in a table for screen readers.
fn chart(rows: &[Entry]) -> Markup {
    // "2026-12-04T22:37" → (allowed, denied)
    let mut minutes: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for row in rows {
        let minute = row.ts.get(..16).unwrap_or(&row.ts).to_string();
        let counts = minutes.entry(minute).or_default();
        match row.decision.as_str() {
            "allow" => counts.0 += 1,
            "deny" => counts.1 += 1,
            _ => {}
        }
    }
    // Every minute of the window, the current one last, calls or not.
    let now = std::time::SystemTime::now();
    let shown: Vec<(String, (u32, u32))> = (0..MINUTES)
        .rev()
        .map(|ago| {
            let at = now - Duration::from_secs(60 * ago as u64);
            let minute = humantime::format_rfc3339_seconds(at).to_string()[..16].to_string();
            let counts = minutes.get(&minute).copied().unwrap_or_default();
            (minute, counts)
        })
        .collect();
    let most = shown
        .iter()
        .map(|(_, (a, d))| a + d)
        .max()
        .unwrap_or(0)
        .max(1);
    let (width, height, bar) = (600, 120, 600 / MINUTES as u32);
    let quiet = shown.iter().all(|(_, (a, d))| a + d == 0);
    html! {
        @if quiet {
            p.note { "No calls in the last " (MINUTES) " minutes." }
        } @else {
            svg.chart width=(width) height=(height + 16) viewBox={ "0 0 " (width) " " (height + 16) } role="img" aria-label="Calls per minute: allowed in green, denied in red" {
                text x="0" y=(height + 14) font-size="11" fill="#444444" { (MINUTES) " min ago" }
                text x=(width) y=(height + 14) font-size="11" fill="#444444" text-anchor="end" { "now" }
                @for (i, (_, (allowed, denied))) in shown.iter().enumerate() {
                    @let x = i as u32 * bar;
                    @let high = |n: u32| n * (height - 10) / most;
                    rect x=(x) y=(height - high(*allowed)) width=(bar - 2) height=(high(*allowed)) fill="#1d6b2f" {}
                    rect x=(x) y=(height - high(*allowed) - high(*denied)) width=(bar - 2) height=(high(*denied)) fill="#9b1c1c" {}
                }
            }
            details {
                summary { "The counts" }
                table {
                    thead { tr { th scope="col" { "Minute (UTC)" } th scope="col" { "Allowed" } th scope="col" { "Denied" } } }
                    tbody {
                        @for (minute, (allowed, denied)) in shown.iter().filter(|(_, (a, d))| a + d > 0) {
                            tr { td { (minute) } td { (allowed) } td { (denied) } }
                        }
                    }
                }
            }
        }
    }
}
