//! The sandbox as an HTTP API, spoken to with plain reqwest: what a
//! Cloudflare client sees on the wire.

mod common;

use std::time::{Duration, Instant};

use common::SandboxProcess;
use serde_json::Value;

async fn get(
    sandbox: &SandboxProcess,
    path: &str,
    token: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new().get(format!("{}{path}", sandbox.base_url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("sandbox answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.expect("JSON envelope"),
    )
}

fn first_code(body: &Value) -> i64 {
    body["errors"][0]["code"].as_i64().unwrap_or_default()
}

#[tokio::test]
async fn answers_in_the_envelope_with_rate_headers() {
    let sandbox = SandboxProcess::start(&[]);
    let (status, headers, body) = get(&sandbox, "/zones", Some(&sandbox.token)).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            body["success"].as_bool(),
            body["errors"].as_array().map(Vec::len)
        ),
        (Some(true), Some(0))
    );
    assert_eq!(body["result_info"]["total_count"], 2);
    assert!(
        headers["ratelimit"]
            .to_str()
            .expect("ascii")
            .starts_with("\"default\";r=1199;t=")
    );
    assert_eq!(headers["ratelimit-policy"], "\"burst\";q=1200;w=300");
}

#[tokio::test]
async fn missing_unknown_tokens_and_routes() {
    let sandbox = SandboxProcess::start(&[]);
    let (status, _, body) = get(&sandbox, "/zones", None).await;
    assert_eq!((status, first_code(&body)), (400, 1001));
    let (status, _, body) = get(&sandbox, "/zones", Some("wrong")).await;
    assert_eq!((status, first_code(&body)), (401, 9109));
    let (status, _, body) = get(&sandbox, "/no/such/thing", Some(&sandbox.token)).await;
    assert_eq!((status, first_code(&body)), (404, 7003));
    let (status, _, body) = get(&sandbox, "/zones/not-an-id", Some(&sandbox.token)).await;
    assert_eq!((status, first_code(&body)), (400, 7003));
}

#[tokio::test]
async fn past_the_rate_limit_every_call_gets_429_with_retry_after() {
    let sandbox = SandboxProcess::start(&["--rate-limit", "3/60s"]);
    for _ in 0..3 {
        assert_eq!(
            get(&sandbox, "/accounts", Some(&sandbox.token)).await.0,
            200
        );
    }
    for _ in 0..2 {
        let (status, headers, body) = get(&sandbox, "/accounts", Some(&sandbox.token)).await;
        assert_eq!((status, first_code(&body)), (429, 971));
        let retry_after: u64 = headers["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        assert!(
            headers["ratelimit"]
                .to_str()
                .expect("ascii")
                .contains("r=0")
        );
    }
}

#[tokio::test]
async fn latency_is_injected() {
    let quick = SandboxProcess::start(&[]);
    let slow = SandboxProcess::start(&["--latency-ms", "300"]);
    let started = Instant::now();
    get(&quick, "/accounts", Some(&quick.token)).await;
    let quick_time = started.elapsed();
    let started = Instant::now();
    get(&slow, "/accounts", Some(&slow.token)).await;
    let slow_time = started.elapsed();
    // A lower bound only: the sleep cannot end early, however busy the machine.
    assert!(slow_time >= Duration::from_millis(300), "{slow_time:?}");
    assert!(slow_time > quick_time);
}

#[tokio::test]
async fn bad_fault_specs_are_refused_at_start() {
    let output = std::process::Command::new(common::BIN)
        .args([
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--fault",
            "GET:/zones:200",
        ])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("METHOD:PATH_GLOB:KIND[:COUNT]"), "{stderr}");
}

#[tokio::test]
async fn dns_names_and_contents_cloudflare_refuses_are_refused_with_its_codes() {
    let sandbox = SandboxProcess::start(&[]);
    let url = format!(
        "{}/zones/{}/dns_records",
        sandbox.base_url,
        flaregate::sandbox::EXAMPLE_COM
    );
    let create = |record: Value| {
        let (url, token) = (url.clone(), sandbox.token.clone());
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&record)
                .send()
                .await
                .expect("sandbox answers");
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.expect("JSON envelope"),
            )
        }
    };
    let record = |kind: &str, name: &str, content: &str| serde_json::json!({"type": kind, "name": name, "content": content, "ttl": 1});
    for name in ["a..b", "a b", "-a", "x".repeat(64).as_str(), "a\u{7}b"] {
        let (status, body) = create(record("A", name, "192.0.2.1")).await;
        assert_eq!((status, first_code(&body)), (400, 9000), "{name:?}: {body}");
    }
    for (kind, content) in [
        ("A", "300.1.1.1"),
        ("AAAA", "192.0.2.1"),
        ("CNAME", "not a host"),
        ("MX", ""),
    ] {
        let (status, body) = create(record(kind, "ok.example.com", content)).await;
        assert_eq!(
            (status, first_code(&body)),
            (400, 9005),
            "{kind} {content:?}: {body}"
        );
    }
    let (status, body) = create(record("A", "*.wild", "192.0.2.1")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["name"], "*.wild.example.com");
}
