//! flaregate as an OAuth resource server, against an issuer the test runs
//! (discovery document and key set over HTTP, ES256 keys it makes): a
//! client without a token is sent to sign in (401 and the metadata); a
//! valid token reaches the one agent whose `[agent.oauth]` it matches;
//! each bad token — another audience, another issuer, expired, not yet
//! valid, `alg: none`, HS256 signed with the public key, an unknown key —
//! is refused; a rotated key is fetched; an issuer that cannot be reached
//! is a refusal (503), and keys fetched before keep working; flaregate
//! keys work beside tokens; the audit row names the person and client.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::ServerProcess;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const RESOURCE: &str = "https://flaregate.test/mcp";
/// The Cloudflare Access application's audience tag.
const ACCESS_AUD: &str = "4714c1358e65fe4b408ad6d432a5f878f08194bdb4752441fd56faefa9b2b6f2";

/// An ES256 signing key and its public JWK.
struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
    public_pem: String,
}

impl SigningKey {
    fn new(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate().expect("a P-256 key");
        let point = pair.public_key_raw();
        assert_eq!(point.len(), 65, "an uncompressed P-256 point");
        Self {
            kid: kid.into(),
            encoding: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).expect("PEM"),
            jwk: json!({
                "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..]),
            }),
            public_pem: pair.public_key_pem(),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signs")
    }
}

/// The issuer: discovery and keys, which the test can rotate or take down,
/// and an introspection endpoint (client `flaregate`, secret `s3cret`)
/// answering for the opaque tokens the test gives it.
struct Issuer {
    url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    up: Arc<Mutex<bool>>,
    opaque: Arc<Mutex<HashMap<String, Value>>>,
    /// Every token introspection was asked about.
    asked: Arc<Mutex<Vec<String>>>,
}

/// The introspection endpoint's client credentials, as HTTP Basic.
const INTROSPECTION_BASIC: &str = "Basic ZmxhcmVnYXRlOnMzY3JldA==";

impl Issuer {
    async fn start(keys: Vec<Value>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let keys = Arc::new(Mutex::new(keys));
        let up = Arc::new(Mutex::new(true));
        let opaque = Arc::new(Mutex::new(HashMap::<String, Value>::new()));
        let asked = Arc::new(Mutex::new(Vec::new()));
        let introspect = {
            let (u, opaque, asked) = (up.clone(), opaque.clone(), asked.clone());
            move |headers: axum::http::HeaderMap,
                  axum::Form(form): axum::Form<HashMap<String, String>>| {
                let (u, opaque, asked) = (u.clone(), opaque.clone(), asked.clone());
                async move {
                    if !*u.lock().expect("lock") {
                        return Err(axum::http::StatusCode::SERVICE_UNAVAILABLE);
                    }
                    if headers.get("authorization").and_then(|v| v.to_str().ok())
                        != Some(INTROSPECTION_BASIC)
                    {
                        return Err(axum::http::StatusCode::UNAUTHORIZED);
                    }
                    let token = form.get("token").cloned().unwrap_or_default();
                    asked.lock().expect("lock").push(token.clone());
                    let answer = opaque.lock().expect("lock").get(&token).cloned();
                    Ok(axum::Json(answer.unwrap_or(json!({"active": false}))))
                }
            }
        };
        let (k, u, base) = (keys.clone(), up.clone(), url.clone());
        let certs = {
            let u = u.clone();
            move || {
                let (k, u) = (k.clone(), u.clone());
                async move {
                    if !*u.lock().expect("lock") {
                        return Err(axum::http::StatusCode::SERVICE_UNAVAILABLE);
                    }
                    Ok(axum::Json(json!({"keys": k.lock().expect("lock").clone()})))
                }
            }
        };
        let app = axum::Router::new()
            .route(
                "/.well-known/oauth-authorization-server",
                axum::routing::get({
                    let (u, base) = (u.clone(), base.clone());
                    move || async move {
                        if !*u.lock().expect("lock") {
                            return Err(axum::http::StatusCode::SERVICE_UNAVAILABLE);
                        }
                        Ok(axum::Json(
                            json!({"issuer": base, "jwks_uri": format!("{base}/jwks")}),
                        ))
                    }
                }),
            )
            .route("/jwks", axum::routing::get(certs.clone()))
            .route("/introspect", axum::routing::post(introspect))
            // Where Cloudflare Access serves a team's keys.
            .route("/cdn-cgi/access/certs", axum::routing::get(certs));
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serves") });
        Self {
            url,
            keys,
            up,
            opaque,
            asked,
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

async fn post(url: &str, token: Option<&str>) -> reqwest::Response {
    post_body(url, token, r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"oauth-test","version":"1"}}}"#).await
}

async fn post_body(url: &str, token: Option<&str>, body: &str) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_from_the_issuer_reach_the_agent_they_match_and_bad_ones_are_refused() {
    let first = SigningKey::new("k1");
    let issuer = Issuer::start(vec![first.jwk.clone()]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, hash) = flaregate::policy::new_key();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[[agent]]\nid = \"sre\"\nzones = [\"example.com\"]\ngrants = {{ dns = \"full\", cache = \"full\" }}\napprove = [\"delete_dns_record\"]\n[agent.oauth]\ngroups = [\"sre\"]\n\n\
             [[agent]]\nid = \"viewer\"\nzones = [\"example.com\"]\ngrants = {{ zones = \"read\" }}\n[agent.oauth]\nemail_domain = [\"access.example\"]\n\n\
             [[agent]]\nid = \"service\"\nkey_sha256 = [\"{hash}\"]\nzones = [\"example.com\"]\ngrants = {{ zones = \"read\" }}\n"
        ),
    )
    .expect("policy");
    let config = dir.path().join("flaregate.toml");
    std::fs::write(
        &config,
        format!(
            "[auth.oauth]\nissuers = [\"{}\"]\nresource = \"{RESOURCE}\"\nkey_refresh_secs = 1\ngroup_scopes = [\"dns\"]\n\
             [auth.cloudflare_access]\nteam_domain = \"{}\"\naudience = \"{ACCESS_AUD}\"\n",
            issuer.url, issuer.url
        ),
    )
    .expect("config");
    let server = ServerProcess::sandbox(&[
        "--config",
        config.to_str().expect("utf-8"),
        "--policies",
        policy.to_str().expect("utf-8"),
        "--admin",
        "127.0.0.1:0",
    ]);
    let mcp = server.mcp_url.clone();
    let claims = |extra: Value| {
        let mut claims = json!({
            "iss": issuer.url, "aud": RESOURCE, "sub": "alice", "email": "alice@example.com",
            "groups": ["sre"], "client_id": "claude-test", "scope": "openid flaregate:read flaregate:write", "iat": now(), "exp": now() + 300,
        });
        for (name, value) in extra.as_object().expect("object") {
            claims[name] = value.clone();
        }
        claims
    };

    // No token: sent to sign in, with where the metadata is.
    let anonymous = post(&mcp, None).await;
    assert_eq!(anonymous.status(), 401);
    let challenge = anonymous.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        challenge.contains(
            "resource_metadata=\"https://flaregate.test/.well-known/oauth-protected-resource/mcp\""
        ),
        "{challenge}"
    );
    let base = mcp.trim_end_matches("/mcp");
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let metadata: Value = reqwest::get(format!("{base}{path}"))
            .await
            .expect("answers")
            .json()
            .await
            .expect("JSON");
        assert_eq!(metadata["resource"], RESOURCE, "{path}");
        assert_eq!(
            metadata["authorization_servers"],
            json!([issuer.url]),
            "{path}"
        );
    }

    // A valid token is the agent whose claims it matches, through a real
    // MCP client; the key-holding agent still gets in with its key.
    let token = first.sign(&claims(json!({})));
    let client = common::connect_http(&mcp, Some(&token)).await;
    let tools = client.list_all_tools().await.expect("tools");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(names.contains(&"list_dns_records"), "{names:?}");
    assert!(
        !names.contains(&"list_zones"),
        "the sre agent's tools only: {names:?}"
    );
    // The row names the agent and the person and client the token named.
    let listed = common::call(
        &client,
        "list_dns_records",
        json!({"zone_id": flaregate::sandbox::EXAMPLE_COM}),
    )
    .await;
    assert_eq!(listed.is_error, Some(false), "{}", common::text(&listed));
    let rows = server.audit_rows();
    let row = rows.last().expect("a row");
    assert_eq!(row.agent, "sre");
    assert!(
        row.summary
            .starts_with("alice@example.com via client claude-test as sre was allowed"),
        "{}",
        row.summary
    );
    // A request for approval keeps who asked, through which client.
    let asked = common::call(
        &client,
        "delete_dns_record",
        json!({"zone_id": flaregate::sandbox::EXAMPLE_COM, "dns_record_id": "8ce0e8a8a7b7b3c1d0e9f8a7b6c5d4e3"}),
    )
    .await;
    assert_eq!(asked.is_error, Some(true), "{}", common::text(&asked));
    let listed = std::process::Command::new(common::BIN)
        .args(["approvals", "--json", "--audit-db"])
        .arg(&server.audit_db)
        .output()
        .expect("runs");
    let request: Value = serde_json::from_slice(
        String::from_utf8_lossy(&listed.stdout)
            .lines()
            .next()
            .expect("one request")
            .as_bytes(),
    )
    .expect("JSON");
    assert_eq!(
        request["asked_by"],
        "alice@example.com via client claude-test"
    );
    drop(client);
    assert_eq!(
        post(&mcp, Some(&key)).await.status(),
        200,
        "keys keep working"
    );

    // Each bad token is refused, and says why.
    let hs256_with_public_key = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        jsonwebtoken::encode(
            &header,
            &claims(json!({})),
            &EncodingKey::from_secret(first.public_pem.as_bytes()),
        )
        .expect("signs")
    };
    let alg_none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"k1"}"#),
        URL_SAFE_NO_PAD.encode(claims(json!({})).to_string())
    );
    let stranger = SigningKey::new("k1");
    let bad = [
        (
            "another audience",
            first.sign(&claims(json!({"aud": "https://other.test/mcp"}))),
        ),
        (
            "another issuer",
            first.sign(&claims(json!({"iss": "https://evil.test"}))),
        ),
        ("expired", first.sign(&claims(json!({"exp": now() - 600})))),
        (
            "not yet valid",
            first.sign(&claims(json!({"nbf": now() + 600}))),
        ),
        ("alg none", alg_none),
        ("HS256 with the public key", hs256_with_public_key),
        (
            "signed by another key of the same id",
            stranger.sign(&claims(json!({}))),
        ),
    ];
    for (what, token) in bad {
        let refused = post(&mcp, Some(&token)).await;
        assert_eq!(refused.status(), 401, "{what}");
        let challenge = refused.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .to_string();
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );
    }

    // Scopes narrow the grant: a read-only token sees and makes no write,
    // and a write is answered with the step-up challenge naming every
    // scope it needs; a token with neither scope is asked for the read one.
    let read_only = first.sign(&claims(json!({"scope": "flaregate:read"})));
    let client = common::connect_http(&mcp, Some(&read_only)).await;
    let tools = client.list_all_tools().await.expect("tools");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(names.contains(&"list_dns_records"), "{names:?}");
    assert!(!names.contains(&"create_dns_record"), "{names:?}");
    drop(client);
    let write = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"create_dns_record","arguments":{"zone_id":"023e105f4ecef8ad9ca31a8372d0c353","type":"A","name":"x.example.com","content":"192.0.2.1"}}}"#;
    let stepped = post_body(&mcp, Some(&read_only), write).await;
    assert_eq!(stepped.status(), 403);
    let challenge = stepped.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            // What is held and what the write needs: DNS has a scope of its own.
            && challenge.contains("scope=\"flaregate:read flaregate:dns:write\""),
        "{challenge}"
    );
    let no_scope = first.sign(&claims(json!({"scope": "openid"})));
    let asked = post(&mcp, Some(&no_scope)).await;
    assert_eq!(asked.status(), 403);
    let challenge = asked.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        challenge.contains("scope=\"flaregate:read\""),
        "{challenge}"
    );
    let full = common::connect_http(&mcp, Some(&first.sign(&claims(json!({}))))).await;
    let tools = full.list_all_tools().await.expect("tools");
    assert!(tools.iter().any(|t| t.name == "create_dns_record"));
    assert!(tools.iter().any(|t| t.name == "purge_cache"));
    drop(full);

    // A scope of one group's own (`group_scopes = ["dns"]`) reaches that
    // group alone, though the policy grants cache too: cache tools are not
    // offered, and calling one asks for the scope that would allow it.
    let dns_only = first.sign(&claims(json!({"scope": "flaregate:dns:write"})));
    let client = common::connect_http(&mcp, Some(&dns_only)).await;
    let tools = client.list_all_tools().await.expect("tools");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(names.contains(&"create_dns_record"), "{names:?}");
    assert!(!names.contains(&"purge_cache"), "{names:?}");
    drop(client);
    let purge = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"purge_cache","arguments":{"zone_id":"023e105f4ecef8ad9ca31a8372d0c353","purge_everything":true}}}"#;
    let stepped = post_body(&mcp, Some(&dns_only), purge).await;
    assert_eq!(stepped.status(), 403);
    let challenge = stepped.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        challenge.contains("scope=\"flaregate:dns:write flaregate:write\""),
        "{challenge}"
    );
    let metadata: Value = reqwest::get(format!("{base}/.well-known/oauth-protected-resource"))
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        metadata["scopes_supported"],
        json!([
            "flaregate:read",
            "flaregate:write",
            "flaregate:dns:read",
            "flaregate:dns:write"
        ])
    );

    // A token matching no agent is told so.
    let outsider = post(&mcp, Some(&first.sign(&claims(json!({"groups": ["dev"]}))))).await;
    assert_eq!(outsider.status(), 403);
    assert!(outsider.text().await.expect("body").contains("no agent"));

    // A rotated key: a token with a key id not seen yet fetches the set
    // (once the refresh interval since the last fetch has passed).
    let second = SigningKey::new("k2");
    issuer.keys.lock().expect("lock").push(second.jwk.clone());
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_eq!(
        post(&mcp, Some(&second.sign(&claims(json!({})))))
            .await
            .status(),
        200
    );

    // Behind Cloudflare Access: its assertion, checked against the team's
    // certs and the application's tag, is the person; a forged one or one
    // for another application is refused.
    let assertion = |extra: Value, key: &SigningKey| {
        let mut claims = json!({
            "iss": issuer.url, "aud": [ACCESS_AUD], "sub": "bob-id", "email": "bob@access.example",
            "iat": now(), "exp": now() + 300, "type": "app",
        });
        for (name, value) in extra.as_object().expect("object") {
            claims[name] = value.clone();
        }
        key.sign(&claims)
    };
    let behind_access = |token: String| {
        let mcp = mcp.clone();
        async move {
            reqwest::Client::new()
                .post(&mcp)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .header("cf-access-jwt-assertion", token)
                .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"access","version":"1"}}}"#)
                .send()
                .await
                .expect("answers")
                .status()
                .as_u16()
        }
    };
    assert_eq!(behind_access(assertion(json!({}), &first)).await, 200);
    assert_eq!(
        behind_access(assertion(json!({}), &stranger)).await,
        401,
        "forged"
    );
    assert_eq!(
        behind_access(assertion(json!({"aud": ["another-application"]}), &first)).await,
        401,
        "another application's"
    );

    // Each refusal is counted by its reason, for an operator to alert on.
    let admin = server.admin_url.clone().expect("admin listener");
    let metrics = reqwest::get(format!("{admin}/metrics"))
        .await
        .expect("answers")
        .text()
        .await
        .expect("text");
    let count = |reason: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "flaregate_sign_in_refusals_total{{reason=\"{reason}\"}} "
                ))
            })
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(count("invalid_token") >= 7, "{metrics}");
    assert!(count("insufficient_scope") >= 2, "{metrics}");
    assert!(count("no_single_agent") >= 1, "{metrics}");

    // The issuer goes away: keys fetched before still check tokens...
    *issuer.up.lock().expect("lock") = false;
    assert_eq!(
        post(&mcp, Some(&first.sign(&claims(json!({})))))
            .await
            .status(),
        200
    );

    // ...and a server that never reached it refuses, without letting anyone in.
    let cold = ServerProcess::sandbox(&[
        "--config",
        config.to_str().expect("utf-8"),
        "--policies",
        policy.to_str().expect("utf-8"),
    ]);
    let unreachable = post(&cold.mcp_url, Some(&first.sign(&claims(json!({}))))).await;
    assert_eq!(unreachable.status(), 503);
    assert!(
        unreachable
            .text()
            .await
            .expect("body")
            .contains("cannot be reached")
    );
}

/// `explain --token-claims` decides for a token's claims as the server
/// would (the agent they match, narrowed by the scopes), and `check`
/// says how each agent is reached.
#[test]
fn explain_decides_for_a_tokens_claims_and_check_says_how_agents_are_reached() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[[agent]]\nid = \"sre\"\nzones = [\"example.com\"]\ngrants = { dns = \"full\" }\n[agent.oauth]\ngroups = [\"sre\"]\n",
    )
    .expect("policy");
    let config = dir.path().join("flaregate.toml");
    std::fs::write(
        &config,
        format!(
            "[auth.oauth]\nissuers = [\"https://login.example.com\"]\nresource = \"{RESOURCE}\"\n"
        ),
    )
    .expect("config");
    let claims = dir.path().join("claims.json");
    let explain = |claims_json: Value| {
        std::fs::write(&claims, claims_json.to_string()).expect("claims");
        std::process::Command::new(common::BIN)
            .args(["explain", "--sandbox", "--json", "--token-claims"])
            .arg(&claims)
            .args(["--tool", "create_dns_record", "--args"])
            .arg(
                json!({"zone_id": flaregate::sandbox::EXAMPLE_COM, "type": "A", "name": "x.example.com", "content": "192.0.2.1"})
                    .to_string(),
            )
            .arg("--config")
            .arg(&config)
            .arg("--policies")
            .arg(&policy)
            .output()
            .expect("runs")
    };
    let said = |output: &std::process::Output| -> Value {
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)))
    };
    let writer = explain(json!({"sub": "a", "groups": ["sre"], "scope": "flaregate:write"}));
    assert_eq!(writer.status.code(), Some(0), "{}", said(&writer));
    let reader = explain(json!({"sub": "a", "groups": ["sre"], "scope": "flaregate:read"}));
    assert_eq!(reader.status.code(), Some(1));
    assert!(
        said(&reader)["reason"]
            .as_str()
            .is_some_and(|r| r.contains("read only"))
    );
    let stranger = explain(json!({"sub": "m", "groups": ["dev"], "scope": "flaregate:write"}));
    assert_eq!(stranger.status.code(), Some(1));
    assert!(
        said(&stranger)["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no agent"))
    );

    let checked = std::process::Command::new(common::BIN)
        .args(["check", "--json", "--config"])
        .arg(&config)
        .arg("--policies")
        .arg(&policy)
        .output()
        .expect("runs");
    let report: Value = serde_json::from_slice(&checked.stdout).expect("JSON");
    assert_eq!(report["agents"][0]["auth"], "oauth", "{report}");
}

/// Two agents whose `[agent.oauth]` can match one token: `check` fails
/// where every token of one matches the other (it would never be reached),
/// and warns, naming such a token, where only some token could match both.
#[test]
fn check_refuses_an_agent_whose_tokens_all_match_another_and_warns_of_possible_overlaps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("people.toml");
    let config = dir.path().join("flaregate.toml");
    std::fs::write(
        &config,
        format!(
            "[auth.oauth]\nissuers = [\"https://login.example.com\"]\nresource = \"{RESOURCE}\"\n"
        ),
    )
    .expect("config");
    let check = |agents: &str| {
        std::fs::write(&policy, agents).expect("policy");
        std::process::Command::new(common::BIN)
            .args(["check", "--sandbox", "--config"])
            .arg(&config)
            .arg("--policies")
            .arg(&policy)
            .output()
            .expect("runs")
    };
    let agent = |id: &str, claims: &str| {
        format!(
            "[[agent]]\nid = \"{id}\"\nzones = [\"example.com\"]\ngrants = {{ dns = \"read\" }}\n[agent.oauth]\n{claims}\n\n"
        )
    };

    // Every SRE using Claude is also an SRE: `sre-claude` is never reached.
    let nested = check(&format!(
        "{}{}",
        agent("sre", "groups = [\"sre\"]"),
        agent("sre-claude", "groups = [\"sre\"]\nclient_id = [\"claude\"]")
    ));
    let said = String::from_utf8_lossy(&nested.stderr);
    assert!(!nested.status.success(), "{said}");
    assert!(
        said.contains("people.toml:9: every token agent `sre-claude` matches, agent `sre`")
            && said.contains("never reached"),
        "{said}"
    );

    // Someone in both groups would match both: a warning, not an error.
    let groups = check(&format!(
        "{}{}",
        agent("sre", "groups = [\"sre\"]"),
        agent("dns", "groups = [\"dns-editors\"]")
    ));
    let said = common::said(&groups);
    assert!(groups.status.success(), "{said}");
    assert!(
        said.contains("agents `sre` and `dns`") && said.contains("groups sre and dns-editors"),
        "{said}"
    );

    // One subject each: no token matches both, nothing to say.
    let apart = check(&format!(
        "{}{}",
        agent("alice", "sub = [\"alice\"]"),
        agent("bob", "sub = [\"bob\"]")
    ));
    let said = common::said(&apart);
    assert!(apart.status.success(), "{said}");
    assert!(!said.contains("can both match"), "{said}");
}

/// A session that goes on with a token of other scopes (the client signed
/// in again after a step-up) hears tools/list_changed on its stream, and
/// its next tools/list shows what the new scopes allow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_continued_with_more_scopes_hears_that_its_tools_changed() {
    let key = SigningKey::new("k1");
    let issuer = Issuer::start(vec![key.jwk.clone()]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[[agent]]\nid = \"sre\"\nzones = [\"example.com\"]\ngrants = { dns = \"full\" }\n[agent.oauth]\ngroups = [\"sre\"]\n",
    )
    .expect("policy");
    let config = dir.path().join("flaregate.toml");
    std::fs::write(
        &config,
        format!(
            "[auth.oauth]\nissuers = [\"{}\"]\nresource = \"{RESOURCE}\"\n",
            issuer.url
        ),
    )
    .expect("config");
    let server = ServerProcess::sandbox(&[
        "--config",
        config.to_str().expect("utf-8"),
        "--policies",
        policy.to_str().expect("utf-8"),
    ]);
    let mcp = server.mcp_url.clone();
    let token = |scope: &str| {
        key.sign(&json!({
            "iss": issuer.url, "aud": RESOURCE, "sub": "alice", "groups": ["sre"],
            "scope": scope, "iat": now(), "exp": now() + 300,
        }))
    };
    let (reader, writer) = (token("flaregate:read"), token("flaregate:write"));
    let send = |token: &str, session: Option<&str>, body: &str| {
        let mut request = reqwest::Client::new()
            .post(&mcp)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .body(body.to_string());
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        request.send()
    };
    let opened = send(&reader, None, r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"step-up","version":"1"}}}"#)
        .await
        .expect("answers");
    let session = opened.headers()["mcp-session-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    let initialized = send(
        &reader,
        Some(&session),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .await
    .expect("answers");
    assert_eq!(initialized.status(), 202);
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}"#;
    let tools = |text: String| text.contains("\"create_dns_record\"");
    let listed = send(&reader, Some(&session), list).await.expect("answers");
    assert!(
        !tools(listed.text().await.expect("body")),
        "no write for a reader"
    );

    // The server's stream for this session, where unprompted messages go.
    let stream = reqwest::Client::new()
        .get(&mcp)
        .bearer_auth(&reader)
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .header("mcp-session-id", &session)
        .send()
        .await
        .expect("a stream");
    assert_eq!(stream.status(), 200);
    // Signed in again with the write scope, the same session calls on.
    let call = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"list_dns_records","arguments":{"zone_id":"023e105f4ecef8ad9ca31a8372d0c353"}}}"#;
    let called = send(&writer, Some(&session), call).await.expect("answers");
    assert_eq!(called.status(), 200);
    // The server's stream for the session keeps what it sent meanwhile.
    common::read_until(stream, "notifications/tools/list_changed").await;
    let listed = send(&writer, Some(&session), list).await.expect("answers");
    assert!(
        tools(listed.text().await.expect("body")),
        "the write now shows"
    );
}

/// Opaque tokens are checked with the authorization server's
/// introspection endpoint (RFC 7662): an active one for this resource is
/// its person's agent; an inactive one, or one for another resource, is
/// refused; a flaregate key is never sent there; while the server is down
/// a token it has not answered for is a 503, and one it answered for
/// lately still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tokens_are_introspected_and_flaregate_keys_never_leave() {
    let issuer = Issuer::start(Vec::new()).await;
    let active = |extra: Value| {
        let mut claims = json!({
            "active": true, "iss": issuer.url, "aud": RESOURCE, "sub": "alice",
            "email": "alice@example.com", "groups": ["sre"], "client_id": "claude-test",
            "scope": "flaregate:read flaregate:write", "exp": now() + 300,
        });
        for (name, value) in extra.as_object().expect("object") {
            claims[name] = value.clone();
        }
        claims
    };
    issuer.opaque.lock().expect("lock").extend([
        ("opaque-alice".to_string(), active(json!({}))),
        (
            "opaque-bob".to_string(),
            active(json!({"sub": "bob", "email": "bob@example.com"})),
        ),
        (
            "opaque-elsewhere".to_string(),
            active(json!({"aud": "https://other.test/mcp"})),
        ),
        (
            "opaque-expired".to_string(),
            active(json!({"exp": now() - 600})),
        ),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[[agent]]\nid = \"sre\"\nzones = [\"example.com\"]\ngrants = { dns = \"full\" }\n[agent.oauth]\ngroups = [\"sre\"]\n",
    )
    .expect("policy");
    let config = dir.path().join("flaregate.toml");
    std::fs::write(
        &config,
        format!(
            "[auth.oauth]\nissuers = [\"{0}\"]\nresource = \"{RESOURCE}\"\n\
             introspection_endpoint = \"{0}/introspect\"\nintrospection_client_id = \"flaregate\"\n",
            issuer.url
        ),
    )
    .expect("config");
    let (config, policy) = (
        config.to_str().expect("utf-8"),
        policy.to_str().expect("utf-8"),
    );

    // Without the client secret in the environment, nothing starts.
    let check = std::process::Command::new(common::BIN)
        .args([
            "check",
            "--sandbox",
            "--config",
            config,
            "--policies",
            policy,
        ])
        .env_remove("FLAREGATE_OAUTH_CLIENT_SECRET")
        .output()
        .expect("runs");
    assert!(!check.status.success());
    assert!(
        String::from_utf8_lossy(&check.stderr).contains("FLAREGATE_OAUTH_CLIENT_SECRET"),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let log = dir.path().join("server.log");
    let server = ServerProcess::start_logging_to(
        &["--sandbox", "--config", config, "--policies", policy],
        &[
            ("FLAREGATE_OAUTH_CLIENT_SECRET", "s3cret"),
            ("RUST_LOG", "info"),
        ],
        &log,
    );
    let mcp = server.mcp_url.clone();
    let client = common::connect_http(&mcp, Some("opaque-alice")).await;
    let tools = client.list_all_tools().await.expect("tools");
    assert!(tools.iter().any(|t| t.name == "create_dns_record"));
    let listed = common::call(
        &client,
        "list_dns_records",
        json!({"zone_id": flaregate::sandbox::EXAMPLE_COM}),
    )
    .await;
    assert_eq!(listed.is_error, Some(false), "{}", common::text(&listed));
    let rows = server.audit_rows();
    let row = rows.last().expect("a row");
    assert!(
        row.summary
            .starts_with("alice@example.com via client claude-test as sre was allowed"),
        "{}",
        row.summary
    );
    // A refusal's log line names the person beside the agent.
    let denied = common::call(
        &client,
        "list_dns_records",
        json!({"zone_id": flaregate::sandbox::EXAMPLE_ORG}),
    )
    .await;
    assert_eq!(denied.is_error, Some(true));
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(
        logged.lines().any(|line| line.contains("call denied")
            && line.contains("agent=sre")
            && line.contains("person=alice@example.com via client claude-test")),
        "{logged}"
    );
    assert!(!logged.contains("s3cret"), "the client secret was logged");
    drop(client);

    for (token, what) in [
        ("opaque-revoked", "inactive"),
        ("opaque-elsewhere", "for another resource"),
        ("opaque-expired", "expired"),
    ] {
        let refused = post(&mcp, Some(token)).await;
        assert_eq!(refused.status(), 401, "{what}");
        let challenge = refused.headers()["www-authenticate"]
            .to_str()
            .expect("ascii")
            .to_string();
        assert!(challenge.contains("invalid_token"), "{what}: {challenge}");
    }

    // A flaregate key the policy does not know is refused here, not sent.
    let (stray_key, _) = flaregate::policy::new_key();
    assert_eq!(post(&mcp, Some(&stray_key)).await.status(), 401);
    assert!(
        !issuer.asked.lock().expect("lock").contains(&stray_key),
        "a flaregate key reached the authorization server"
    );

    // The server down: alice's answer is still kept; bob's was never had.
    *issuer.up.lock().expect("lock") = false;
    assert_eq!(post(&mcp, Some("opaque-alice")).await.status(), 200);
    let unchecked = post(&mcp, Some("opaque-bob")).await;
    assert_eq!(unchecked.status(), 503);
}
