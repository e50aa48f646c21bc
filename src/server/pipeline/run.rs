//! The pipeline's one entry: the list of stages a call goes through, and
//! what is done with the call's span and latency around them.

use std::time::Instant;

use super::{Answer, Call, CallRequest, Fault, Services, Stop};
use crate::text;

impl Services {
    /// Runs one call to its end under the policy it started with.
    pub(crate) async fn run(&self, request: CallRequest) -> Result<Answer, Fault> {
        let started = Instant::now();
        let tracer = self.tracer.get();
        let trace = tracer.map(|t| t.begin(request.traceparent.as_deref()));
        let (agent_id, tool) = (request.agent.clone(), text::clip(&request.tool, 64));
        let policy = self.engine.policy();
        let answer = match policy.agent(&request.agent) {
            None => Err(Fault::AgentGone),
            Some(agent) => {
                let mut call = Call::new(&policy, agent, request, trace.as_ref());
                match self.stages(&mut call).await {
                    Ok(answer) => Ok(answer),
                    Err(stop) => self.stopped(&call, stop).await,
                }
            }
        };
        self.metrics.call_latency.observe(started.elapsed());
        if let (Some(tracer), Some(trace)) = (tracer, trace) {
            let (result, error) = match &answer {
                Ok(Answer::Ask { .. }) => ("input required", false),
                Ok(answer) if answer.is_error() => ("refused or failed", true),
                Ok(_) => ("ok", false),
                Err(_) => ("protocol error", true),
            };
            let attributes = vec![
                ("flaregate.agent", agent_id),
                ("flaregate.tool", tool.clone()),
                ("flaregate.result", result.to_string()),
            ];
            tracer.end(trace, format!("tools/call {tool}"), attributes, error);
        }
        answer
    }

    /// The stages, in order. A preview is the same stages stopping before
    /// `execute`, so it cannot run ahead of the verdict or the charge.
    async fn stages(&self, call: &mut Call<'_>) -> Result<Answer, Stop> {
        let answer = self.through(call).await?;
        Ok(super::undo::headed(call, answer))
    }

    async fn through(&self, call: &mut Call<'_>) -> Result<Answer, Stop> {
        self.admit(call).await?;
        let allowed = self.decide(call).await?;
        let mut ticket = self.charge(call, &allowed).await?;
        if call.undo.is_some() {
            self.check_unchanged(call, &mut ticket).await?;
        }
        if call.options.dry_run {
            return self.preview(call, &allowed, &mut ticket).await;
        }
        let allowed = self.approve(call, allowed, &mut ticket).await?;
        self.execute(call, allowed, ticket).await
    }
}
