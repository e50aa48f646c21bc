//! Changing access from the console, as the pitch's switches: a grant set
//! to Off / Read / Full shows the exact change to the policy file (a
//! diff), checked as `flaregate check` checks; confirmed, the file is
//! written atomically (comments and layout kept), the policy reloads, and
//! the change — who, which agent, old and new — is a `policy` row in the
//! audit chain. The files stay the source of truth: one changed on disk
//! since the preview is not overwritten.

use std::path::{Path, PathBuf};
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
use crate::policy::{Level, Policy, edit};

/// A change asked for: one agent's grant on one group.
#[derive(Debug, Deserialize)]
pub(super) struct Asked {
    agent: String,
    group: String,
    level: String,
}

/// The same, confirmed, with the file's state when it was previewed.
#[derive(Debug, Deserialize)]
pub(super) struct Confirmed {
    #[serde(default)]
    csrf: String,
    agent: String,
    group: String,
    level: String,
    /// SHA-256 of the file as previewed.
    digest: String,
}

/// A change worked out against the files as they are now.
struct Planned {
    file: PathBuf,
    old_text: String,
    new_text: String,
    old_level: Level,
    level: Level,
    /// The policy as it would be, or every problem `check` would report.
    checked: Result<Policy, String>,
}

fn level_of(word: &str) -> Option<Level> {
    match word {
        "off" => Some(Level::Off),
        "read" => Some(Level::Read),
        "full" => Some(Level::Full),
        _ => None,
    }
}

fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl Console {
    /// The change to the file that defines `agent`, checked.
    async fn plan(&self, agent: &str, group: &str, level: Level) -> Result<Planned, String> {
        let Some((path, adjust)) = self.policies.clone() else {
            return Err("this server runs the built-in demo policy: there is no file to change (start it with --policies)".into());
        };
        let catalog = self.gateway.catalog().clone();
        if catalog.group(group).is_none() {
            return Err(format!("there is no capability group `{group}`"));
        }
        let old_level = self
            .gateway
            .engine()
            .policy()
            .agent(agent)
            .map(|a| a.level(group))
            .ok_or_else(|| format!("there is no agent `{agent}`"))?;
        let (agent, group) = (agent.to_string(), group.to_string());
        tokio::task::spawn_blocking(move || {
            let mut sources = crate::policy::policy_files(&path).map_err(|e| e.to_string())?;
            let index = sources
                .iter()
                .position(|(_, text)| edit::defines_agent(text, &agent))
                .ok_or_else(|| {
                    format!(
                        "no policy file under {} defines agent `{agent}`",
                        path.display()
                    )
                })?;
            let (file, old_text) = sources[index].clone();
            let new_text =
                edit::set_grant(&old_text, &agent, &group, level).map_err(|e| e.to_string())?;
            sources[index].1 = new_text.clone();
            let checked = crate::policy::compile(&sources, catalog)
                .map_err(|e| e.to_string())
                .and_then(|mut policy| adjust(&mut policy).map(|()| policy));
            Ok(Planned {
                file,
                old_text,
                new_text,
                old_level,
                level,
                checked,
            })
        })
        .await
        .map_err(|e| e.to_string())?
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
    let Some(level) = level_of(&asked.level) else {
        return (StatusCode::BAD_REQUEST, "level is off, read or full").into_response();
    };
    let planned = console.plan(&asked.agent, &asked.group, level).await;
    let body = match &planned {
        Err(problem) => html! { p.problem role="alert" { (problem) } },
        Ok(planned) => shown(&console, &signed, &asked, planned),
    };
    page("Change access", Tab::Access, Some(&signed), body)
}

fn shown(console: &Console, signed: &Signed, asked: &Asked, planned: &Planned) -> Markup {
    let diff = similar::TextDiff::from_lines(&planned.old_text, &planned.new_text)
        .unified_diff()
        .context_radius(3)
        .header(
            &planned.file.display().to_string(),
            &planned.file.display().to_string(),
        )
        .to_string();
    let now = console.gateway.engine().policy();
    let before: Vec<&str> = now
        .agent(&asked.agent)
        .map(|a| a.visible_tools(now.catalog()).collect())
        .unwrap_or_default();
    html! {
        p {
            "Agent " strong { (asked.agent) } ", group " strong { (asked.group) } ": "
            (planned.old_level.as_str()) " → " (planned.level.as_str()) "."
        }
        @if planned.old_text == planned.new_text {
            p.note { "The file already says this: nothing to change." }
        } @else {
            h2 { "The change to " code { (planned.file.display()) } }
            pre.diff { (diff) }
            @match &planned.checked {
                Err(problems) => {
                    h2 { "It does not check" }
                    pre.problem role="alert" { (problems) }
                    p { "Nothing was written." }
                }
                Ok(policy) => {
                    @let after: Vec<&str> = policy
                        .agent(&asked.agent)
                        .map(|a| a.visible_tools(policy.catalog()).collect())
                        .unwrap_or_default();
                    @let gained: Vec<&&str> = after.iter().filter(|t| !before.contains(t)).collect();
                    @let lost: Vec<&&str> = before.iter().filter(|t| !after.contains(t)).collect();
                    h2 { "It checks" }
                    @if !gained.is_empty() { p { (asked.agent) " will see: " @for t in &gained { code { (t) } " " } } }
                    @if !lost.is_empty() { p { (asked.agent) " will no longer see: " @for t in &lost { code { (t) } " " } } }
                    @if !policy.warnings.is_empty() {
                        details {
                            summary { (policy.warnings.len()) " warnings, as `flaregate check` gives them" }
                            ul { @for warning in &policy.warnings { li { (warning) } } }
                        }
                    }
                    form method="post" action="/console/access/change" {
                        input type="hidden" name="csrf" value=(signed.csrf);
                        input type="hidden" name="agent" value=(asked.agent);
                        input type="hidden" name="group" value=(asked.group);
                        input type="hidden" name="level" value=(asked.level);
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
    let Some(level) = level_of(&form.level) else {
        return (StatusCode::BAD_REQUEST, "level is off, read or full").into_response();
    };
    let planned = match console.plan(&form.agent, &form.group, level).await {
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
    // The new file is written beside the old one first (where a write
    // fails: space, permissions), then the chain records the change, then
    // the new file takes the old one's place: a change the chain cannot
    // record is not made, and one it records is made.
    let (file, text) = (planned.file.clone(), planned.new_text.clone());
    let prepared = tokio::task::spawn_blocking(move || Prepared::write(&file, &text))
        .await
        .map_err(|e| e.to_string())
        .and_then(|p| p.map_err(|e| e.to_string()));
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            tracing::error!(%error, file = %planned.file.display(), "a console change could not be written");
            let said = format!("nothing changed: the file could not be written: {error}");
            return (StatusCode::INTERNAL_SERVER_ERROR, said).into_response();
        }
    };
    let record = policy_record(&signed, &form, &planned, console.gateway.sandbox());
    if let Err(error) = console
        .gateway
        .audit()
        .record(record, Outcome::default())
        .await
    {
        prepared.discard();
        let said = format!("nothing changed: the audit log cannot record it: {error}");
        return (StatusCode::SERVICE_UNAVAILABLE, said).into_response();
    }
    if let Err(error) = tokio::task::spawn_blocking(move || prepared.install())
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
    {
        tracing::error!(%error, file = %planned.file.display(), "a recorded console change could not take the file's place");
        let said = format!("the change is recorded but the file could not be replaced: {error}");
        return (StatusCode::INTERNAL_SERVER_ERROR, said).into_response();
    }
    tracing::info!(
        operator = %signed.operator, agent = %form.agent, group = %form.group,
        from = planned.old_level.as_str(), to = planned.level.as_str(),
        file = %planned.file.display(), "access changed in the console"
    );
    if let Some((path, adjust)) = &console.policies {
        crate::server::reload::reload(&console.gateway, path, adjust).await;
    }
    Redirect::to("/console").into_response()
}

/// The chain row of a change: who made it, to whose access, old and new.
fn policy_record(
    signed: &Signed,
    form: &Confirmed,
    planned: &Planned,
    sandbox: bool,
) -> CallRecord {
    let file = planned.file.display().to_string();
    let sentence = format!(
        "{} (console) changed {}'s grant on {} from {} to {} in {file}",
        signed.operator,
        form.agent,
        form.group,
        planned.old_level.as_str(),
        planned.level.as_str()
    );
    CallRecord {
        ts: crate::audit::now_rfc3339(),
        ts_unix_ms: crate::audit::now_unix_ms(),
        agent: form.agent.clone(),
        tool: String::new(),
        method: String::new(),
        path: String::new(),
        target: file.clone(),
        args: serde_json::json!({
            "operator": signed.operator, "group": form.group,
            "old": planned.old_level.as_str(), "new": planned.level.as_str(),
            "file": file, "old_sha256": digest(&planned.old_text),
            "new_sha256": digest(&planned.new_text),
        })
        .to_string(),
        decision: Decision::Policy,
        reason: crate::text::escape(&sentence).into_owned(),
        rule: format!("grants.{}", form.group),
        summary: crate::text::escape(&sentence).into_owned(),
        lookup: String::new(),
        sandbox,
    }
}

/// A new policy file written and flushed beside the one it replaces, so
/// that a reader sees the old file or the new one, never half.
struct Prepared {
    file: PathBuf,
    temporary: PathBuf,
}

impl Prepared {
    fn write(file: &Path, text: &str) -> std::io::Result<Self> {
        use std::io::Write;
        let mut temporary = file.as_os_str().to_owned();
        temporary.push(".flaregate-edit");
        let temporary = PathBuf::from(temporary);
        let mut out = std::fs::File::create(&temporary)?;
        if let Ok(meta) = std::fs::metadata(file) {
            let _ = std::fs::set_permissions(&temporary, meta.permissions());
        }
        out.write_all(text.as_bytes())?;
        out.sync_all()?;
        Ok(Self {
            file: file.to_path_buf(),
            temporary,
        })
    }

    /// Puts the new file in the old one's place.
    fn install(self) -> std::io::Result<()> {
        std::fs::rename(&self.temporary, &self.file)?;
        if let Some(folder) = self.file.parent().and_then(|f| std::fs::File::open(f).ok()) {
            let _ = folder.sync_all();
        }
        Ok(())
    }

    fn discard(self) {
        let _ = std::fs::remove_file(&self.temporary);
    }
}
