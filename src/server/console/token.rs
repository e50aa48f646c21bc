//! "What does the live token lack?" on the access page: the checks of
//! `flaregate check --live`, run by the server against the Cloudflare (or
//! the sandbox) it serves — whether the token is active, one read per
//! granted group and zone or account, and for an admin the write probes
//! (DELETEs of ids that cannot exist, which Cloudflare's own audit log
//! shows). Posted with the form token: it sends requests upstream.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::Console;
use super::guard::Signed;
use super::page::{Tab, page};
use crate::config::Role;
use crate::policy::token_gaps;

#[derive(Debug, Deserialize)]
pub(super) struct Asked {
    #[serde(default)]
    csrf: String,
    /// "on": the write probes too (admin).
    #[serde(default)]
    writes: String,
}

/// The button, under the permissions the grants need.
pub(super) fn form(signed: &Signed) -> Markup {
    html! {
        form.change method="post" action="/console/access/token" {
            input type="hidden" name="csrf" value=(signed.csrf);
            @if signed.role >= Role::Admin {
                label { input type="checkbox" name="writes" value="on"; " with the write probes (DELETEs of ids that cannot exist)" }
            }
            button type="submit" { "Check what the live token lacks" }
        }
    }
}

pub(super) async fn check(
    State(console): State<Arc<Console>>,
    signed: Signed,
    headers: HeaderMap,
    Form(asked): Form<Asked>,
) -> Response {
    let writes = asked.writes == "on";
    let needed = if writes { Role::Admin } else { Role::Viewer };
    if let Err(refused) = signed.may_change(&headers, &asked.csrf, needed) {
        return refused.into_response();
    }
    let client = console.gateway.client();
    let engine = console.gateway.engine();
    engine.resolve_names().await;
    let status = token_gaps::verify(client).await;
    let gaps = match &status {
        Ok(_) => token_gaps::gaps(client, &engine.policy(), &engine.directory(), writes).await,
        Err(_) => Vec::new(),
    };
    tracing::info!(operator = %signed.operator, writes, lacking = gaps.len(), "the console checked the Cloudflare token");
    let body = html! {
        @match &status {
            Ok(said) => p { (said) "." },
            Err(problem) => p.problem role="alert" { (problem) "." },
        }
        @if status.is_ok() {
            @if gaps.is_empty() {
                p.allowed role="status" {
                    "It serves every grant"
                    @if writes { ", reads and writes probed." } @else { " it was read with (writes not probed)." }
                }
            } @else {
                h2 { "What it lacks (" (gaps.len()) ")" }
                ul { @for gap in &gaps { li { (gap) } } }
            }
        }
        p { a href="/console" { "Back to access" } }
    };
    page("The live token", Tab::Access, Some(&signed), body)
}
