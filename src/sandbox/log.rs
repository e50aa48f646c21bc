//! A record of the requests that reached the sandbox, so tests can assert
//! what flaregate did or did not send (`GET /__sandbox/requests`). Bounded,
//! so a long benchmark cannot grow it without end.

use std::collections::VecDeque;
use std::sync::Mutex;

use axum::extract::{Request, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::Shared;

/// How many requests the log keeps (the newest).
const KEEP: usize = 10_000;

/// One request as the sandbox received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRequest {
    /// Sequence number since start, counting those no longer kept.
    pub seq: u64,
    pub method: String,
    /// The path below /client/v4, still percent-encoded.
    pub path: String,
    pub query: Option<String>,
    pub content_type: Option<String>,
}

#[derive(Debug, Default)]
pub(super) struct RequestLog {
    entries: Mutex<(u64, VecDeque<LoggedRequest>)>,
}

impl RequestLog {
    pub(super) fn record(&self, request: &Request, path: &str) {
        let content_type = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut guard = self
            .entries
            .lock()
            .expect("request log lock is never poisoned");
        let (count, entries) = &mut *guard;
        *count += 1;
        if entries.len() == KEEP {
            entries.pop_front();
        }
        entries.push_back(LoggedRequest {
            seq: *count,
            method: request.method().to_string(),
            path: path.to_string(),
            query: request.uri().query().map(str::to_string),
            content_type,
        });
    }

    fn snapshot(&self) -> Vec<LoggedRequest> {
        let guard = self
            .entries
            .lock()
            .expect("request log lock is never poisoned");
        guard.1.iter().cloned().collect()
    }
}

/// `GET /__sandbox/requests`: the log, oldest first. Not a Cloudflare
/// route, so it needs no token.
pub(super) fn routes() -> Router<Shared> {
    Router::new().route("/__sandbox/requests", get(list))
}

async fn list(State(sandbox): State<Shared>) -> Json<Vec<LoggedRequest>> {
    Json(sandbox.log.snapshot())
}
