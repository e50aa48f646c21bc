//! Several instances, one truth: three `flaregate serve` processes on one
//! PostgreSQL database and one sandbox write one hash chain (one row per
//! call, verified); with the database down calls are refused, and served
//! again when it is back; an instance killed mid-load loses no call it
//! answered.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::postgres::Postgres;
use common::{SandboxProcess, ServerProcess, try_call};
use flaregate::audit::{self, AuditFiles, ChainVerdict, Filter};
use flaregate::sandbox::{ACCOUNT_ID, EXAMPLE_COM, EXAMPLE_ORG};
use serde_json::json;

/// Three instances' shared setup: the database, the sandbox, one policy
/// (an agent with a fixed key), one audit key file.
struct Cluster {
    pg: Postgres,
    upstream: SandboxProcess,
    dir: tempfile::TempDir,
    key: String,
}

impl Cluster {
    fn start(limits: &str) -> Option<Self> {
        Self::start_with(limits, "")
    }

    /// With more lines for the agent (`approve = [...]`).
    fn start_with(limits: &str, more: &str) -> Option<Self> {
        let pg = Postgres::start()?;
        let upstream = SandboxProcess::start(&["--rate-limit", "off"]);
        let dir = tempfile::tempdir().expect("tempdir");
        let (key, hash) = flaregate::policy::new_key();
        std::fs::write(
            dir.path().join("policy.toml"),
            format!(
                "[[agent]]\nid = \"load\"\nkey_sha256 = [\"{hash}\"]\nzones = [\"example.com\"]\naccounts = [\"*\"]\ngrants = {{ workers = \"read\", cache = \"full\" }}\nlimits = {{ refusals_per_minute = 1000000{limits} }}\n{more}"
            ),
        )
        .expect("policy");
        std::fs::write(
            dir.path().join("flaregate.toml"),
            format!(
                "audit_db = \"{}\"\naudit_key = \"{}\"\n[cloudflare]\nrate_limit = \"off\"\ncheck_grants_at_start = false\n",
                pg.url,
                dir.path().join("audit.key").display()
            ),
        )
        .expect("config");
        Some(Self {
            pg,
            upstream,
            dir,
            key,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// One more instance on the shared database, with its admin listener.
    fn instance(&self) -> ServerProcess {
        let env = [
            ("CLOUDFLARE_API_TOKEN", self.upstream.token.as_str()),
            ("CLOUDFLARE_API_BASE_URL", self.upstream.base_url.as_str()),
        ];
        ServerProcess::start(
            &[
                "--policies",
                self.path("policy.toml").to_str().expect("utf-8"),
                "--config",
                self.path("flaregate.toml").to_str().expect("utf-8"),
                "--audit-db",
                &self.pg.url,
                "--admin",
                "127.0.0.1:0",
            ],
            &env,
        )
    }

    fn rows(&self) -> Vec<audit::Entry> {
        let filter = Filter {
            limit: 1_000_000,
            ..Filter::default()
        };
        audit::read(&audit::Database::Postgres(self.pg.url.clone()), &filter)
            .expect("the log reads")
    }

    fn verify(&self) -> ChainVerdict {
        let files = AuditFiles::with_key(
            &audit::Database::Postgres(self.pg.url.clone()),
            &self.path("audit.key"),
        );
        audit::verify(&files, None).expect("the log can be verified")
    }
}

/// Calls `calls` times on `url`, alternating an allowed read and a refused
/// purge; counts what was answered.
async fn session(url: String, key: String, calls: usize, answered: Arc<AtomicUsize>) {
    let client = common::connect_http(&url, Some(&key)).await;
    for i in 0..calls {
        let (tool, args) = if i % 2 == 0 {
            ("list_worker_scripts", json!({"account_id": ACCOUNT_ID}))
        } else {
            (
                "purge_cache",
                json!({"zone_id": EXAMPLE_ORG, "purge_everything": true}),
            )
        };
        // A call to an instance that was killed ends the session.
        let call = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            try_call(&client, tool, args),
        );
        match call.await {
            Ok(Ok(result)) => {
                assert_eq!(result.is_error, Some(i % 2 == 1), "{tool}");
                answered.fetch_add(1, Ordering::SeqCst);
            }
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_write_one_chain_with_one_row_per_call() {
    let Some(cluster) = Cluster::start("") else {
        return;
    };
    // The first instance makes the schema and the key; the others join.
    let first = cluster.instance();
    // One with a key of its own is refused, though the log is still empty:
    // rows chained with two keys would verify with neither.
    std::fs::write(
        cluster.path("rogue.toml"),
        format!(
            "audit_db = \"{}\"\naudit_key = \"{}\"\n",
            cluster.pg.url,
            cluster.path("rogue.key").display()
        ),
    )
    .expect("config");
    let rogue = std::process::Command::new(common::BIN)
        .args(["serve", "--http", "127.0.0.1:0", "--config"])
        .arg(cluster.path("rogue.toml"))
        .arg("--policies")
        .arg(cluster.path("policy.toml"))
        .env("CLOUDFLARE_API_TOKEN", &cluster.upstream.token)
        .env("CLOUDFLARE_API_BASE_URL", &cluster.upstream.base_url)
        .output()
        .expect("runs");
    let said = String::from_utf8_lossy(&rogue.stderr);
    assert!(!rogue.status.success(), "{said}");
    assert!(said.contains("is not the key the log"), "{said}");
    let instances = [first, cluster.instance(), cluster.instance()];
    let answered = Arc::new(AtomicUsize::new(0));
    let sessions: Vec<_> = (0..100)
        .map(|i| {
            let url = instances[i % 3].mcp_url.clone();
            tokio::spawn(session(url, cluster.key.clone(), 100, answered.clone()))
        })
        .collect();
    for session in sessions {
        session.await.expect("session");
    }
    assert_eq!(answered.load(Ordering::SeqCst), 10_000);
    let rows = cluster.rows();
    assert_eq!(rows.len(), 10_000, "exactly one row per call");
    let allowed = rows.iter().filter(|r| r.decision == "allow").count();
    assert_eq!(allowed, 5_000);
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    assert_eq!(ids, (1..=10_000).collect::<Vec<_>>(), "one numbering");
    let verdict = cluster.verify();
    assert!(
        matches!(verdict, ChainVerdict::Valid { rows: 10_000, .. }),
        "{verdict:?}"
    );

    // Each instance's /metrics counts its own calls; together, every call.
    let mut counted = (0, 0);
    for instance in &instances {
        let admin = instance.admin_url.as_ref().expect("admin listener");
        let metrics = reqwest::get(format!("{admin}/metrics"))
            .await
            .expect("scraped")
            .text()
            .await
            .expect("text");
        for line in metrics
            .lines()
            .filter(|l| l.starts_with("flaregate_calls_total{"))
        {
            let n: u64 = line
                .rsplit(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("a count");
            if line.contains("decision=\"allow\"") {
                counted.0 += n;
            } else if line.contains("kind=\"outside_scope\"") {
                counted.1 += n;
            }
        }
    }
    assert_eq!(counted, (5_000, 5_000), "metrics agree with the calls made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_calls_are_refused_then_served_again() {
    let Some(cluster) = Cluster::start("") else {
        return;
    };
    let server = cluster.instance();
    let client = common::connect_http(&server.mcp_url, Some(&cluster.key)).await;
    let list = || {
        try_call(
            &client,
            "list_worker_scripts",
            json!({"account_id": ACCOUNT_ID}),
        )
    };
    assert_eq!(list().await.expect("answered").is_error, Some(false));
    let reached = |requests: Vec<flaregate::sandbox::LoggedRequest>| {
        requests
            .iter()
            .filter(|r| r.path.ends_with("/workers/scripts"))
            .count()
    };
    let before = reached(cluster.upstream.requests().await);

    let admin = server.admin_url.clone().expect("admin listener");
    let ready = || async {
        reqwest::get(format!("{admin}/ready"))
            .await
            .expect("the admin listener answers")
            .status()
            .as_u16()
    };
    assert_eq!(ready().await, 200);

    cluster.pg.stop();
    assert_eq!(
        ready().await,
        503,
        "not ready: the audit store cannot take writes"
    );
    let refused = list().await;
    let said = match &refused {
        Ok(result) => common::text(result),
        Err(error) => error.clone(),
    };
    assert!(said.contains("audit log"), "{said}");
    assert_eq!(
        reached(cluster.upstream.requests().await),
        before,
        "nothing unaudited reached Cloudflare"
    );

    // Meanwhile under load: sessions that keep calling while the database
    // goes down and comes back.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let served_ok = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (url, key) = (server.mcp_url.clone(), cluster.key.clone());
            let (stop, served_ok) = (stop.clone(), served_ok.clone());
            tokio::spawn(async move {
                let client = common::connect_http(&url, Some(&key)).await;
                while !stop.load(Ordering::SeqCst) {
                    let args = json!({"account_id": ACCOUNT_ID});
                    if let Ok(r) = try_call(&client, "list_worker_scripts", args).await
                        && r.is_error == Some(false)
                    {
                        served_ok.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    cluster.pg.start_again();
    let mut served = false;
    for _ in 0..50 {
        if list().await.is_ok_and(|r| r.is_error == Some(false)) {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(served, "served again once the database is back");
    assert_eq!(ready().await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for session in load {
        session.await.expect("session");
    }
    // Every read that reached the sandbox has its allowed row (the token
    // check at start is off), and every read served has one with
    // Cloudflare's answer.
    let rows = cluster.rows();
    let allowed = rows.iter().filter(|r| r.decision == "allow").count();
    let answered = rows
        .iter()
        .filter(|r| r.decision == "allow" && r.status == Some(200))
        .count();
    let sent = reached(cluster.upstream.requests().await);
    assert!(sent <= allowed, "{sent} reads sent, {allowed} allowed rows");
    assert!(
        answered > served_ok.load(Ordering::SeqCst),
        "every served read has its row (the first one too)"
    );
    let verdict = cluster.verify();
    assert!(matches!(verdict, ChainVerdict::Valid { .. }), "{verdict:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_mid_load_loses_no_answered_call() {
    let Some(cluster) = Cluster::start("") else {
        return;
    };
    let first = cluster.instance();
    let mut victim = cluster.instance();
    let answered = Arc::new(AtomicUsize::new(0));
    let sessions: Vec<_> = (0..20)
        .map(|i| {
            let url = if i % 2 == 0 {
                first.mcp_url.clone()
            } else {
                victim.mcp_url.clone()
            };
            tokio::spawn(session(url, cluster.key.clone(), 200, answered.clone()))
        })
        .collect();
    while answered.load(Ordering::SeqCst) < 1_000 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    common::signal(victim.pid(), "KILL");
    let _ = victim.terminate();
    for session in sessions {
        session.await.expect("session");
    }
    // Every answered call has its row with its outcome (a refusal's row is
    // whole; an allowed call is answered only after its outcome is
    // written); a call cut off by the kill may have a decision row alone.
    let rows = cluster.rows();
    let complete = rows
        .iter()
        .filter(|r| r.status.is_some() || r.decision == "deny")
        .count();
    let answered = answered.load(Ordering::SeqCst);
    assert!(
        complete >= answered,
        "{complete} complete rows for {answered} answers"
    );
    // Only calls in flight on the killed instance (one per session there)
    // may have a decision without its outcome.
    let cut_off = rows.len() - complete;
    assert!(cut_off <= 10, "{cut_off} rows without an outcome");
    let verdict = cluster.verify();
    assert!(matches!(verdict, ChainVerdict::Valid { .. }), "{verdict:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_limit_holds_across_instances() {
    let Some(cluster) = Cluster::start(", writes_per_hour = 20") else {
        return;
    };
    let first = cluster.instance();
    let instances = [first, cluster.instance(), cluster.instance()];
    let allowed = Arc::new(AtomicUsize::new(0));
    let sessions: Vec<_> = (0..6)
        .map(|i| {
            let url = instances[i % 3].mcp_url.clone();
            let (key, allowed) = (cluster.key.clone(), allowed.clone());
            tokio::spawn(async move {
                let client = common::connect_http(&url, Some(&key)).await;
                for n in 0..10 {
                    let purge = json!({"zone_id": EXAMPLE_COM, "files": [format!("https://example.com/{i}/{n}")]});
                    let result = try_call(&client, "purge_cache", purge).await.expect("answered");
                    if result.is_error != Some(true) {
                        allowed.fetch_add(1, Ordering::SeqCst);
                    } else {
                        assert!(common::text(&result).contains("20 writes this hour"), "{}", common::text(&result));
                    }
                }
            })
        })
        .collect();
    for session in sessions {
        session.await.expect("session");
    }
    // Sixty writes over three instances; the agent's twenty, not sixty.
    assert_eq!(allowed.load(Ordering::SeqCst), 20);
    let purges = cluster
        .upstream
        .requests()
        .await
        .iter()
        .filter(|r| r.path.ends_with("/purge_cache"))
        .count();
    assert_eq!(purges, 20, "only the allowed writes reached Cloudflare");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_asked_on_one_instance_is_used_on_another() {
    let Some(cluster) = Cluster::start_with("", "approve = [\"purge_cache\"]\n") else {
        return;
    };
    let (a, b) = (cluster.instance(), cluster.instance());
    let purge = |id: Option<&str>| {
        let mut args = json!({"zone_id": EXAMPLE_COM, "files": ["https://example.com/x"]});
        if let Some(id) = id {
            args["approval_id"] = json!(id);
        }
        args
    };
    let on_a = common::connect_http(&a.mcp_url, Some(&cluster.key)).await;
    let asked = try_call(&on_a, "purge_cache", purge(None))
        .await
        .expect("answered");
    let text = common::text(&asked);
    let start = text.find("approval ").expect("an approval id") + "approval ".len();
    let id = text[start..start + 32].to_string();

    let approve = std::process::Command::new(common::BIN)
        .args(["approve", &id, "--by", "alice", "--config"])
        .arg(cluster.path("flaregate.toml"))
        .output()
        .expect("runs");
    assert!(
        approve.status.success(),
        "{}",
        String::from_utf8_lossy(&approve.stderr)
    );

    let on_b = common::connect_http(&b.mcp_url, Some(&cluster.key)).await;
    let done = try_call(&on_b, "purge_cache", purge(Some(&id)))
        .await
        .expect("answered");
    assert_ne!(done.is_error, Some(true), "{}", common::text(&done));
    let replay = try_call(&on_a, "purge_cache", purge(Some(&id)))
        .await
        .expect("answered");
    assert!(
        common::text(&replay).contains("used already"),
        "{}",
        common::text(&replay)
    );

    // Both instances look for decisions to record; the chain has it once.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let approved = cluster
        .rows()
        .iter()
        .filter(|r| r.decision == "approved")
        .count();
    assert_eq!(approved, 1);
    let verdict = cluster.verify();
    assert!(matches!(verdict, ChainVerdict::Valid { .. }), "{verdict:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_moves_old_rows_out_while_instances_keep_writing() {
    let Some(cluster) = Cluster::start("") else {
        return;
    };
    let server = cluster.instance();
    let client = common::connect_http(&server.mcp_url, Some(&cluster.key)).await;
    let list = || {
        try_call(
            &client,
            "list_worker_scripts",
            json!({"account_id": ACCOUNT_ID}),
        )
    };
    for _ in 0..10 {
        assert_eq!(list().await.expect("answered").is_error, Some(false));
    }
    let out = cluster.path("archive.jsonl");
    let archived = std::process::Command::new(common::BIN)
        .args(["audit", "archive", "--before", "0s", "--out"])
        .arg(&out)
        .arg("--config")
        .arg(cluster.path("flaregate.toml"))
        .output()
        .expect("runs");
    let said = String::from_utf8_lossy(&archived.stdout).to_string()
        + &String::from_utf8_lossy(&archived.stderr);
    assert!(archived.status.success(), "{said}");
    assert!(said.contains("archived rows 1–9 "), "{said}");
    for _ in 0..3 {
        assert_eq!(list().await.expect("answered").is_error, Some(false));
    }
    assert_eq!(
        cluster.rows().len(),
        4,
        "the newest row stayed; three more came"
    );
    let verdict = cluster.verify();
    assert!(
        matches!(verdict, ChainVerdict::Valid { rows: 4, .. }),
        "{verdict:?}"
    );
    let key = flaregate::audit::ChainKey::load(&cluster.path("audit.key")).expect("key");
    let (span, verdict) = flaregate::audit::verify_file(&out, &key).expect("reads");
    assert!(
        matches!(verdict, ChainVerdict::Valid { rows: 9, .. }),
        "{verdict:?}"
    );
    assert_eq!(span.first_event, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_analytics_quota_is_shared_by_every_instance() {
    // An analytics quota of 8: with the 25% reserve the agent may make 6
    // queries, whichever instances they go through.
    let Some(cluster) = Cluster::start_with("", "tools = { query_analytics = \"on\" }\n") else {
        return;
    };
    let catalog = cluster.path("small-quota");
    std::fs::create_dir(&catalog).expect("mkdir");
    for entry in std::fs::read_dir(common::shipped("catalog")).expect("catalog") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read").replace(
            "quota = { requests = 320, per_seconds = 300 }",
            "quota = { requests = 8, per_seconds = 300 }",
        );
        std::fs::write(catalog.join(path.file_name().expect("name")), text).expect("write");
    }
    let env = [
        ("CLOUDFLARE_API_TOKEN", cluster.upstream.token.as_str()),
        (
            "CLOUDFLARE_API_BASE_URL",
            cluster.upstream.base_url.as_str(),
        ),
    ];
    let start = || {
        ServerProcess::start(
            &[
                "--policies",
                cluster.path("policy.toml").to_str().expect("utf-8"),
                "--config",
                cluster.path("flaregate.toml").to_str().expect("utf-8"),
                "--catalog",
                catalog.to_str().expect("utf-8"),
                "--audit-db",
                &cluster.pg.url,
            ],
            &env,
        )
    };
    let instances = [start(), start()];
    let query = json!({"query": format!(
        "{{ viewer {{ zones(filter: {{zoneTag: \"{EXAMPLE_COM}\"}}) {{ httpRequests1dGroups(limit: 1, filter: {{date_geq: \"2026-12-03\", date_lt: \"2026-12-04\"}}) {{ sum {{ requests }} }} }} }} }}"
    )});
    let mut answered = 0;
    for n in 0..10 {
        let client = common::connect_http(&instances[n % 2].mcp_url, Some(&cluster.key)).await;
        let result = try_call(&client, "query_analytics", query.clone())
            .await
            .expect("answered");
        if result.is_error != Some(true) {
            answered += 1;
        } else {
            assert!(
                common::text(&result).contains("share of this API's quota"),
                "{}",
                common::text(&result)
            );
        }
    }
    assert_eq!(
        answered, 6,
        "the agent's share of one quota, not one per instance"
    );
    let sent = cluster
        .upstream
        .requests()
        .await
        .iter()
        .filter(|r| r.path == "/graphql")
        .count();
    assert_eq!(sent, 6);
}
