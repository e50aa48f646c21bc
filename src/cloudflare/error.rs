//! What can go wrong talking to Cloudflare, with the advice Cloudflare's own
//! reference gives for each status class, so an agent knows what to do next.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One item of the envelope's `errors` (or `messages`) list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiMessage {
    pub code: i64,
    pub message: String,
}

impl fmt::Display for ApiMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.message)
    }
}

/// A failed Cloudflare call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CloudflareError {
    /// Refused before any I/O: the request would be malformed or unsafe.
    #[error("invalid argument `{field}`: {reason}")]
    InvalidArgument { field: String, reason: String },

    #[error("the Cloudflare credential is unusable: {0}")]
    Credential(&'static str),

    /// Cloudflare answered with an error status or `success: false`.
    #[error("Cloudflare answered HTTP {status}: {}. {advice}", list(.errors))]
    Api {
        status: u16,
        errors: Vec<ApiMessage>,
        advice: &'static str,
        retry_after: Option<Duration>,
    },

    /// flaregate's own limiter, shared by every agent, is out of requests.
    #[error("flaregate's Cloudflare rate limit ({limit}) is reached; retry in {}s", retry_after.as_secs().max(1))]
    RateLimited {
        limit: String,
        retry_after: Duration,
    },

    #[error("cannot reach Cloudflare: {0}")]
    Transport(String),

    #[error("Cloudflare did not answer within {}s", .0.as_secs_f64())]
    Timeout(Duration),

    /// The answer was not the JSON envelope it should be.
    #[error("Cloudflare sent an unreadable answer (HTTP {status}): {detail}")]
    InvalidResponse { status: u16, detail: String },

    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        attempts: u32,
        last: Box<CloudflareError>,
    },
}

/// Cloudflare's messages, one sentence (their own full stops dropped, so
/// the advice after them does not read "..").
fn list(errors: &[ApiMessage]) -> String {
    if errors.is_empty() {
        return "no error details".to_string();
    }
    errors
        .iter()
        .map(|e| e.to_string().trim_end().trim_end_matches('.').to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

impl CloudflareError {
    /// The HTTP status Cloudflare answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            CloudflareError::Api { status, .. }
            | CloudflareError::InvalidResponse { status, .. } => Some(*status),
            CloudflareError::RetriesExhausted { last, .. } => last.status(),
            _ => None,
        }
    }

    /// Cloudflare's error codes, for the audit log.
    pub fn codes(&self) -> Vec<i64> {
        match self {
            CloudflareError::Api { errors, .. } => errors.iter().map(|e| e.code).collect(),
            CloudflareError::RetriesExhausted { last, .. } => last.codes(),
            _ => Vec::new(),
        }
    }

    /// Whether the request may be sent again: throttling, a server fault or
    /// a lost connection. (Whether the method allows it is checked apart.)
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            CloudflareError::Api { status, .. }
            | CloudflareError::InvalidResponse { status, .. } => *status == 429 || *status >= 500,
            CloudflareError::Transport(_) | CloudflareError::Timeout(_) => true,
            _ => false,
        }
    }
}

/// What to do about an error: for the codes that say more than their
/// status, what fits them; else by status, from Cloudflare's reference guide.
pub(super) fn advice(status: u16, errors: &[ApiMessage]) -> &'static str {
    for error in errors {
        match error.code {
            81057 | 81058 => {
                return "The record exists already: change it (update or patch it by id) rather than create it again.";
            }
            81053 | 81054 => {
                return "A CNAME cannot share its name with another record: pick another name, or remove the other record first.";
            }
            1061 => return "The zone exists already: list zones to find its id.",
            7003 | 7000 => {
                return "The id in the path does not name an object: check it (list the objects to find the right one).";
            }
            _ => {}
        }
    }
    by_status(status)
}

fn by_status(status: u16) -> &'static str {
    match status {
        400 => "Read the errors and fix the named parameter.",
        401 => "The credential is missing or invalid: send a valid API token.",
        403 => "The token lacks the permission group or the zone/account scope for this call.",
        404 => "Wrong path or id, or the object is not visible to the token.",
        405 => "Wrong HTTP method for this path.",
        429 => "Too many requests: honour Retry-After and slow down.",
        500..=599 => "Cloudflare had a server error: retry later with backoff.",
        _ => "See the errors Cloudflare returned.",
    }
}
