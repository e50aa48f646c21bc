//! "What would the server decide for this call, and why?" — for
//! `flaregate explain` and the console's question box: the same steps the
//! server takes (the token's scopes, values in the form Cloudflare reads,
//! the policy's verdict), and where the verdict depends on the object the
//! call acts on, the lookup the server would make — only when asked to
//! read (`client`); otherwise the answer says it is undecided.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::audit::summary;
use crate::catalog::Access;
use crate::cloudflare::Client;
use crate::oauth::TokenAccess;
use crate::policy::{Approver, DenyKind, Engine, Verdict, describe_target};
use crate::server::pipeline::{LookupError, fetch_object};

/// What is asked: may `agent` call `tool` with `args`, holding `access`?
pub struct Question {
    pub agent: String,
    pub tool: String,
    pub args: Map<String, Value>,
    pub access: TokenAccess,
}

/// The answers, each with its exit code in `flaregate explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Allowed,
    AllowedOnceApproved,
    Denied,
    Invalid,
    /// It needs Cloudflare (a name or the object) and nothing was read.
    Undecided,
}

impl Answer {
    pub fn as_str(self) -> &'static str {
        match self {
            Answer::Allowed => "allowed",
            Answer::AllowedOnceApproved => "allowed once a person approves it",
            Answer::Denied => "denied",
            Answer::Invalid => "invalid",
            Answer::Undecided => "undecided",
        }
    }
}

/// The answer with what explains it.
#[derive(Debug, Serialize)]
pub struct Explained {
    pub answer: Answer,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// What was read from Cloudflare (or the sandbox) to decide.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetched: Option<String>,
    /// The sentence the audit log would record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

impl Explained {
    pub fn new(answer: Answer, reason: impl Into<String>) -> Self {
        Self {
            answer,
            reason: reason.into(),
            rule: None,
            fetched: None,
            summary: None,
        }
    }

    fn denied_by(rule: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            rule: Some(rule.into()),
            ..Self::new(Answer::Denied, reason)
        }
    }
}

/// The server's decision on `question`, reading the object the call acts
/// on through `client` where the verdict depends on it (none: the answer
/// is undecided, `offline` says how to read it).
pub async fn explain(
    engine: &Engine,
    question: Question,
    client: Option<&Client>,
    offline: &str,
) -> Explained {
    let Question {
        agent: agent_id,
        tool,
        args: mut call,
        access,
    } = question;
    let policy = engine.policy();
    let catalog = policy.catalog().clone();
    let Some(agent) = policy.agent(&agent_id) else {
        return Explained::new(Answer::Invalid, format!("there is no agent `{agent_id}`"));
    };
    let endpoint = catalog.endpoint(&tool);
    if endpoint.is_some()
        && let Err(invalid) = catalog.validate_arguments(&tool, &call)
    {
        return Explained::new(Answer::Invalid, invalid.to_string());
    }
    let undecided =
        |reason: &str| Explained::new(Answer::Undecided, format!("{reason} — {offline}"));
    if let Some(endpoint) = endpoint {
        if !access.allows(&endpoint.group, endpoint.access) {
            return Explained::denied_by(
                "token scope",
                beyond_scopes(&agent_id, endpoint, &access),
            );
        }
        // Judged as the server judges it: values in the form Cloudflare reads.
        if let Err(denial) = policy.canonicalise(agent, endpoint, &mut call, &engine.directory()) {
            if client.is_none() && denial.kind == DenyKind::Unresolved {
                return undecided(&denial.reason);
            }
            return Explained::denied_by(denial.rule.to_string(), denial.reason.to_string());
        }
    }
    let mut decision = engine.decide(&policy, agent, &tool, &call).await;
    let unsure =
        decision == Verdict::NeedsLookup || decision.deny_kind() == Some(DenyKind::Unresolved);
    let Some(client) = client.filter(|_| unsure) else {
        if unsure {
            return undecided(decision.reason());
        }
        return decided(engine, agent, &tool, &call, decision, None);
    };
    let mut fetched = None;
    if decision == Verdict::NeedsLookup {
        // The operator's own question: the lookup the server would make.
        let target = endpoint
            .and_then(|e| e.lookup.as_ref())
            .and_then(|lookup| catalog.endpoint(&lookup.tool));
        let Some(target) = target else {
            return Explained::new(
                Answer::Undecided,
                "the object this call acts on has no lookup to check it with",
            );
        };
        let lookup = fetch_object(client, target, &call).await;
        fetched = (!lookup.note.is_empty()).then(|| lookup.note.clone());
        let failed = |reason: String| Explained {
            fetched: fetched.clone(),
            ..Explained::new(Answer::Undecided, reason)
        };
        decision = match lookup.object {
            Ok(current) => engine.decide_with(&policy, agent, &tool, &call, &current),
            Err(LookupError::NotFound) => {
                return failed("the object this call names does not exist".into());
            }
            Err(LookupError::Failed(problem)) => {
                return failed(format!(
                    "the object this call acts on must be fetched first: {problem}"
                ));
            }
        };
    }
    decided(engine, agent, &tool, &call, decision, fetched)
}

/// Why the token's scopes leave this call out.
fn beyond_scopes(agent: &str, endpoint: &crate::catalog::Endpoint, access: &TokenAccess) -> String {
    if endpoint.access == Access::Write && access.allows(&endpoint.group, Access::Read) {
        format!("the token's scopes allow {agent} to read only here: this call writes")
    } else {
        format!(
            "the token's scopes do not cover {} (held: {})",
            endpoint.group,
            access.held().join(" ")
        )
    }
}

/// A verdict in words, with the sentence the audit log would record.
fn decided(
    engine: &Engine,
    agent: &crate::policy::Agent,
    tool: &str,
    call: &Map<String, Value>,
    decision: Verdict,
    fetched: Option<String>,
) -> Explained {
    let policy = engine.policy();
    let catalog = policy.catalog();
    let endpoint = catalog.endpoint(tool);
    let target = endpoint.and_then(|e| describe_target(e, call, &engine.directory()));
    let answer = match (decision.is_allowed(), agent.needs_approval(catalog, tool)) {
        (true, true) => Answer::AllowedOnceApproved,
        (true, false) => Answer::Allowed,
        (false, _) => Answer::Denied,
    };
    let approver = match (answer, agent.approver) {
        (Answer::AllowedOnceApproved, Approver::Operator) => {
            " (approved by the operator: `flaregate approve` or the console)"
        }
        (Answer::AllowedOnceApproved, Approver::Client) => {
            " (approved by the person at the client, else the operator)"
        }
        _ => "",
    };
    let summary = summary::decision(
        &agent.id,
        endpoint.map(|e| &**e),
        tool,
        target.as_deref(),
        call,
        if decision.is_allowed() {
            crate::audit::Decision::Allow
        } else {
            crate::audit::Decision::Deny
        },
        decision.reason(),
    );
    Explained {
        answer,
        reason: format!("{}{approver}", decision.reason()),
        rule: Some(decision.rule().to_string()),
        fetched,
        summary: Some(summary),
    }
}
