//! The path of one call: visible? → arguments valid? → policy verdict →
//! budgets spent → (lookup → verdict again →) audit row → Cloudflare →
//! audit outcome → result. Nothing reaches Cloudflare unless every step
//! before says yes, the agent's budgets are charged and the decision row is
//! written — and, for a call that can change anything, flushed to disk. No
//! answer leaves before its decision is on disk; every refusal is audited,
//! one row each up to the agent's refusal budget and counted past it.
//! A call runs to its end under the policy it started with.

use std::time::Instant;

use rmcp::model::{CallToolResponse, CallToolResult, ErrorData, JsonObject};

use super::approve::{Asker, Gate, take_approval_id};
use super::gateway::Gateway;
use super::preview::DRY_RUN;
use super::render;
use super::visible::Visible;
use crate::audit::{self, CallRecord, Decision, Outcome, summary};
use crate::budget::{Charge, OverBudget, Suppressed};
use crate::catalog::{Access, Endpoint, Method};
use crate::cloudflare;
use crate::policy::{Agent, Denial, DenyKind, LookupError, Policy, Verdict, describe_target};
use crate::telemetry::{self, CallTrace};
use crate::text;

/// One call as it goes through the pipeline.
pub(super) struct Call<'a> {
    /// The policy when the call arrived; used to its end.
    pub(super) policy: &'a Policy,
    pub(super) agent: &'a Agent,
    pub(super) tool: &'a str,
    pub(super) args: &'a JsonObject,
    /// The catalog entry, if the tool exists and the agent may see it.
    pub(super) endpoint: Option<&'a Endpoint>,
    /// What was fetched to decide ("GET … → 200 in 4 ms"), if anything.
    pub(super) lookup: String,
    /// The logged write this call undoes (its row id).
    pub(super) undoes: Option<i64>,
    /// The object the lookup fetched to decide, if one did (a snapshot
    /// read through the same tool uses it instead of reading again).
    pub(super) looked_up: Option<Result<JsonObject, LookupError>>,
    /// The call's span, when traces are on: its steps are timed into it.
    pub(super) trace: Option<&'a CallTrace>,
}

/// What a call brings besides its arguments.
#[derive(Default)]
pub(super) struct CallContext<'a> {
    /// How to ask the person at the client, if the client can.
    pub(super) asker: Option<&'a Asker>,
    /// The logged write this call undoes (`undo_call`).
    pub(super) undoes: Option<i64>,
    /// The client's W3C trace context (`_meta.traceparent`), if any.
    pub(super) traceparent: Option<&'a str>,
}

impl Call<'_> {
    /// Times a step that began at `start_ns` into the call's span, if traced.
    fn step(&self, name: &'static str, start_ns: u64) {
        if let Some(trace) = self.trace {
            trace.step(name, start_ns);
        }
    }
}

impl Gateway {
    /// Runs one tools/call for `agent_id` in `context`.
    pub(super) async fn call(
        &self,
        agent_id: &str,
        tool: &str,
        args: Option<JsonObject>,
        context: CallContext<'_>,
    ) -> Result<CallToolResponse, ErrorData> {
        let started = Instant::now();
        let tracer = self.tracer.get();
        let trace = tracer.map(|t| t.begin(context.traceparent));
        let answer = self
            .decide_and_run(agent_id, tool, args, context, trace.as_ref())
            .await;
        self.metrics.call_latency.observe(started.elapsed());
        if let (Some(tracer), Some(trace)) = (tracer, trace) {
            let (result, error) = match &answer {
                Ok(CallToolResponse::Complete(r)) if r.is_error == Some(true) => {
                    ("refused or failed", true)
                }
                Ok(CallToolResponse::InputRequired(_)) => ("input required", false),
                Ok(_) => ("ok", false),
                Err(_) => ("protocol error", true),
            };
            let attributes = vec![
                ("flaregate.agent", agent_id.to_string()),
                ("flaregate.tool", text::clip(tool, 64)),
                ("flaregate.result", result.to_string()),
            ];
            tracer.end(
                trace,
                format!("tools/call {}", text::clip(tool, 64)),
                attributes,
                error,
            );
        }
        answer
    }

    async fn decide_and_run(
        &self,
        agent_id: &str,
        tool: &str,
        args: Option<JsonObject>,
        context: CallContext<'_>,
        trace: Option<&CallTrace>,
    ) -> Result<CallToolResponse, ErrorData> {
        let asker = context.asker;
        let policy = self.engine.policy();
        let agent = policy.agent(agent_id).ok_or_else(|| {
            ErrorData::invalid_request("this agent is no longer in the policy", None)
        })?;
        let mut args = args.unwrap_or_default();
        let endpoint = self
            .catalog
            .endpoint(tool)
            .filter(|_| agent.may_see(&self.catalog, tool))
            .map(|e| &**e);
        // flaregate's own approval id, taken out before validation: the
        // tool's schema has it only in this agent's view.
        let approval_id = endpoint
            .filter(|_| agent.needs_approval(tool))
            .and_then(|_| take_approval_id(&mut args));
        let valid = endpoint.map(|_| self.catalog.validate_arguments(tool, &args));
        // A write's `dry_run` is flaregate's own: taken out before anything
        // else sees the arguments (the schema has it only for writes).
        let dry_run = endpoint.is_some_and(|e| e.access == Access::Write)
            && args.remove(DRY_RUN) == Some(serde_json::Value::Bool(true));
        // Values judged as Cloudflare will read them, and sent that way.
        let canonical = match (endpoint, &valid) {
            (Some(endpoint), Some(Ok(()))) => {
                self.engine.resolve_names().await;
                policy.canonicalise(agent, endpoint, &mut args, &self.engine.directory())
            }
            _ => Ok(()),
        };
        let mut call = Call {
            policy: &policy,
            agent,
            tool,
            args: &args,
            endpoint,
            lookup: String::new(),
            undoes: context.undoes,
            looked_up: None,
            trace,
        };
        let Some(endpoint) = endpoint else {
            // Unknown and not-granted tools look the same to the agent.
            let denial = match policy.decide(agent, tool, &args, &self.engine.directory(), None) {
                Verdict::Deny(denial) => denial,
                _ => Denial::new(
                    DenyKind::UnknownTool,
                    "the tool is not visible",
                    "unknown tool",
                ),
            };
            self.refuse(&call, &denial).await?;
            return Err(unknown_tool(tool));
        };
        if let Some(Err(invalid)) = valid {
            let denial = Denial::new(DenyKind::InvalidArguments, invalid.to_string(), "arguments");
            return self.refusal(&call, denial).await.map(Into::into);
        }
        if let Err(denial) = canonical {
            return self.refusal(&call, denial).await.map(Into::into);
        }
        let mut charge = Charge {
            call: true,
            write: false,
            refusal: false,
            upstream: true,
        };
        let mut verdict = self.engine.decide(&policy, agent, tool, &args).await;
        let mut fetched = None;
        if verdict == Verdict::NeedsLookup {
            // The lookup is a request to Cloudflare: charged before it goes.
            if let Err(over) = self.spend(agent, charge).await {
                return self.refusal(&call, over_limit(&over)).await.map(Into::into);
            }
            charge.call = false;
            let step = telemetry::now_ns();
            let lookup = self.engine.look_up(&policy, tool, &args).await;
            if let Some(trace) = trace {
                trace.step("lookup", step);
            }
            call.lookup = lookup.note;
            verdict = match &lookup.object {
                Ok(current) => self
                    .engine
                    .decide_with(&policy, agent, tool, &args, current),
                Err(error) => Verdict::Deny(lookup_failed(error)),
            };
            fetched = Some(lookup.object);
        }
        if dry_run {
            // A preview is charged as a call (its reads reach Cloudflare),
            // never as a write.
            if charge.call
                && let Err(over) = self.spend(agent, charge).await
            {
                return self.refusal(&call, over_limit(&over)).await.map(Into::into);
            }
            return self
                .preview(&mut call, endpoint, &verdict, fetched)
                .await
                .map(Into::into);
        }
        call.looked_up = fetched;
        match verdict {
            Verdict::Allow { reason, rule } => {
                let (reason, rule) = if agent.needs_approval(tool) {
                    // Asking is charged as a call (its preview reads
                    // Cloudflare), so asking cannot flood the upstream.
                    if approval_id.is_none()
                        && charge.call
                        && let Err(over) = self.spend(agent, charge).await
                    {
                        return self.refusal(&call, over_limit(&over)).await.map(Into::into);
                    }
                    let allowed = Verdict::Allow {
                        reason: reason.clone(),
                        rule: rule.clone(),
                    };
                    match self
                        .approval_gate(&mut call, endpoint, &allowed, approval_id, asker)
                        .await?
                    {
                        Gate::Through { reason, rule } => (reason.into(), rule.into()),
                        Gate::Stop(answer) => return Ok(answer.into()),
                        Gate::Ask(question) => return Ok(question.into()),
                    }
                } else {
                    (reason, rule)
                };
                charge.write = endpoint.access == Access::Write;
                if let Err(over) = self.spend(agent, charge).await {
                    return self.refusal(&call, over_limit(&over)).await.map(Into::into);
                }
                self.run(&mut call, endpoint, (&reason, &rule))
                    .await
                    .map(Into::into)
            }
            Verdict::Deny(denial) => self.refusal(&call, denial).await.map(Into::into),
            Verdict::NeedsLookup => {
                let denial = Denial::new(
                    DenyKind::LookupFailed,
                    "the object this call acts on could not be checked",
                    "lookup",
                );
                self.refusal(&call, denial).await.map(Into::into)
            }
        }
    }

    /// An allowed call: audit, send, audit the outcome, answer.
    async fn run(
        &self,
        call: &mut Call<'_>,
        endpoint: &Endpoint,
        (reason, rule): (&str, &str),
    ) -> Result<CallToolResult, ErrorData> {
        // Built once: the audit row records the path that is sent.
        let request = match cloudflare::build(endpoint, call.args) {
            Ok(request) => request,
            Err(invalid) => {
                let denial =
                    Denial::new(DenyKind::InvalidArguments, invalid.to_string(), "arguments");
                return self.refusal(call, denial).await;
            }
        };
        // What the write changes, kept for undo (read before the row, so
        // the row's lookup notes its digest).
        let snapshot = match self.snapshot(call, endpoint).await {
            Ok(snapshot) => snapshot,
            Err(denial) => return self.refusal(call, denial).await,
        };
        let kept = snapshot.is_some();
        let call = &*call;
        let record = self.record(call, Some(&request), Decision::Allow, reason, rule);
        let step = telemetry::now_ns();
        let (row, flushed) = self
            .audit
            .begin_with(record, snapshot)
            .await
            .map_err(audit_down)?;
        call.step("audit.decision", step);
        self.metrics
            .call(&call.agent.id, &endpoint.tool, Decision::Allow, "none");
        // Send, then record the outcome: written before the agent hears it.
        let send_and_record = async {
            let started = Instant::now();
            let step = telemetry::now_ns();
            let answer = if call.policy.filters_list(call.agent, endpoint) {
                self.fetch_visible(call.policy, call.agent, endpoint, call.args)
                    .await
            } else {
                self.client
                    .send(&request, endpoint.response)
                    .await
                    .map(Visible::Answer)
            };
            let took = started.elapsed();
            call.step("cloudflare", step);
            let status = match &answer {
                Ok(Visible::Answer(ok)) => Some(ok.status),
                Ok(Visible::Withheld) => Some(200),
                Err(error) => error.status(),
            };
            self.metrics.upstream(status, took);
            let mut outcome = outcome_of(&answer, took.as_millis() as u64);
            if let (true, Ok(Visible::Answer(ok))) = (kept, &answer) {
                (outcome.after, outcome.created) =
                    super::snapshot::after_of(endpoint, call.args, &ok.result);
                if let Some(created) = &outcome.created {
                    outcome.text = format!(
                        "{}; it created {created}",
                        outcome.text.trim_end_matches('.')
                    );
                }
            }
            let step = telemetry::now_ns();
            let completed = self.audit.complete(row, outcome).await;
            call.step("audit.outcome", step);
            if let Err(error) = completed {
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
            let step = telemetry::now_ns();
            flushed.wait().await.map_err(audit_down)?;
            call.step("audit.flush", step);
            send_and_record.await
        };
        Ok(match answer {
            Ok(Visible::Answer(mut answer)) => {
                if endpoint.method == Method::Delete && answer.result.is_null() {
                    answer.result = deleted(endpoint, call.args);
                }
                render::success(endpoint, answer)
            }
            Ok(Visible::Withheld) => render::refusal(
                "Denied by flaregate policy: what this call names is outside your allowed values; nothing of it is shown.",
            ),
            Err(error) if error.status() == Some(403) => {
                // Not the agent's doing: the token flaregate holds lacks it.
                tracing::warn!(
                    agent = %call.agent.id, tool = %endpoint.tool, permission = %endpoint.permission,
                    "Cloudflare refused a call: the token lacks a permission"
                );
                render::refusal(format!(
                    "{error} flaregate's Cloudflare token lacks {} for this call: the operator must add it to the token.",
                    endpoint.permission
                ))
            }
            Err(error) => render::failure(&error),
        })
    }

    /// Spends `charge` from the agent's budgets.
    pub(super) async fn spend(&self, agent: &Agent, charge: Charge) -> Result<(), OverBudget> {
        self.budgets.spend(&agent.id, &agent.limits, charge).await
    }

    /// Audits a refusal and gives the agent its answer.
    pub(super) async fn refusal(
        &self,
        call: &Call<'_>,
        denial: Denial,
    ) -> Result<CallToolResult, ErrorData> {
        self.refuse(call, &denial).await?;
        Ok(render::refusal(agent_text(call, &denial)))
    }

    /// Audits a refusal (decision and outcome at once), charged to the
    /// agent's refusal budget; past it, counted instead of written — unless
    /// the call fetched something from Cloudflare (every request sent has
    /// its row, and those are bounded by the agent's upstream share) or it
    /// issued an approval id (charged as a call; the request must be in the
    /// chain).
    pub(super) async fn refuse(&self, call: &Call<'_>, denial: &Denial) -> Result<(), ErrorData> {
        let agent = call.agent;
        // Labels from the catalog only: an agent's made-up names are "unknown".
        let tool = self
            .catalog
            .endpoint(call.tool)
            .map_or("unknown", |e| e.tool.as_str());
        self.metrics
            .call(&agent.id, tool, Decision::Deny, denial.kind.as_str());
        let refusal = Charge {
            refusal: true,
            ..Charge::default()
        };
        let must_write = !call.lookup.is_empty() || denial.kind == DenyKind::ApprovalRequired;
        if self.spend(agent, refusal).await.is_err() && !must_write {
            self.budgets.suppress(&agent.id, audit::now_unix_ms());
            tracing::debug!(agent = %agent.id, kind = denial.kind.as_str(), "refused call counted, not written: over the refusal budget");
            return Ok(());
        }
        tracing::info!(
            agent = %agent.id, tool = %text::clip(call.tool, 64), kind = denial.kind.as_str(),
            reason = %text::escape(&denial.reason), "call denied"
        );
        let request = call
            .endpoint
            .and_then(|e| cloudflare::build(e, call.args).ok());
        let record = self.record(
            call,
            request.as_ref(),
            Decision::Deny,
            &denial.reason,
            &denial.rule,
        );
        let step = telemetry::now_ns();
        let recorded = self.audit.record(record, Outcome::default()).await;
        call.step("audit.refusal", step);
        recorded.map(|_| ()).map_err(audit_down)
    }

    /// Writes one row for each agent's refused calls that were counted
    /// rather than written; run every few seconds and at shutdown.
    pub async fn record_suppressed(&self) -> Result<(), audit::AuditError> {
        let mut taken = self.budgets.take_suppressed().into_iter();
        while let Some(suppressed) = taken.next() {
            let limit = self
                .engine
                .policy()
                .agent(&suppressed.agent)
                .and_then(|a| a.limits.refusals_per_minute)
                .unwrap_or(crate::budget::DEFAULT_REFUSALS_PER_MINUTE);
            let record = suppressed_record(&suppressed, limit, self.sandbox);
            if let Err(error) = self.audit.record(record, Outcome::default()).await {
                // Kept for the next try: no count is lost with the log down.
                self.budgets.restore(suppressed);
                taken.for_each(|rest| self.budgets.restore(rest));
                return Err(error);
            }
        }
        Ok(())
    }

    /// The audit record of a call.
    pub(super) fn record(
        &self,
        call: &Call<'_>,
        request: Option<&cloudflare::PreparedRequest>,
        decision: Decision,
        reason: &str,
        rule: &str,
    ) -> CallRecord {
        let directory = self.engine.directory();
        let endpoint = call.endpoint;
        let target = endpoint.and_then(|e| describe_target(e, call.args, &directory));
        let (method, path) = match (endpoint, request) {
            (Some(e), Some(r)) => (e.method.to_string(), r.path.clone()),
            (Some(e), None) => (e.method.to_string(), e.path.raw.clone()),
            (None, _) => (String::new(), String::new()),
        };
        let tool = text::clip(call.tool, 64);
        // An undo's rows say which row they undo.
        let reason = match call.undoes {
            Some(row) => std::borrow::Cow::Owned(format!("{reason} {}", audit::undo_note(row))),
            None => std::borrow::Cow::Borrowed(reason),
        };
        let reason = &*reason;
        CallRecord {
            ts: audit::now_rfc3339(),
            ts_unix_ms: audit::now_unix_ms(),
            agent: call.agent.id.clone(),
            method,
            path,
            target: target.clone().unwrap_or_default(),
            args: audit::stored_args(endpoint, call.args),
            decision,
            reason: text::escape(reason).into_owned(),
            rule: text::escape(rule).into_owned(),
            summary: summary::decision(
                &call.agent.id,
                endpoint,
                &tool,
                target.as_deref(),
                call.args,
                decision,
                reason,
            ),
            tool,
            lookup: call.lookup.clone(),
            sandbox: self.sandbox,
        }
    }
}

/// What a delete removed, when Cloudflare answers `null`: the object's
/// path arguments (`{"deleted": true, "script_name": "site-blog", …}`).
fn deleted(endpoint: &Endpoint, args: &JsonObject) -> serde_json::Value {
    let mut what = serde_json::Map::new();
    what.insert("deleted".into(), true.into());
    for name in endpoint.path.params() {
        if let Some(value) = args.get(name) {
            what.insert(name.to_string(), value.clone());
        }
    }
    serde_json::Value::Object(what)
}

/// The refusal of a call that is over one of its agent's budgets.
pub(super) fn over_limit(over: &OverBudget) -> Denial {
    Denial::new(DenyKind::OverLimit, over.to_string(), "limits")
}

/// The refusal of a call whose object could not be fetched to check it.
fn lookup_failed(error: &LookupError) -> Denial {
    match error {
        LookupError::NotFound => Denial::new(
            DenyKind::LookupFailed,
            "there is no such object: Cloudflare answered 404 when flaregate fetched it to check the call",
            "lookup",
        ),
        LookupError::Failed(problem) => Denial::new(
            DenyKind::LookupFailed,
            format!("cannot check the object this call acts on: {problem}"),
            "lookup",
        ),
    }
}

/// What the agent is told of a refusal. A refusal that rests on the object
/// as it is (found, its name, its type) says only that the agent may not
/// act on it, unless the agent may read that object anyway.
fn agent_text(call: &Call<'_>, denial: &Denial) -> String {
    let reveals_object = !call.lookup.is_empty()
        && matches!(
            denial.kind,
            DenyKind::Constraint | DenyKind::Immutable | DenyKind::LookupFailed
        );
    let may_read_object = call
        .endpoint
        .and_then(|e| e.lookup.as_ref())
        .is_some_and(|lookup| call.agent.may_see(call.policy.catalog(), &lookup.tool));
    let reason = if reveals_object && !may_read_object {
        "you may not act on the object this call names"
    } else {
        &denial.reason
    };
    let reason = reason.trim_end_matches('.');
    match denial.kind {
        DenyKind::InvalidArguments => format!("{reason}. Nothing was sent to Cloudflare."),
        DenyKind::OverLimit => format!("Refused: {reason}. Nothing was sent to Cloudflare."),
        _ => format!("Denied by flaregate policy: {reason}."),
    }
}

/// The row that stands for refused calls counted past the refusal budget.
fn suppressed_record(s: &Suppressed, limit: u32, sandbox: bool) -> CallRecord {
    let first = humantime::format_rfc3339_millis(unix_ms(s.first_ms)).to_string();
    let last = humantime::format_rfc3339_millis(unix_ms(s.last_ms)).to_string();
    let reason = format!(
        "{} more refused calls between {first} and {last}, answered without a row each: over its limit of {limit} refused calls per minute",
        s.count
    );
    CallRecord {
        ts: audit::now_rfc3339(),
        ts_unix_ms: audit::now_unix_ms(),
        agent: s.agent.clone(),
        tool: String::new(),
        method: String::new(),
        path: String::new(),
        target: String::new(),
        args: serde_json::json!({ "refused_calls": s.count, "first": first, "last": last })
            .to_string(),
        decision: Decision::Deny,
        summary: format!("{} had {reason}", s.agent),
        reason,
        rule: "limits.refusals_per_minute".into(),
        lookup: String::new(),
        sandbox,
    }
}

fn unix_ms(ms: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64)
}

/// What Cloudflare answered, for the audit log.
fn outcome_of(answer: &Result<Visible, cloudflare::CloudflareError>, duration_ms: u64) -> Outcome {
    match answer {
        Ok(Visible::Answer(ok)) => Outcome {
            status: Some(ok.status),
            duration_ms: Some(duration_ms),
            text: summary::outcome(Some(ok.status), &[], None, duration_ms),
            ..Outcome::default()
        },
        Ok(Visible::Withheld) => Outcome {
            status: Some(200),
            duration_ms: Some(duration_ms),
            text: format!(
                "{}; the answer was withheld: outside the agent's constraints",
                summary::outcome(Some(200), &[], None, duration_ms)
            ),
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
            ..Outcome::default()
        },
    }
}

/// The answer for a tool that does not exist, or that this agent may not see.
fn unknown_tool(tool: &str) -> ErrorData {
    ErrorData::invalid_params(format!("Unknown tool: {}", text::clip(tool, 64)), None)
}

/// The audit log could not take the record: fail closed.
pub(super) fn audit_down(error: audit::AuditError) -> ErrorData {
    tracing::error!(%error, "refusing calls: the audit log cannot record them");
    ErrorData::internal_error(
        format!(
            "flaregate refused the call because its audit log cannot record it ({error}); nothing was sent to Cloudflare"
        ),
        None,
    )
}
