//! "What may this agent do with this call?" on the access page: the
//! server's own answer (`server::explain`, as `flaregate explain` gives
//! it) for a tool and its arguments. Nothing is read from Cloudflare
//! unless the operator asks: where the verdict depends on the object the
//! call acts on, "read it" makes the lookup the server would make.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::Console;
use super::guard::Signed;
use super::page::{Tab, page};
use crate::oauth::TokenAccess;
use crate::server::explain::{Answer, Explained, Question, explain};

/// What the console says when an answer needs Cloudflare and none was read.
const OFFLINE: &str = "nothing was read from Cloudflare; ask again with \"Read what it acts on\"";

#[derive(Debug, Deserialize)]
pub(super) struct Asked {
    #[serde(default)]
    agent: String,
    #[serde(default)]
    tool: String,
    #[serde(default)]
    args: String,
    /// "on": read the object the call acts on where the answer needs it.
    #[serde(default)]
    read: String,
}

async fn answer(console: &Console, asked: &Asked) -> Explained {
    let text = if asked.args.trim().is_empty() {
        "{}"
    } else {
        asked.args.as_str()
    };
    let args: Map<String, Value> = match serde_json::from_str(text) {
        Ok(Value::Object(args)) => args,
        _ => return Explained::new(Answer::Invalid, "the arguments must be a JSON object"),
    };
    let engine = console.gateway.engine();
    engine.resolve_names().await;
    let question = Question {
        agent: asked.agent.clone(),
        tool: asked.tool.clone(),
        args,
        access: TokenAccess::unlimited(),
    };
    if console.gateway.catalog().endpoint(&asked.tool).is_none() {
        return Explained::new(
            Answer::Invalid,
            format!("there is no tool `{}`", asked.tool),
        );
    }
    let client = (asked.read == "on").then(|| console.gateway.client());
    explain(engine, question, client, OFFLINE).await
}

pub(super) async fn show(
    State(console): State<Arc<Console>>,
    signed: Signed,
    Query(asked): Query<Asked>,
) -> Response {
    let explained = answer(&console, &asked).await;
    if let Some(fetched) = &explained.fetched {
        tracing::info!(operator = %signed.operator, agent = %asked.agent, tool = %asked.tool, %fetched, "the console read an object to explain a decision");
    }
    let allowed = matches!(
        explained.answer,
        Answer::Allowed | Answer::AllowedOnceApproved
    );
    let body = html! {
        p {
            "May " strong { (asked.agent) } " call " code { (asked.tool) }
            " with " code { (asked.args) } "?"
        }
        p class=(if allowed { "allowed" } else { "problem" }) role="status" {
            (explained.answer.as_str()) ": " (explained.reason)
        }
        @if let Some(rule) = &explained.rule { p.note { "Rule: " code { (rule) } } }
        @if let Some(summary) = &explained.summary { p.note { "The log would say: " (summary) } }
        @match &explained.fetched {
            Some(fetched) => p.note { "Read to decide: " code { (fetched) } },
            None => p.note { "Nothing was read from Cloudflare." },
        }
        @if explained.answer == Answer::Undecided && asked.read != "on" {
            form method="get" action="/console/explain" {
                input type="hidden" name="agent" value=(asked.agent);
                input type="hidden" name="tool" value=(asked.tool);
                input type="hidden" name="args" value=(asked.args);
                input type="hidden" name="read" value="on";
                button type="submit" { "Read what it acts on, then answer" }
            }
        }
        p { a href="/console" { "Back to access" } }
    };
    page("What may it do?", Tab::Access, Some(&signed), body)
}
