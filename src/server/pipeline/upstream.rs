//! The one way the stages reach Cloudflare for an agent. Every request
//! takes one from the call's [`Ticket`] before it goes; a ticket is made
//! only by `charge.rs`, after the verdict (or for the lookup the verdict
//! needs). Every read is noted in the call's row.

use serde_json::{Map, Value};

use super::{Call, Services, Ticket};
use crate::catalog::{Endpoint, ResponseKind};
use crate::cloudflare::{ApiResponse, Client, CloudflareError, PreparedRequest};
use crate::telemetry;

/// Why the object a call acts on could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LookupError {
    /// Cloudflare has no such object (404).
    NotFound,
    /// Anything else, in words.
    Failed(String),
}

/// An object read, and what was sent for it.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub object: Result<Map<String, Value>, LookupError>,
    /// "GET /zones/…/dns_records/… → 200 in 4 ms" (empty if nothing was sent).
    pub note: String,
}

/// What is said of a request sent without a charge: a flaregate bug,
/// refused rather than sent.
const NOT_CHARGED: &str = "flaregate did not charge this request, so it was not sent";

impl Services {
    /// Reads the object the call's endpoint names through its lookup tool.
    pub(super) async fn look_up(
        &self,
        call: &mut Call<'_>,
        ticket: &mut Ticket,
    ) -> Result<Map<String, Value>, LookupError> {
        let catalog = call.policy.catalog();
        let target = call
            .endpoint()
            .lookup
            .as_ref()
            .and_then(|lookup| catalog.endpoint(&lookup.tool));
        match target {
            Some(target) => self.read_object(call, ticket, target, None).await,
            None => Err(LookupError::Failed(
                "there is no lookup to check it with".into(),
            )),
        }
    }

    /// Reads the object the GET endpoint `reader` names with the path
    /// arguments of `args` (the call's own when none are given).
    pub(super) async fn read_object(
        &self,
        call: &mut Call<'_>,
        ticket: &mut Ticket,
        reader: &Endpoint,
        args: Option<&Map<String, Value>>,
    ) -> Result<Map<String, Value>, LookupError> {
        if !ticket.take() {
            debug_assert!(false, "{NOT_CHARGED}");
            return Err(LookupError::Failed(NOT_CHARGED.into()));
        }
        let step = telemetry::now_ns();
        let fetched = fetch_object(&self.client, reader, args.unwrap_or(&call.args)).await;
        call.step("lookup", step);
        call.note(&fetched.note);
        fetched.object
    }

    /// Sends one request of the call.
    pub(super) async fn send(
        &self,
        ticket: &mut Ticket,
        request: &PreparedRequest,
        kind: ResponseKind,
    ) -> Result<ApiResponse, CloudflareError> {
        if !ticket.take() {
            debug_assert!(false, "{NOT_CHARGED}");
            return Err(CloudflareError::Transport(NOT_CHARGED.into()));
        }
        self.client.send(request, kind).await
    }
}

/// Reads the object the GET endpoint `target` names with the path
/// arguments of `args`; says what was sent and what came back. For the
/// pipeline's reads (through a ticket) and the operator's `explain`.
pub(crate) async fn fetch_object(
    client: &Client,
    target: &Endpoint,
    args: &Map<String, Value>,
) -> Fetched {
    let started = std::time::Instant::now();
    let path_args: Map<String, Value> = target
        .path
        .params()
        .filter_map(|name| args.get(name).map(|v| (name.to_string(), v.clone())))
        .collect();
    let request = match crate::cloudflare::build(target, &path_args) {
        Ok(request) => request,
        Err(error) => {
            return Fetched {
                object: Err(LookupError::Failed(error.to_string())),
                note: String::new(),
            };
        }
    };
    let answer = client.send(&request, target.response).await;
    let took = started.elapsed().as_millis();
    let status = match &answer {
        Ok(ok) => ok.status.to_string(),
        Err(error) => error
            .status()
            .map_or_else(|| "no answer".to_string(), |s| s.to_string()),
    };
    let note = format!(
        "{} {} → {status} in {took} ms",
        request.method, request.path
    );
    let object = match answer {
        Ok(answer) => match answer.result {
            Value::Object(current) => Ok(current),
            _ => Err(LookupError::Failed("Cloudflare sent no object".to_string())),
        },
        Err(error) if error.status() == Some(404) => Err(LookupError::NotFound),
        Err(error) => Err(LookupError::Failed(error.to_string())),
    };
    Fetched { object, note }
}
