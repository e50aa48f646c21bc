//! End-to-end load: N concurrent MCP sessions over streamable HTTP calling
//! a read tool through flaregate to a sandbox running as its own process,
//! and in the same run the same requests sent straight to the sandbox.
//! Reports throughput, p50 and p99 for both and their ratios, flaregate's
//! RSS idle and under load, and the time from start to the first tools/list
//! answer; writes docs/perf/results.json and docs/perf/latency.svg.
//!
//! Two more paths give the floors: the same GETs through a bare pass-through
//! proxy (`passthrough.rs`, its own process), the least any gateway in front
//! of the sandbox costs on these cores; and the same MCP calls through a bare
//! MCP proxy (`mcp_proxy.rs`: rmcp and one forwarding tool, no policy, no
//! audit log), the least an MCP server built on rmcp costs. Last, flaregate's
//! durable audit log alone (`audit_floor.rs`, in this process): what the log
//! costs a call with nothing else running.
//!
//!     cargo build --release && cargo run --release --example loadgen -- [--calls 200] [--sessions 1,2,4,8,16,32,64,100]
//!         [--protocol modern|legacy] [--audit-sync full|normal] [--upstream-latency-ms 0] [--think-ms 0]
//!         [--tool list_dns_records|list_zones] [--catalog DIR] [--audit-db postgres://…] [--instances N]
//!         [--sandbox-listen ADDR] [--peer URL --peer-key KEY [--peer-protocol legacy|modern]] [--workers N]
//!         [--out docs/perf]
//!
//! `--workers N` runs flaregate with N async worker threads (its default is one).
//!
//! `--peer` adds a contender running on its own (agentgateway, built as
//! docs/performance.md says): the same calls through it, in the same loop,
//! with its CPU read from /proc when this user can see its process. It must
//! forward to the sandbox loadgen starts, so give the sandbox the address
//! the peer's config names (`--sandbox-listen 127.0.0.1:18081`); with a peer
//! the read is `list_zones` unless `--tool` says otherwise.
//!
//! `--instances N` (with a PostgreSQL `--audit-db`) starts N servers on the
//! one database and spreads the sessions over them; CPU is theirs summed.
//!
//! `--upstream-latency-ms` makes the sandbox wait that long before each
//! answer, as a stand-in for Cloudflare's own latency. `--think-ms` makes
//! each session pause that long between calls, as an agent does while its
//! model thinks: every call then starts from idle.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod audit_floor;
mod mcp;
mod mcp_proxy;
mod passthrough;
mod plot;
mod processes;
mod workload;

use mcp::{Protocol, Session};
use processes::{CpuMeter, CpuPerCall, binary, listening_pid, rss_kb, start};
use workload::Workload;

const TOKEN: &str = "loadgen-sandbox-token";

struct Options {
    calls: usize,
    sessions: Vec<usize>,
    out: PathBuf,
    audit_sync: String,
    /// The audit log (a PostgreSQL URL); a fresh SQLite file by default.
    audit_db: Option<String>,
    /// Servers on that log, the sessions spread over them.
    instances: usize,
    protocol: Protocol,
    upstream_latency_ms: u64,
    think: Duration,
    /// The catalog folder flaregate serves (default: the shipped one).
    catalog: Option<PathBuf>,
    /// The read every path makes.
    workload: Workload,
    /// Where the sandbox listens (a peer started beforehand names it).
    sandbox_listen: String,
    peer: Option<Peer>,
    /// flaregate's async worker threads (`TOKIO_WORKER_THREADS`), if set.
    workers: Option<usize>,
}

/// A contender MCP gateway loadgen did not start.
struct Peer {
    url: String,
    key: String,
    /// agentgateway speaks 2025-11-25 sessions.
    protocol: Protocol,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    Options {
        calls: value("--calls").and_then(|v| v.parse().ok()).unwrap_or(200),
        sessions: value("--sessions")
            .map(|v| v.split(',').filter_map(|n| n.parse().ok()).collect())
            .unwrap_or_else(|| vec![1, 2, 4, 8, 16, 32, 64, 100]),
        out: value("--out")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("docs/perf")),
        audit_sync: value("--audit-sync").unwrap_or_else(|| "full".to_string()),
        audit_db: value("--audit-db"),
        instances: value("--instances")
            .map(|v| v.parse().expect("--instances is a number"))
            .unwrap_or(1),
        protocol: value("--protocol")
            .map(|p| Protocol::parse(&p).expect("--protocol is modern or legacy"))
            .unwrap_or(Protocol::Modern),
        think: Duration::from_millis(
            value("--think-ms")
                .map(|v| v.parse().expect("--think-ms is a number"))
                .unwrap_or(0),
        ),
        upstream_latency_ms: value("--upstream-latency-ms")
            .map(|v| v.parse().expect("--upstream-latency-ms is a number"))
            .unwrap_or(0),
        catalog: value("--catalog").map(PathBuf::from),
        workload: match value("--tool") {
            Some(tool) => Workload::parse(&tool).expect("--tool is list_dns_records or list_zones"),
            None if value("--peer").is_some() => Workload::Zones,
            None => Workload::DnsRecords,
        },
        sandbox_listen: value("--sandbox-listen").unwrap_or_else(|| "127.0.0.1:0".to_string()),
        workers: value("--workers").map(|v| v.parse().expect("--workers is a number")),
        peer: value("--peer").map(|url| Peer {
            url,
            key: value("--peer-key").expect("--peer needs --peer-key"),
            protocol: value("--peer-protocol")
                .map(|p| Protocol::parse(&p).expect("--peer-protocol is modern or legacy"))
                .unwrap_or(Protocol::Legacy),
        }),
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    pub calls: usize,
    pub seconds: f64,
    pub throughput: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Every task's latencies, as one set of figures for the run that began at
/// `started`, and what each task hands back once its calls are done.
async fn gather<T>(
    tasks: Vec<tokio::task::JoinHandle<(Vec<Duration>, T)>>,
    started: Instant,
) -> (Stats, Vec<T>) {
    let mut all = Vec::new();
    let mut kept = Vec::new();
    for task in tasks {
        let (latencies, rest) = task.await.expect("a load task finished");
        all.extend(latencies);
        kept.push(rest);
    }
    (stats(all, started.elapsed()), kept)
}

fn stats(mut latencies: Vec<Duration>, wall: Duration) -> Stats {
    latencies.sort();
    let pick = |q: f64| {
        latencies[((latencies.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0
    };
    Stats {
        calls: latencies.len(),
        seconds: wall.as_secs_f64(),
        throughput: latencies.len() as f64 / wall.as_secs_f64(),
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
    }
}

/// The run's calls through an MCP server (flaregate, the bare MCP proxy,
/// the peer), `sessions` at once, each spread over `urls`.
async fn through_mcp(
    urls: &[String],
    key: &str,
    protocol: Protocol,
    workload: Workload,
    sessions: usize,
    calls: usize,
    think: Duration,
) -> Stats {
    let mut clients = Vec::new();
    for session in 0..sessions {
        let url = &urls[session % urls.len()];
        let mut client = Session::open(url, key, protocol).await.expect("open");
        for _ in 0..3 {
            call(&mut client, workload).await; // warm-up
        }
        clients.push(client);
    }
    let started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(calls);
                for _ in 0..calls {
                    let t = Instant::now();
                    call(&mut client, workload).await;
                    latencies.push(t.elapsed());
                    pause(think).await;
                }
                (latencies, client)
            })
        })
        .collect();
    let (stats, clients) = gather(tasks, started).await;
    for client in clients {
        client.close().await.expect("session closed");
    }
    stats
}

async fn call(client: &mut Session, workload: Workload) {
    let result = client
        .call_tool(workload.tool(), workload.arguments())
        .await
        .expect("call");
    assert_eq!(result["isError"], false, "{result}");
}

/// Waits between two calls of a session, as an agent's model does.
async fn pause(think: Duration) {
    if !think.is_zero() {
        tokio::time::sleep(think).await;
    }
}

/// The same read as plain GETs to `base`: the sandbox itself, or the proxy.
async fn plain_gets(
    base: &str,
    workload: Workload,
    sessions: usize,
    calls: usize,
    think: Duration,
) -> Stats {
    let url = format!("{base}{}", workload.path());
    let started = Instant::now();
    let tasks: Vec<_> = (0..sessions)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut latencies = Vec::with_capacity(calls);
                for i in 0..calls + 3 {
                    let t = Instant::now();
                    let body: Value = http
                        .get(&url)
                        .bearer_auth(TOKEN)
                        .send()
                        .await
                        .expect("send")
                        .json()
                        .await
                        .expect("json");
                    assert_eq!(body["success"], true);
                    if i >= 3 {
                        latencies.push(t.elapsed());
                    }
                    pause(think).await;
                }
                (latencies, ())
            })
        })
        .collect();
    gather(tasks, started).await.0
}

#[derive(serde::Serialize)]
pub struct Row {
    pub sessions: usize,
    pub flaregate: Stats,
    pub direct: Stats,
    pub throughput_ratio: f64,
    pub added_p50_ms: f64,
    pub added_p99_ms: f64,
    pub rss_kb: u64,
    pub flaregate_cpu: CpuPerCall,
    pub direct_cpu: CpuPerCall,
    /// Through the bare pass-through proxy: the floor.
    pub passthrough: Stats,
    /// Through the bare MCP proxy (rmcp, no policy, no log): MCP's floor.
    pub mcp_proxy: Stats,
    pub mcp_proxy_cpu: CpuPerCall,
    /// flaregate's durable audit log alone, in this process (SQLite runs
    /// only): its latency and CPU µs per call.
    pub audit_floor: Option<Stats>,
    pub audit_floor_cpu_us: Option<f64>,
    pub passthrough_ratio: f64,
    pub passthrough_added_p50_ms: f64,
    pub passthrough_added_p99_ms: f64,
    pub passthrough_cpu: CpuPerCall,
    /// Through the peer gateway, when one was given.
    pub peer: Option<Stats>,
    pub peer_cpu: Option<CpuPerCall>,
    pub peer_added_p50_ms: Option<f64>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--mcp-proxy") {
        let upstream = args.get(i + 1).expect("--mcp-proxy takes the upstream URL");
        let workload = args
            .get(i + 2)
            .and_then(|tool| Workload::parse(tool))
            .expect("--mcp-proxy takes the tool after the URL");
        // Its own runtime: one worker, as flaregate runs.
        return mcp_proxy::serve(upstream.clone(), TOKEN.to_string(), workload);
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    if let Some(i) = args.iter().position(|a| a == "--passthrough") {
        let upstream = args
            .get(i + 1)
            .expect("--passthrough takes the upstream URL");
        return runtime.block_on(passthrough::serve(upstream.clone()));
    }
    runtime.block_on(run());
}

async fn run() {
    let options = options();
    let bin = binary();
    let dir = tempfile::tempdir().expect("tempdir");
    let (sandbox, api, _sandbox_out) = start(
        Command::new(&bin).args([
            "sandbox",
            "--listen",
            &options.sandbox_listen,
            "--rate-limit",
            "off",
            "--token",
            TOKEN,
            "--log-level",
            "warn",
            "--latency-ms",
            &options.upstream_latency_ms.to_string(),
        ]),
        "API:",
    );
    let (key, hash) = flaregate::policy::new_key();
    let policy = dir.path().join("bench.toml");
    std::fs::write(
        &policy,
        format!(
            "[[agent]]\nid = \"bench\"\nkey_sha256 = [\"{hash}\"]\nzones = [\"*\"]\ngrants = {{ {} = \"read\" }}\n",
            options.workload.group()
        ),
    )
    .expect("policy");
    let config = dir.path().join("flaregate.toml");
    std::fs::write(
        &config,
        format!(
            "audit_sync = \"{}\"\naudit_key = \"{}\"\n[cloudflare]\nrate_limit = \"off\"\n",
            options.audit_sync,
            dir.path().join("audit.key").display()
        ),
    )
    .expect("config");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));

    let (proxy, proxy_url, _proxy_out) = start(
        Command::new(std::env::current_exe().expect("own path")).args(["--passthrough", &api]),
        "PROXY:",
    );
    let (mcp_proxy, mcp_proxy_url, _mcp_proxy_out) = start(
        Command::new(std::env::current_exe().expect("own path")).args([
            "--mcp-proxy",
            &api,
            options.workload.tool(),
        ]),
        "MCP-PROXY:",
    );
    assert!(
        options.instances == 1 || options.audit_db.is_some(),
        "--instances needs a PostgreSQL --audit-db: instances share one log"
    );
    let launched = Instant::now();
    let mut servers = Vec::new();
    for _ in 0..options.instances.max(1) {
        let mut serve = Command::new(&bin);
        if let Some(workers) = options.workers {
            serve.env("TOKIO_WORKER_THREADS", workers.to_string());
        }
        servers.push(start(
            serve
                .args(["serve", "--http", "127.0.0.1:0", "--log-level", "warn"])
                .args([
                    "--config",
                    config.to_str().expect("utf-8"),
                    "--policies",
                    policy.to_str().expect("utf-8"),
                ])
                .arg("--catalog")
                .arg(
                    options
                        .catalog
                        .clone()
                        .unwrap_or_else(|| repo.join("catalog")),
                )
                .args([
                    "--audit-db",
                    &options
                        .audit_db
                        .clone()
                        .unwrap_or_else(|| dir.path().join("audit.db").display().to_string()),
                ])
                .env("CLOUDFLARE_API_TOKEN", TOKEN)
                .env("CLOUDFLARE_API_BASE_URL", &api),
            "MCP:",
        ));
    }
    let urls: Vec<String> = servers.iter().map(|(_, url, _)| url.clone()).collect();
    let url = urls[0].clone();
    let first_list = loop {
        if let Ok(mut client) = Session::open(&url, &key, options.protocol).await
            && client.list_tools().await.is_ok()
        {
            break launched.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = servers[0].0.0.id();
    let pids: Vec<u32> = servers.iter().map(|(server, ..)| server.0.id()).collect();
    let sandbox_pid = sandbox.0.id();
    let proxy_pid = proxy.0.id();
    let mcp_proxy_pid = mcp_proxy.0.id();
    let peer_pid = options.peer.as_ref().and_then(|peer| {
        let port = reqwest::Url::parse(&peer.url)
            .ok()?
            .port_or_known_default()?;
        let pid = listening_pid(port);
        if pid.is_none() {
            eprintln!("the peer's process is not visible here: its CPU is not measured");
        }
        pid
    });
    let idle_kb = rss_kb(pid);
    println!(
        "start-up to first tools/list answer: {:.1} ms",
        first_list.as_secs_f64() * 1000.0
    );
    println!("RSS idle: {:.1} MB", idle_kb as f64 / 1024.0);

    let mut rows = Vec::new();
    println!(
        "\n| sessions | flaregate calls/s | direct calls/s | ratio | flaregate p50 / p99 ms | direct p50 / p99 ms | added p50 / p99 ms | RSS MB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &sessions in &options.sessions {
        let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let sampler = {
            let peak = peak.clone();
            let think = options.think;
            tokio::spawn(async move {
                loop {
                    peak.fetch_max(rss_kb(pid), std::sync::atomic::Ordering::Relaxed);
                    // At most one reading per call: with --think-ms the
                    // readings would otherwise be most of the client's CPU.
                    tokio::time::sleep(think.max(Duration::from_millis(20))).await;
                }
            })
        };
        let calls = sessions * (options.calls + 3);
        let meter = CpuMeter::start(&pids, sandbox_pid);
        let through = through_mcp(
            &urls,
            &key,
            options.protocol,
            options.workload,
            sessions,
            options.calls,
            options.think,
        )
        .await;
        let flaregate_cpu = meter.per_call(calls);
        sampler.abort();
        let meter = CpuMeter::start(&[mcp_proxy_pid], sandbox_pid);
        let mcp_proxied = through_mcp(
            std::slice::from_ref(&mcp_proxy_url),
            &key,
            options.protocol,
            options.workload,
            sessions,
            options.calls,
            options.think,
        )
        .await;
        let mcp_proxy_cpu = meter.per_call(calls);
        let (peer, peer_cpu) = match &options.peer {
            Some(peer) => {
                let meter = CpuMeter::start(&Vec::from_iter(peer_pid), sandbox_pid);
                let stats = through_mcp(
                    std::slice::from_ref(&peer.url),
                    &peer.key,
                    peer.protocol,
                    options.workload,
                    sessions,
                    options.calls,
                    options.think,
                )
                .await;
                (Some(stats), peer_pid.map(|_| meter.per_call(calls)))
            }
            None => (None, None),
        };
        let meter = CpuMeter::start(&[proxy_pid], sandbox_pid);
        let proxied = plain_gets(
            &proxy_url,
            options.workload,
            sessions,
            options.calls,
            options.think,
        )
        .await;
        let passthrough_cpu = meter.per_call(calls);
        let meter = CpuMeter::start(&[], sandbox_pid);
        let straight = plain_gets(
            &api,
            options.workload,
            sessions,
            options.calls,
            options.think,
        )
        .await;
        let direct_cpu = meter.per_call(calls);
        let (audit_floor, audit_floor_cpu_us) = match options.audit_db {
            None => {
                let calls = options.calls;
                let (floor, cpu) =
                    tokio::task::spawn_blocking(move || audit_floor::measure(sessions, calls))
                        .await
                        .expect("the audit floor phase ran");
                (Some(floor), Some(cpu))
            }
            Some(_) => (None, None),
        };
        let row = Row {
            peer_added_p50_ms: peer.as_ref().map(|p| p.p50_ms - straight.p50_ms),
            peer,
            peer_cpu,
            audit_floor,
            audit_floor_cpu_us,
            passthrough_ratio: proxied.throughput / straight.throughput,
            passthrough_added_p50_ms: proxied.p50_ms - straight.p50_ms,
            passthrough_added_p99_ms: proxied.p99_ms - straight.p99_ms,
            passthrough_cpu,
            passthrough: proxied,
            mcp_proxy: mcp_proxied,
            mcp_proxy_cpu,
            sessions,
            throughput_ratio: through.throughput / straight.throughput,
            added_p50_ms: through.p50_ms - straight.p50_ms,
            added_p99_ms: through.p99_ms - straight.p99_ms,
            rss_kb: peak.load(std::sync::atomic::Ordering::Relaxed),
            flaregate_cpu,
            direct_cpu,
            flaregate: through,
            direct: straight,
        };
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.3} / {:.3} | {:.3} / {:.3} | {:.3} / {:.3} | {:.1} |",
            row.sessions,
            row.flaregate.throughput,
            row.direct.throughput,
            row.throughput_ratio,
            row.flaregate.p50_ms,
            row.flaregate.p99_ms,
            row.direct.p50_ms,
            row.direct.p99_ms,
            row.added_p50_ms,
            row.added_p99_ms,
            row.rss_kb as f64 / 1024.0
        );
        rows.push(row);
    }
    println!(
        "\nThe floor: the same GETs through a bare pass-through proxy:\n| sessions | proxy calls/s | ratio to direct | proxy added p50 / p99 ms |\n|---:|---:|---:|---:|"
    );
    for row in &rows {
        println!(
            "| {} | {:.0} | {:.2} | {:.3} / {:.3} |",
            row.sessions,
            row.passthrough.throughput,
            row.passthrough_ratio,
            row.passthrough_added_p50_ms,
            row.passthrough_added_p99_ms
        );
    }
    println!(
        "\nThe MCP floor: the same calls through a bare MCP proxy (rmcp, no policy, no log):\n| sessions | MCP proxy calls/s | MCP proxy p50 / p99 ms |\n|---:|---:|---:|"
    );
    for row in &rows {
        println!(
            "| {} | {:.0} | {:.3} / {:.3} |",
            row.sessions, row.mcp_proxy.throughput, row.mcp_proxy.p50_ms, row.mcp_proxy.p99_ms
        );
    }
    println!(
        "\nCPU µs per call (client / gateway / sandbox), flaregate's gateway CPU over the bare proxy's, and the audit log alone (its CPU and p50):\n| sessions | through flaregate | through the bare MCP proxy | through the bare proxy | direct | flaregate ÷ bare proxy | audit log alone µs / p50 ms |\n|---:|---:|---:|---:|---:|---:|---:|"
    );
    for row in &rows {
        let (f, m, p, d) = (
            row.flaregate_cpu,
            row.mcp_proxy_cpu,
            row.passthrough_cpu,
            row.direct_cpu,
        );
        println!(
            "| {} | {:.0} / {:.0} / {:.0} | {:.0} / {:.0} / {:.0} | {:.0} / {:.0} / {:.0} | {:.0} / – / {:.0} | {:.1}× | {} |",
            row.sessions,
            f.client_us,
            f.gateway_us,
            f.sandbox_us,
            m.client_us,
            m.gateway_us,
            m.sandbox_us,
            p.client_us,
            p.gateway_us,
            p.sandbox_us,
            d.client_us,
            d.sandbox_us,
            f.gateway_us / p.gateway_us,
            match (&row.audit_floor, row.audit_floor_cpu_us) {
                (Some(floor), Some(cpu)) => format!("{cpu:.0} / {:.3}", floor.p50_ms),
                _ => "–".to_string(),
            }
        );
    }

    if options.peer.is_some() {
        println!(
            "\nAgainst the peer ({}), the same calls in the same loop:\n| sessions | flaregate calls/s | peer calls/s | flaregate ÷ peer | added p50 ms: flaregate / peer | gateway CPU µs per call: flaregate / peer |\n|---:|---:|---:|---:|---:|---:|",
            options.peer.as_ref().map_or("", |p| &p.url)
        );
        for row in &rows {
            let Some(peer) = &row.peer else { continue };
            println!(
                "| {} | {:.0} | {:.0} | {:.2} | {:.3} / {:.3} | {:.0} / {} |",
                row.sessions,
                row.flaregate.throughput,
                peer.throughput,
                row.flaregate.throughput / peer.throughput,
                row.added_p50_ms,
                row.peer_added_p50_ms.unwrap_or(f64::NAN),
                row.flaregate_cpu.gateway_us,
                row.peer_cpu
                    .map_or("–".to_string(), |c| format!("{:.0}", c.gateway_us)),
            );
        }
    }

    std::fs::create_dir_all(&options.out).expect("output folder");
    let report = json!({
        "calls_per_session": options.calls,
        "audit_sync": options.audit_sync,
        "audit_store": if options.audit_db.is_some() { "postgres" } else { "sqlite" },
        "instances": options.instances,
        "protocol": options.protocol,
        "upstream_latency_ms": options.upstream_latency_ms,
        "tool": options.workload.tool(),
        "workers": options.workers,
        "peer": options.peer.as_ref().map(|p| &p.url),
        "think_ms": options.think.as_millis() as u64,
        "startup_to_first_tools_list_ms": first_list.as_secs_f64() * 1000.0,
        "rss_idle_kb": idle_kb,
        "rows": rows,
    });
    std::fs::write(
        options.out.join("results.json"),
        serde_json::to_string_pretty(&report).expect("json"),
    )
    .expect("write results");
    std::fs::write(options.out.join("latency.svg"), plot::plot(&rows)).expect("write plot");
    println!(
        "\nwrote {0}/results.json and {0}/latency.svg",
        options.out.display()
    );
}
