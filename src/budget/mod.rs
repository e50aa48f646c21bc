//! Budgets: how much each agent may spend, charged for every call before
//! anything is sent to Cloudflare. One interface, so a store shared by
//! several instances can stand beside the in-process one.
//!
//! Each agent has four budgets:
//! - `calls_per_minute` (policy, optional): calls that pass the policy (a
//!   call that fetches its object first is charged before the fetch);
//! - `writes_per_hour` (policy, optional): allowed calls of write tools;
//! - `refusals_per_minute` (policy, default 30): refused calls, each of
//!   which writes an audit row. Past it a refused call writes no row of its
//!   own: it is counted, and the count is written as one row a few seconds
//!   later, so no agent can fill the log;
//! - its share of flaregate's Cloudflare budget (`[cloudflare] rate_limit`
//!   less `reserve_percent`): every request a call sends, lookups included.
//!   However hard one agent pushes, the reserve stays for the others;
//! - for an endpoint with a quota of its own at Cloudflare (GraphQL
//!   Analytics: 320 queries per five minutes), its share of that quota,
//!   less the same reserve, instead of the REST budget.

mod memory;
mod postgres;

use std::time::Duration;

pub use memory::InProcess;
pub use postgres::{SCHEMA as SHARED_SCHEMA, SPEND_N as SHARED_SPEND_N, Shared};

use crate::catalog::Quota;
use crate::cloudflare::RateSpec;
use crate::policy::Limits;

/// Refused calls an agent may have recorded one by one, per minute, when
/// its policy does not say.
pub const DEFAULT_REFUSALS_PER_MINUTE: u32 = 30;

/// What one step of a call spends. A call is charged once (`call`), plus
/// a write when an allowed write goes upstream, a refusal when it is
/// refused, and one upstream request for each request it sends (its
/// lookup, a preview's or snapshot's read, the call itself).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    pub call: bool,
    pub write: bool,
    pub refusal: bool,
    pub upstream: u32,
    /// One request of an endpoint's own quota (not the REST budget).
    pub quota: Option<Quota>,
}

/// The budget that said no.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Budget {
    Calls,
    Writes,
    Refusals,
    Upstream,
    /// flaregate's whole Cloudflare budget, shared by every instance.
    Cloudflare,
    /// The agent's share of an endpoint's own quota.
    QuotaShare,
    /// The whole of an endpoint's own quota.
    Quota,
    /// The shared limits could not be checked (their database is down):
    /// nothing is spent, so nothing goes (fail closed).
    Unavailable,
}

/// A budget is spent: which, its limit in words, and when to retry.
#[derive(Debug, Clone, PartialEq)]
pub struct OverBudget {
    pub budget: Budget,
    pub limit: String,
    pub retry_after: Duration,
}

impl std::fmt::Display for OverBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let wait = self.retry_after.as_secs().max(1);
        match self.budget {
            Budget::Calls | Budget::Writes => {
                write!(f, "you have made your {}; retry in {wait}s", self.limit)
            }
            Budget::Refusals => write!(f, "you have had {} refused; retry in {wait}s", self.limit),
            Budget::Upstream => write!(
                f,
                "you have used your share of flaregate's Cloudflare budget ({}); retry in {wait}s",
                self.limit
            ),
            Budget::Cloudflare => write!(
                f,
                "flaregate's Cloudflare budget ({}) is spent for now; retry in {wait}s",
                self.limit
            ),
            Budget::QuotaShare => write!(
                f,
                "you have used your share of this API's quota ({}); retry in {wait}s",
                self.limit
            ),
            Budget::Quota => write!(
                f,
                "this API's quota at Cloudflare ({}) is spent for now; retry in {wait}s",
                self.limit
            ),
            Budget::Unavailable => write!(
                f,
                "flaregate cannot check its shared limits ({}); retry in {wait}s",
                self.limit
            ),
        }
    }
}

/// Refused calls that were counted instead of written one by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed {
    pub agent: String,
    pub count: u64,
    /// Unix milliseconds of the first and the last of them.
    pub first_ms: i64,
    pub last_ms: i64,
}

/// What spending answers, when it is done.
pub type Spent<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), OverBudget>> + Send + 'a>>;

/// Where budgets are kept and spent.
pub trait Budgets: Send + Sync {
    /// Spends `charge` from `agent`'s budgets under `limits`: all of it, or
    /// nothing and the first budget that is spent.
    fn spend<'a>(&'a self, agent: &'a str, limits: &'a Limits, charge: Charge) -> Spent<'a>;

    /// Counts a refused call of `agent` that gets no row of its own.
    fn suppress(&self, agent: &str, at_ms: i64);

    /// The counts of refused calls not written one by one, since last asked.
    fn take_suppressed(&self) -> Vec<Suppressed>;

    /// Puts back counts taken but not written (the audit log refused them),
    /// so none is lost.
    fn restore(&self, suppressed: Suppressed);
}

/// An agent's limits in words: "60 calls per minute, 30 writes per hour,
/// 30 refused calls per minute recorded one by one".
pub fn describe_limits(limits: &Limits) -> String {
    let mut parts = Vec::new();
    if let Some(n) = limits.calls_per_minute {
        parts.push(format!("{n} calls per minute"));
    }
    if let Some(n) = limits.writes_per_hour {
        parts.push(format!("{n} writes per hour"));
    }
    let refusals = limits
        .refusals_per_minute
        .unwrap_or(DEFAULT_REFUSALS_PER_MINUTE);
    parts.push(format!(
        "{refusals} refused calls per minute recorded one by one"
    ));
    if let Some(days) = limits.analytics_max_days {
        parts.push(format!("analytics queries of at most {days} days"));
    }
    parts.join(", ")
}

/// An endpoint's own quota as a rate.
pub fn quota_rate(quota: Quota) -> RateSpec {
    RateSpec::Limit {
        requests: quota.requests,
        per: Duration::from_secs(quota.per_seconds),
    }
}

/// Each agent's share of flaregate's Cloudflare budget: the whole budget
/// less `reserve_percent`, over the same window, so one agent alone can
/// never take it below the reserve.
pub fn agent_share(budget: RateSpec, reserve_percent: u8) -> RateSpec {
    match budget {
        RateSpec::Off => RateSpec::Off,
        RateSpec::Limit { requests, per } => {
            let share = u64::from(requests) * u64::from(100 - reserve_percent.min(99)) / 100;
            RateSpec::Limit {
                requests: share.max(1) as u32,
                per,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_share_leaves_the_reserve() {
        let budget: RateSpec = "1200/300s".parse().expect("rate");
        assert_eq!(
            agent_share(budget, 25),
            "900/300s".parse::<RateSpec>().expect("rate")
        );
        assert_eq!(agent_share(RateSpec::Off, 25), RateSpec::Off);
        assert_eq!(
            agent_share("2/1s".parse().expect("rate"), 90),
            "1/1s".parse::<RateSpec>().expect("rate")
        );
    }
}
