//! The client's rules against a sandbox process: pagination, retries,
//! the shared limiter, hostile path values, credentials.

mod common;

use common::{SandboxProcess, args, catalog, endpoint, repo_path};
use flaregate::cloudflare::{CloudflareError, Credential, RateSpec};
use flaregate::sandbox::{ACCOUNT_ID, EXAMPLE_COM};
use serde_json::json;

#[tokio::test]
async fn walks_page_numbered_lists() {
    let sandbox = SandboxProcess::start(&[]);
    let (client, catalog) = (sandbox.client(), catalog());
    for i in 0..8 {
        let record = json!({"zone_id": EXAMPLE_COM, "type": "TXT", "name": format!("t{i}.example.com"), "content": "x", "ttl": 1});
        client
            .call(endpoint(&catalog, "create_dns_record"), &args(record))
            .await
            .expect("created");
    }
    let list = endpoint(&catalog, "list_dns_records");
    let first = client
        .call(list, &args(json!({"zone_id": EXAMPLE_COM, "per_page": 5})))
        .await
        .expect("page 1");
    let info = first.result_info.expect("result_info");
    assert_eq!(
        (
            info["page"].as_u64(),
            info["total_count"].as_u64(),
            info["total_pages"].as_u64()
        ),
        (Some(1), Some(13), Some(3))
    );

    let all = client
        .fetch_all(
            list,
            &args(json!({"zone_id": EXAMPLE_COM, "per_page": 5})),
            10,
        )
        .await
        .expect("all pages");
    assert_eq!((all.items.len(), all.pages, all.complete), (13, 3, true));
    let capped = client
        .fetch_all(
            list,
            &args(json!({"zone_id": EXAMPLE_COM, "per_page": 5})),
            2,
        )
        .await
        .expect("capped");
    assert_eq!(
        (capped.items.len(), capped.pages, capped.complete),
        (10, 2, false)
    );
}

#[tokio::test]
async fn walks_cursor_lists_in_both_cursor_shapes() {
    let sandbox = SandboxProcess::start(&[]);
    let (client, catalog) = (sandbox.client(), catalog());
    // R2 puts the cursor at result_info.cursor and the items under `buckets`.
    let buckets = endpoint(&catalog, "list_r2_buckets");
    let all = client
        .fetch_all(
            buckets,
            &args(json!({"account_id": ACCOUNT_ID, "per_page": 1})),
            10,
        )
        .await
        .expect("r2");
    let names: Vec<&str> = all
        .items
        .iter()
        .filter_map(|b| b["name"].as_str())
        .collect();
    assert_eq!(
        (names, all.pages, all.complete),
        (vec!["backups", "site-assets"], 2, true)
    );
    // Rulesets put it at result_info.cursors.after.
    let rulesets = endpoint(&catalog, "list_rulesets");
    let all = client
        .fetch_all(
            rulesets,
            &args(json!({"zone_id": EXAMPLE_COM, "per_page": 1})),
            10,
        )
        .await
        .expect("rulesets");
    assert_eq!((all.items.len(), all.pages, all.complete), (2, 2, true));
    let queries: Vec<Option<String>> = sandbox
        .requests()
        .await
        .into_iter()
        .filter(|r| r.path.ends_with("/rulesets"))
        .map(|r| r.query)
        .collect();
    assert_eq!(
        queries,
        [
            Some("per_page=1".to_string()),
            Some("cursor=1&per_page=1".to_string())
        ]
    );
}

#[tokio::test]
async fn a_429_is_retried_after_retry_after_then_succeeds() {
    let sandbox = SandboxProcess::start(&["--fault", "GET:/zones:429:1"]);
    let (client, catalog) = (sandbox.client(), catalog());
    let zones = client
        .call(endpoint(&catalog, "list_zones"), &args(json!({})))
        .await
        .expect("second attempt succeeds");
    assert_eq!(zones.result.as_array().map(Vec::len), Some(2));
    assert_eq!(sandbox.requests().await.len(), 2, "one 429, one success");
}

#[tokio::test]
async fn server_errors_on_a_get_are_retried() {
    let sandbox = SandboxProcess::start(&["--fault", "GET:/zones/*:500:2"]);
    let (client, catalog) = (sandbox.client(), catalog());
    let zone = client
        .call(
            endpoint(&catalog, "get_zone"),
            &args(json!({"zone_id": EXAMPLE_COM})),
        )
        .await
        .expect("third attempt");
    assert_eq!(zone.result["name"], "example.com");
    assert_eq!(sandbox.requests().await.len(), 3);
}

#[tokio::test]
async fn a_post_is_never_retried() {
    let sandbox = SandboxProcess::start(&["--fault", "POST:/zones/*/purge_cache:503:1"]);
    let (client, catalog) = (sandbox.client(), catalog());
    let error = client
        .call(
            endpoint(&catalog, "purge_cache"),
            &args(json!({"zone_id": EXAMPLE_COM, "purge_everything": true})),
        )
        .await
        .expect_err("503 is returned");
    assert_eq!(error.status(), Some(503));
    assert!(
        !matches!(error, CloudflareError::RetriesExhausted { .. }),
        "{error:?}"
    );
    assert_eq!(sandbox.requests().await.len(), 1, "sent exactly once");
}

#[tokio::test]
async fn gives_up_after_the_cap_with_a_clear_error() {
    let sandbox = SandboxProcess::start(&["--fault", "GET:/accounts:502"]);
    let (client, catalog) = (sandbox.client(), catalog());
    let error = client
        .call(endpoint(&catalog, "list_accounts"), &args(json!({})))
        .await
        .expect_err("always 502");
    let text = error.to_string();
    assert!(
        matches!(error, CloudflareError::RetriesExhausted { attempts: 3, .. }),
        "{error:?}"
    );
    assert!(
        text.contains("gave up after 3 attempts")
            && text.contains("HTTP 502")
            && text.contains("retry later"),
        "{text}"
    );
    assert_eq!(sandbox.requests().await.len(), 3);
}

#[tokio::test]
async fn the_limiter_is_shared_by_every_clone_and_sends_nothing_past_it() {
    let sandbox = SandboxProcess::start(&[]);
    let catalog = catalog();
    let client = sandbox.client_with(
        Credential::Token(sandbox.token.clone()),
        "3/300s".parse().expect("rate"),
    );
    let other_agent = client.clone();
    let list = endpoint(&catalog, "list_zones");
    for c in [&client, &other_agent, &client] {
        c.call(list, &args(json!({}))).await.expect("within budget");
    }
    let error = other_agent
        .call(list, &args(json!({})))
        .await
        .expect_err("budget spent");
    assert!(
        matches!(error, CloudflareError::RateLimited { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("retry in"), "{error}");
    assert_eq!(sandbox.requests().await.len(), 3);
}

#[tokio::test]
async fn hostile_path_values_are_refused_before_any_request() {
    let sandbox = SandboxProcess::start(&[]);
    let (client, catalog) = (sandbox.client(), catalog());
    let hostile = [
        "../accounts",
        "..",
        "a/b",
        "023e105f4ecef8ad9ca31a8372d0c353?x=1",
        "023e105f4ecef8ad9ca31a8372d0c353#f",
        "%2e%2e",
        "023e105f4ecef8ad9ca31a8372d0c35\u{0}",
        "023e105f4ecef8ad9ca31a8372d0c35\n",
        "",
        "023e105f4ecef8ad9ca31a8372d0c35３", // a full-width digit
        "023E105F4ECEF8AD9CA31A8372D0C353",
    ];
    for value in hostile {
        let error = client
            .call(
                endpoint(&catalog, "get_zone"),
                &args(json!({"zone_id": value})),
            )
            .await
            .expect_err(value);
        assert!(
            matches!(error, CloudflareError::InvalidArgument { ref field, .. } if field == "zone_id"),
            "{value:?}: {error:?}"
        );
    }
    for name in ["../../zones", "site%2frouter", "site router", "Site-Router"] {
        let call = args(json!({"account_id": ACCOUNT_ID, "script_name": name}));
        assert!(
            client
                .call(endpoint(&catalog, "get_worker_script"), &call)
                .await
                .is_err(),
            "{name}"
        );
    }
    let wrong_type = client
        .call(
            endpoint(&catalog, "get_zone"),
            &args(json!({"zone_id": 42})),
        )
        .await
        .expect_err("number");
    assert!(
        wrong_type.to_string().contains("must be a string"),
        "{wrong_type}"
    );
    let long = "a".repeat(10_000);
    assert!(
        client
            .call(
                endpoint(&catalog, "get_zone"),
                &args(json!({"zone_id": long}))
            )
            .await
            .is_err()
    );
    assert_eq!(
        sandbox.requests().await,
        vec![],
        "nothing reached the sandbox"
    );
}

#[tokio::test]
async fn query_and_body_values_are_encoded_not_spliced() {
    let sandbox = SandboxProcess::start(&[]);
    let (client, catalog) = (sandbox.client(), catalog());
    let list = endpoint(&catalog, "list_dns_records");
    let answer = client
        .call(
            list,
            &args(json!({"zone_id": EXAMPLE_COM, "name": "x&type=MX#frag", "proxied": true})),
        )
        .await
        .expect("a strange filter is still just a filter");
    assert_eq!(answer.result, json!([]));
    let logged = sandbox.requests().await;
    assert_eq!(
        logged[0].query.as_deref(),
        Some("name=x%26type%3DMX%23frag&proxied=true")
    );
}

#[tokio::test]
async fn bad_and_underprivileged_tokens_get_cloudflare_answers() {
    let sandbox = SandboxProcess::start(&[
        "--tokens-file",
        repo_path("tests/fixtures/sandbox-tokens.toml")
            .to_str()
            .expect("utf-8 path"),
    ]);
    let catalog = catalog();
    let call = |token: &str| {
        let client = sandbox.client_with(Credential::Token(token.to_string()), RateSpec::Off);
        let endpoint = endpoint(&catalog, "create_dns_record").clone();
        async move {
            let record = args(
                json!({"zone_id": EXAMPLE_COM, "type": "A", "name": "t.example.com", "content": "192.0.2.9", "ttl": 1}),
            );
            client.call(&endpoint, &record).await
        }
    };
    let unknown = call("not-a-token").await.expect_err("unknown token");
    assert_eq!((unknown.status(), unknown.codes()), (Some(401), vec![9109]));
    assert!(
        unknown.to_string().contains("send a valid API token"),
        "{unknown}"
    );
    let reader = call("dns-reader").await.expect_err("read-only token");
    assert_eq!((reader.status(), reader.codes()), (Some(403), vec![10000]));
    let org_only = call("org-dns-editor").await.expect_err("other zone");
    assert_eq!(org_only.status(), Some(403));
    call("com-dns-editor")
        .await
        .expect("this token holds DNS Write on example.com");
}

#[tokio::test]
async fn the_credential_never_shows() {
    let sandbox = SandboxProcess::start(&["--fault", "GET:/accounts:500"]);
    let catalog = catalog();
    let secret = "s3cr3t-token-value-that-must-not-leak";
    let credential = Credential::Token(secret.to_string());
    assert!(!format!("{credential:?}").contains(secret));
    let client = sandbox.client_with(credential, RateSpec::Off);
    assert!(
        !format!("{client:?}").contains(secret),
        "the client's Debug hides it too"
    );
    let legacy = Credential::LegacyKey {
        email: "ops@example.com".into(),
        key: "legacy-key-secret".into(),
    };
    assert!(!format!("{legacy:?}").contains("legacy-key-secret"));
    for tool in ["list_zones", "list_accounts"] {
        let error = client
            .call(endpoint(&catalog, tool), &args(json!({})))
            .await
            .expect_err("refused");
        assert!(!error.to_string().contains(secret) && !format!("{error:?}").contains(secret));
    }
}

#[tokio::test]
async fn unreachable_cloudflare_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let sandbox = SandboxProcess::start(&[]);
    let mut config = flaregate::cloudflare::ClientConfig::new(
        format!("http://127.0.0.1:{port}/client/v4"),
        Credential::Token(sandbox.token.clone()),
    );
    config.retry.max_attempts = 2;
    config.retry.base_delay = std::time::Duration::from_millis(5);
    let client = flaregate::cloudflare::Client::new(config).expect("client");
    let error = client
        .call(endpoint(&catalog(), "list_zones"), &args(json!({})))
        .await
        .expect_err("nobody listens");
    let CloudflareError::RetriesExhausted { last, .. } = &error else {
        panic!("{error:?}")
    };
    assert!(matches!(**last, CloudflareError::Transport(_)), "{error:?}");
}
