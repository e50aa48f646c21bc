//! Injected trouble for tests: `--fault METHOD:PATH_GLOB:KIND[:COUNT]`
//! answers the first COUNT matching requests (all, without COUNT) with
//! KIND — an error status (`500`, `429` with Retry-After …), `html` (a 502
//! HTML error page), `badjson` (200 with a body that is not JSON),
//! `truncated` (200 with JSON cut short) or `hang` (no answer for an hour).
//! `--latency-ms` delays every answer.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use globset::{Glob, GlobMatcher};

use super::reply::failure;

/// What an injected fault answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Status(StatusCode),
    Html,
    BadJson,
    Truncated,
    Hang,
}

/// One fault rule.
#[derive(Debug)]
pub struct Fault {
    method: Option<String>,
    path: GlobMatcher,
    kind: Kind,
    remaining: AtomicU64,
}

impl Clone for Fault {
    fn clone(&self) -> Self {
        Self {
            method: self.method.clone(),
            path: self.path.clone(),
            kind: self.kind,
            remaining: AtomicU64::new(self.remaining.load(Ordering::SeqCst)),
        }
    }
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let usage = || {
            format!(
                "`{spec}` is not a fault: write METHOD:PATH_GLOB:KIND[:COUNT], KIND an error status or html, badjson, truncated, hang; e.g. GET:/zones*:500:2"
            )
        };
        let parts: Vec<&str> = spec.split(':').collect();
        let (method, path, kind, count) = match parts.as_slice() {
            [m, p, k] => (*m, *p, *k, None),
            [m, p, k, c] => (*m, *p, *k, Some(*c)),
            _ => return Err(usage()),
        };
        let method = match method.to_ascii_uppercase().as_str() {
            "*" | "ANY" => None,
            m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE") => Some(m.to_string()),
            _ => return Err(usage()),
        };
        let path = Glob::new(path)
            .map_err(|e| format!("{}: {e}", usage()))?
            .compile_matcher();
        let kind = match kind {
            "html" => Kind::Html,
            "badjson" => Kind::BadJson,
            "truncated" => Kind::Truncated,
            "hang" => Kind::Hang,
            status => Kind::Status(
                status
                    .parse::<u16>()
                    .ok()
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .filter(|s| s.is_client_error() || s.is_server_error())
                    .ok_or_else(usage)?,
            ),
        };
        let remaining = match count {
            None => u64::MAX,
            Some(c) => c.parse().map_err(|_| usage())?,
        };
        Ok(Self {
            method,
            path,
            kind,
            remaining: AtomicU64::new(remaining),
        })
    }
}

impl Fault {
    /// Whether this request matches and the count allows; spends one.
    fn take(&self, method: &str, path: &str) -> bool {
        if self.method.as_deref().is_some_and(|m| m != method) || !self.path.is_match(path) {
            return false;
        }
        self.remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// The configured faults, tried in order.
#[derive(Debug, Default)]
pub(super) struct Faults(pub Vec<Fault>);

impl Faults {
    /// The injected answer for this request, if a fault matches.
    pub(super) async fn answer(&self, method: &str, path: &str) -> Option<Response> {
        let kind = self.0.iter().find(|f| f.take(method, path))?.kind;
        Some(match kind {
            Kind::Status(status) => status_answer(status),
            Kind::Html => (
                StatusCode::BAD_GATEWAY,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>",
            )
                .into_response(),
            Kind::BadJson => (
                [(header::CONTENT_TYPE, "application/json")],
                "{success: true, result: [}",
            )
                .into_response(),
            Kind::Truncated => (
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"success":true,"errors":[],"result":[{"id":"02"#,
            )
                .into_response(),
            Kind::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                StatusCode::GATEWAY_TIMEOUT.into_response()
            }
        })
    }
}

fn status_answer(status: StatusCode) -> Response {
    let (code, message) = match status.as_u16() {
        429 => (
            971,
            "Please wait and consider throttling your request speed",
        ),
        500..=599 => (10001, "Internal server error (injected fault)"),
        _ => (10000, "Injected fault"),
    };
    let mut response = failure(status, &[(code, message)]);
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_counts_down() {
        let fault: Fault = "GET:/zones*:500:2".parse().expect("valid");
        assert!(fault.take("GET", "/zones/abc"));
        assert!(!fault.take("POST", "/zones/abc"));
        assert!(!fault.take("GET", "/accounts"));
        assert!(fault.take("GET", "/zones"));
        assert!(!fault.take("GET", "/zones"), "count exhausted");
    }

    #[test]
    fn parses_kinds() {
        for spec in [
            "GET:/x:html",
            "*:/x:badjson:1",
            "GET:/x:truncated",
            "DELETE:/x:hang:3",
            "GET:/x:429",
        ] {
            assert!(spec.parse::<Fault>().is_ok(), "{spec}");
        }
    }

    #[test]
    fn rejects_nonsense() {
        for bad in [
            "GET:/zones",
            "FETCH:/x:500",
            "GET:/x:200",
            "GET:/x:500:many",
            "GET:/x:slow",
        ] {
            assert!(bad.parse::<Fault>().is_err(), "{bad}");
        }
    }
}
