//! TLS on the MCP and admin listeners: with `[http] tls_cert` and
//! `tls_key` both serve HTTPS (plain HTTP is refused on the same port), a
//! renewed certificate written over the files is served without a
//! restart, a broken one leaves the certificate in use, and a missing or
//! half-given pair stops the start with the file named.

mod common;

use std::path::Path;
use std::time::Duration;

use common::certs::Certs;
use common::{BIN, ServerProcess};

/// A client that trusts only the CA at `ca`.
fn trusting(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).expect("read the CA");
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("a CA"))
        .timeout(Duration::from_secs(5))
        .build()
        .expect("a client")
}

async fn initialize(
    client: &reqwest::Client,
    url: &str,
    key: Option<&str>,
) -> reqwest::Result<u16> {
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"tls-test","version":"1"}}}"#);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    Ok(request.send().await?.status().as_u16())
}

/// Replaces `to` with `from` the way a renewal does: a new file renamed over it.
fn replace(from: &Path, to: &Path) {
    let temporary = to.with_extension("new");
    std::fs::copy(from, &temporary).expect("copy");
    std::fs::rename(&temporary, to).expect("rename");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_listeners_serve_tls_and_a_renewed_certificate_without_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = Certs::new(dir.path(), "first");
    let renewed = Certs::new(dir.path(), "renewed");
    let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    replace(&first.cert, &cert);
    replace(&first.key, &key);
    let config = dir.path().join("flaregate.toml");
    // Relative to the configuration's folder.
    std::fs::write(
        &config,
        "[http]\ntls_cert = \"server.pem\"\ntls_key = \"server.key\"\n",
    )
    .expect("config");
    let server = ServerProcess::sandbox(&[
        "--config",
        config.to_str().expect("utf-8"),
        "--admin",
        "127.0.0.1:0",
    ]);
    let agent_key = server.key("auditor").to_string();
    let mcp = server.mcp_url.clone();
    let admin = server.admin_url.clone().expect("admin listener");
    assert!(mcp.starts_with("https://"), "{mcp}");
    assert!(admin.starts_with("https://"), "{admin}");

    let client = trusting(&first.ca);
    assert_eq!(
        initialize(&client, &mcp, Some(&agent_key))
            .await
            .expect("TLS"),
        200
    );
    assert_eq!(
        initialize(&client, &mcp, None).await.expect("TLS"),
        401,
        "the agent key is still required"
    );
    let health = client
        .get(format!("{admin}/health"))
        .send()
        .await
        .expect("TLS");
    assert_eq!(health.text().await.expect("body"), "ok\n");
    // The same port does not speak plain HTTP: no key crosses in clear.
    let plain = initialize(
        &reqwest::Client::new(),
        &mcp.replacen("https://", "http://", 1),
        Some(&agent_key),
    )
    .await;
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");

    // A renewal: both files replaced; served within a few seconds.
    replace(&renewed.cert, &cert);
    replace(&renewed.key, &key);
    let new_client = trusting(&renewed.ca);
    let mut served = false;
    for _ in 0..100 {
        if initialize(&new_client, &mcp, Some(&agent_key))
            .await
            .is_ok_and(|s| s == 200)
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        served,
        "the renewed certificate is served without a restart"
    );
    // (A new client: the old one's open connection stays as it was.)
    assert!(
        initialize(&trusting(&first.ca), &mcp, Some(&agent_key))
            .await
            .is_err(),
        "the old certificate is no longer served"
    );
    let health = new_client.get(format!("{admin}/health")).send().await;
    assert_eq!(
        health.expect("the admin listener renewed too").status(),
        200
    );

    // A broken certificate file keeps the one in use.
    std::fs::write(&cert, "not a certificate").expect("break");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        initialize(&trusting(&renewed.ca), &mcp, Some(&agent_key))
            .await
            .expect("still TLS"),
        200
    );
}

#[test]
fn a_missing_or_half_given_pair_stops_the_start_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let start = |config: &str| {
        let path = dir.path().join("flaregate.toml");
        std::fs::write(&path, config).expect("config");
        std::process::Command::new(BIN)
            .args(["serve", "--sandbox", "--http", "127.0.0.1:0", "--config"])
            .arg(&path)
            .args(["--audit-db"])
            .arg(dir.path().join("audit.db"))
            .output()
            .expect("runs")
    };
    let missing = start("[http]\ntls_cert = \"gone.pem\"\ntls_key = \"gone.key\"\n");
    let said = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success());
    assert!(
        said.contains("tls_cert") && said.contains("gone.pem"),
        "{said}"
    );
    let half = start("[http]\ntls_cert = \"gone.pem\"\n");
    let said = String::from_utf8_lossy(&half.stderr);
    assert!(!half.status.success());
    assert!(said.contains("go together"), "{said}");
}
