//! What every transport shares: the pipeline's services, and what only MCP
//! needs beside them (the tool table, the discovery index, the clients to
//! notify).

use std::sync::{Arc, OnceLock};

use crate::approval::Approvals;
use crate::audit::{AuditLog, ChainKey};
use crate::budget::Budgets;
use crate::catalog::Catalog;
use crate::cloudflare::Client;
use crate::metrics::Metrics;
use crate::policy::Engine;

use super::mcp::{Notifier, SearchIndex, ToolTable};
use super::pipeline::Services;

/// The running gateway.
pub struct Gateway {
    pub(super) services: Services,
    pub(super) tools: ToolTable,
    pub(super) search: SearchIndex,
    pub(super) notifier: Notifier,
    alert_feed: AlertFeed,
}

/// New alerts' audit row ids, as they are recorded: the sessions
/// subscribed to alerts hear of each (those that may see it).
pub struct AlertFeed(tokio::sync::broadcast::Sender<i64>);

impl Default for AlertFeed {
    fn default() -> Self {
        Self(tokio::sync::broadcast::channel(256).0)
    }
}

impl AlertFeed {
    /// Tells every listener of a new alert's row.
    pub fn published(&self, row: i64) {
        // No listener is no error: nobody subscribed.
        let _ = self.0.send(row);
    }

    /// Hears of each alert from now on.
    pub fn listen(&self) -> tokio::sync::broadcast::Receiver<i64> {
        self.0.subscribe()
    }
}

impl Gateway {
    /// `engine` should resolve names with the same `client`; `audit_db`
    /// is the file `audit` writes.
    pub fn new(
        catalog: Arc<Catalog>,
        engine: Engine,
        client: Client,
        (audit, audit_db): (AuditLog, crate::audit::Database),
        sandbox: bool,
        budgets: Arc<dyn Budgets>,
        approvals: Option<(Approvals, ChainKey)>,
    ) -> Arc<Self> {
        Arc::new(Self {
            tools: ToolTable::new(&catalog),
            search: SearchIndex::new(&catalog),
            notifier: Notifier::default(),
            alert_feed: AlertFeed::default(),
            services: Services {
                catalog,
                engine,
                client,
                audit,
                audit_db,
                budgets,
                metrics: Metrics::default(),
                approvals,
                sandbox,
                tracer: OnceLock::new(),
            },
        })
    }

    /// New alerts, as they are recorded.
    pub fn alerts(&self) -> &AlertFeed {
        &self.alert_feed
    }

    /// Sends a span for every call to `tracer` from now on.
    pub fn trace_with(&self, tracer: crate::telemetry::Tracer) {
        let _ = self.services.tracer.set(tracer);
    }

    pub fn engine(&self) -> &Engine {
        &self.services.engine
    }

    /// What `/metrics` reports.
    pub fn metrics(&self) -> &Metrics {
        &self.services.metrics
    }

    /// The approvals waiting for people (for `/metrics`).
    pub fn approvals(&self) -> Option<&Approvals> {
        self.services
            .approvals
            .as_ref()
            .map(|(approvals, _)| approvals)
    }

    /// Whether the upstream is the built-in sandbox (rows say so).
    pub fn sandbox(&self) -> bool {
        self.services.sandbox
    }

    /// Where the audit log is (the console reads rows from it).
    pub fn audit_db(&self) -> &crate::audit::Database {
        &self.services.audit_db
    }

    /// The audit log (for `/ready` and the queue depth).
    pub fn audit(&self) -> &AuditLog {
        &self.services.audit
    }

    /// The Cloudflare client (shared budget and connection pool).
    pub fn client(&self) -> &Client {
        &self.services.client
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.services.catalog
    }

    /// Makes every audit row durable and checkpoints the log's head; for
    /// a clean shutdown.
    pub async fn close(&self) {
        if let Err(error) = self.services.record_suppressed().await {
            tracing::error!(%error, "cannot record the refused calls counted last");
        }
        if let Err(error) = self.services.record_decisions().await {
            tracing::error!(%error, "cannot record the operators' last approvals");
        }
        match self.services.audit.close().await {
            Ok(head) => tracing::info!(%head, "audit log closed"),
            Err(error) => tracing::error!(%error, "cannot close the audit log cleanly"),
        }
    }

    /// Writes the counted refusals, and the approvals decided on the host,
    /// every `every` until `shutdown`.
    pub fn record_suppressed_every(
        self: &Arc<Self>,
        every: std::time::Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let gateway = self.clone();
        tokio::spawn(async move {
            // The first round after `every`, not at once: nothing is waiting yet
            // and start-up stays free of blocking work.
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                if let Err(error) = gateway.services.record_suppressed().await {
                    tracing::error!(%error, "cannot record counted refusals");
                }
                if let Err(error) = gateway.services.record_decisions().await {
                    tracing::error!(%error, "cannot record the operators' approvals");
                }
            }
        });
    }

    /// Tells connected clients to list their tools again.
    pub async fn tools_changed(&self) {
        self.notifier.tools_changed().await;
    }
}
