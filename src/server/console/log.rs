//! The log page: the audit rows `flaregate audit` shows, with its filters,
//! newest last; with JavaScript on, rows written later are appended as
//! they come (server-sent events from `/console/log/stream`).

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::Console;
use super::guard::Signed;
use super::page::{Tab, page, secured};
use crate::audit::{Decision, Entry, Filter};

/// How many rows a page shows.
const ROWS: usize = 200;

/// The filters, as the page's form sends them.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Filters {
    #[serde(default)]
    agent: String,
    #[serde(default)]
    tool: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    zone: String,
    #[serde(default)]
    approval: String,
    /// The last row the page has (the stream sends those after it).
    after: Option<i64>,
}

impl Filters {
    /// The filters as a URL query, for the export link.
    fn query(&self) -> String {
        let pairs = [
            ("agent", &self.agent),
            ("tool", &self.tool),
            ("decision", &self.decision),
            ("zone", &self.zone),
            ("approval", &self.approval),
        ];
        pairs
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| {
                format!(
                    "{name}={}",
                    percent_encoding::utf8_percent_encode(
                        value,
                        percent_encoding::NON_ALPHANUMERIC
                    )
                )
            })
            .collect::<Vec<_>>()
            .join("&")
    }

    fn filter(&self) -> Result<Filter, String> {
        let given = |text: &str| (!text.trim().is_empty()).then(|| text.trim().to_string());
        let decision = match given(&self.decision) {
            None => None,
            Some(word) => match word.as_str() {
                "allow" | "deny" | "preview" | "approved" | "rejected" | "policy" | "alert" => {
                    Some(Decision::parse(&word))
                }
                _ => {
                    return Err(format!(
                        "`{word}` is not a decision (allow, deny, preview, approved, rejected, policy)"
                    ));
                }
            },
        };
        Ok(Filter {
            agent: given(&self.agent),
            tool: given(&self.tool),
            decision,
            zone: given(&self.zone),
            approval: given(&self.approval),
            after_id: self.after,
            limit: ROWS,
            ..Filter::default()
        })
    }
}

pub(super) async fn show(
    State(console): State<Arc<Console>>,
    signed: Signed,
    Query(filters): Query<Filters>,
) -> Response {
    let read = match filters.filter() {
        Ok(filter) => console.read(filter).await,
        Err(problem) => Err(problem),
    };
    let last = read
        .as_ref()
        .ok()
        .and_then(|rows| rows.last())
        .map_or(0, |row| row.id);
    let body = html! {
        form.filters method="get" action="/console/log" {
            label { "Agent " input name="agent" value=(filters.agent); }
            label { "Tool " input name="tool" value=(filters.tool); }
            label { "Decision "
                select name="decision" {
                    @for word in ["", "allow", "deny", "preview", "approved", "rejected", "policy", "alert"] {
                        option value=(word) selected[filters.decision == word] {
                            @if word.is_empty() { "any" } @else { (word) }
                        }
                    }
                }
            }
            label { "Zone " input name="zone" value=(filters.zone); }
            label { "Approval " input name="approval" value=(filters.approval); }
            button type="submit" { "Show" }
        }
        p {
            a href={ "/console/log/export?" (filters.query()) } download { "Export these rows (JSON lines)" }
            " · "
            a href="/console/log/verify" { "Verify the chain" }
        }
        @match &read {
            Err(problem) => p.problem role="alert" { (problem) },
            Ok(rows) => {
                p.note { "The newest " (ROWS) " rows that match, oldest first; new rows appear below as they are written." }
                div.scroll {
                    table #log data-last=(last) {
                        thead { tr {
                            th scope="col" { "Row" } th scope="col" { "Time" } th scope="col" { "Agent" }
                            th scope="col" { "Decision" } th scope="col" { "Tool" } th scope="col" { "What happened" }
                        } }
                        tbody {
                            @for row in rows {
                                tr class={ "decision " (row.decision) } {
                                    td { a href={ "/console/log/" (row.id) } { (row.id) } }
                                    td { (row.ts) } td { (row.agent) }
                                    td { (row.decision) } td { code { (row.tool) } } td { (row.summary) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page("Log", Tab::Log, Some(&signed), body)
}

/// One row in full: the call as sent, the decision and its rule, what
/// was read to decide, Cloudflare's answer, and the state kept for undo.
pub(super) async fn row(
    State(console): State<Arc<Console>>,
    signed: Signed,
    axum::extract::Path(id): axum::extract::Path<i64>,
) -> Response {
    let db = console.gateway.audit_db().clone();
    let read = tokio::task::spawn_blocking(move || crate::audit::read_row(&db, id))
        .await
        .map_err(|e| e.to_string())
        .and_then(|read| read.map_err(|e| e.to_string()));
    let (entry, stored) = match read {
        Ok(Some(found)) => found,
        Ok(None) => {
            let mut response = page(
                "No such row",
                Tab::Log,
                Some(&signed),
                html! { p { "The log has no row " (id) "." } },
            );
            *response.status_mut() = axum::http::StatusCode::NOT_FOUND;
            return response;
        }
        Err(problem) => {
            return page(
                "Log",
                Tab::Log,
                Some(&signed),
                html! { p.problem role="alert" { (problem) } },
            );
        }
    };
    let arguments = serde_json::to_string_pretty(&entry.args).unwrap_or_default();
    let body = html! {
        p { (entry.summary) }
        dl.row {
            dt { "Time" } dd { (entry.ts) }
            dt { "Agent" } dd { (entry.agent) }
            dt { "Tool" } dd { code { (entry.tool) } }
            dt { "Request" } dd { code { (entry.method) " " (entry.path) } }
            dt { "On" } dd { (entry.target) }
            dt { "Decision" } dd { (entry.decision) ": " (entry.reason) }
            dt { "Rule" } dd { (entry.rule) }
            @if !entry.lookup.is_empty() {
                dt { "Read to decide" } dd { (entry.lookup) }
            }
            @if let Some(status) = entry.status {
                dt { "Cloudflare answered" }
                dd {
                    (status)
                    @if !entry.cf_codes.is_empty() { " (codes " (format!("{:?}", entry.cf_codes)) ")" }
                    @if let Some(ms) = entry.duration_ms { " in " (ms) " ms" }
                }
            }
            @if entry.sandbox { dt { "Upstream" } dd { "the built-in sandbox" } }
        }
        h2 { "Arguments" }
        pre { (arguments) }
        @if let Some(stored) = stored {
            h2 { "Kept for undo" }
            p { "Read with " code { (stored.reader) } "." }
            @match &stored.prior {
                crate::audit::Prior::Object(json) | crate::audit::Prior::Text(json) => pre { (json) },
                crate::audit::Prior::Missing => p { "It did not exist before the call." },
                crate::audit::Prior::Nothing => p { "A create: there was nothing before it." },
            }
        }
        @if signed.role >= crate::config::Role::Admin && entry.decision == "allow" && entry.method != "GET" {
            p { a href={ "/console/log/" (id) "/undo" } { "Undo this call…" } }
        }
        p { a href="/console/log" { "Back to the log" } }
    };
    page(&format!("Row {id}"), Tab::Log, Some(&signed), body)
}

/// How many rows an export holds at most.
const EXPORT_ROWS: usize = 100_000;

/// The rows the filters select, one JSON object a line, as a download.
pub(super) async fn export(
    State(console): State<Arc<Console>>,
    signed: Signed,
    Query(filters): Query<Filters>,
) -> Response {
    let rows = match filters.filter() {
        Ok(filter) => {
            console
                .read(Filter {
                    limit: EXPORT_ROWS,
                    ..filter
                })
                .await
        }
        Err(problem) => Err(problem),
    };
    let rows = match rows {
        Ok(rows) => rows,
        Err(problem) => return (axum::http::StatusCode::BAD_REQUEST, problem).into_response(),
    };
    tracing::info!(operator = %signed.operator, rows = rows.len(), "log exported from the console");
    let mut body = String::new();
    for row in &rows {
        body.push_str(&serde_json::to_string(row).unwrap_or_default());
        body.push('\n');
    }
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/x-ndjson"),
    );
    headers.insert(
        axum::http::header::CONTENT_DISPOSITION,
        axum::http::HeaderValue::from_static("attachment; filename=\"flaregate-audit.jsonl\""),
    );
    secured(response)
}

/// The chain checked now, as `flaregate audit verify` checks it.
pub(super) async fn verify(State(console): State<Arc<Console>>, signed: Signed) -> Response {
    let files = console.audit_files.clone();
    let verdict = tokio::task::spawn_blocking(move || crate::audit::verify(&files, None))
        .await
        .map_err(|e| e.to_string())
        .and_then(|v| v.map_err(|e| e.to_string()));
    let body = html! {
        @match &verdict {
            Ok(crate::audit::ChainVerdict::Valid { rows, head }) => {
                p.allowed role="status" { "All " (rows) " rows verify." }
                p { "Head: " code { (head.events) ":" (head.hash) } }
                p.note { "Keep the head somewhere flaregate cannot write; `flaregate audit verify --expect-head` checks against it later." }
            }
            Ok(crate::audit::ChainVerdict::Broken { row, problem }) => {
                p.problem role="alert" {
                    "The chain does not verify"
                    @if let Some(row) = row { " at row " (row) }
                    ": " (problem)
                }
            }
            Err(problem) => p.problem role="alert" { (problem) },
        }
        p { a href="/console/log" { "Back to the log" } }
    };
    page("The chain", Tab::Log, Some(&signed), body)
}

/// New rows as server-sent events (`row`, JSON), after `after`.
pub(super) async fn stream(
    State(console): State<Arc<Console>>,
    _signed: Signed,
    Query(filters): Query<Filters>,
) -> Response {
    let Ok(filter) = filters.filter() else {
        return (axum::http::StatusCode::BAD_REQUEST, "bad filter").into_response();
    };
    secured(
        Sse::new(rows_after(console, filter))
            .keep_alive(KeepAlive::default())
            .into_response(),
    )
}

fn rows_after(
    console: Arc<Console>,
    filter: Filter,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let start = (console, filter, Vec::<Entry>::new());
    futures_util::stream::unfold(start, |(console, mut filter, mut waiting)| async move {
        loop {
            if !waiting.is_empty() {
                let row = waiting.remove(0);
                filter.after_id = Some(row.id);
                let data = json!({
                    "id": row.id, "ts": row.ts, "agent": row.agent, "decision": row.decision,
                    "tool": row.tool, "summary": row.summary,
                });
                let event = Event::default().event("row").data(data.to_string());
                return Some((Ok(event), (console, filter, waiting)));
            }
            tokio::time::sleep(super::POLL_EVERY).await;
            if let Ok(rows) = console.read(filter.clone()).await {
                waiting = rows;
            }
        }
    })
}
