//! Undo from a row (admins): the undo's preview first — the restoring
//! call as it would be sent, and the object now — then the undo. It runs
//! through the pipeline for the row's agent, judged by that agent's policy
//! as any call is, and its row names the operator ("root (console) as ops").
//! Where that policy has a person approve the restoring call, the admin's
//! confirmation after the preview is that approval: requested, approved in
//! their name and redeemed, in the approvals history as any other.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Console;
use super::guard::Signed;
use super::page::{Tab, page};
use crate::config::Role;
use crate::server::pipeline::{Answer, CallRequest, UNDO};

impl Console {
    /// Undoes row `row` for the agent that made it, as `signed`; a
    /// preview when `dry_run`.
    async fn undo(
        &self,
        signed: &Signed,
        row: i64,
        dry_run: bool,
        force: bool,
    ) -> Result<(String, Answer), String> {
        let db = self.gateway.audit_db().clone();
        let found = tokio::task::spawn_blocking(move || crate::audit::read_row(&db, row))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let Some((entry, _)) = found else {
            return Err(format!("the log has no row {row}"));
        };
        let mut args = serde_json::Map::new();
        args.insert("row".into(), json!(row));
        args.insert("dry_run".into(), json!(dry_run));
        args.insert("force".into(), json!(force));
        let agent = entry.agent.clone();
        let request = CallRequest {
            agent: entry.agent,
            person: Some(format!("{} (console)", signed.operator)),
            scopes: crate::oauth::TokenAccess::unlimited(),
            from_console: true,
            confirmed: !dry_run && signed.role >= Role::Approver,
            tool: UNDO.to_string(),
            args,
            asker: None,
            traceparent: None,
        };
        self.gateway
            .services
            .run(request)
            .await
            .map(|answer| (agent, answer))
            .map_err(|fault| fault.to_string())
    }
}

/// The undo's preview, and the button that undoes.
pub(super) async fn preview(
    State(console): State<Arc<Console>>,
    signed: Signed,
    Path(row): Path<i64>,
) -> Response {
    if signed.role < Role::Admin {
        return (StatusCode::FORBIDDEN, "undo needs the admin role").into_response();
    }
    let previewed = console.undo(&signed, row, true, false).await;
    let body = html! {
        @match &previewed {
            Err(problem) => p.problem role="alert" { (problem) },
            Ok((agent, answer)) => {
                (shown(answer))
                @if let Some(approval) = approval_note(&console, &signed, agent, answer) {
                    p.note { (approval) }
                }
                @if !answer.is_error() {
                    form method="post" action={ "/console/log/" (row) "/undo" } {
                        input type="hidden" name="csrf" value=(signed.csrf);
                        label { input type="checkbox" name="force" value="true"; " Undo even if what it changed was changed again since" }
                        button type="submit" { "Undo row " (row) }
                    }
                }
            }
        }
        p { a href={ "/console/log/" (row) } { "Back to row " (row) } }
    };
    page(
        &format!("Undo row {row}: preview"),
        Tab::Log,
        Some(&signed),
        body,
    )
}

#[derive(Debug, Deserialize)]
pub(super) struct Confirmed {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    force: Option<String>,
}

/// Undoes row `row`.
pub(super) async fn apply(
    State(console): State<Arc<Console>>,
    signed: Signed,
    Path(row): Path<i64>,
    headers: HeaderMap,
    Form(form): Form<Confirmed>,
) -> Response {
    if let Err(refused) = signed.may_change(&headers, &form.csrf, Role::Admin) {
        return refused.into_response();
    }
    let force = form.force.as_deref() == Some("true");
    let done = console.undo(&signed, row, false, force).await;
    let failed = !matches!(&done, Ok((_, answer)) if !answer.is_error());
    tracing::info!(operator = %signed.operator, row, undone = !failed, "undo from the console");
    let body = html! {
        @match &done {
            Err(problem) => p.problem role="alert" { (problem) },
            Ok((_, answer)) => (shown(answer)),
        }
        p { a href="/console/log" { "Back to the log" } }
    };
    let mut response = page(&format!("Undo row {row}"), Tab::Log, Some(&signed), body);
    if failed {
        *response.status_mut() = StatusCode::CONFLICT;
    }
    response
}

/// What the preview says when the agent's policy has a person approve the
/// restoring call: the operator's confirmation is that approval (an
/// approver or admin), recorded in their name.
fn approval_note(
    console: &Console,
    signed: &Signed,
    agent: &str,
    answer: &Answer,
) -> Option<String> {
    let Answer::Undo { restorer, .. } = answer else {
        return None;
    };
    let policy = console.gateway.engine().policy();
    let agent = policy.agent(agent)?;
    if !agent.needs_approval(policy.catalog(), restorer) {
        return None;
    }
    Some(format!(
        "{}'s policy has a person approve {restorer}: undoing it here approves it, in the approvals history as {} (console).",
        agent.id, signed.operator
    ))
}

/// An answer of the pipeline, for a person.
fn shown(answer: &Answer) -> Markup {
    html! {
        @match answer {
            Answer::Undo { heading, answer, .. } => { p { (heading) } (shown(answer)) }
            Answer::Made(value) => pre { (pretty(value)) },
            Answer::Result { response, .. } => {
                p { "Cloudflare answered:" }
                pre { (pretty(&response.result)) }
            }
            Answer::Refused { text, shown } => {
                p.problem role="alert" { (text) }
                @if let Some(value) = shown { pre { (pretty(value)) } }
            }
            Answer::Failed(text) => p.problem role="alert" { (text) },
            Answer::Ask { question, .. } => p.problem role="alert" { "A person must approve it first: " (question) },
        }
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}
