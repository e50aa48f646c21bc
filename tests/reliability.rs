//! Failing closed: hostile input through real MCP calls, protocol abuse,
//! secrets at trace level, and an audit log that cannot take more rows.
//! Each case checks that nothing reached the sandbox and that the server
//! keeps serving.

mod common;

use std::process::{Command, Stdio};

use common::{SandboxProcess, ServerProcess, call, shipped, text, try_call};
use flaregate::sandbox::{ACCOUNT_ID, EXAMPLE_COM};
use serde_json::{Value, json};

const HOSTILE: &[&str] = &[
    "../",
    "..",
    "%2e%2e",
    "/",
    "a/b",
    "?x=1",
    "#top",
    "\u{0}",
    "023e105f4ecef8ad9ca31a8372d0c35\u{0}",
    "０２３e105f4ecef8ad9ca31a8372d0c353",
    "023e105f4ecef8ad9ca31a8372d0c35\u{3}",
    "*",
    "",
    " ",
];

#[tokio::test]
async fn hostile_values_are_refused_and_nothing_reaches_the_sandbox() {
    let server = ServerProcess::sandbox(&[]);
    let auditor = server.connect("auditor").await;
    let deployer = server.connect("site-deployer").await;
    let before = server.sandbox_requests().await.len();
    let long = "a".repeat(10 * 1024);
    let mut values: Vec<Value> = HOSTILE.iter().map(|v| json!(v)).collect();
    values.extend([
        json!(long),
        json!(42),
        json!(true),
        json!(null),
        json!(["023e105f4ecef8ad9ca31a8372d0c353"]),
        json!({"id": "x"}),
    ]);
    for value in &values {
        let zone = call(&auditor, "get_zone", json!({"zone_id": value})).await;
        assert_eq!(zone.is_error, Some(true), "zone_id {value}");
        assert!(
            text(&zone).contains("zone_id"),
            "the error names the field: {}",
            text(&zone)
        );
        let script = call(
            &deployer,
            "get_worker_script",
            json!({"account_id": ACCOUNT_ID, "script_name": value}),
        )
        .await;
        assert_eq!(script.is_error, Some(true), "script_name {value}");
    }
    for arguments in [
        json!({}),
        json!({"zone_id": EXAMPLE_COM, "extra": 1}),
        json!({"zone_id": EXAMPLE_COM, "purge_everything": "yes"}),
    ] {
        let result = call(&auditor, "get_zone", arguments.clone()).await;
        assert_eq!(result.is_error, Some(true), "{arguments}");
    }
    // A constraint cannot be slipped past by case or encoding.
    for name in ["SITE-x", "Site-blog", "site%2Dx", "site-%2A"] {
        let result = call(
            &deployer,
            "put_worker_script",
            json!({"account_id": ACCOUNT_ID, "script_name": name, "script": "x"}),
        )
        .await;
        assert_eq!(result.is_error, Some(true), "{name}");
    }
    let huge = "t".repeat(100_000);
    assert!(try_call(&auditor, &huge, json!({})).await.is_err());
    assert_eq!(
        server.sandbox_requests().await.len(),
        before,
        "nothing hostile reached the sandbox"
    );

    let zone = call(&auditor, "get_zone", json!({"zone_id": EXAMPLE_COM})).await;
    assert_eq!(zone.is_error, Some(false), "the server keeps serving");
    let refused = server
        .audit_rows()
        .iter()
        .filter(|r| r.decision == "deny")
        .count();
    assert!(
        refused >= values.len() * 2,
        "every refusal is audited ({refused})"
    );
}

async fn raw(url: &str, key: &str, body: Vec<u8>) -> reqwest::StatusCode {
    reqwest::Client::new()
        .post(url)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body)
        .send()
        .await
        .map(|r| r.status())
        .unwrap_or(reqwest::StatusCode::REQUEST_TIMEOUT)
}

#[tokio::test]
async fn protocol_garbage_gets_errors_and_the_server_keeps_serving() {
    let server = ServerProcess::sandbox(&[]);
    let key = server.key("auditor").to_string();
    let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
    let nested = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"list_zones","arguments":{{"a":{deep}}}}}}}"#
    );
    let bodies: Vec<Vec<u8>> = vec![
        b"not json at all".to_vec(),
        b"{\"jsonrpc\":\"2.0\"".to_vec(),
        b"{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":42}".to_vec(),
        b"[]".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x01],
        deep.into_bytes(),
        nested.into_bytes(),
        vec![b' '; 20 * 1024 * 1024],
    ];
    for body in bodies {
        let status = raw(&server.mcp_url, &key, body).await;
        assert!(status.is_client_error(), "{status}");
    }
    let client = server.connect("auditor").await;
    assert_eq!(
        call(&client, "list_zones", json!({})).await.is_error,
        Some(false)
    );
}

#[tokio::test]
async fn no_secret_appears_anywhere_after_a_run_at_trace_level() {
    let token = "cf-secret-token-4f1c9a7e2b";
    let upstream = SandboxProcess::start(&["--token", token, "--fault", "GET:/accounts:500:1"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, hash) = flaregate::policy::new_key();
    let (other_key, other_hash) = flaregate::policy::new_key();
    let policy = dir.path().join("p.toml");
    std::fs::write(&policy, format!(
        "[[agent]]\nid = \"ops\"\nkey_sha256 = [\"{hash}\"]\nzones = [\"*\"]\naccounts = [\"*\"]\ngrants = {{ zones = \"read\", dns = \"full\", accounts = \"read\" }}\n[[agent]]\nid = \"other\"\nkey_sha256 = [\"{other_hash}\"]\ngrants = {{ cache = \"full\" }}\n"
    )).expect("policy");
    let db = dir.path().join("audit.db");
    let stderr_path = dir.path().join("stderr.log");
    let mut child = Command::new(common::BIN)
        .args(["serve", "--http", "127.0.0.1:0", "--log-level", "trace"])
        .args([
            "--catalog",
            shipped("catalog").to_str().expect("utf-8"),
            "--policies",
            policy.to_str().expect("utf-8"),
        ])
        .args(["--audit-db", db.to_str().expect("utf-8")])
        .env("CLOUDFLARE_API_TOKEN", token)
        .env("CLOUDFLARE_API_BASE_URL", &upstream.base_url)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).expect("log"))
        .spawn()
        .expect("serve");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut banner = String::new();
    let url = loop {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut stdout, &mut line).expect("read") > 0);
        banner.push_str(&line);
        if let Some(url) = line.trim().strip_prefix("MCP:") {
            break url.trim().to_string();
        }
    };

    let client = common::connect_http(&url, Some(&key)).await;
    let mut outputs = Vec::new();
    for (tool, arguments) in [
        ("list_zones", json!({})),
        ("list_accounts", json!({})),
        (
            "create_dns_record",
            json!({"zone_id": EXAMPLE_COM, "type": "A", "name": "s.example.com", "content": "192.0.2.3", "ttl": 1, "comment": "Bearer not-a-real-token"}),
        ),
        (
            "create_dns_record",
            json!({"zone_id": EXAMPLE_COM, "type": "A", "name": "s.example.com", "content": "192.0.2.3", "ttl": 1}),
        ),
        ("delete_zone", json!({"zone_id": EXAMPLE_COM})),
        ("get_zone", json!({"zone_id": "../x"})),
    ] {
        match try_call(&client, tool, arguments).await {
            Ok(result) => {
                outputs.push(format!("{} {:?}", text(&result), result.structured_content))
            }
            Err(error) => outputs.push(error),
        }
    }
    let other = common::connect_http(&url, Some(&other_key)).await;
    outputs.push(format!(
        "{:?}",
        other.list_all_tools().await.expect("tools")
    ));
    let _ = child.kill();
    let _ = child.wait();

    let mut places: Vec<(String, String)> = vec![
        ("stdout".into(), banner),
        ("tool results".into(), outputs.join("\n")),
    ];
    places.push((
        "stderr (trace)".into(),
        std::fs::read_to_string(&stderr_path).expect("stderr"),
    ));
    for file in std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
    {
        let name = file.file_name().to_string_lossy().into_owned();
        if name.starts_with("audit.db") {
            places.push((
                name,
                String::from_utf8_lossy(&std::fs::read(file.path()).expect("read")).into_owned(),
            ));
        }
    }
    let stderr_len = places[2].1.len();
    assert!(
        stderr_len > 10_000,
        "trace logging really ran ({stderr_len} bytes)"
    );
    for (place, content) in &places {
        for secret in [
            token,
            key.as_str(),
            other_key.as_str(),
            &key[4..],
            &other_key[4..],
        ] {
            assert!(!content.contains(secret), "a secret appears in {place}");
        }
    }
    assert!(
        places
            .iter()
            .any(|(p, c)| p.starts_with("audit.db") && c.contains("[redacted]")),
        "the Bearer-looking comment was redacted"
    );
}

#[tokio::test]
async fn a_full_audit_log_refuses_calls_and_nothing_runs_unaudited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("flaregate.toml");
    std::fs::write(&config, "audit_max_mb = 0.1\n").expect("config");
    let server = ServerProcess::sandbox(&[
        "--config",
        config.to_str().expect("utf-8"),
        "--admin",
        "127.0.0.1:0",
    ]);
    let client = server.connect("auditor").await;
    let mut refused = None;
    for i in 0..5000 {
        match try_call(&client, "get_zone", json!({"zone_id": EXAMPLE_COM})).await {
            Ok(result) => assert_eq!(result.is_error, Some(false), "call {i}"),
            Err(error) => {
                refused = Some((i, error));
                break;
            }
        }
    }
    let (made, error) = refused.expect("the log filled up");
    assert!(
        error.contains("audit log cannot record it")
            && error.contains("nothing was sent to Cloudflare"),
        "{error}"
    );
    let upstream_calls = server
        .sandbox_requests()
        .await
        .iter()
        .filter(|r| r.path == format!("/zones/{EXAMPLE_COM}"))
        .count();
    assert_eq!(
        upstream_calls, made,
        "every call that reached the sandbox was audited first; the refused one did not"
    );
    assert!(
        try_call(&client, "get_zone", json!({"zone_id": EXAMPLE_COM}))
            .await
            .is_err(),
        "still refused"
    );
    assert_eq!(
        client.list_all_tools().await.expect("still serving").len(),
        19
    );
    let admin = server.admin_url.as_deref().expect("admin listener");
    let ready = reqwest::get(format!("{admin}/ready"))
        .await
        .expect("answers");
    assert_eq!(
        ready.status(),
        reqwest::StatusCode::SERVICE_UNAVAILABLE,
        "a full log takes no rows: not ready"
    );
    assert!(matches!(
        common::verify(&server.audit_db),
        flaregate::audit::ChainVerdict::Valid { .. }
    ));
}

/// Sets or clears the immutable attribute (`chattr`), which holds even for
/// root, who ignores file modes; cleared again on drop.
struct Immutable(Vec<std::path::PathBuf>);

impl Immutable {
    /// `None` where the file system or the container does not allow it.
    fn set(paths: &[std::path::PathBuf]) -> Option<Self> {
        let chattr = |flag: &str, path: &std::path::Path| {
            Command::new("chattr")
                .arg(flag)
                .arg(path)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let guard = Self(paths.to_vec());
        paths.iter().all(|p| chattr("+i", p)).then_some(guard)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = Command::new("chattr").arg("-i").arg(path).status();
        }
    }
}

#[tokio::test]
async fn a_read_only_audit_log_refuses_calls_then_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("audit.db");
    let db_arg = db.to_str().expect("utf-8");
    let server = ServerProcess::sandbox(&["--audit-db", db_arg]);
    let client = server.connect("auditor").await;
    call(&client, "get_zone", json!({"zone_id": EXAMPLE_COM})).await;
    let wal = dir.path().join("audit.db-wal");
    let Some(guard) = Immutable::set(&[db.clone(), wal]) else {
        eprintln!(
            "SKIPPED: chattr +i is not allowed here (needs ext4-like storage and CAP_LINUX_IMMUTABLE)"
        );
        return;
    };

    // While the files cannot be written: refused, nothing sent, still serving.
    let error = try_call(&client, "get_zone", json!({"zone_id": EXAMPLE_COM}))
        .await
        .expect_err("refused while the log is read-only");
    assert!(
        error.contains("audit log cannot record it")
            && error.contains("nothing was sent to Cloudflare"),
        "{error}"
    );
    let zone_calls = |requests: Vec<flaregate::sandbox::LoggedRequest>| {
        requests
            .iter()
            .filter(|r| r.path == format!("/zones/{EXAMPLE_COM}"))
            .count()
    };
    assert_eq!(zone_calls(server.sandbox_requests().await), 1);
    assert_eq!(
        client.list_all_tools().await.expect("still serving").len(),
        19
    );

    // A second flaregate cannot start on it: it says why.
    let other = Command::new(common::BIN)
        .args([
            "serve",
            "--sandbox",
            "--http",
            "127.0.0.1:0",
            "--audit-db",
            db_arg,
        ])
        .args(["--catalog", shipped("catalog").to_str().expect("utf-8")])
        .args(["--policies", shipped("policies").to_str().expect("utf-8")])
        .stdout(Stdio::null())
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success());
    assert!(
        stderr.contains("cannot open the audit log") && stderr.contains("cannot be written"),
        "{stderr}"
    );

    // Writable again: calls resume on the same chain.
    drop(guard);
    call(&client, "get_zone", json!({"zone_id": EXAMPLE_COM})).await;
    assert_eq!(zone_calls(server.sandbox_requests().await), 2);
    assert!(matches!(
        common::verify(&db),
        flaregate::audit::ChainVerdict::Valid { .. }
    ));
}
