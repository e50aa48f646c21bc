//! The policy as the server uses it: the current compiled policy and zone
//! directory, swapped atomically on reload or refresh (readers never wait),
//! names fetched once at start (decisions wait for them; listing tools does
//! not) and again when a call misses one. It reads nothing from Cloudflare
//! for an agent: a call's lookup is the pipeline's (`server::pipeline`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde_json::{Map, Value};

use tokio::sync::{Mutex, OnceCell};

use super::decide::{DenyKind, Verdict};
use super::model::{Agent, Policy};
use super::scope::Directory;
use crate::cloudflare::Client;

/// How often a miss may trigger a directory refresh.
const REFRESH_COOLDOWN: Duration = Duration::from_secs(10);

/// The live policy and the names it refers to.
pub struct Engine {
    policy: ArcSwap<Policy>,
    directory: ArcSwap<Directory>,
    resolver: Option<Client>,
    last_refresh: Mutex<Option<Instant>>,
    /// Set once names were first fetched (or the fetch failed): until
    /// then every decision waits for them.
    first_names: OnceCell<()>,
    /// Whether the policy in force is the one on disk.
    freshness: super::Freshness,
}

impl Engine {
    /// Starts with `policy`, resolving names through `resolver` now (a
    /// failure is logged; names then stay unresolved and deny).
    pub async fn new(policy: Policy, resolver: Option<Client>) -> Self {
        let engine = Self::unresolved(policy, resolver);
        engine.resolve_names().await;
        engine
    }

    /// Starts with `policy` and no names fetched yet: a server can serve
    /// (tools/list needs no names) while [`Engine::resolve_names`] asks
    /// Cloudflare; decisions wait for that first answer.
    pub fn unresolved(policy: Policy, resolver: Option<Client>) -> Self {
        Self {
            policy: ArcSwap::from_pointee(policy),
            directory: ArcSwap::from_pointee(Directory::default()),
            resolver,
            last_refresh: Mutex::new(None),
            first_names: OnceCell::new(),
            freshness: super::Freshness::new(super::OnReloadError::default()),
        }
    }

    /// What to do while a reload has failed (`[policy] on_reload_error`).
    pub fn on_reload_error(mut self, on_error: super::OnReloadError) -> Self {
        self.freshness = super::Freshness::new(on_error);
        self
    }

    /// Whether the policy in force is the one on disk.
    pub fn freshness(&self) -> &super::Freshness {
        &self.freshness
    }

    /// Fetches zone and account names the first time it is called; later
    /// calls (and every decision) return once that fetch has ended.
    pub async fn resolve_names(&self) {
        self.first_names.get_or_init(|| self.refresh()).await;
    }

    /// The current policy. A call keeps the snapshot it started with.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    pub fn directory(&self) -> Arc<Directory> {
        self.directory.load_full()
    }

    /// Installs a newly loaded policy for calls that start from now on.
    pub fn replace_policy(&self, policy: Policy) {
        self.policy.store(Arc::new(policy));
    }

    /// Decides a call under `policy`; when it is denied only because a
    /// name is not resolved, refreshes the directory (at most every few
    /// seconds) and decides again. A call that needs the object it acts on
    /// comes back as [`Verdict::NeedsLookup`]: the caller charges the
    /// lookup, fetches it and decides again ([`Engine::decide_with`]).
    /// Spends nothing, and sends nothing for the agent.
    pub async fn decide(
        &self,
        policy: &Policy,
        agent: &Agent,
        tool: &str,
        args: &Map<String, Value>,
    ) -> Verdict {
        self.resolve_names().await;
        let verdict = policy.decide(agent, tool, args, &self.directory.load(), None);
        if verdict.deny_kind() != Some(DenyKind::Unresolved) {
            return verdict;
        }
        // Decided again even when another call's refresh (or the one at
        // start-up) just ran: this call may have waited behind it.
        self.refresh_if_stale().await;
        policy.decide(agent, tool, args, &self.directory.load(), None)
    }

    /// Decides a call again with the object it acts on, as fetched.
    pub fn decide_with(
        &self,
        policy: &Policy,
        agent: &Agent,
        tool: &str,
        args: &Map<String, Value>,
        current: &Map<String, Value>,
    ) -> Verdict {
        policy.decide(agent, tool, args, &self.directory.load(), Some(current))
    }

    /// Refreshes unless a miss already did within the cool-down; misses
    /// wait for one refresh rather than each starting their own.
    async fn refresh_if_stale(&self) {
        let mut last = self.last_refresh.lock().await;
        if last.is_some_and(|at| at.elapsed() < REFRESH_COOLDOWN) {
            return;
        }
        *last = Some(Instant::now());
        self.refresh().await;
    }

    /// Fetches zone and account names; on failure the old ones stay.
    async fn refresh(&self) {
        let Some(client) = &self.resolver else {
            return;
        };
        let catalog = self.policy.load().catalog().clone();
        match Directory::fetch(client, &catalog).await {
            Ok(directory) => {
                tracing::info!(
                    zones = directory.zone_ids.len(),
                    accounts = directory.account_ids.len(),
                    "resolved zone and account names"
                );
                self.directory.store(Arc::new(directory));
                self.report_unresolved();
            }
            Err(error) => {
                tracing::error!(%error, "the Cloudflare token cannot list zones and accounts (it needs Zone Read and Account Settings Read to resolve names); calls on zones and accounts named in policies are denied");
            }
        }
    }

    /// Logs every name of the policy that the directory does not know,
    /// with its file and line.
    fn report_unresolved(&self) {
        for problem in self.policy.load().unresolved_names(&self.directory.load()) {
            tracing::error!("{problem}");
        }
    }

    /// Installs a reloaded policy, then fetches names it adds (at most as
    /// often as misses may) and reports any that do not resolve.
    pub async fn install(&self, policy: Policy) {
        self.replace_policy(policy);
        self.freshness.loaded();
        if self.resolver.is_some()
            && !self
                .policy
                .load()
                .unresolved_names(&self.directory.load())
                .is_empty()
        {
            self.refresh_if_stale().await;
            self.report_unresolved();
        }
    }
}
