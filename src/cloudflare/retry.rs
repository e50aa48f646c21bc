//! When and how long to wait before sending a request again: only
//! idempotent methods, only transient failures, capped exponential backoff
//! with jitter, and Retry-After honoured up to a cap.

use std::time::Duration;

use super::error::CloudflareError;
use crate::catalog::Method;

/// How persistent the client is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// The longest Retry-After worth waiting for; beyond it the 429 is
    /// returned to the agent at once, with the wait in the error.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The pause before attempt `attempt + 1`, or `None` to stop.
    pub fn delay_after(
        &self,
        method: Method,
        attempt: u32,
        error: &CloudflareError,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts || !method.is_idempotent() || !error.is_transient() {
            return None;
        }
        if let CloudflareError::Api {
            retry_after: Some(wait),
            ..
        } = error
        {
            return (*wait <= self.max_retry_after).then_some(*wait);
        }
        let exponential = self.base_delay.saturating_mul(1 << (attempt - 1).min(16));
        let capped = exponential.min(self.max_delay);
        // "Equal jitter": half fixed, half random, so clients spread out but
        // never retry at once.
        let half = capped / 2;
        Some(half + half.mul_f64(fastrand::f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error() -> CloudflareError {
        CloudflareError::Api {
            status: 502,
            errors: vec![],
            advice: "",
            retry_after: None,
        }
    }

    #[test]
    fn never_retries_a_post_or_a_patch() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay_after(Method::Post, 1, &server_error()), None);
        assert_eq!(policy.delay_after(Method::Patch, 1, &server_error()), None);
        assert!(
            policy
                .delay_after(Method::Get, 1, &server_error())
                .is_some()
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 20,
            ..RetryPolicy::default()
        };
        let first = policy
            .delay_after(Method::Get, 1, &server_error())
            .expect("retry");
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(200));
        let late = policy
            .delay_after(Method::Get, 15, &server_error())
            .expect("retry");
        assert!(late >= Duration::from_millis(2500) && late <= Duration::from_secs(5));
        assert_eq!(policy.delay_after(Method::Get, 20, &server_error()), None);
    }

    #[test]
    fn honours_retry_after_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let throttled = |secs| CloudflareError::Api {
            status: 429,
            errors: vec![],
            advice: "",
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(
            policy.delay_after(Method::Get, 1, &throttled(2)),
            Some(Duration::from_secs(2))
        );
        assert_eq!(policy.delay_after(Method::Get, 1, &throttled(600)), None);
    }

    #[test]
    fn client_errors_are_final() {
        let bad_request = CloudflareError::Api {
            status: 400,
            errors: vec![],
            advice: "",
            retry_after: None,
        };
        assert_eq!(
            RetryPolicy::default().delay_after(Method::Get, 1, &bad_request),
            None
        );
    }
}
