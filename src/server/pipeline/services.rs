//! What the stages use: plain fields, so a test can build one.

use std::sync::{Arc, OnceLock};

use crate::approval::Approvals;
use crate::audit::{AuditLog, ChainKey, Database};
use crate::budget::Budgets;
use crate::catalog::Catalog;
use crate::cloudflare::Client;
use crate::metrics::Metrics;
use crate::policy::Engine;
use crate::telemetry::Tracer;

/// The services every call's stages use.
pub(crate) struct Services {
    pub catalog: Arc<Catalog>,
    /// The live policy and the zone and account names it refers to.
    pub engine: Engine,
    /// The one client to Cloudflare (reached only through `upstream.rs`).
    pub client: Client,
    pub audit: AuditLog,
    /// The audit database, read by undo (rows and their snapshots).
    pub audit_db: Database,
    pub budgets: Arc<dyn Budgets>,
    pub metrics: Metrics,
    /// Requests for approval and their decisions, keyed with the audit key.
    pub approvals: Option<(Approvals, ChainKey)>,
    /// Upstream is the built-in sandbox: rows are marked as sandbox rows.
    pub sandbox: bool,
    /// Where call spans go, when traces are on (`--otlp-endpoint`).
    pub tracer: OnceLock<Tracer>,
}
