//! Changing access from the console, as the pitch's switches: a grant set
//! to Off / Read / Full, the zones or accounts an agent is limited to, a
//! rule on an argument added or taken out. Each shows the exact change to
//! the policy file (a diff), checked as `flaregate check` checks;
//! confirmed, the file is written atomically (comments and layout kept),
//! the policy reloads, and the change — who, which agent, old and new — is
//! a `policy` row in the audit chain. The files stay the source of truth:
//! one changed on disk since the preview is not overwritten.

mod asked;
mod write;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::Console;
use super::guard::Signed;
use super::page::{Tab, page};
use crate::audit::{CallRecord, Decision, Outcome};
use crate::config::Role;
use crate::policy::Policy;
use crate::policy::edit::{self, Edit, ScopeKey};
pub(super) use asked::Asked;
use asked::{Described, fields};
use write::Prepared;

/// A change confirmed, with the file's state when it was previewed.
#[derive(Debug, Deserialize)]
pub(super) struct Confirmed {
    #[serde(default)]
    csrf: String,
    /// SHA-256 of the file as previewed.
    #[serde(default)]
    digest: String,
    #[serde(flatten)]
    asked: Asked,
}

/// A change worked out against the files as they are now.
struct Planned {
    file: PathBuf,
    old_text: String,
    new_text: String,
    edit: Edit,
    described: Described,
    /// The policy as it would be, or every problem `check` would report.
    checked: Result<Policy, String>,
}

fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl Console {
    /// The policy file that defines `agent`, and its text.
    async fn file_of(&self, agent: &str) -> Result<(usize, Vec<(PathBuf, String)>), String> {
        let Some((path, _)) = self.policies.clone() else {
            return Err("this server runs the built-in demo policy: there is no file to change (start it with --policies)".into());
        };
        let agent = agent.to_string();
        tokio::task::spawn_blocking(move || {
            let sources = crate::policy::policy_files(&path).map_err(|e| e.to_string())?;
            let index = sources
                .iter()
                .position(|(_, text)| edit::defines_agent(text, &agent))
                .ok_or_else(|| {
                    format!(
                        "no policy file under {} defines agent `{agent}`",
                        path.display()
                    )
                })?;
            Ok((index, sources))
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// The change to the file that defines `agent`, checked.
    async fn plan(&self, agent: &str, edit: Edit) -> Result<Planned, String> {
        let policy = self.gateway.engine().policy();
        let catalog = policy.catalog().clone();
        let Some(current) = policy.agent(agent) else {
            return Err(format!("there is no agent `{agent}`"));
        };
        if let Edit::Grant { group, .. } = &edit
            && catalog.group(group).is_none()
        {
            return Err(format!("there is no capability group `{group}`"));
        }
        let (index, mut sources) = self.file_of(agent).await?;
        let (file, old_text) = sources[index].clone();
        let new_text = edit::apply(&old_text, agent, &edit).map_err(|e| e.to_string())?;
        let described = Described {
            old: match &edit {
                Edit::Grant { group, .. } => current.level(group).as_str().to_string(),
                Edit::Scope {
                    key: ScopeKey::Zones,
                    ..
                } => current.zones.describe(),
                Edit::Scope {
                    key: ScopeKey::Accounts,
                    ..
                } => current.accounts.describe(),
                Edit::AddConstraint(_) => String::new(),
                Edit::RemoveConstraint(n) => edit::constraints(&old_text, agent)
                    .map_err(|e| e.to_string())?
                    .get(*n)
                    .cloned()
                    .unwrap_or_default(),
            },
            new: match &edit {
                Edit::Grant { level, .. } => level.as_str().to_string(),
                Edit::Scope { values, .. } if values.is_empty() => "none".into(),
                Edit::Scope { values, .. } => values.join(", "),
                Edit::AddConstraint(rule) => rule.to_string(),
                Edit::RemoveConstraint(_) => String::new(),
            },
        };
        let adjust = self.policies.clone().map(|(_, adjust)| adjust);
        sources[index].1 = new_text.clone();
        let checked = tokio::task::spawn_blocking(move || {
            crate::policy::compile(&sources, catalog)
                .map_err(|e| e.to_string())
                .and_then(|mut policy| match &adjust {
                    Some(adjust) => adjust(&mut policy).map(|()| policy),
                    None => Ok(policy),
                })
        })
        .await
        .map_err(|e| e.to_string())?;
        Ok(Planned {
            file,
            old_text,
            new_text,
            edit,
            described,
            checked,
        })
    }
}

/// The preview: the diff, what the agent gains or loses, and the button.
pub(super) async fn preview(
    State(console): State<Arc<Console>>,
    signed: Signed,
    Query(asked): Query<Asked>,
) -> Response {
    if signed.role < Role::Admin {
        return (
            StatusCode::FORBIDDEN,
            "changing access needs the admin role",
        )
            .into_response();
    }
    if asked.picks_a_rule() {
        return rules(&console, &signed, &asked.agent).await;
    }
    let edit = match asked.edit() {
        Ok(edit) => edit,
        Err(problem) => return (StatusCode::BAD_REQUEST, problem).into_response(),
    };
    let body = match console.plan(&asked.agent, edit).await {
        Err(problem) => html! { p.problem role="alert" { (problem) } },
        Ok(planned) => shown(&console, &signed, &asked, &planned),
    };
    page("Change access", Tab::Access, Some(&signed), body)
}

/// The agent's rules on arguments as its file writes them, each with a
/// link to the preview of taking it out.
async fn rules(console: &Console, signed: &Signed, agent: &str) -> Response {
    let listed = console.file_of(agent).await.and_then(|(index, sources)| {
        let (file, text) = &sources[index];
        edit::constraints(text, agent)
            .map(|rules| (file.clone(), rules))
            .map_err(|e| e.to_string())
    });
    let body = match listed {
        Err(problem) => html! { p.problem role="alert" { (problem) } },
        Ok((file, rules)) => html! {
            p { "Rules on " strong { (agent) } "'s arguments in " code { (file.display()) } ":" }
            @if rules.is_empty() { p.note { "None." } }
            ol {
                @for (n, rule) in rules.iter().enumerate() {
                    li {
                        (rule) " — "
                        a href={ "/console/access/change?kind=unconstrain&agent=" (agent) "&index=" (n + 1) } {
                            "Preview taking it out"
                        }
                    }
                }
            }
            p { a href="/console" { "Back to access" } }
        },
    };
    page("Take out a rule", Tab::Access, Some(signed), body)
}

fn shown(console: &Console, signed: &Signed, asked: &Asked, planned: &Planned) -> Markup {
    let file = planned.file.display().to_string();
    let diff = similar::TextDiff::from_lines(&planned.old_text, &planned.new_text)
        .unified_diff()
        .context_radius(3)
        .header(&file, &file)
        .to_string();
    let now = console.gateway.engine().policy();
    let tools_of = |policy: &Policy| -> Vec<String> {
        policy
            .agent(&asked.agent)
            .map(|a| {
                a.visible_tools(policy.catalog())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = tools_of(&now);
    let sentence = planned
        .described
        .sentence(&signed.operator, &asked.agent, &planned.edit, &file);
    html! {
        p { (sentence) "." }
        @if planned.old_text == planned.new_text {
            p.note { "The file already says this: nothing to change." }
        } @else {
            h2 { "The change to " code { (file) } }
            pre.diff { (diff) }
            @match &planned.checked {
                Err(problems) => {
                    h2 { "It does not check" }
                    pre.problem role="alert" { (problems) }
                    p { "Nothing was written." }
                }
                Ok(policy) => {
                    @let after = tools_of(policy);
                    @let gained: Vec<&String> = after.iter().filter(|t| !before.contains(t)).collect();
                    @let lost: Vec<&String> = before.iter().filter(|t| !after.contains(t)).collect();
                    h2 { "It checks" }
                    @if !gained.is_empty() { p { (asked.agent) " will see: " @for t in &gained { code { (t) } " " } } }
                    @if !lost.is_empty() { p { (asked.agent) " will no longer see: " @for t in &lost { code { (t) } " " } } }
                    @if gained.is_empty() && lost.is_empty() { p { (asked.agent) " sees the same tools." } }
                    @if !policy.warnings.is_empty() {
                        details {
                            summary { (policy.warnings.len()) " warnings, as `flaregate check` gives them" }
                            ul { @for warning in &policy.warnings { li { (warning) } } }
                        }
                    }
                    form method="post" action="/console/access/change" {
                        input type="hidden" name="csrf" value=(signed.csrf);
                        @for (name, value) in fields(asked) {
                            @if !value.is_empty() { input type="hidden" name=(name) value=(value); }
                        }
                        input type="hidden" name="digest" value=(digest(&planned.old_text));
                        button type="submit" { "Write the change" }
                    }
                }
            }
        }
        p { a href="/console" { "Back to access" } }
    }
}

/// Writes a previewed change, if the file is as it was previewed.
pub(super) async fn apply(
    State(console): State<Arc<Console>>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<Confirmed>,
) -> Response {
    if let Err(refused) = signed.may_change(&headers, &form.csrf, Role::Admin) {
        return refused.into_response();
    }
    let edit = match form.asked.edit() {
        Ok(edit) => edit,
        Err(problem) => return (StatusCode::BAD_REQUEST, problem).into_response(),
    };
    let planned = match console.plan(&form.asked.agent, edit).await {
        Ok(planned) => planned,
        Err(problem) => return (StatusCode::CONFLICT, problem).into_response(),
    };
    if digest(&planned.old_text) != form.digest {
        return (
            StatusCode::CONFLICT,
            format!(
                "refused: {} changed since the preview; nothing was written. Preview the change again",
                planned.file.display()
            ),
        )
            .into_response();
    }
    if let Err(problems) = &planned.checked {
        return (
            StatusCode::CONFLICT,
            format!("refused: the change does not check; nothing was written:\n{problems}"),
        )
            .into_response();
    }
    if planned.old_text == planned.new_text {
        return Redirect::to("/console").into_response();
    }
    if let Err(failed) = write_recorded(&console, &signed, &form.asked.agent, &planned).await {
        return failed;
    }
    if let Some((path, adjust)) = &console.policies {
        crate::server::reload::reload(&console.gateway, path, adjust).await;
    }
    Redirect::to("/console").into_response()
}

/// The new file is written beside the old one first (where a write fails:
/// space, permissions), then the chain records the change, then the new
/// file takes the old one's place: a change the chain cannot record is not
/// made, and one it records is made.
async fn write_recorded(
    console: &Console,
    signed: &Signed,
    agent: &str,
    planned: &Planned,
) -> Result<(), Response> {
    let (file, text) = (planned.file.clone(), planned.new_text.clone());
    let prepared = tokio::task::spawn_blocking(move || Prepared::write(&file, &text))
        .await
        .map_err(|e| e.to_string())
        .and_then(|p| p.map_err(|e| e.to_string()));
    let prepared = prepared.map_err(|error| {
        tracing::error!(%error, file = %planned.file.display(), "a console change could not be written");
        let said = format!("nothing changed: the file could not be written: {error}");
        (StatusCode::INTERNAL_SERVER_ERROR, said).into_response()
    })?;
    let record = policy_record(signed, agent, planned, console.gateway.sandbox());
    let sentence = record.summary.clone();
    if let Err(error) = console
        .gateway
        .audit()
        .record(record, Outcome::default())
        .await
    {
        prepared.discard();
        let said = format!("nothing changed: the audit log cannot record it: {error}");
        return Err((StatusCode::SERVICE_UNAVAILABLE, said).into_response());
    }
    if let Err(error) = tokio::task::spawn_blocking(move || prepared.install())
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
    {
        tracing::error!(%error, file = %planned.file.display(), "a recorded console change could not take the file's place");
        let said = format!("the change is recorded but the file could not be replaced: {error}");
        return Err((StatusCode::INTERNAL_SERVER_ERROR, said).into_response());
    }
    tracing::info!(operator = %signed.operator, %agent, change = %sentence, "access changed in the console");
    Ok(())
}

/// The chain row of a change: who made it, to whose access, old and new.
fn policy_record(signed: &Signed, agent: &str, planned: &Planned, sandbox: bool) -> CallRecord {
    let file = planned.file.display().to_string();
    let sentence = planned
        .described
        .sentence(&signed.operator, agent, &planned.edit, &file);
    let mut args = serde_json::json!({
        "operator": signed.operator, "change": asked::kind_of(&planned.edit),
        "old": planned.described.old, "new": planned.described.new,
        "file": file, "old_sha256": digest(&planned.old_text),
        "new_sha256": digest(&planned.new_text),
    });
    if let Edit::Grant { group, .. } = &planned.edit {
        args["group"] = group.clone().into();
    }
    CallRecord {
        ts: crate::audit::now_rfc3339(),
        ts_unix_ms: crate::audit::now_unix_ms(),
        agent: agent.to_string(),
        tool: String::new(),
        method: String::new(),
        path: String::new(),
        target: file,
        args: args.to_string(),
        decision: Decision::Policy,
        reason: crate::text::escape(&sentence).into_owned(),
        rule: asked::rule_of(&planned.edit),
        summary: crate::text::escape(&sentence).into_owned(),
        lookup: String::new(),
        sandbox,
    }
}
