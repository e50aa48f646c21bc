//! Budgets kept in this process: a token bucket per agent and budget, made
//! when the agent first calls and remade when its limits change (a reload
//! that leaves an agent's limits alone leaves its budgets as they were).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::{Budget, Budgets, Charge, DEFAULT_REFUSALS_PER_MINUTE, OverBudget, Spent, Suppressed};
use crate::cloudflare::{Limiter, RateSpec};
use crate::policy::Limits;

/// The in-process store.
#[derive(Debug)]
pub struct InProcess {
    /// Each agent's share of the Cloudflare budget.
    upstream_share: RateSpec,
    /// What an agent's share of an endpoint's own quota leaves to others.
    reserve_percent: u8,
    agents: Mutex<HashMap<String, AgentBuckets>>,
}

#[derive(Debug)]
struct AgentBuckets {
    /// The limits these buckets were made for.
    made_for: (Option<u32>, Option<u32>, Option<u32>),
    calls: Option<Limiter>,
    writes: Option<Limiter>,
    refusals: Limiter,
    upstream: Limiter,
    /// Its share of each endpoint quota it drew on, by quota.
    quotas: HashMap<crate::catalog::Quota, Limiter>,
    suppressed: Option<Suppressed>,
}

fn per(requests: Option<u32>, seconds: u64) -> Option<Limiter> {
    requests.filter(|n| *n > 0).map(|requests| {
        Limiter::new(RateSpec::Limit {
            requests,
            per: Duration::from_secs(seconds),
        })
    })
}

impl AgentBuckets {
    fn new(limits: &Limits, upstream_share: RateSpec) -> Self {
        let refusals = limits
            .refusals_per_minute
            .unwrap_or(DEFAULT_REFUSALS_PER_MINUTE);
        Self {
            made_for: key(limits),
            calls: per(limits.calls_per_minute, 60),
            writes: per(limits.writes_per_hour, 3600),
            refusals: per(Some(refusals), 60).unwrap_or_else(|| Limiter::new(RateSpec::Off)),
            upstream: Limiter::new(upstream_share),
            quotas: HashMap::new(),
            suppressed: None,
        }
    }

    /// The buckets `charge` draws from, with their budgets and limits.
    fn drawn(&self, charge: Charge, limits: &Limits) -> Vec<(&Limiter, u32, Budget, String)> {
        let mut drawn = Vec::with_capacity(4);
        if charge.call
            && let Some(calls) = &self.calls
        {
            let n = limits.calls_per_minute.unwrap_or_default();
            drawn.push((calls, 1, Budget::Calls, format!("{n} calls this minute")));
        }
        if charge.write
            && let Some(writes) = &self.writes
        {
            let n = limits.writes_per_hour.unwrap_or_default();
            drawn.push((writes, 1, Budget::Writes, format!("{n} writes this hour")));
        }
        if charge.refusal {
            let n = limits
                .refusals_per_minute
                .unwrap_or(DEFAULT_REFUSALS_PER_MINUTE);
            drawn.push((
                &self.refusals,
                1,
                Budget::Refusals,
                format!("{n} calls this minute"),
            ));
        }
        if let Some(quota) = charge.quota
            && let Some(share) = self.quotas.get(&quota)
        {
            drawn.push((share, 1, Budget::QuotaShare, share.spec().to_string()));
        }
        if charge.upstream > 0 {
            let share = self.upstream.spec();
            drawn.push((
                &self.upstream,
                charge.upstream,
                Budget::Upstream,
                share.to_string(),
            ));
        }
        drawn
    }
}

fn key(limits: &Limits) -> (Option<u32>, Option<u32>, Option<u32>) {
    (
        limits.calls_per_minute,
        limits.writes_per_hour,
        limits.refusals_per_minute,
    )
}

impl InProcess {
    /// Budgets whose agents each get `upstream_share` of the Cloudflare
    /// budget (see [`super::agent_share`]).
    pub fn new(upstream_share: RateSpec) -> Self {
        Self::with_reserve(upstream_share, 0)
    }

    /// The same, each agent's share of an endpoint's own quota leaving
    /// `reserve_percent` of it to the others.
    pub fn with_reserve(upstream_share: RateSpec, reserve_percent: u8) -> Self {
        Self {
            upstream_share,
            reserve_percent,
            agents: Mutex::new(HashMap::new()),
        }
    }

    fn with_agent<T>(
        &self,
        agent: &str,
        limits: Option<&Limits>,
        f: impl FnOnce(&mut AgentBuckets) -> T,
    ) -> T {
        let mut agents = self
            .agents
            .lock()
            .expect("budget lock is never poisoned: no panics inside");
        let fresh = || AgentBuckets::new(limits.unwrap_or(&Limits::default()), self.upstream_share);
        let buckets = agents.entry(agent.to_string()).or_insert_with(fresh);
        if let Some(limits) = limits
            && buckets.made_for != key(limits)
        {
            let suppressed = buckets.suppressed.take();
            *buckets = AgentBuckets::new(limits, self.upstream_share);
            buckets.suppressed = suppressed;
        }
        f(buckets)
    }
}

impl InProcess {
    /// Spends `charge` at once (see [`Budgets::spend`]).
    pub fn try_spend(
        &self,
        agent: &str,
        limits: &Limits,
        charge: Charge,
    ) -> Result<(), OverBudget> {
        let reserve = self.reserve_percent;
        self.with_agent(agent, Some(limits), |buckets| {
            if let Some(quota) = charge.quota {
                let share = super::agent_share(super::quota_rate(quota), reserve);
                buckets
                    .quotas
                    .entry(quota)
                    .or_insert_with(|| Limiter::new(share));
            }
            let drawn = buckets.drawn(charge, limits);
            // Checked first, then taken: under the lock, all or nothing.
            for (limiter, n, budget, limit) in &drawn {
                if let Err(retry_after) = limiter.ready(*n) {
                    return Err(OverBudget {
                        budget: *budget,
                        limit: limit.clone(),
                        retry_after,
                    });
                }
            }
            for (limiter, n, ..) in &drawn {
                let _ = limiter.try_acquire_n(*n);
            }
            Ok(())
        })
    }
}

impl Budgets for InProcess {
    fn spend<'a>(&'a self, agent: &'a str, limits: &'a Limits, charge: Charge) -> Spent<'a> {
        Box::pin(std::future::ready(self.try_spend(agent, limits, charge)))
    }

    fn suppress(&self, agent: &str, at_ms: i64) {
        self.with_agent(agent, None, |buckets| match &mut buckets.suppressed {
            Some(s) => {
                s.count += 1;
                s.last_ms = at_ms;
            }
            None => {
                buckets.suppressed = Some(Suppressed {
                    agent: agent.to_string(),
                    count: 1,
                    first_ms: at_ms,
                    last_ms: at_ms,
                });
            }
        });
    }

    fn restore(&self, taken: Suppressed) {
        let agent = taken.agent.clone();
        self.with_agent(&agent, None, |buckets| match &mut buckets.suppressed {
            Some(newer) => {
                newer.count += taken.count;
                newer.first_ms = newer.first_ms.min(taken.first_ms);
            }
            None => buckets.suppressed = Some(taken),
        });
    }

    fn take_suppressed(&self) -> Vec<Suppressed> {
        let mut agents = self
            .agents
            .lock()
            .expect("budget lock is never poisoned: no panics inside");
        let mut taken: Vec<Suppressed> = agents
            .values_mut()
            .filter_map(|b| b.suppressed.take())
            .collect();
        taken.sort_by(|a, b| a.agent.cmp(&b.agent));
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(calls: Option<u32>, writes: Option<u32>, refusals: Option<u32>) -> Limits {
        Limits {
            calls_per_minute: calls,
            writes_per_hour: writes,
            refusals_per_minute: refusals,
            analytics_max_days: None,
        }
    }

    const CALL: Charge = Charge {
        call: true,
        write: false,
        refusal: false,
        upstream: 1,
        quota: None,
    };
    const WRITE: Charge = Charge {
        call: true,
        write: true,
        refusal: false,
        upstream: 1,
        quota: None,
    };

    #[test]
    fn a_charge_is_spent_all_or_nothing() {
        let budgets = InProcess::new(RateSpec::Off);
        let l = limits(Some(3), Some(1), None);
        assert_eq!(budgets.try_spend("a", &l, WRITE), Ok(()));
        let over = budgets
            .try_spend("a", &l, WRITE)
            .expect_err("one write an hour");
        assert_eq!(over.budget, Budget::Writes);
        assert!(
            over.to_string()
                .contains("your 1 writes this hour; retry in"),
            "{over}"
        );
        // The refused write took no call: two calls are left of three.
        assert_eq!(budgets.try_spend("a", &l, CALL), Ok(()));
        assert_eq!(budgets.try_spend("a", &l, CALL), Ok(()));
        assert_eq!(
            budgets.try_spend("a", &l, CALL).map_err(|o| o.budget),
            Err(Budget::Calls)
        );
        // Another agent's budgets are its own.
        assert_eq!(budgets.try_spend("b", &l, CALL), Ok(()));
    }

    #[test]
    fn the_upstream_share_bounds_every_agent_alone() {
        let budgets = InProcess::new("2/60s".parse().expect("rate"));
        let l = Limits::default();
        assert!(budgets.try_spend("a", &l, CALL).is_ok());
        assert!(budgets.try_spend("a", &l, CALL).is_ok());
        let over = budgets.try_spend("a", &l, CALL).expect_err("share spent");
        assert_eq!(over.budget, Budget::Upstream);
        assert!(
            budgets.try_spend("b", &l, CALL).is_ok(),
            "b has a share of its own"
        );
    }

    #[test]
    fn refusals_have_a_default_budget_and_the_rest_are_counted() {
        let budgets = InProcess::new(RateSpec::Off);
        let refusal = Charge {
            refusal: true,
            ..Charge::default()
        };
        let l = Limits::default();
        for _ in 0..DEFAULT_REFUSALS_PER_MINUTE {
            assert!(budgets.try_spend("a", &l, refusal).is_ok());
        }
        assert!(budgets.try_spend("a", &l, refusal).is_err());
        budgets.suppress("a", 10);
        budgets.suppress("a", 20);
        assert_eq!(
            budgets.take_suppressed(),
            vec![Suppressed {
                agent: "a".into(),
                count: 2,
                first_ms: 10,
                last_ms: 20
            }]
        );
        assert!(budgets.take_suppressed().is_empty());
        // Taken but not written: put back, merged with what came since.
        budgets.suppress("a", 30);
        let taken = budgets.take_suppressed();
        budgets.suppress("a", 40);
        taken.into_iter().for_each(|s| budgets.restore(s));
        assert_eq!(
            budgets.take_suppressed(),
            vec![Suppressed {
                agent: "a".into(),
                count: 2,
                first_ms: 30,
                last_ms: 40
            }]
        );
    }

    #[test]
    fn budgets_survive_a_reload_that_keeps_the_limits() {
        let budgets = InProcess::new(RateSpec::Off);
        let l = limits(Some(1), None, None);
        assert!(budgets.try_spend("a", &l, CALL).is_ok());
        assert!(
            budgets.try_spend("a", &l, CALL).is_err(),
            "the same limits: still spent"
        );
        let raised = limits(Some(2), None, None);
        assert!(
            budgets.try_spend("a", &raised, CALL).is_ok(),
            "new limits: new budgets"
        );
    }

    #[test]
    fn an_endpoint_quota_is_shared_with_a_reserve_apart_from_the_rest_budget() {
        let quota = crate::catalog::Quota {
            requests: 8,
            per_seconds: 300,
        };
        // Each agent may take 6 of 8: a quarter stays for the others.
        let budgets = InProcess::with_reserve(RateSpec::Off, 25);
        let query = Charge {
            call: true,
            quota: Some(quota),
            ..Charge::default()
        };
        let l = limits(None, None, None);
        for _ in 0..6 {
            budgets.try_spend("a", &l, query).expect("within the share");
        }
        let over = budgets
            .try_spend("a", &l, query)
            .expect_err("over the share");
        assert_eq!(over.budget, Budget::QuotaShare);
        assert!(
            over.to_string().contains("share of this API's quota"),
            "{over}"
        );
        // Another agent has its own share; REST calls are not charged to it.
        budgets.try_spend("b", &l, query).expect("b's share");
        budgets
            .try_spend("a", &l, CALL)
            .expect("the REST budget is apart");
    }
}
