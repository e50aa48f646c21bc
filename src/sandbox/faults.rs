//! Injected trouble for tests: `--fault METHOD:PATH_GLOB:STATUS[:COUNT]`
//! answers the first COUNT matching requests (all, without COUNT) with
//! STATUS, and `--latency-ms` delays every answer.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use globset::{Glob, GlobMatcher};

use super::reply::failure;

/// One fault rule.
#[derive(Debug)]
pub struct Fault {
    method: Option<String>,
    path: GlobMatcher,
    status: StatusCode,
    remaining: AtomicU64,
}

impl Clone for Fault {
    fn clone(&self) -> Self {
        Self {
            method: self.method.clone(),
            path: self.path.clone(),
            status: self.status,
            remaining: AtomicU64::new(self.remaining.load(Ordering::SeqCst)),
        }
    }
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let usage = || {
            format!(
                "`{spec}` is not a fault: write METHOD:PATH_GLOB:STATUS[:COUNT], e.g. GET:/zones*:500:2"
            )
        };
        let parts: Vec<&str> = spec.split(':').collect();
        let (method, path, status, count) = match parts.as_slice() {
            [m, p, s] => (*m, *p, *s, None),
            [m, p, s, c] => (*m, *p, *s, Some(*c)),
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
        let status = status
            .parse::<u16>()
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .filter(|s| s.is_client_error() || s.is_server_error())
            .ok_or_else(usage)?;
        let remaining = match count {
            None => u64::MAX,
            Some(c) => c.parse().map_err(|_| usage())?,
        };
        Ok(Self {
            method,
            path,
            status,
            remaining: AtomicU64::new(remaining),
        })
    }
}

impl Fault {
    /// The injected answer, if this request matches and the count allows.
    fn answer(&self, method: &str, path: &str) -> Option<Response> {
        if self.method.as_deref().is_some_and(|m| m != method) || !self.path.is_match(path) {
            return None;
        }
        self.remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .ok()?;
        let (code, message) = match self.status.as_u16() {
            429 => (
                971,
                "Please wait and consider throttling your request speed",
            ),
            500..=599 => (10001, "Internal server error (injected fault)"),
            _ => (10000, "Injected fault"),
        };
        let mut response = failure(self.status, &[(code, message)]);
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        Some(response)
    }
}

/// The configured faults, tried in order.
#[derive(Debug, Default)]
pub struct Faults(pub Vec<Fault>);

impl Faults {
    pub fn answer(&self, method: &str, path: &str) -> Option<Response> {
        self.0.iter().find_map(|f| f.answer(method, path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_counts_down() {
        let fault: Fault = "GET:/zones*:500:2".parse().expect("valid");
        assert!(fault.answer("GET", "/zones/abc").is_some());
        assert!(fault.answer("POST", "/zones/abc").is_none());
        assert!(fault.answer("GET", "/accounts").is_none());
        assert!(fault.answer("GET", "/zones").is_some());
        assert!(fault.answer("GET", "/zones").is_none(), "count exhausted");
    }

    #[test]
    fn rejects_nonsense() {
        for bad in [
            "GET:/zones",
            "FETCH:/x:500",
            "GET:/x:200",
            "GET:/x:500:many",
        ] {
            assert!(bad.parse::<Fault>().is_err(), "{bad}");
        }
    }
}
