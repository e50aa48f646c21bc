//! flaregate's own budget of Cloudflare requests, shared by every agent:
//! Cloudflare limits the whole user (1,200 requests per 5 minutes), so one
//! busy agent must not spend everyone's quota and lock the account out.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A request rate: `1200/300s`, `20/1m`, or `off`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateSpec {
    Off,
    Limit { requests: u32, per: Duration },
}

impl Default for RateSpec {
    fn default() -> Self {
        RateSpec::Limit {
            requests: 1200,
            per: Duration::from_secs(300),
        }
    }
}

impl fmt::Display for RateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateSpec::Off => f.write_str("off"),
            RateSpec::Limit { requests, per } => write!(f, "{requests}/{}s", per.as_secs_f64()),
        }
    }
}

impl FromStr for RateSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(RateSpec::Off);
        }
        let bad = || {
            format!(
                "`{text}` is not a rate: write REQUESTS/WINDOW such as 1200/300s or 60/1m, or off"
            )
        };
        let (count, window) = text.split_once('/').ok_or_else(bad)?;
        let requests: u32 = count.trim().parse().map_err(|_| bad())?;
        let window = window.trim();
        let (number, unit) = window.split_at(
            window
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(window.len()),
        );
        let number: u64 = if number.is_empty() {
            1
        } else {
            number.parse().map_err(|_| bad())?
        };
        let seconds = match unit {
            "" | "s" => number,
            "m" => number * 60,
            "h" => number * 3600,
            _ => return Err(bad()),
        };
        if requests == 0 || seconds == 0 {
            return Err(bad());
        }
        Ok(RateSpec::Limit {
            requests,
            per: Duration::from_secs(seconds),
        })
    }
}

/// A token bucket holding up to `requests` tokens, refilled evenly over the
/// window. The lock is held for a few arithmetic operations only.
#[derive(Debug)]
pub struct Limiter {
    spec: RateSpec,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refreshed: Instant,
}

impl Limiter {
    pub fn new(spec: RateSpec) -> Self {
        let tokens = match spec {
            RateSpec::Off => 0.0,
            RateSpec::Limit { requests, .. } => f64::from(requests),
        };
        Self {
            spec,
            bucket: Mutex::new(Bucket {
                tokens,
                refreshed: Instant::now(),
            }),
        }
    }

    pub fn spec(&self) -> RateSpec {
        self.spec
    }

    /// Takes one request from the budget, or says how long until one is free.
    pub fn try_acquire(&self) -> Result<(), Duration> {
        self.refilled(1, true)
    }

    /// Takes `n` requests from the budget, all or none.
    pub fn try_acquire_n(&self, n: u32) -> Result<(), Duration> {
        self.refilled(n, true)
    }

    /// Whether `n` requests are free now, without taking them (for budgets
    /// spent all or nothing under a lock of their own).
    pub fn ready(&self, n: u32) -> Result<(), Duration> {
        self.refilled(n, false)
    }

    /// Requests free now (none when there is no limit).
    pub fn available(&self) -> Option<u32> {
        let RateSpec::Limit { requests, per } = self.spec else {
            return None;
        };
        let bucket = self
            .bucket
            .lock()
            .expect("limiter lock is never poisoned: no panics inside");
        let refill =
            bucket.refreshed.elapsed().as_secs_f64() * f64::from(requests) / per.as_secs_f64();
        Some((bucket.tokens + refill).min(f64::from(requests)) as u32)
    }

    fn refilled(&self, n: u32, take: bool) -> Result<(), Duration> {
        let RateSpec::Limit { requests, per } = self.spec else {
            return Ok(());
        };
        let capacity = f64::from(requests);
        let per_second = capacity / per.as_secs_f64();
        let mut bucket = self
            .bucket
            .lock()
            .expect("limiter lock is never poisoned: no panics inside");
        let now = Instant::now();
        let elapsed = now.duration_since(bucket.refreshed).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.refreshed = now;
        // More than the bucket holds is never free: asked as its capacity.
        let wanted = f64::from(n).min(capacity);
        if bucket.tokens >= wanted {
            if take {
                bucket.tokens -= wanted;
            }
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (wanted - bucket.tokens) / per_second,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates() {
        assert_eq!("off".parse::<RateSpec>(), Ok(RateSpec::Off));
        assert_eq!(
            "1200/300s".parse::<RateSpec>(),
            Ok(RateSpec::Limit {
                requests: 1200,
                per: Duration::from_secs(300)
            })
        );
        assert_eq!(
            "60/1m".parse::<RateSpec>(),
            Ok(RateSpec::Limit {
                requests: 60,
                per: Duration::from_secs(60)
            })
        );
        assert!("0/1s".parse::<RateSpec>().is_err());
        assert!("fast".parse::<RateSpec>().is_err());
        assert!("10/3d".parse::<RateSpec>().is_err());
    }

    #[test]
    fn bucket_empties_then_says_when() {
        let limiter = Limiter::new("3/300s".parse().expect("valid"));
        for _ in 0..3 {
            assert_eq!(limiter.try_acquire(), Ok(()));
        }
        let wait = limiter.try_acquire().expect_err("fourth is refused");
        assert!(
            wait > Duration::from_secs(90) && wait <= Duration::from_secs(100),
            "{wait:?}"
        );
    }

    #[test]
    fn off_never_limits() {
        let limiter = Limiter::new(RateSpec::Off);
        assert!((0..10_000).all(|_| limiter.try_acquire().is_ok()));
    }
}
