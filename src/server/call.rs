//! The path of one call: visible? → arguments valid? → policy decision →
//! audit row → Cloudflare → audit outcome → result. Nothing reaches
//! Cloudflare unless every step before says yes and the decision row is
//! written — and, for a call that can change anything, flushed to disk.
//! No answer leaves before its decision is on disk; every refusal is
//! audited too.

use std::time::Instant;

use rmcp::model::{CallToolResult, ErrorData, JsonObject};

use super::gateway::Gateway;
use super::render;
use crate::audit::{self, CallRecord, Outcome, summary};
use crate::catalog::{Endpoint, Method};
use crate::cloudflare;
use crate::policy::{Agent, Decision, describe_target};
use crate::text;

impl Gateway {
    /// Runs one tools/call for `agent_id`.
    pub async fn call(
        &self,
        agent_id: &str,
        tool: &str,
        args: Option<JsonObject>,
    ) -> Result<CallToolResult, ErrorData> {
        let policy = self.engine.policy();
        let agent = policy.agent(agent_id).ok_or_else(|| {
            ErrorData::invalid_request("this agent is no longer in the policy", None)
        })?;
        let args = args.unwrap_or_default();
        let endpoint = self
            .catalog
            .endpoint(tool)
            .filter(|_| agent.may_see(&self.catalog, tool));
        let Some(endpoint) = endpoint else {
            // Unknown and not-granted tools look the same to the agent.
            let decision = policy.decide(agent, tool, &args, &self.engine.directory(), None);
            self.refuse(agent, None, tool, &args, &decision.reason, &decision.rule)
                .await?;
            return Err(unknown_tool(tool));
        };
        if let Err(invalid) = self.catalog.validate_arguments(tool, &args) {
            let reason = invalid.to_string();
            self.refuse(agent, Some(endpoint), tool, &args, &reason, "arguments")
                .await?;
            return Ok(render::refusal(format!(
                "{reason}. Nothing was sent to Cloudflare."
            )));
        }
        let decision = self.engine.decide(&policy, agent, tool, &args).await;
        if !decision.allowed {
            self.refuse(
                agent,
                Some(endpoint),
                tool,
                &args,
                &decision.reason,
                &decision.rule,
            )
            .await?;
            return Ok(render::refusal(format!(
                "Denied by flaregate policy: {}.",
                decision.reason
            )));
        }
        self.run(agent, endpoint, &args, &decision).await
    }

    /// An allowed call: audit, send, audit the outcome, answer.
    async fn run(
        &self,
        agent: &Agent,
        endpoint: &Endpoint,
        args: &JsonObject,
        decision: &Decision,
    ) -> Result<CallToolResult, ErrorData> {
        // Built once: the audit row records the path that is sent.
        let request = match cloudflare::build(endpoint, args) {
            Ok(request) => request,
            Err(invalid) => {
                let reason = invalid.to_string();
                self.refuse(
                    agent,
                    Some(endpoint),
                    &endpoint.tool,
                    args,
                    &reason,
                    "arguments",
                )
                .await?;
                return Ok(render::refusal(format!(
                    "{reason}. Nothing was sent to Cloudflare."
                )));
            }
        };
        let record = self.record(
            agent,
            Some(endpoint),
            Some(&request),
            &endpoint.tool,
            args,
            (true, &decision.reason, &decision.rule),
        );
        let (row, flushed) = self.audit.begin(record).await.map_err(audit_down)?;
        // Send, then record the outcome: written before the agent hears it.
        let send_and_record = async {
            let started = Instant::now();
            let answer = self.client.send(&request, endpoint.response).await;
            let outcome = outcome_of(&answer, started.elapsed().as_millis() as u64);
            if let Err(error) = self.audit.complete(row, outcome).await {
                // The call already happened; say so to the operator, answer the agent.
                tracing::error!(%error, row = row.id, "cannot record a call's outcome");
            }
            answer
        };
        let answer = if endpoint.method == Method::Get {
            // A read changes nothing upstream, so it runs while the decision
            // is flushed; the agent sees nothing until the flush is done.
            let (flushed, answer) = tokio::join!(flushed.wait(), send_and_record);
            flushed.map_err(audit_down)?;
            answer
        } else {
            flushed.wait().await.map_err(audit_down)?;
            send_and_record.await
        };
        Ok(match answer {
            Ok(mut answer) => {
                let policy = self.engine.policy();
                let hidden = policy.retain_in_scope(
                    agent,
                    &endpoint.tool,
                    &mut answer.result,
                    &self.engine.directory(),
                );
                if hidden > 0
                    && let Some(info) = answer.result_info.as_mut().and_then(|i| i.as_object_mut())
                {
                    info.insert(
                        "count".into(),
                        answer.result.as_array().map_or(0, Vec::len).into(),
                    );
                }
                render::success(endpoint, answer)
            }
            Err(error) => render::failure(&error),
        })
    }

    /// Audits a refusal (decision and outcome at once).
    #[allow(clippy::too_many_arguments)]
    async fn refuse(
        &self,
        agent: &Agent,
        endpoint: Option<&Endpoint>,
        tool: &str,
        args: &JsonObject,
        reason: &str,
        rule: &str,
    ) -> Result<(), ErrorData> {
        let request = endpoint.and_then(|e| cloudflare::build(e, args).ok());
        let record = self.record(
            agent,
            endpoint,
            request.as_ref(),
            tool,
            args,
            (false, reason, rule),
        );
        tracing::info!(agent = %agent.id, tool = %text::clip(tool, 64), reason = %text::escape(reason), "call denied");
        self.audit
            .record(record, Outcome::default())
            .await
            .map(|_| ())
            .map_err(audit_down)
    }

    /// The audit record of a call; `verdict` is (allowed, reason, rule).
    fn record(
        &self,
        agent: &Agent,
        endpoint: Option<&Endpoint>,
        request: Option<&cloudflare::PreparedRequest>,
        tool: &str,
        args: &JsonObject,
        verdict: (bool, &str, &str),
    ) -> CallRecord {
        let (allowed, reason, rule) = verdict;
        let directory = self.engine.directory();
        let target = endpoint.and_then(|e| describe_target(e, args, &directory));
        let (method, path) = match (endpoint, request) {
            (Some(e), Some(r)) => (e.method.to_string(), r.path.clone()),
            (Some(e), None) => (e.method.to_string(), e.path.raw.clone()),
            (None, _) => (String::new(), String::new()),
        };
        CallRecord {
            ts: audit::now_rfc3339(),
            ts_unix_ms: audit::now_unix_ms(),
            agent: agent.id.clone(),
            tool: text::clip(tool, 64),
            method,
            path,
            target: target.clone().unwrap_or_default(),
            args: audit::stored_args(endpoint, args),
            allowed,
            reason: text::escape(reason).into_owned(),
            rule: text::escape(rule).into_owned(),
            summary: summary::decision(
                &agent.id,
                endpoint,
                &text::clip(tool, 64),
                target.as_deref(),
                args,
                allowed,
                reason,
            ),
            lookup: String::new(),
            sandbox: self.sandbox,
        }
    }
}

/// What Cloudflare answered, for the audit log.
fn outcome_of(
    answer: &Result<cloudflare::ApiResponse, cloudflare::CloudflareError>,
    duration_ms: u64,
) -> Outcome {
    match answer {
        Ok(ok) => Outcome {
            status: Some(ok.status),
            duration_ms: Some(duration_ms),
            text: summary::outcome(Some(ok.status), &[], None, duration_ms),
            ..Outcome::default()
        },
        Err(error) => Outcome {
            status: error.status(),
            cf_codes: error.codes(),
            error: Some(text::clip(&error.to_string(), 2048)),
            duration_ms: Some(duration_ms),
            text: summary::outcome(
                error.status(),
                &error.codes(),
                Some(&error.to_string()),
                duration_ms,
            ),
        },
    }
}

/// The answer for a tool that does not exist, or that this agent may not see.
fn unknown_tool(tool: &str) -> ErrorData {
    ErrorData::invalid_params(format!("Unknown tool: {}", text::clip(tool, 64)), None)
}

/// The audit log could not take the record: fail closed.
fn audit_down(error: audit::AuditError) -> ErrorData {
    tracing::error!(%error, "refusing calls: the audit log cannot record them");
    ErrorData::internal_error(
        format!(
            "flaregate refused the call because its audit log cannot record it ({error}); nothing was sent to Cloudflare"
        ),
        None,
    )
}
