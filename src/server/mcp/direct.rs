//! A direct path for the commonest request an agent sends: a stateless
//! (2026-07-28) `tools/call`. rmcp serves each such request by building a
//! service, spawning a task and wiring channels for that one request; that
//! machinery was the largest part of flaregate's per-call CPU that was not
//! flaregate's own work (docs/performance.md). Here the request is parsed
//! into rmcp's own types, handed to the same handler code, and its answer
//! serialised as rmcp serialises it.
//!
//! Only a request that passes every check rmcp makes, read as narrowly as
//! possible, is taken. Anything else — a session, another method or
//! version, an `Origin` header, a host outside the allowed list, q-values in
//! `Accept`, a duplicated or encoded `Mcp-*` header, an `Mcp-Param-*`
//! header, a body without a `Content-Length` — goes on to rmcp untouched,
//! so every refusal at the protocol level is still rmcp's own answer.
//! `FLAREGATE_DIRECT_CALLS=off` sends every request through rmcp.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rmcp::model::{
    CallToolRequestParams, ClientJsonRpcMessage, ClientRequest, ErrorCode, GetMeta,
    ProtocolVersion, RequestId, RequestMetaObject, ServerJsonRpcMessage, ServerResult,
};
use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;

use super::handler::{Caller, Handler};

const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";

/// The checks rmcp's service would make, with its settings.
pub(super) struct Direct {
    allowed_hosts: Vec<String>,
    max_body_bytes: usize,
}

/// What became of a request.
pub(super) enum Routed {
    /// Answered here.
    Answered(Response),
    /// Not one this path takes: for rmcp, as it came.
    Onward(Request),
}

/// A `tools/call` this path takes: its id, parameters and `_meta`.
struct Call {
    id: RequestId,
    params: CallToolRequestParams,
    meta: RequestMetaObject,
}

impl Direct {
    /// The direct path for a listener with `config`, unless the operator
    /// turned it off.
    pub(super) fn new(config: &StreamableHttpServerConfig) -> Option<Self> {
        if std::env::var("FLAREGATE_DIRECT_CALLS").is_ok_and(|v| v.eq_ignore_ascii_case("off")) {
            tracing::info!("FLAREGATE_DIRECT_CALLS=off: every MCP request goes through rmcp");
            return None;
        }
        Some(Self {
            allowed_hosts: config.allowed_hosts.clone(),
            max_body_bytes: config.max_request_body_bytes,
        })
    }

    /// Answers `request` for `agent` if it is a stateless `tools/call`.
    pub(super) async fn route(
        &self,
        handler: &Handler,
        caller: &Caller,
        request: Request,
    ) -> Routed {
        let agent = caller.agent.as_str();
        if !self.headers_qualify(request.method(), request.headers()) {
            return Routed::Onward(request);
        }
        let (parts, body) = request.into_parts();
        let bytes = match axum::body::to_bytes(body, self.max_body_bytes).await {
            Ok(bytes) => bytes,
            Err(_) => {
                return Routed::Answered(
                    (
                        StatusCode::BAD_REQUEST,
                        "Bad Request: the body could not be read",
                    )
                        .into_response(),
                );
            }
        };
        let Some(call) = tools_call(&parts.headers, &bytes) else {
            return Routed::Onward(Request::from_parts(parts, Body::from(bytes)));
        };
        tracing::debug!(agent, tool = %crate::text::clip(&call.params.name, 64), "a stateless tools/call, answered directly");
        let Call { id, params, meta } = call;
        let (handler, caller) = (handler.clone(), caller.clone());
        // A task of its own, as rmcp runs a handler: a client that hangs up
        // does not cut a call short between Cloudflare and its audit row.
        let running = tokio::spawn(async move {
            let asker = super::ask::retry_asker(&params, meta.client_capabilities());
            handler
                .dispatch(&caller, params, asker, meta.get_traceparent())
                .await
        });
        let message = match running.await {
            Ok(Ok(response)) => ServerJsonRpcMessage::response(ServerResult::from(response), id),
            Ok(Err(error)) => ServerJsonRpcMessage::error(error, Some(id)),
            Err(failed) => {
                tracing::error!(error = %failed, "a tools/call task failed");
                ServerJsonRpcMessage::error(
                    rmcp::model::ErrorData::internal_error(
                        "the call failed inside flaregate",
                        None,
                    ),
                    Some(id),
                )
            }
        };
        Routed::Answered(json_response(&message))
    }

    /// The headers of a request rmcp would take as a stateless 2026-07-28
    /// call, before its body is read.
    fn headers_qualify(&self, method: &Method, headers: &HeaderMap) -> bool {
        method == Method::POST
            && !headers.contains_key("mcp-session-id")
            && !headers.contains_key(header::ORIGIN)
            && only(headers, "mcp-protocol-version") == Some(ProtocolVersion::V_2026_07_28.as_str())
            && only(headers, "mcp-method") == Some("tools/call")
            && !headers
                .keys()
                .any(|name| name.as_str().starts_with("mcp-param-"))
            && accepts_json_and_events(headers)
            && only(headers, header::CONTENT_TYPE.as_str())
                .is_some_and(|v| essence(v).eq_ignore_ascii_case(JSON))
            && only(headers, header::CONTENT_LENGTH.as_str())
                .and_then(|v| v.parse::<usize>().ok())
                .is_some_and(|length| length <= self.max_body_bytes)
            && only(headers, header::HOST.as_str()).is_some_and(|host| self.host_allowed(host))
    }

    /// Whether `host` is in the listener's allowed list, as rmcp reads both.
    fn host_allowed(&self, host: &str) -> bool {
        let Some(host) = authority(host) else {
            return false;
        };
        self.allowed_hosts.is_empty()
            || self
                .allowed_hosts
                .iter()
                .filter_map(|allowed| {
                    authority(allowed.trim()).or_else(|| Some((normal(allowed.trim()), None)))
                })
                .any(|(name, port)| name == host.0 && port.is_none_or(|p| host.1 == Some(p)))
    }
}

/// The call in `body`, if it is a `tools/call` rmcp would dispatch as a
/// 2026-07-28 request whose `Mcp-Name` header names its tool as it is.
fn tools_call(headers: &HeaderMap, body: &Bytes) -> Option<Call> {
    let ClientJsonRpcMessage::Request(request) = serde_json::from_slice(body).ok()? else {
        return None;
    };
    let meta = request.request.get_meta().clone();
    let ClientRequest::CallToolRequest(call) = request.request else {
        return None;
    };
    let current = meta.protocol_version() == Some(ProtocolVersion::V_2026_07_28)
        && meta
            .missing_required_keys(&ProtocolVersion::V_2026_07_28)
            .is_empty();
    (current && only(headers, "mcp-name") == Some(&*call.params.name)).then_some(Call {
        id: request.id,
        params: call.params,
        meta,
    })
}

/// The header's one value as text; `None` when absent, repeated or not text.
fn only<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    values
        .next()
        .is_none()
        .then(|| value.to_str().ok())
        .flatten()
}

/// `Accept` names both JSON and event streams, with no weights to weigh.
fn accepts_json_and_events(headers: &HeaderMap) -> bool {
    let ranges = || {
        headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
    };
    let named = |mime: &str| ranges().any(|r| essence(r).eq_ignore_ascii_case(mime));
    !ranges().any(|r| r.contains(';')) && named(JSON) && named(EVENT_STREAM)
}

fn essence(media: &str) -> &str {
    media.split(';').next().unwrap_or_default().trim()
}

/// A host (lower case, without IPv6 brackets) and port, as rmcp compares them.
fn authority(value: &str) -> Option<(String, Option<u16>)> {
    let authority = axum::http::uri::Authority::try_from(value).ok()?;
    Some((normal(authority.host()), authority.port_u16()))
}

fn normal(host: &str) -> String {
    host.trim_matches('[')
        .trim_matches(']')
        .to_ascii_lowercase()
}

/// The JSON-RPC answer with the HTTP status rmcp gives it on this path.
fn json_response(message: &ServerJsonRpcMessage) -> Response {
    let status = match message {
        ServerJsonRpcMessage::Error(error) => match error.error.code {
            ErrorCode::UNSUPPORTED_PROTOCOL_VERSION
            | ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY
            | ErrorCode::HEADER_MISMATCH => StatusCode::BAD_REQUEST,
            ErrorCode::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
            _ => StatusCode::OK,
        },
        _ => StatusCode::OK,
    };
    match serde_json::to_vec(message) {
        Ok(body) => (status, [(header::CONTENT_TYPE, JSON)], body).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot serialise an MCP answer");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(hosts: &[&str]) -> Direct {
        Direct {
            allowed_hosts: hosts.iter().map(|h| h.to_string()).collect(),
            max_body_bytes: 1000,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                value.parse().expect("value"),
            );
        }
        map
    }

    const GOOD: &[(&str, &str)] = &[
        ("host", "127.0.0.1:8080"),
        ("accept", "application/json, text/event-stream"),
        ("content-type", "application/json"),
        ("content-length", "200"),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "get_zone"),
    ];

    #[test]
    fn a_plain_stateless_call_qualifies_and_each_oddity_sends_it_to_rmcp() {
        let path = direct(&["localhost", "127.0.0.1", "::1"]);
        assert!(path.headers_qualify(&Method::POST, &headers(GOOD)));
        assert!(!path.headers_qualify(&Method::GET, &headers(GOOD)));
        let odd: &[(&str, &str)] = &[
            ("mcp-session-id", "abc"),
            ("origin", "http://127.0.0.1"),
            ("mcp-param-zone", "x"),
            ("mcp-method", "tools/call"),
            ("mcp-protocol-version", "2026-07-28"),
        ];
        for extra in odd {
            let mut with = GOOD.to_vec();
            with.push(*extra);
            assert!(
                !path.headers_qualify(&Method::POST, &headers(&with)),
                "{extra:?} should go to rmcp"
            );
        }
        let replaced: &[(&str, &str)] = &[
            ("host", "evil.example:8080"),
            ("accept", "application/json;q=0, text/event-stream"),
            ("accept", "application/json"),
            ("content-type", "text/plain"),
            ("content-length", "5000"),
            ("mcp-protocol-version", "2025-11-25"),
            ("mcp-method", "tools/list"),
        ];
        for (name, value) in replaced {
            let with: Vec<_> = GOOD
                .iter()
                .map(|(n, v)| if n == name { (*n, *value) } else { (*n, *v) })
                .collect();
            assert!(
                !path.headers_qualify(&Method::POST, &headers(&with)),
                "{name}: {value} should go to rmcp"
            );
        }
        let without_length: Vec<_> = GOOD
            .iter()
            .copied()
            .filter(|(n, _)| *n != "content-length")
            .collect();
        assert!(!path.headers_qualify(&Method::POST, &headers(&without_length)));
    }

    #[test]
    fn hosts_are_compared_as_rmcp_compares_them() {
        let path = direct(&["localhost", "127.0.0.1", "::1", "gate.example:8443"]);
        assert!(path.host_allowed("LOCALHOST:3000"));
        assert!(path.host_allowed("[::1]:3000"));
        assert!(path.host_allowed("gate.example:8443"));
        assert!(!path.host_allowed("gate.example:9000"));
        assert!(!path.host_allowed("127.0.0.2"));
        assert!(direct(&[]).host_allowed("anything.example"));
    }

    #[test]
    fn only_a_current_tools_call_named_in_its_header_is_taken() {
        let call = |method: &str, version: &str, name: &str| {
            let body = serde_json::json!({
                "jsonrpc": "2.0", "id": 7, "method": method,
                "params": {"name": "get_zone", "arguments": {}, "_meta": {
                    "io.modelcontextprotocol/protocolVersion": version,
                    "io.modelcontextprotocol/clientCapabilities": {},
                    "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}
                }}
            });
            let bytes = Bytes::from(serde_json::to_vec(&body).expect("json"));
            tools_call(&headers(&[("mcp-name", name)]), &bytes)
        };
        let taken = call("tools/call", "2026-07-28", "get_zone").expect("taken");
        assert_eq!(taken.params.name, "get_zone");
        assert_eq!(taken.id, RequestId::Number(7));
        assert!(call("tools/call", "2025-11-25", "get_zone").is_none());
        assert!(call("tools/call", "2026-07-28", "list_zones").is_none());
        assert!(call("tools/list", "2026-07-28", "get_zone").is_none());
        let bytes = Bytes::from_static(b"{not json");
        assert!(tools_call(&headers(&[("mcp-name", "get_zone")]), &bytes).is_none());
    }
}
