//! The approvals inbox: requests waiting for a person, with the exact call
//! and its preview, who asked and when it expires; approve or reject
//! (approvers and admins); the decisions made lately. A decision made here
//! is the same as `flaregate approve`: the server writes it into the audit
//! chain with the operator's name.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::Console;
use super::guard::Signed;
use super::page::{Tab, page, time};
use crate::approval::Approval;
use crate::config::Role;

/// How many decided requests the history shows.
const HISTORY: usize = 50;

pub(super) async fn show(State(console): State<Arc<Console>>, signed: Signed) -> Response {
    let Some(approvals) = console.gateway.approvals().cloned() else {
        return page(
            "Approvals",
            Tab::Approvals,
            Some(&signed),
            html! {
                p { "Approvals are not kept by this server." }
            },
        );
    };
    let now = crate::audit::now_unix_ms();
    let read = tokio::task::spawn_blocking(move || {
        Ok::<_, String>((
            approvals.pending(now).map_err(|e| e.to_string())?,
            approvals.recent(HISTORY).map_err(|e| e.to_string())?,
        ))
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    let may_decide = signed.role >= Role::Approver;
    let body = match read {
        Err(problem) => {
            html! { p.problem role="alert" { "The approvals cannot be read: " (problem) } }
        }
        Ok((pending, recent)) => html! {
            h2 #inbox data-pending=(ids(&pending)) { "Waiting (" (pending.len()) ")" }
            @if pending.is_empty() {
                p.note { "No request is waiting for a person." }
            }
            @for approval in &pending {
                (request(approval, may_decide.then_some(signed.csrf.as_str())))
            }
            h2 { "Decided lately" }
            @if recent.is_empty() {
                p.note { "None yet." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Request" } th scope="col" { "Agent" } th scope="col" { "Call" }
                        th scope="col" { "Decision" } th scope="col" { "By" } th scope="col" { "When" }
                        th scope="col" { "Note" }
                    } }
                    tbody {
                        @for approval in &recent {
                            tr {
                                td { code { (approval.id) } } td { (approval.agent) } td { (approval.summary) }
                                td { (approval.status.as_str()) }
                                td { (approval.decided_by.as_deref().unwrap_or("")) }
                                td { (approval.decided_ms.map(time).unwrap_or_default()) }
                                td { (approval.note.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        },
    };
    page("Approvals", Tab::Approvals, Some(&signed), body)
}

/// A preview's JSON laid out for reading (as stored if it is not JSON).
fn pretty(preview: &str) -> String {
    serde_json::from_str::<serde_json::Value>(preview)
        .ok()
        .and_then(|value| serde_json::to_string_pretty(&value).ok())
        .unwrap_or_else(|| preview.to_string())
}

/// The waiting requests' ids, as the page and its live stream compare them.
fn ids(pending: &[Approval]) -> String {
    pending
        .iter()
        .map(|a| a.id.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Debug, Deserialize)]
pub(super) struct Seen {
    #[serde(default)]
    pending: String,
}

/// A `changed` event (server-sent) once the waiting requests differ from
/// those the page shows: the page then loads again.
pub(super) async fn stream(
    State(console): State<Arc<Console>>,
    _signed: Signed,
    axum::extract::Query(seen): axum::extract::Query<Seen>,
) -> Response {
    let Some(approvals) = console.gateway.approvals().cloned() else {
        return (axum::http::StatusCode::NOT_FOUND, "no approvals here").into_response();
    };
    let changes =
        futures_util::stream::unfold((approvals, seen.pending), |(approvals, seen)| async move {
            loop {
                tokio::time::sleep(super::POLL_EVERY).await;
                let reader = approvals.clone();
                let now = crate::audit::now_unix_ms();
                let Ok(Ok(pending)) =
                    tokio::task::spawn_blocking(move || reader.pending(now)).await
                else {
                    continue;
                };
                let current = ids(&pending);
                if current != seen {
                    let event = axum::response::sse::Event::default()
                        .event("changed")
                        .data(current.clone());
                    return Some((
                        Ok::<_, std::convert::Infallible>(event),
                        (approvals, current),
                    ));
                }
            }
        });
    super::page::secured(
        axum::response::sse::Sse::new(changes)
            .keep_alive(axum::response::sse::KeepAlive::default())
            .into_response(),
    )
}

/// One waiting request, with its decision buttons when `csrf` is given.
fn request(approval: &Approval, csrf: Option<&str>) -> Markup {
    html! {
        article.request aria-labelledby={ "request-" (approval.id) } {
            h3 id={ "request-" (approval.id) } { (approval.summary) }
            dl {
                dt { "Agent" } dd { (approval.agent) }
                dt { "Asked by" }
                dd { (approval.asked_by.as_deref().unwrap_or("the agent's key (no person named)")) }
                dt { "Tool" } dd { code { (approval.tool) } }
                dt { "Asked" } dd { (time(approval.requested_ms)) }
                dt { "Expires" } dd { (time(approval.expires_ms)) }
                dt { "Request" } dd { code { (approval.id) } }
            }
            details open {
                summary { "The exact call and what it would change" }
                pre { (pretty(&approval.preview)) }
            }
            @if let Some(csrf) = csrf {
                form method="post" action={ "/console/approvals/" (approval.id) } {
                    input type="hidden" name="csrf" value=(csrf);
                    label { "Note (kept in the log) " input name="note" maxlength="500" size="40"; }
                    button type="submit" name="decision" value="approve" { "Approve" }
                    button type="submit" name="decision" value="reject" { "Reject" }
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct Decide {
    #[serde(default)]
    csrf: String,
    decision: String,
    /// Why, in a few words (kept with the decision).
    #[serde(default)]
    note: String,
}

/// Approves or rejects request `id` as the signed-in operator.
pub(super) async fn decide(
    State(console): State<Arc<Console>>,
    signed: Signed,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Decide>,
) -> Response {
    if let Err(refused) = signed.may_change(&headers, &form.csrf, Role::Approver) {
        return refused.into_response();
    }
    let approve = match form.decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                "decision is approve or reject",
            )
                .into_response();
        }
    };
    let Some(approvals) = console.gateway.approvals().cloned() else {
        return (axum::http::StatusCode::NOT_FOUND, "no approvals here").into_response();
    };
    let by = format!("{} (console)", signed.operator);
    let note = crate::text::one_line(&form.note, 500);
    let now = crate::audit::now_unix_ms();
    let decided = tokio::task::spawn_blocking(move || {
        let note = (!note.is_empty()).then_some(note.as_str());
        approvals.decide(&id, approve, (&by, note), now)
    })
    .await;
    match decided {
        Ok(Ok(approval)) => {
            tracing::info!(
                operator = %signed.operator, request = %approval.id,
                decision = approval.status.as_str(), "decided in the console"
            );
            Redirect::to("/console/approvals").into_response()
        }
        Ok(Err(refused)) => (
            axum::http::StatusCode::CONFLICT,
            format!("not decided: {refused}"),
        )
            .into_response(),
        Err(error) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            error.to_string(),
        )
            .into_response(),
    }
}
