//! The durable audit log alone: what flaregate's log costs per call when
//! nothing else runs. N tasks on one tokio worker (as `flaregate serve`
//! runs) each write calls as flaregate writes an allowed read: the decision
//! row (committed), its flush (fsync), the outcome (committed). Same
//! writer thread, fsync thread, SQLite schema and keyed chain as flaregate,
//! in this process, whose CPU is read around the phase (loadgen's own
//! client tasks are idle then).

use std::time::{Duration, Instant};

use flaregate::audit::{AuditLog, CallRecord, Decision, Outcome};

use crate::processes::own_cpu_us;
use crate::{Stats, stats};

/// Runs `sessions` × `calls` audited calls; their latency and this
/// process's CPU µs per call.
pub fn measure(sessions: usize, calls: usize) -> (Stats, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::open(&dir.path().join("audit.db")).expect("audit log");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // Warm-up: the writer's statements prepared, the WAL file open.
        for _ in 0..3 {
            one_call(&log, 0).await;
        }
        let cpu = own_cpu_us();
        let started = Instant::now();
        let tasks: Vec<_> = (0..sessions)
            .map(|session| {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(calls);
                    for _ in 0..calls {
                        let t = Instant::now();
                        one_call(&log, session).await;
                        latencies.push(t.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        let mut all: Vec<Duration> = Vec::with_capacity(sessions * calls);
        for task in tasks {
            all.extend(task.await.expect("an audit task finished"));
        }
        let wall = started.elapsed();
        let cpu_per_call = (own_cpu_us() - cpu) as f64 / (sessions * calls) as f64;
        (stats(all, wall), cpu_per_call)
    })
}

/// One allowed read, as flaregate audits it.
async fn one_call(log: &AuditLog, session: usize) {
    let (row, flushed) = log.begin(record(session)).await.expect("decision written");
    flushed.wait().await.expect("decision flushed");
    let outcome = Outcome {
        status: Some(200),
        duration_ms: Some(0),
        text: "Cloudflare answered 200 in 0 ms.".into(),
        ..Outcome::default()
    };
    log.complete(row, outcome).await.expect("outcome written");
}

/// A row the size of flaregate's for `list_dns_records` on a zone.
fn record(session: usize) -> CallRecord {
    CallRecord {
        ts: flaregate::audit::now_rfc3339(),
        ts_unix_ms: flaregate::audit::now_unix_ms(),
        agent: "bench".into(),
        tool: "list_dns_records".into(),
        method: "GET".into(),
        path: format!("/zones/{}/dns_records", crate::workload::ZONE),
        target: "example.com".into(),
        args: format!(
            "{{\"zone_id\":\"{}\",\"session\":{session}}}",
            crate::workload::ZONE
        ),
        decision: Decision::Allow,
        reason: "its dns grant is read, and the zone example.com is in its zones".into(),
        rule: "grants.dns = read".into(),
        summary: "bench was allowed to list the DNS records of example.com.".into(),
        lookup: String::new(),
        sandbox: false,
    }
}
