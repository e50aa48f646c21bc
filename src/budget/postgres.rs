//! Budgets shared by every instance on one PostgreSQL database: the same
//! token buckets as [`InProcess`](super::InProcess), kept in a table and
//! spent by one function call per charge (one round trip, all or
//! nothing, the agent's rows locked for that statement only). The whole
//! Cloudflare budget (`[cloudflare] rate_limit`) is a bucket of its own,
//! drawn with every request's share, so three instances do not send three
//! times it. Refused calls counted instead of written stay per instance:
//! each writes its own count.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio_postgres::Client;

use super::{
    Budget, Budgets, Charge, DEFAULT_REFUSALS_PER_MINUTE, InProcess, OverBudget, Spent, Suppressed,
};
use crate::cloudflare::RateSpec;
use crate::policy::Limits;

/// The bucket table and the function that spends from it (created by the
/// audit store's migrations, which run first: see `audit/postgres.rs`).
pub const SCHEMA: &str = "CREATE TABLE budgets (
        agent TEXT NOT NULL,
        budget TEXT NOT NULL,
        tokens DOUBLE PRECISION NOT NULL,
        refreshed_ms BIGINT NOT NULL,
        PRIMARY KEY (agent, budget)
    );
    CREATE FUNCTION flaregate_spend(p_agents TEXT[], p_budgets TEXT[], p_caps DOUBLE PRECISION[],
                                    p_windows DOUBLE PRECISION[], p_now BIGINT)
    RETURNS TABLE (refused INTEGER, retry_ms BIGINT) LANGUAGE plpgsql AS $$
    DECLARE
        i INTEGER;
        t DOUBLE PRECISION;
        r BIGINT;
        levels DOUBLE PRECISION[] := ARRAY[]::DOUBLE PRECISION[];
    BEGIN
        FOR i IN 1 .. coalesce(array_length(p_budgets, 1), 0) LOOP
            INSERT INTO budgets VALUES (p_agents[i], p_budgets[i], p_caps[i], p_now)
                ON CONFLICT DO NOTHING;
            SELECT tokens, refreshed_ms INTO t, r FROM budgets
                WHERE agent = p_agents[i] AND budget = p_budgets[i] FOR UPDATE;
            t := least(p_caps[i], t + greatest(p_now - r, 0) * p_caps[i] / p_windows[i]);
            IF t < 1 THEN
                RETURN QUERY SELECT i, ceil((1 - t) * p_windows[i] / p_caps[i])::BIGINT;
                RETURN;
            END IF;
            levels := levels || t;
        END LOOP;
        FOR i IN 1 .. coalesce(array_length(p_budgets, 1), 0) LOOP
            UPDATE budgets SET tokens = levels[i] - 1, refreshed_ms = p_now
                WHERE agent = p_agents[i] AND budget = p_budgets[i];
        END LOOP;
        RETURN QUERY SELECT 0, 0::BIGINT;
    END $$;";

/// Spending several tokens of a bucket at once (a call's every request to
/// Cloudflare is charged before the first goes): `p_counts[i]` from
/// bucket `i`, all or nothing.
pub const SPEND_N: &str = "CREATE FUNCTION flaregate_spend_n(p_agents TEXT[], p_budgets TEXT[], p_caps DOUBLE PRECISION[],
                                    p_windows DOUBLE PRECISION[], p_counts DOUBLE PRECISION[], p_now BIGINT)
    RETURNS TABLE (refused INTEGER, retry_ms BIGINT) LANGUAGE plpgsql AS $$
    DECLARE
        i INTEGER;
        t DOUBLE PRECISION;
        r BIGINT;
        want DOUBLE PRECISION;
        levels DOUBLE PRECISION[] := ARRAY[]::DOUBLE PRECISION[];
    BEGIN
        FOR i IN 1 .. coalesce(array_length(p_budgets, 1), 0) LOOP
            INSERT INTO budgets VALUES (p_agents[i], p_budgets[i], p_caps[i], p_now)
                ON CONFLICT DO NOTHING;
            SELECT tokens, refreshed_ms INTO t, r FROM budgets
                WHERE agent = p_agents[i] AND budget = p_budgets[i] FOR UPDATE;
            t := least(p_caps[i], t + greatest(p_now - r, 0) * p_caps[i] / p_windows[i]);
            want := least(p_counts[i], p_caps[i]);
            IF t < want THEN
                RETURN QUERY SELECT i, ceil((want - t) * p_windows[i] / p_caps[i])::BIGINT;
                RETURN;
            END IF;
            levels := levels || (t - want);
        END LOOP;
        FOR i IN 1 .. coalesce(array_length(p_budgets, 1), 0) LOOP
            UPDATE budgets SET tokens = levels[i], refreshed_ms = p_now
                WHERE agent = p_agents[i] AND budget = p_budgets[i];
        END LOOP;
        RETURN QUERY SELECT 0, 0::BIGINT;
    END $$;";

/// The bucket that stands for flaregate's whole Cloudflare budget.
const EVERYONE: &str = "*";

/// The shared store.
pub struct Shared {
    url: String,
    client: Mutex<Option<Arc<Client>>>,
    /// Each agent's share of the Cloudflare budget, and the whole of it.
    share: RateSpec,
    whole: RateSpec,
    /// What an agent's share of an endpoint's own quota leaves to others.
    reserve_percent: u8,
    /// Refused calls counted here, written by this instance.
    counted: InProcess,
}

/// One bucket a charge draws from.
struct Draw {
    agent: String,
    budget: Budget,
    name: String,
    cap: f64,
    window_ms: f64,
    /// Tokens taken from the bucket.
    count: f64,
    limit: String,
}

impl Shared {
    /// Budgets in the database at `url`: each agent gets `share` of the
    /// Cloudflare budget `whole`.
    pub fn new(url: &str, share: RateSpec, whole: RateSpec) -> Self {
        Self::with_reserve(url, share, whole, 0)
    }

    /// The same, each agent's share of an endpoint's own quota leaving
    /// `reserve_percent` of it to the others.
    pub fn with_reserve(url: &str, share: RateSpec, whole: RateSpec, reserve_percent: u8) -> Self {
        Self {
            url: url.to_string(),
            client: Mutex::new(None),
            share,
            whole,
            reserve_percent,
            counted: InProcess::new(RateSpec::Off),
        }
    }

    /// The connection, made (again) when there is none or it broke.
    async fn client(&self) -> Result<Arc<Client>, String> {
        let mut held = self.client.lock().await;
        if let Some(client) = held.as_ref().filter(|c| !c.is_closed()) {
            return Ok(client.clone());
        }
        let client = crate::postgres_target::PostgresTarget::parse(&self.url)
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| crate::postgres_target::explain(&e))?;
        let client = Arc::new(client);
        *held = Some(client.clone());
        Ok(client)
    }

    fn draws(&self, agent: &str, limits: &Limits, charge: Charge) -> Vec<Draw> {
        let mut draws = Vec::with_capacity(5);
        let mut draw =
            |who: &str, budget, name: &str, spec: Option<(u32, u64)>, count: u32, limit: String| {
                if let Some((requests, window_ms)) = spec.filter(|(n, _)| *n > 0) {
                    draws.push(Draw {
                        agent: who.to_string(),
                        budget,
                        name: name.to_string(),
                        cap: f64::from(requests),
                        window_ms: window_ms as f64,
                        count: f64::from(count),
                        limit,
                    });
                }
            };
        if charge.call {
            let n = limits.calls_per_minute;
            let limit = format!("{} calls this minute", n.unwrap_or_default());
            draw(
                agent,
                Budget::Calls,
                "calls",
                n.map(|n| (n, 60_000)),
                1,
                limit,
            );
        }
        if charge.write {
            let n = limits.writes_per_hour;
            let limit = format!("{} writes this hour", n.unwrap_or_default());
            draw(
                agent,
                Budget::Writes,
                "writes",
                n.map(|n| (n, 3_600_000)),
                1,
                limit,
            );
        }
        if charge.refusal {
            let n = limits
                .refusals_per_minute
                .unwrap_or(DEFAULT_REFUSALS_PER_MINUTE);
            let limit = format!("{n} calls this minute");
            draw(
                agent,
                Budget::Refusals,
                "refusals",
                Some((n, 60_000)),
                1,
                limit,
            );
        }
        if let Some(quota) = charge.quota {
            let whole = super::quota_rate(quota);
            let share = super::agent_share(whole, self.reserve_percent);
            // Named by the quota, so endpoints sharing one share its buckets.
            let name = format!("quota:{}/{}", quota.requests, quota.per_seconds);
            for (who, budget, spec) in [
                (agent, Budget::QuotaShare, share),
                (EVERYONE, Budget::Quota, whole),
            ] {
                if let RateSpec::Limit { requests, per } = spec {
                    let window = per.as_millis() as u64;
                    draw(
                        who,
                        budget,
                        &name,
                        Some((requests, window)),
                        1,
                        spec.to_string(),
                    );
                }
            }
        }
        if charge.upstream > 0 {
            for (who, budget, name, spec) in [
                (agent, Budget::Upstream, "upstream", self.share),
                (EVERYONE, Budget::Cloudflare, "cloudflare", self.whole),
            ] {
                if let RateSpec::Limit { requests, per } = spec {
                    let window = per.as_millis() as u64;
                    draw(
                        who,
                        budget,
                        name,
                        Some((requests, window)),
                        charge.upstream,
                        spec.to_string(),
                    );
                }
            }
        }
        draws
    }

    async fn spend_shared(
        &self,
        agent: &str,
        limits: &Limits,
        charge: Charge,
    ) -> Result<(), OverBudget> {
        let draws = self.draws(agent, limits, charge);
        if draws.is_empty() {
            return Ok(());
        }
        let unavailable = |why: String| OverBudget {
            budget: Budget::Unavailable,
            limit: crate::text::clip(&why, 200),
            retry_after: Duration::from_secs(1),
        };
        let client = self.client().await.map_err(unavailable)?;
        let agents: Vec<&str> = draws.iter().map(|d| d.agent.as_str()).collect();
        let names: Vec<&str> = draws.iter().map(|d| d.name.as_str()).collect();
        let caps: Vec<f64> = draws.iter().map(|d| d.cap).collect();
        let windows: Vec<f64> = draws.iter().map(|d| d.window_ms).collect();
        let counts: Vec<f64> = draws.iter().map(|d| d.count).collect();
        let now = crate::clock::now_unix_ms();
        let row = client
            .query_one(
                "SELECT refused, retry_ms FROM flaregate_spend_n($1, $2, $3, $4, $5, $6)",
                &[&agents, &names, &caps, &windows, &counts, &now],
            )
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let refused: i32 = row.get(0);
        let retry_ms: i64 = row.get(1);
        match usize::try_from(refused)
            .ok()
            .and_then(|i| draws.get(i.checked_sub(1)?))
        {
            None => Ok(()),
            Some(draw) => Err(OverBudget {
                budget: draw.budget,
                limit: draw.limit.clone(),
                retry_after: Duration::from_millis(retry_ms.max(0) as u64),
            }),
        }
    }
}

impl Budgets for Shared {
    fn spend<'a>(&'a self, agent: &'a str, limits: &'a Limits, charge: Charge) -> Spent<'a> {
        Box::pin(self.spend_shared(agent, limits, charge))
    }

    fn suppress(&self, agent: &str, at_ms: i64) {
        self.counted.suppress(agent, at_ms);
    }

    fn take_suppressed(&self) -> Vec<Suppressed> {
        self.counted.take_suppressed()
    }

    fn restore(&self, suppressed: Suppressed) {
        self.counted.restore(suppressed);
    }
}
