//! "What may this agent do with this call?" on the access page: the
//! policy's answer for a tool and its arguments, as the server would
//! judge them (values in the form Cloudflare reads, names resolved), with
//! nothing sent to Cloudflare; a decision that needs the object itself
//! says so (`flaregate explain --live` fetches it).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::Console;
use super::guard::Signed;
use super::page::{Tab, page};
use crate::policy::Verdict;

#[derive(Debug, Deserialize)]
pub(super) struct Question {
    #[serde(default)]
    agent: String,
    #[serde(default)]
    tool: String,
    #[serde(default)]
    args: String,
}

/// The answer, in words, and the rule that gave it.
fn answer(console: &Console, question: &Question) -> (bool, String, String) {
    let policy = console.gateway.engine().policy();
    let Some(agent) = policy.agent(&question.agent) else {
        return (
            false,
            format!("there is no agent `{}`", question.agent),
            String::new(),
        );
    };
    let catalog = policy.catalog();
    let Some(endpoint) = catalog.endpoint(&question.tool) else {
        return (
            false,
            format!("there is no tool `{}`", question.tool),
            String::new(),
        );
    };
    let text = if question.args.trim().is_empty() {
        "{}"
    } else {
        question.args.as_str()
    };
    let mut args: Map<String, Value> = match serde_json::from_str(text) {
        Ok(Value::Object(args)) => args,
        _ => {
            return (
                false,
                "the arguments must be a JSON object".into(),
                String::new(),
            );
        }
    };
    if let Err(invalid) = catalog.validate_arguments(&question.tool, &args) {
        return (
            false,
            format!("the arguments are not valid: {invalid}"),
            String::new(),
        );
    }
    let directory = console.gateway.engine().directory();
    if let Err(denial) = policy.canonicalise(agent, endpoint, &mut args, &directory) {
        return (false, denial.reason.to_string(), denial.rule.to_string());
    }
    let verdict = policy.decide(agent, &question.tool, &args, &directory, None);
    if verdict == Verdict::NeedsLookup {
        return (
            false,
            "it depends on the object the call acts on: the server reads it (charged to the agent) when the call is made; `flaregate explain --live` reads it now".into(),
            verdict.rule().to_string(),
        );
    }
    let allowed = verdict.is_allowed();
    let mut said = if allowed { "allowed: " } else { "denied: " }.to_string();
    said.push_str(verdict.reason());
    if allowed && agent.needs_approval(catalog, &question.tool) {
        said.push_str(" — once a person approves it");
    }
    (allowed, said, verdict.rule().to_string())
}

pub(super) async fn show(
    State(console): State<Arc<Console>>,
    signed: Signed,
    Query(question): Query<Question>,
) -> Response {
    console.gateway.engine().resolve_names().await;
    let (allowed, said, rule) = answer(&console, &question);
    let body = html! {
        p {
            "May " strong { (question.agent) } " call " code { (question.tool) }
            " with " code { (question.args) } "?"
        }
        p class=(if allowed { "allowed" } else { "problem" }) role="status" { (said) }
        @if !rule.is_empty() { p.note { "Rule: " code { (rule) } } }
        p.note { "Decided by the policy in force; nothing was sent to Cloudflare." }
        p { a href="/console" { "Back to access" } }
    };
    page("What may it do?", Tab::Access, Some(&signed), body)
}
