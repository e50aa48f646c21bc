//! Policy hot reload: clients hear tools/list_changed and see the new set;
//! an invalid file keeps the old policy; a call in flight finishes under the
//! policy it started with. And start-up: a SIGHUP then does not end the
//! process; the first call waits for zone names being fetched.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{SandboxProcess, ServerProcess, call, shipped, text};
use flaregate::sandbox::EXAMPLE_COM;
use rmcp::service::NotificationContext;
use rmcp::{RoleClient, ServiceExt};
use serde_json::json;
use tokio::sync::Notify;

/// A client that wakes the test when the server says the tools changed.
#[derive(Clone)]
struct Watcher(Arc<Notify>);

impl rmcp::ClientHandler for Watcher {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.0.notify_one();
    }
}

fn demo_with(extra_grant: &str) -> String {
    let demo = std::fs::read_to_string(shipped("policies/demo.toml")).expect("demo policy");
    demo.replacen(
        "workers = \"full\"\ncache = \"full\"",
        &format!("workers = \"full\"\ncache = \"full\"\n{extra_grant}"),
        1,
    )
}

async fn tool_count(client: &rmcp::service::RunningService<RoleClient, Watcher>) -> usize {
    client.list_all_tools().await.expect("tools").len()
}

#[tokio::test]
async fn an_edited_policy_reaches_connected_clients_and_a_broken_one_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, demo_with("")).expect("write");
    let log = dir.path().join("stderr.log");
    let mut command = tokio::process::Command::new(common::BIN);
    command
        .args(["serve", "--sandbox", "--stdio", "--agent", "site-deployer"])
        .args(["--catalog", shipped("catalog").to_str().expect("utf-8")])
        .args(["--policies", policy.to_str().expect("utf-8")])
        .args([
            "--audit-db",
            dir.path().join("a.db").to_str().expect("utf-8"),
        ]);
    let changed = Arc::new(Notify::new());
    let stderr = std::fs::File::create(&log).expect("log file");
    let (transport, _) = rmcp::transport::TokioChildProcess::builder(command)
        .stderr(stderr)
        .spawn()
        .expect("spawn");
    let client = Watcher(changed.clone())
        .serve(transport)
        .await
        .expect("handshake");
    assert_eq!(tool_count(&client).await, 5);

    std::fs::write(&policy, demo_with("dns = \"read\"")).expect("edit");
    tokio::time::timeout(Duration::from_secs(10), changed.notified())
        .await
        .expect("tools/list_changed arrives");
    assert_eq!(tool_count(&client).await, 7, "the new grant shows");

    std::fs::write(&policy, "[[agent]\nid = ").expect("break the file");
    wait_for(&log, "policy not reloaded").await;
    assert_eq!(
        tool_count(&client).await,
        7,
        "the previous policy stays in force"
    );
    // A reload that names a zone the API does not know says so, with the line.
    let typo = demo_with("").replacen(
        "zones = [\"example.com\"]",
        "zones = [\"example.com\", \"exmaple.org\"]",
        1,
    );
    assert_ne!(typo, demo_with(""), "the demo names example.com");
    std::fs::write(&policy, &typo).expect("typo");
    wait_for(
        &log,
        "zone `exmaple.org` is not one the Cloudflare token reaches",
    )
    .await;
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(logged.contains("policy.toml:"), "{logged}");
    assert!(
        logged.contains("policy.toml:1"),
        "the log names the file and line: {logged}"
    );
    client.cancel().await.expect("closes");
}

async fn wait_for(log: &Path, words: &str) {
    for _ in 0..100 {
        if std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains(words)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server never logged {words:?}");
}

/// The demo policy with a key for site-deployer, written to a file and
/// served (real-token mode) in front of `upstream`.
struct Deployer {
    server: ServerProcess,
    key: String,
    policy: std::path::PathBuf,
    text: String,
    _dir: tempfile::TempDir,
}

fn serve_deployer(upstream: &SandboxProcess) -> Deployer {
    serve_deployer_with(upstream, |_| {})
}

/// As [`serve_deployer`]; `starting` runs once the process is spawned.
fn serve_deployer_with(upstream: &SandboxProcess, starting: impl FnOnce(u32)) -> Deployer {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.toml");
    let (key, hash) = flaregate::policy::new_key();
    let text = demo_with("").replacen(
        "id = \"site-deployer\"",
        &format!("id = \"site-deployer\"\nkey_sha256 = [\"{hash}\"]"),
        1,
    );
    std::fs::write(&policy, &text).expect("write");
    let env = [
        ("CLOUDFLARE_API_TOKEN", upstream.token.as_str()),
        ("CLOUDFLARE_API_BASE_URL", upstream.base_url.as_str()),
    ];
    let server = ServerProcess::start_with(
        &["--policies", policy.to_str().expect("utf-8")],
        &env,
        starting,
    );
    Deployer {
        server,
        key,
        policy,
        text,
        _dir: dir,
    }
}

#[tokio::test]
async fn a_call_in_flight_finishes_under_the_policy_it_started_with() {
    let upstream = SandboxProcess::start(&["--latency-ms", "1500"]);
    let Deployer {
        server,
        key,
        policy,
        text: with_key,
        _dir,
    } = serve_deployer(&upstream);

    let client = common::connect_http(&server.mcp_url, Some(&key)).await;
    let purge = json!({"zone_id": EXAMPLE_COM, "purge_everything": true});
    let slow = tokio::spawn({
        let purge = purge.clone();
        async move {
            let result = call(&client, "purge_cache", purge).await;
            (client, result)
        }
    });
    // Once the sandbox has the request, the call was decided and is in flight.
    while upstream.requests_to("/purge_cache").await == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::write(
        &policy,
        with_key.replacen("cache = \"full\"", "cache = \"off\"", 1),
    )
    .expect("revoke cache");
    let (client, result) = slow.await.expect("call task");
    assert_eq!(
        result.is_error,
        Some(false),
        "started under the old policy: {}",
        text(&result)
    );

    // The reload lands within a second or so; from then on purges are refused.
    for _ in 0..100 {
        if common::try_call(&client, "purge_cache", purge.clone())
            .await
            .is_err()
        {
            assert!(upstream.requests_to("/purge_cache").await >= 1);
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the revoked grant never took effect");
}

#[tokio::test]
async fn a_half_saved_policy_file_is_never_installed() {
    let upstream = SandboxProcess::start(&[]);
    let Deployer {
        server,
        key,
        policy,
        text: full,
        _dir,
    } = serve_deployer(&upstream);
    // Cut where an editor's truncate-then-write could leave it: before the
    // site-deployer's constraints, which would then allow any script name.
    let deployer = full.find("id = \"site-deployer\"").expect("agent");
    let cut = deployer
        + full[deployer..]
            .find("[[agent.constraint]]")
            .expect("constraint");
    let client = common::connect_http(&server.mcp_url, Some(&key)).await;
    let outside = json!({"account_id": flaregate::sandbox::ACCOUNT_ID, "script_name": "other"});
    let denied = |result: rmcp::model::CallToolResult| {
        result.is_error == Some(true) && text(&result).contains("Denied by flaregate policy")
    };
    assert!(denied(
        call(&client, "get_worker_script", outside.clone()).await
    ));

    // The half file is on disk when the reload starts; the whole one 20 ms later.
    std::fs::write(&policy, &full[..cut]).expect("truncated write");
    server.signal("HUP");
    tokio::time::sleep(Duration::from_millis(20)).await;
    std::fs::write(&policy, &full).expect("whole write");

    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let result = call(&client, "get_worker_script", outside.clone()).await;
        assert!(denied(result), "the constraint held throughout");
    }

    // An empty file (truncated and not yet written) is not "no agents".
    std::fs::write(&policy, "").expect("emptied");
    server.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let result = call(&client, "get_worker_script", outside.clone()).await;
    assert!(
        denied(result),
        "the agent and its constraint are still there"
    );
}

#[tokio::test]
async fn a_sighup_during_start_up_does_not_end_the_process() {
    // Start-up waits on the upstream (the token is verified), so a reload
    // asked for then — `systemctl reload` right after start — lands before
    // the server is ready. It used to end the process (SIGHUP's default).
    let upstream = SandboxProcess::start(&["--latency-ms", "1500"]);
    // The sandbox logs a request when it arrives, before its wait.
    let verifying = || {
        let logged = std::thread::scope(|s| {
            s.spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(upstream.requests())
            })
            .join()
            .expect("request log read")
        });
        logged.iter().any(|r| r.path == "/user/tokens/verify")
    };
    let Deployer {
        server, key, _dir, ..
    } = serve_deployer_with(&upstream, |pid| {
        while !verifying() {
            std::thread::sleep(Duration::from_millis(20));
        }
        common::signal(pid, "HUP");
    });
    let client = common::connect_http(&server.mcp_url, Some(&key)).await;
    let tools = client.list_all_tools().await.expect("tools/list");
    assert!(!tools.is_empty(), "the server came up and serves");
    client.cancel().await.expect("closes");
}

#[tokio::test]
async fn a_call_made_while_zone_names_are_fetched_waits_for_them() {
    // The server serves before Cloudflare has said which zone is called
    // example.com (site-deployer's scope names it); a slow upstream keeps
    // that question open while the first call is decided.
    let upstream = SandboxProcess::start(&["--latency-ms", "1500"]);
    let Deployer {
        server, key, _dir, ..
    } = serve_deployer(&upstream);
    let client = common::connect_http(&server.mcp_url, Some(&key)).await;

    let result = call(
        &client,
        "purge_cache",
        json!({"zone_id": EXAMPLE_COM, "purge_everything": true}),
    )
    .await;

    assert_ne!(result.is_error, Some(true), "{}", text(&result));
    assert_eq!(upstream.requests_to("/purge_cache").await, 1);
    assert_eq!(
        upstream.requests_to("/zones").await,
        1,
        "the call waited for the names asked for at start-up, not asking again"
    );
    client.cancel().await.expect("closes");
}
