//! Stage 4, approve: the gate of a call the policy says a person must
//! approve. Every request for approval gets an id in the approvals table,
//! bound to the agent, the tool and the exact arguments; every audit row
//! of its story carries the rule `approval ID`.
//!
//! - A client that can ask its user is asked, with the call's preview: in
//!   an initialized session and awaited; on a 2026-07-28 request by
//!   answering [`Answer::Ask`](super::Answer::Ask), the client retrying
//!   with its user's answer and the request state (the approval id). The
//!   call runs only on an explicit yes.
//! - Otherwise (or when the policy names the operator as approver) the
//!   call is refused with the approval id and the preview; the operator
//!   decides it on the host and the agent repeats the same call with
//!   `approval_id`, once.

use serde_json::Value;

use super::request::{Asker, Said};
use super::{Allowed, Call, Services, Shown, Stop, Ticket};
use crate::approval::{Approval, Refused, rule_of, time_of};
use crate::audit;
use crate::policy::{Approver, Denial, DenyKind};

/// How long the person at the client has to answer in a session.
const ASK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Who the audit log names for an answer given at the client.
const PERSON_AT_CLIENT: &str = "the person at the client";

/// What the gate will do with a call (known before it is charged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// No approval needed.
    Through,
    /// It brings an approval (an id, or the answer at the client).
    Redeem,
    /// The person at the client is asked now, and the call waits.
    AskAndWait,
    /// The operator who makes it in the console approves it as it goes.
    Confirmed,
    /// A person is asked, and the call is refused until they answer.
    AskAndStop,
}

/// The gate's route for `call`.
pub(super) fn route(services: &Services, call: &Call<'_>) -> Route {
    if !call
        .agent
        .needs_approval(call.policy.catalog(), &call.endpoint().tool)
    {
        return Route::Through;
    }
    if services.approvals.is_none() {
        return Route::AskAndStop;
    }
    if call.options.approval_id.is_some() {
        return Route::Redeem;
    }
    if call.confirmed {
        return Route::Confirmed;
    }
    match call
        .asker
        .as_ref()
        .filter(|_| call.agent.approver == Approver::Client)
    {
        Some(Asker::Retry { state: Some(_), .. }) => Route::Redeem,
        Some(Asker::Session(_)) => Route::AskAndWait,
        _ => Route::AskAndStop,
    }
}

impl Services {
    /// Lets `allowed` through as it is, or as approved; or stops the call.
    pub(super) async fn approve(
        &self,
        call: &mut Call<'_>,
        allowed: Allowed,
        ticket: &mut Ticket,
    ) -> Result<Allowed, Stop> {
        if route(self, call) == Route::Through {
            return Ok(allowed);
        }
        if self.approvals.is_none() {
            return Err(refused(
                "this call needs a person's approval, and this flaregate keeps no approvals",
                "approve",
            ));
        }
        let asker = call
            .asker
            .take()
            .filter(|_| call.agent.approver == Approver::Client);
        match (call.options.approval_id.clone(), asker) {
            (Some(id), _) => self.redeem(call, id).await,
            (None, _) if call.confirmed => self.confirmed(call, &allowed, ticket).await,
            (
                None,
                Some(Asker::Retry {
                    state: Some(id),
                    said,
                }),
            ) => self.answered_at_client(call, id, said).await,
            (None, asker) => self.ask(call, &allowed, ticket, asker).await,
        }
    }

    /// Asks for approval of `call`: the person at the client (and waits, in
    /// a session), or the operator; the call is refused until a yes comes.
    async fn ask(
        &self,
        call: &mut Call<'_>,
        allowed: &Allowed,
        ticket: &mut Ticket,
        asker: Option<Asker>,
    ) -> Result<Allowed, Stop> {
        let (preview, id) = self.request_approval(call, allowed, ticket).await?;
        let rule = rule_of(&id);
        match asker {
            Some(Asker::Session(client)) => {
                let said = tokio::time::timeout(ASK_TIMEOUT, client.ask(question(call, &preview)))
                    .await
                    .unwrap_or_else(|_| {
                        Said::Nothing(format!(
                            "the person at the client did not answer within {}",
                            humantime::format_duration(ASK_TIMEOUT)
                        ))
                    });
                self.settle(call, id, said).await
            }
            Some(Asker::Retry { .. }) => {
                let why =
                    format!("the person at the client was asked to approve it (approval {id})");
                let denial = Denial::new(DenyKind::ApprovalRequired, why, rule);
                let question = question(call, &preview);
                let shown = Shown::Ask {
                    question,
                    state: id,
                };
                Err(Stop::RefusedShowing(denial, shown))
            }
            None => {
                let why = format!(
                    "a person must approve this call first: approval {id}, valid for {}. The operator runs `flaregate approve {id}` (or `reject`); then call again with the same arguments and approval_id = \"{id}\"",
                    humantime::format_duration(call.agent.approval_ttl)
                );
                let denial = Denial::new(DenyKind::ApprovalRequired, why, rule);
                Err(Stop::RefusedShowing(denial, Shown::Preview(preview)))
            }
        }
    }

    /// A call its operator confirmed in the console, having seen its
    /// preview: requested, approved by them, redeemed.
    async fn confirmed(
        &self,
        call: &mut Call<'_>,
        allowed: &Allowed,
        ticket: &mut Ticket,
    ) -> Result<Allowed, Stop> {
        let (_, id) = self.request_approval(call, allowed, ticket).await?;
        let (approvals, _) = self.approvals.clone().expect("checked by the gate");
        let by = call.person.clone().unwrap_or_else(|| "the operator".into());
        let now = audit::now_unix_ms();
        let decided = {
            let id = id.clone();
            let note = "confirmed with its preview in the console";
            blocking(move || approvals.decide(&id, true, (&by, Some(note)), now)).await
        };
        if let Err(refusal) = decided {
            return Err(refused_approval(&id, &refusal));
        }
        self.redeem(call, id).await
    }

    /// Records a request for approval of `call`; returns its preview and id.
    async fn request_approval(
        &self,
        call: &mut Call<'_>,
        allowed: &Allowed,
        ticket: &mut Ticket,
    ) -> Result<(Value, String), Stop> {
        let (approvals, key) = self.approvals.clone().expect("checked by the gate");
        let (mut preview, _) = self.preview_of(call, allowed, ticket).await;
        // The person decides on the call itself, not the log's form of it
        // (which cuts long lists and strings).
        preview["arguments"] = exact(&call.args);
        preview["note"] = serde_json::json!(
            "Nothing was sent to Cloudflare: a person must approve this exact call first. `arguments` is the call whole (a value over 64 KB by its size and SHA-256)."
        );
        let shown = serde_json::to_string(&preview).expect("JSON values always serialise");
        let endpoint = call.endpoint();
        let target = crate::policy::describe_target(endpoint, &call.args, &self.engine.directory())
            .map(|t| format!(" on {t}"))
            .unwrap_or_default();
        let summary = format!(
            "{}{target} with {}",
            endpoint.tool,
            audit::stored_args(Some(endpoint), &call.args)
        );
        let (agent, tool, args) = binding(call);
        let ttl = call.agent.approval_ttl.as_millis() as i64;
        let now = audit::now_unix_ms();
        let asked_by = call.person.clone();
        let requested = blocking(move || {
            let said = (summary.as_str(), shown.as_str(), asked_by.as_deref());
            approvals.request(&key, (&agent, &tool, &args), said, now, ttl)
        })
        .await;
        match requested {
            Ok(id) => Ok((preview, id)),
            Err(error) => Err(refused(
                format!(
                    "this call needs a person's approval, and the request could not be recorded: {error}"
                ),
                "approve",
            )),
        }
    }

    /// A call repeated with the approval id the operator decided.
    async fn redeem(&self, call: &Call<'_>, id: String) -> Result<Allowed, Stop> {
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
                    return Err(Stop::Fault(super::Fault::AuditDown(error.to_string())));
                }
                Ok(approved(&approval, &id))
            }
            Err(refusal) => Err(refused_approval(&id, &refusal)),
        }
    }

    /// The retry of a 2026-07-28 call, carrying the user's answer.
    async fn answered_at_client(
        &self,
        call: &Call<'_>,
        id: String,
        said: Option<Said>,
    ) -> Result<Allowed, Stop> {
        match said {
            Some(said) => self.settle(call, id, said).await,
            // No answer yet: refused, and the request stays open.
            None => Err(refused(
                "the client retried without its user's answer; nothing was sent",
                rule_of(&crate::text::clip(&id, 40)),
            )),
        }
    }

    /// Records the answer of the person at the client to request `id`.
    async fn settle(&self, call: &Call<'_>, id: String, said: Said) -> Result<Allowed, Stop> {
        let (approvals, key) = self.approvals.clone().expect("checked by the gate");
        let (agent, tool, args) = binding(call);
        let now = audit::now_unix_ms();
        let yes = said == Said::Yes;
        let answered = {
            let id = id.clone();
            blocking(move || {
                approvals.answer(
                    &key,
                    &id,
                    (&agent, &tool, &args),
                    yes,
                    (PERSON_AT_CLIENT, now),
                )
            })
            .await
        };
        let why = match (answered, said) {
            (Err(refusal), _) => return Err(refused_approval(&id, &refusal)),
            (Ok(approval), Said::Yes) => return Ok(approved(&approval, &id)),
            (Ok(_), Said::No { cancelled }) => format!(
                "the person at the client did not approve it ({} at {})",
                if cancelled { "cancelled" } else { "declined" },
                time_of(now)
            ),
            (Ok(_), Said::Nothing(why)) => why,
        };
        Err(refused(format!("{why}; nothing was sent"), rule_of(&id)))
    }
}

fn refused(reason: impl Into<std::sync::Arc<str>>, rule: impl Into<std::sync::Arc<str>>) -> Stop {
    Stop::Refused(Denial::new(DenyKind::ApprovalRefused, reason, rule))
}

/// The refusal of a call whose approval id does not let it through.
fn refused_approval(id: &str, refusal: &Refused) -> Stop {
    let id = crate::text::clip(id, 40);
    // An id that names no approval links to nothing.
    let rule = match refusal {
        Refused::Unknown | Refused::Mismatch | Refused::Store(_) => "approve".to_string(),
        _ => rule_of(&id),
    };
    refused(format!("approval {id}: {refusal}"), rule)
}

/// The question put to the person at the client: the call and its preview.
fn question(call: &Call<'_>, preview: &Value) -> String {
    format!(
        "flaregate: agent \"{}\" asks to run {}. Approve this exact call?\n{}",
        call.agent.id,
        call.endpoint().tool,
        serde_json::to_string_pretty(preview).expect("JSON values always serialise")
    )
}

/// The longest argument value an approval shows whole.
const WHOLE_UP_TO: usize = 64 * 1024;

/// The arguments as the call sends them, every value whole except one
/// over `WHOLE_UP_TO` bytes (Worker code, say): by size and SHA-256, which
/// the person can check against their own copy.
fn exact(args: &serde_json::Map<String, Value>) -> Value {
    fn shown(value: &Value) -> Value {
        match value {
            Value::String(text) if text.len() > WHOLE_UP_TO => serde_json::json!({
                "bytes": text.len(),
                "sha256": crate::policy::sha256_hex(text),
            }),
            Value::Array(items) => Value::Array(items.iter().map(shown).collect()),
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| (k.clone(), shown(v))).collect())
            }
            other => other.clone(),
        }
    }
    shown(&Value::Object(args.clone()))
}

/// What an approval is bound to: the agent, the tool and the arguments.
fn binding(call: &Call<'_>) -> (String, String, serde_json::Map<String, Value>) {
    (call.agent.id.clone(), call.tool.clone(), call.args.clone())
}

/// Runs a step on the approvals table off the async workers.
pub(super) async fn blocking<T: Send + 'static>(step: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(step)
        .await
        .expect("approval steps do not panic")
}

/// The approved call's verdict: "approved by alice at … (requested at …)".
fn approved(approval: &Approval, id: &str) -> Allowed {
    let reason = format!(
        "approved by {} at {} (requested at {})",
        approval.decided_by.as_deref().unwrap_or("?"),
        time_of(approval.decided_ms.unwrap_or_default()),
        time_of(approval.requested_ms)
    );
    Allowed {
        reason: reason.into(),
        rule: rule_of(id).into(),
    }
}
