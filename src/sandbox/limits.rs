//! Cloudflare's rate limit as the sandbox plays it: a fixed window per
//! token; past the quota every call gets 429 until the window ends.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue};

use crate::cloudflare::RateSpec;

/// The sandbox's per-token request counter.
#[derive(Debug)]
pub(super) struct RateWindow {
    spec: RateSpec,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

/// The verdict for one request, with the values for the rate headers.
pub(super) struct RateVerdict {
    pub allowed: bool,
    pub remaining: u32,
    pub reset: Duration,
    pub quota: u32,
    pub window: Duration,
}

impl RateWindow {
    pub(super) fn new(spec: RateSpec) -> Self {
        Self {
            spec,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request of `token`.
    pub(super) fn check(&self, token: &str) -> Option<RateVerdict> {
        let RateSpec::Limit { requests, per } = self.spec else {
            return None;
        };
        let now = Instant::now();
        let mut windows = self
            .windows
            .lock()
            .expect("rate window lock is never poisoned");
        let (start, count) = windows.entry(token.to_string()).or_insert((now, 0));
        if now.duration_since(*start) >= per {
            *start = now;
            *count = 0;
        }
        *count = count.saturating_add(1);
        Some(RateVerdict {
            allowed: *count <= requests,
            remaining: requests.saturating_sub(*count),
            reset: per.saturating_sub(now.duration_since(*start)),
            quota: requests,
            window: per,
        })
    }
}

impl RateVerdict {
    /// `Ratelimit` and `Ratelimit-Policy`, as Cloudflare sends since 2025.
    pub(super) fn write_headers(&self, headers: &mut HeaderMap) {
        let reset = self.reset.as_secs().max(1);
        let pairs = [
            (
                "ratelimit",
                format!("\"default\";r={};t={reset}", self.remaining),
            ),
            (
                "ratelimit-policy",
                format!("\"burst\";q={};w={}", self.quota, self.window.as_secs()),
            ),
        ];
        for (name, value) in pairs {
            headers.insert(
                name,
                HeaderValue::from_str(&value).expect("digits and quotes are valid"),
            );
        }
        if !self.allowed {
            headers.insert("retry-after", HeaderValue::from(reset));
        }
    }
}
