//! The approval gate of a call the policy says a person must approve.
//! Every request for approval gets an id in the approvals table, bound to
//! the agent, the tool and the exact arguments; every audit row of its
//! story carries the rule `approval ID`.
//!
//! - A client that can ask its user is asked, with the call's preview: in
//!   an initialized session through `elicitation/create`; on a 2026-07-28
//!   request by answering `input_required`, the client retrying with its
//!   user's answer and the request state (the approval id). The call runs
//!   only on an explicit yes.
//! - Otherwise (or when the policy names the operator as approver) the
//!   call is refused with the approval id; the operator decides it on the
//!   host and the agent repeats the same call with `approval_id`, once.

use std::collections::BTreeMap;

use rmcp::model::{
    CallToolResult, ContentBlock, ElicitRequest, ElicitRequestParams, ElicitationAction,
    ElicitationSchema, ErrorData, InputRequest, InputRequiredResult, InputResponses,
};
use serde_json::Value;

use super::call::Call;
use super::gateway::Gateway;
use crate::approval::{Approval, Refused, rule_of, time_of};
use crate::audit;
use crate::catalog::Endpoint;
use crate::policy::{Approver, Denial, DenyKind, Verdict};

/// How the person at the client can be asked, when the client can ask.
pub enum Asker {
    /// An initialized session: flaregate sends `elicitation/create` and
    /// waits for the answer.
    Session(rmcp::Peer<rmcp::RoleServer>),
    /// A 2026-07-28 request from a client that declared elicitation: the
    /// question goes back as an `input_required` result; the retry brings
    /// the answer (`responses`) and the approval id (`state`).
    Retry {
        responses: Option<InputResponses>,
        state: Option<String>,
    },
}

/// How long the person at the client has to answer in a session.
const ASK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// flaregate's own argument for an approval id (never sent upstream).
pub const APPROVAL_ID: &str = "approval_id";

/// The key of the one question in an `input_required` result.
const QUESTION: &str = "approve";

/// Who the audit log names for an answer given at the client.
const PERSON_AT_CLIENT: &str = "the person at the client";

/// What the gate says of an allowed call.
pub(super) enum Gate {
    /// Approved: go on, with the approval as the decision's reason and rule.
    Through { reason: String, rule: String },
    /// Refused (the answer is ready, the refusal audited).
    Stop(CallToolResult),
    /// The question for the client to put to its user (2026-07-28); the
    /// request for approval is audited.
    Ask(InputRequiredResult),
}

impl Gateway {
    /// Asks for approval of `call`, or redeems the approval it names.
    pub(super) async fn approval_gate(
        &self,
        call: &mut Call<'_>,
        endpoint: &Endpoint,
        verdict: &Verdict,
        approval_id: Option<String>,
        asker: Option<&Asker>,
    ) -> Result<Gate, ErrorData> {
        if self.approvals.is_none() {
            let denial = Denial::new(
                DenyKind::ApprovalRefused,
                "this call needs a person's approval, and this flaregate keeps no approvals",
                "approve",
            );
            return self.refusal(call, denial).await.map(Gate::Stop);
        }
        let asker = asker.filter(|_| call.agent.approver == Approver::Client);
        match (approval_id, asker) {
            (Some(id), _) => self.redeem(call, id).await,
            (
                None,
                Some(Asker::Retry {
                    state: Some(id),
                    responses,
                }),
            ) => self.answered_at_client(call, id, responses.as_ref()).await,
            (None, Some(asker)) => {
                let (preview, id) = match self.request_approval(call, endpoint, verdict).await? {
                    Ok(requested) => requested,
                    Err(stop) => return Ok(stop),
                };
                let question = question(call, endpoint, &preview);
                match asker {
                    Asker::Session(peer) => self.ask_in_session(call, id, question, peer).await,
                    Asker::Retry { .. } => {
                        let denial = Denial::new(
                            DenyKind::ApprovalRequired,
                            format!(
                                "the person at the client was asked to approve it (approval {id})"
                            ),
                            rule_of(&id),
                        );
                        self.refuse(call, &denial).await?;
                        let asked = InputRequest::Elicitation(ElicitRequest::new(question));
                        Ok(Gate::Ask(InputRequiredResult::new(
                            Some(BTreeMap::from([(QUESTION.to_string(), asked)])),
                            Some(id),
                        )))
                    }
                }
            }
            (None, None) => self.ask_operator(call, endpoint, verdict).await,
        }
    }

    /// Records a request for approval of `call`; returns its preview and
    /// id, or the refusal when it cannot be recorded.
    async fn request_approval(
        &self,
        call: &mut Call<'_>,
        endpoint: &Endpoint,
        verdict: &Verdict,
    ) -> Result<Result<(Value, String), Gate>, ErrorData> {
        let (approvals, key) = self.approvals.clone().expect("checked by the gate");
        let (mut preview, ..) = self.preview_of(call, endpoint, verdict, None).await;
        preview["note"] = serde_json::json!(
            "Nothing was sent to Cloudflare: a person must approve this exact call first."
        );
        let shown = serde_json::to_string(&preview).expect("JSON values always serialise");
        let target = crate::policy::describe_target(endpoint, call.args, &self.engine.directory())
            .map(|t| format!(" on {t}"))
            .unwrap_or_default();
        let summary = format!(
            "{}{target} with {}",
            endpoint.tool,
            audit::stored_args(Some(endpoint), call.args)
        );
        let (agent, tool, args) = binding(call);
        let ttl = call.agent.approval_ttl.as_millis() as i64;
        let now = audit::now_unix_ms();
        let requested = blocking(move || {
            approvals.request(&key, (&agent, &tool, &args), (&summary, &shown), now, ttl)
        })
        .await;
        match requested {
            Ok(id) => Ok(Ok((preview, id))),
            Err(error) => {
                let denial = Denial::new(
                    DenyKind::ApprovalRefused,
                    format!(
                        "this call needs a person's approval, and the request could not be recorded: {error}"
                    ),
                    "approve",
                );
                self.refusal(call, denial).await.map(|r| Err(Gate::Stop(r)))
            }
        }
    }

    /// The operator path: refused with an approval id and the preview.
    async fn ask_operator(
        &self,
        call: &mut Call<'_>,
        endpoint: &Endpoint,
        verdict: &Verdict,
    ) -> Result<Gate, ErrorData> {
        let (preview, id) = match self.request_approval(call, endpoint, verdict).await? {
            Ok(requested) => requested,
            Err(stop) => return Ok(stop),
        };
        let denial = Denial::new(
            DenyKind::ApprovalRequired,
            format!(
                "a person must approve this call first: approval {id}, valid for {}. The operator runs `flaregate approve {id}` (or `reject`); then call again with the same arguments and approval_id = \"{id}\"",
                humantime::format_duration(call.agent.approval_ttl)
            ),
            rule_of(&id),
        );
        let mut answer = self.refusal(call, denial).await?;
        answer.content.push(ContentBlock::text(
            serde_json::to_string(&preview).expect("JSON values always serialise"),
        ));
        answer.structured_content = Some(preview);
        Ok(Gate::Stop(answer))
    }

    /// A call repeated with the approval id the operator decided.
    async fn redeem(&self, call: &mut Call<'_>, id: String) -> Result<Gate, ErrorData> {
        let (approvals, key) = self.approvals.clone().expect("checked by the gate");
        let (agent, tool, args) = binding(call);
        let now = audit::now_unix_ms();
        let redeemed = {
            let id = id.clone();
            blocking(move || approvals.redeem(&key, &id, (&agent, &tool, &args), now)).await
        };
        match redeemed {
            Ok(approval) => {
                // The decision goes into the chain before the call it allows.
                if !approval.recorded
                    && let Err(error) = self.record_decision(&approval).await
                {
                    let down = audit::AuditError::Unavailable(error);
                    return Err(super::call::audit_down(down));
                }
                Ok(Gate::Through {
                    reason: approved(&approval),
                    rule: rule_of(&id),
                })
            }
            Err(refused) => self.refused_approval(call, &id, &refused).await,
        }
    }

    /// Asks the person at the client in the session and waits (at most
    /// `ASK_TIMEOUT`); goes on only on an explicit yes.
    async fn ask_in_session(
        &self,
        call: &mut Call<'_>,
        id: String,
        question: ElicitRequestParams,
        peer: &rmcp::Peer<rmcp::RoleServer>,
    ) -> Result<Gate, ErrorData> {
        let answer = tokio::time::timeout(ASK_TIMEOUT, peer.create_elicitation(question)).await;
        let said = match answer {
            Ok(Ok(result)) => Said::of(
                result.action,
                result.content.as_ref().and_then(|c| c[QUESTION].as_bool()),
            ),
            Ok(Err(error)) => Said::Nothing(format!("the client could not ask its user ({error})")),
            Err(_) => Said::Nothing(format!(
                "the person at the client did not answer within {}",
                humantime::format_duration(ASK_TIMEOUT)
            )),
        };
        self.settle(call, id, said).await
    }

    /// The retry of a 2026-07-28 call, carrying the user's answer.
    async fn answered_at_client(
        &self,
        call: &mut Call<'_>,
        id: &str,
        responses: Option<&InputResponses>,
    ) -> Result<Gate, ErrorData> {
        let answer = responses.and_then(|r| r.get(QUESTION));
        let said = match answer.map(|a| (a.get("action"), a.pointer("/content/approve"))) {
            Some((Some(action), approve)) => {
                match serde_json::from_value::<ElicitationAction>(action.clone()) {
                    Ok(action) => Said::of(action, approve.and_then(Value::as_bool)),
                    Err(_) => Said::Nothing("the client's answer is not one MCP knows".into()),
                }
            }
            _ => {
                // No answer yet: refused, and the request stays open.
                let denial = Denial::new(
                    DenyKind::ApprovalRefused,
                    "the client retried without its user's answer; nothing was sent",
                    rule_of(&crate::text::clip(id, 40)),
                );
                return self.refusal(call, denial).await.map(Gate::Stop);
            }
        };
        self.settle(call, id.to_string(), said).await
    }

    /// Records the answer of the person at the client to request `id`.
    async fn settle(&self, call: &mut Call<'_>, id: String, said: Said) -> Result<Gate, ErrorData> {
        let (approvals, key) = self.approvals.clone().expect("checked by the gate");
        let (agent, tool, args) = binding(call);
        let now = audit::now_unix_ms();
        let approve = matches!(said, Said::Yes);
        let answered = {
            let id = id.clone();
            blocking(move || {
                approvals.answer(
                    &key,
                    &id,
                    (&agent, &tool, &args),
                    approve,
                    (PERSON_AT_CLIENT, now),
                )
            })
            .await
        };
        match (answered, said) {
            (Ok(approval), Said::Yes) => Ok(Gate::Through {
                reason: approved(&approval),
                rule: rule_of(&id),
            }),
            (Ok(_), said) => {
                let why = match said {
                    Said::No(action) => format!(
                        "the person at the client did not approve it ({} at {})",
                        match action {
                            ElicitationAction::Cancel => "cancelled",
                            _ => "declined",
                        },
                        time_of(now)
                    ),
                    Said::Nothing(why) => why,
                    Said::Yes => unreachable!("matched above"),
                };
                let denial = Denial::new(
                    DenyKind::ApprovalRefused,
                    format!("{why}; nothing was sent"),
                    rule_of(&id),
                );
                self.refusal(call, denial).await.map(Gate::Stop)
            }
            (Err(refused), _) => self.refused_approval(call, &id, &refused).await,
        }
    }

    /// The refusal of a call whose approval id does not let it through.
    async fn refused_approval(
        &self,
        call: &mut Call<'_>,
        id: &str,
        refused: &Refused,
    ) -> Result<Gate, ErrorData> {
        let id = crate::text::clip(id, 40);
        // An id that names no approval links to nothing.
        let rule = match refused {
            Refused::Unknown | Refused::Mismatch | Refused::Store(_) => "approve".to_string(),
            _ => rule_of(&id),
        };
        let denial = Denial::new(
            DenyKind::ApprovalRefused,
            format!("approval {id}: {refused}"),
            rule,
        );
        self.refusal(call, denial).await.map(Gate::Stop)
    }

    /// Writes into the chain the decisions operators made on the host
    /// since the last time (their calls, if made, have rows of their own).
    pub async fn record_decisions(&self) -> Result<(), String> {
        let Some((approvals, _)) = self.approvals.clone() else {
            return Ok(());
        };
        let decided = blocking(move || approvals.unrecorded()).await?;
        for approval in decided {
            self.record_decision(&approval).await?;
        }
        Ok(())
    }

    /// Writes one decision made on the host into the chain, once: it is
    /// claimed first (several instances may see it), and the claim given
    /// back if the row cannot be written, for the next try.
    async fn record_decision(&self, approval: &Approval) -> Result<(), String> {
        let (approvals, _) = self.approvals.clone().expect("only called with approvals");
        let (store, id) = (approvals.clone(), approval.id.clone());
        if !blocking(move || store.claim(&id)).await? {
            return Ok(());
        }
        let record = decision_record(approval, self.sandbox);
        if let Err(error) = self.audit.record(record, audit::Outcome::default()).await {
            let id = approval.id.clone();
            let _ = blocking(move || approvals.unclaim(&id)).await;
            return Err(error.to_string());
        }
        Ok(())
    }
}

/// What the person at the client said.
enum Said {
    Yes,
    /// Declined or cancelled.
    No(ElicitationAction),
    /// No yes came: no answer, or a form accepted without approving.
    Nothing(String),
}

impl Said {
    fn of(action: ElicitationAction, approve: Option<bool>) -> Self {
        match (action, approve) {
            (ElicitationAction::Accept, Some(true)) => Said::Yes,
            (ElicitationAction::Accept, _) => Said::Nothing(
                "the person at the client accepted the form without approving the call".into(),
            ),
            (action, _) => Said::No(action),
        }
    }
}

/// The question put to the person at the client: the call and its preview,
/// and one yes/no field.
fn question(call: &Call<'_>, endpoint: &Endpoint, preview: &Value) -> ElicitRequestParams {
    let message = format!(
        "flaregate: agent \"{}\" asks to run {}. Approve this exact call?\n{}",
        call.agent.id,
        endpoint.tool,
        serde_json::to_string_pretty(preview).expect("JSON values always serialise")
    );
    ElicitRequestParams::FormElicitationParams {
        meta: None,
        message,
        requested_schema: ElicitationSchema::builder()
            .required_bool(QUESTION)
            .build_unchecked(),
    }
}

/// What an approval is bound to: the agent, the tool and the arguments.
fn binding(call: &Call<'_>) -> (String, String, serde_json::Map<String, Value>) {
    (
        call.agent.id.clone(),
        call.tool.to_string(),
        call.args.clone(),
    )
}

/// Runs a step on the approvals table off the async workers.
async fn blocking<T: Send + 'static>(step: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(step)
        .await
        .expect("approval steps do not panic")
}

/// "approved by alice at 2026-12-02T10:00:00Z (requested at 09:59:12Z)".
fn approved(approval: &Approval) -> String {
    format!(
        "approved by {} at {} (requested at {})",
        approval.decided_by.as_deref().unwrap_or("?"),
        time_of(approval.decided_ms.unwrap_or_default()),
        time_of(approval.requested_ms)
    )
}

/// The chain row of a decision made on the host.
fn decision_record(approval: &Approval, sandbox: bool) -> audit::CallRecord {
    let approved = approval.status == crate::approval::Status::Approved;
    let (decision, verb) = if approved {
        (audit::Decision::Approved, "approved")
    } else {
        (audit::Decision::Rejected, "rejected")
    };
    let by = approval.decided_by.as_deref().unwrap_or("?");
    let decided_ms = approval.decided_ms.unwrap_or_default();
    let reason = format!(
        "{verb} by {by} at {} (requested at {})",
        time_of(decided_ms),
        time_of(approval.requested_ms)
    );
    audit::CallRecord {
        ts: audit::now_rfc3339(),
        ts_unix_ms: audit::now_unix_ms(),
        agent: approval.agent.clone(),
        tool: approval.tool.clone(),
        method: String::new(),
        path: String::new(),
        target: String::new(),
        args: serde_json::json!({ "approval_id": approval.id }).to_string(),
        decision,
        summary: crate::text::escape(&format!(
            "{by} {verb} {}'s request to run {}",
            approval.agent, approval.summary
        ))
        .into_owned(),
        reason: crate::text::escape(&reason).into_owned(),
        rule: rule_of(&approval.id),
        lookup: String::new(),
        sandbox,
    }
}

/// The approval id a call gives, taken out of its arguments.
pub(super) fn take_approval_id(args: &mut serde_json::Map<String, Value>) -> Option<String> {
    match args.remove(APPROVAL_ID)? {
        Value::String(id) => Some(id),
        // Anything else names no approval: refused like an unknown id.
        other => Some(crate::text::clip(&other.to_string(), 40)),
    }
}
