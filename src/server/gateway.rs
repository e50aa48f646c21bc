//! What every transport shares: the policy engine, the tools, the
//! Cloudflare client, the audit log and the clients to notify.

use std::sync::Arc;

use crate::approval::Approvals;
use crate::audit::{AuditLog, ChainKey};
use crate::budget::Budgets;
use crate::catalog::Catalog;
use crate::cloudflare::Client;
use crate::metrics::Metrics;
use crate::policy::Engine;

use super::notify::Notifier;
use super::tools::ToolTable;

/// The running gateway.
pub struct Gateway {
    pub(super) catalog: Arc<Catalog>,
    pub(super) engine: Engine,
    pub(super) tools: ToolTable,
    pub(super) search: super::discovery::SearchIndex,
    pub(super) client: Client,
    pub(super) audit: AuditLog,
    pub(super) notifier: Notifier,
    /// Upstream is the built-in sandbox: rows are marked as sandbox rows.
    pub(super) sandbox: bool,
    pub(super) budgets: Arc<dyn Budgets>,
    pub(super) metrics: Metrics,
    /// Requests for approval and their decisions, keyed with the audit key.
    pub(super) approvals: Option<(Approvals, ChainKey)>,
    /// The audit database, read by undo (rows and their snapshots).
    pub(super) audit_db: std::path::PathBuf,
    /// Where call spans go, when traces are on (`--otlp-endpoint`).
    pub(super) tracer: std::sync::OnceLock<crate::telemetry::Tracer>,
}

impl Gateway {
    /// `engine` should resolve names with the same `client`; `audit_db`
    /// is the file `audit` writes.
    pub fn new(
        catalog: Arc<Catalog>,
        engine: Engine,
        client: Client,
        (audit, audit_db): (AuditLog, std::path::PathBuf),
        sandbox: bool,
        budgets: Arc<dyn Budgets>,
        approvals: Option<(Approvals, ChainKey)>,
    ) -> Arc<Self> {
        Arc::new(Self {
            tools: ToolTable::new(&catalog),
            search: super::discovery::SearchIndex::new(&catalog),
            catalog,
            engine,
            client,
            audit,
            notifier: Notifier::default(),
            sandbox,
            budgets,
            metrics: Metrics::default(),
            approvals,
            audit_db,
            tracer: std::sync::OnceLock::new(),
        })
    }

    /// Sends a span for every call to `tracer` from now on.
    pub fn trace_with(&self, tracer: crate::telemetry::Tracer) {
        let _ = self.tracer.set(tracer);
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// What `/metrics` reports.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The audit log (for `/ready` and the queue depth).
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// The Cloudflare client (shared budget and connection pool).
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Makes every audit row durable and checkpoints the log's head; for
    /// a clean shutdown.
    pub async fn close(&self) {
        if let Err(error) = self.record_suppressed().await {
            tracing::error!(%error, "cannot record the refused calls counted last");
        }
        if let Err(error) = self.record_decisions().await {
            tracing::error!(%error, "cannot record the operators' last approvals");
        }
        match self.audit.close().await {
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
                if let Err(error) = gateway.record_suppressed().await {
                    tracing::error!(%error, "cannot record counted refusals");
                }
                if let Err(error) = gateway.record_decisions().await {
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
