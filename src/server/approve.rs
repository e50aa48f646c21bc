//! The approval gate of a call the policy says a person must approve. A
//! client that can ask its user is asked, with the call's preview, and the
//! call runs only on a yes. Otherwise the call is refused with an approval
//! id for the operator (audited as such); the same call repeated with an
//! approved id goes through, once.

use rmcp::model::{CallToolResult, ContentBlock, ErrorData};
use serde_json::Value;

use super::call::Call;
use super::gateway::Gateway;
use crate::approval::{Approval, time_of};
use crate::audit;
use crate::catalog::Endpoint;
use crate::policy::{Denial, DenyKind, Verdict};

/// The client of the call, when it can ask its user (MCP elicitation).
pub struct Asker(pub rmcp::Peer<rmcp::RoleServer>);

/// How long the person at the client has to answer.
const ASK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// flaregate's own argument for an approval id (never sent upstream).
pub const APPROVAL_ID: &str = "approval_id";

/// What the gate says of an allowed call.
pub(super) enum Gate {
    /// Approved: go on, with the approval as the decision's reason and rule.
    Through { reason: String, rule: String },
    /// Refused (the answer is ready, the refusal audited).
    Stop(CallToolResult),
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
        let Some((approvals, key)) = self.approvals.clone() else {
            let denial = Denial::new(
                DenyKind::ApprovalRefused,
                "this call needs a person's approval, and this flaregate keeps no approvals",
                "approve",
            );
            return self.refusal(call, denial).await.map(Gate::Stop);
        };
        let (agent, tool) = (call.agent.id.clone(), call.tool.to_string());
        let args = call.args.clone();
        let now = audit::now_unix_ms();
        if let (None, Some(asker)) = (&approval_id, asker) {
            return self.ask_at_client(call, endpoint, verdict, asker).await;
        }
        let Some(id) = approval_id else {
            // The person deciding sees what the call would change.
            let (mut preview, ..) = self.preview_of(call, endpoint, verdict, None).await;
            preview["note"] = serde_json::json!(
                "Nothing was sent to Cloudflare: a person must approve this exact call first."
            );
            let shown = serde_json::to_string(&preview).expect("JSON values always serialise");
            // One for the approvals table (moved), one for the agent.
            let for_agent = shown.clone();
            let target = call
                .endpoint
                .and_then(|e| {
                    crate::policy::describe_target(e, call.args, &self.engine.directory())
                })
                .map(|t| format!(" on {t}"))
                .unwrap_or_default();
            let endpoint = call.endpoint;
            let summary = format!(
                "{tool}{target} with {}",
                audit::stored_args(endpoint, call.args)
            );
            let ttl = call.agent.approval_ttl;
            let requested = tokio::task::spawn_blocking(move || {
                approvals.request(
                    &key,
                    (&agent, &tool, &args),
                    (&summary, &shown),
                    now,
                    ttl.as_millis() as i64,
                )
            })
            .await
            .expect("the approval request does not panic");
            let id = match requested {
                Ok(id) => id,
                Err(error) => {
                    let denial = Denial::new(
                        DenyKind::ApprovalRefused,
                        format!(
                            "this call needs a person's approval, and the request could not be recorded: {error}"
                        ),
                        "approve",
                    );
                    return self.refusal(call, denial).await.map(Gate::Stop);
                }
            };
            let denial = Denial::new(
                DenyKind::ApprovalRequired,
                format!(
                    "a person must approve this call first: approval {id}, valid for {}. The operator runs `flaregate approve {id}` (or `reject`); then call again with the same arguments and approval_id = \"{id}\"",
                    humantime::format_duration(ttl)
                ),
                "approve",
            );
            let mut answer = self.refusal(call, denial).await?;
            answer.content.push(ContentBlock::text(for_agent));
            answer.structured_content = Some(preview);
            return Ok(Gate::Stop(answer));
        };
        let redeemed = {
            let id = id.clone();
            tokio::task::spawn_blocking(move || {
                approvals.redeem(&key, &id, (&agent, &tool, &args), now)
            })
            .await
            .expect("redeeming does not panic")
        };
        match redeemed {
            Ok(approval) => Ok(Gate::Through {
                reason: approved_by(&approval),
                rule: format!("approval {id}"),
            }),
            Err(refused) => {
                let denial = Denial::new(
                    DenyKind::ApprovalRefused,
                    format!("approval {}: {refused}", crate::text::clip(&id, 40)),
                    "approve",
                );
                self.refusal(call, denial).await.map(Gate::Stop)
            }
        }
    }
}

impl Gateway {
    /// Asks the person at the client, showing the call's preview; goes on
    /// only on an explicit yes. Decline, cancel, no answer: refused.
    async fn ask_at_client(
        &self,
        call: &mut Call<'_>,
        endpoint: &Endpoint,
        verdict: &Verdict,
        asker: &Asker,
    ) -> Result<Gate, ErrorData> {
        use rmcp::model::{ElicitRequestParams, ElicitationAction, ElicitationSchema};
        let (preview, ..) = self.preview_of(call, endpoint, verdict, None).await;
        let message = format!(
            "flaregate: agent \"{}\" asks to run {}. Approve this exact call?\n{}",
            call.agent.id,
            endpoint.tool,
            serde_json::to_string_pretty(&preview).expect("JSON values always serialise")
        );
        let schema = ElicitationSchema::builder()
            .required_bool("approve")
            .build_unchecked();
        let asked = asker
            .0
            .create_elicitation(ElicitRequestParams::FormElicitationParams {
                meta: None,
                message,
                requested_schema: schema,
            });
        let answer = tokio::time::timeout(ASK_TIMEOUT, asked).await;
        let at = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        let refused =
            |why: String| Denial::new(DenyKind::ApprovalRefused, why, "approve at the client");
        let denial = match answer {
            Ok(Ok(result))
                if matches!(result.action, ElicitationAction::Accept)
                    && result.content.as_ref().and_then(|c| c["approve"].as_bool())
                        == Some(true) =>
            {
                return Ok(Gate::Through {
                    reason: format!("approved by the person at the client at {at}"),
                    rule: "approve at the client".into(),
                });
            }
            Ok(Ok(result)) => refused(format!(
                "the person at the client did not approve it ({:?} at {at}); nothing was sent",
                result.action
            )),
            Ok(Err(error)) => refused(format!(
                "the client could not ask its user ({error}); nothing was sent"
            )),
            Err(_) => refused(format!(
                "the person at the client did not answer within {}; nothing was sent",
                humantime::format_duration(ASK_TIMEOUT)
            )),
        };
        self.refusal(call, denial).await.map(Gate::Stop)
    }
}

/// "approved by alice at 2026-12-02T10:00:00Z (requested 10:59:12)".
fn approved_by(approval: &Approval) -> String {
    format!(
        "approved by {} at {} (requested at {})",
        approval.decided_by.as_deref().unwrap_or("?"),
        time_of(approval.decided_ms.unwrap_or_default()),
        time_of(approval.requested_ms)
    )
}

/// The approval id a call gives, taken out of its arguments.
pub(super) fn take_approval_id(args: &mut serde_json::Map<String, Value>) -> Option<String> {
    match args.remove(APPROVAL_ID)? {
        Value::String(id) => Some(id),
        // Anything else names no approval: refused like an unknown id.
        other => Some(crate::text::clip(&other.to_string(), 40)),
    }
}
