//! Operators signing in with the organisation's login.

use crate::common::ServerProcess;
use reqwest::StatusCode;
use reqwest::redirect::Policy as Redirects;
use serde_json::json;

/// An identity provider for operators: discovery, keys, an authorization
/// page that sends the browser straight back, and a token endpoint that
/// checks the client and PKCE and answers with an ID token for whoever
/// the test says is signing in.
struct Provider {
    url: String,
    /// The claims of the next login (`nonce` is set from the request
    /// unless given).
    who: std::sync::Arc<std::sync::Mutex<serde_json::Value>>,
}

impl Provider {
    async fn start() -> Self {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use std::collections::HashMap;
        use std::sync::{Arc, Mutex};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let pair = rcgen::KeyPair::generate().expect("a P-256 key");
        let point = pair.public_key_raw().to_vec();
        let jwk = json!({"keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "p1",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        }]});
        let key =
            jsonwebtoken::EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).expect("PEM");
        let who = Arc::new(Mutex::new(json!({})));
        // code → (nonce, code_challenge)
        let codes: Arc<Mutex<HashMap<String, (String, String)>>> = Arc::default();
        let base = url.clone();
        let authorize = {
            let codes = codes.clone();
            move |axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>| {
                let codes = codes.clone();
                async move {
                    assert_eq!(q["code_challenge_method"], "S256");
                    assert_eq!(q["response_type"], "code");
                    let code = format!("code-{}", q["state"]);
                    codes.lock().expect("lock").insert(
                        code.clone(),
                        (q["nonce"].clone(), q["code_challenge"].clone()),
                    );
                    axum::response::Redirect::to(&format!(
                        "{}?code={code}&state={}",
                        q["redirect_uri"], q["state"]
                    ))
                }
            }
        };
        let token = {
            let (codes, who, base) = (codes.clone(), who.clone(), base.clone());
            move |headers: axum::http::HeaderMap,
                  axum::Form(form): axum::Form<HashMap<String, String>>| {
                let (codes, who, base, key) =
                    (codes.clone(), who.clone(), base.clone(), key.clone());
                async move {
                    // client "console", secret "s3cret"
                    if headers.get("authorization").and_then(|v| v.to_str().ok())
                        != Some("Basic Y29uc29sZTpzM2NyZXQ=")
                    {
                        return Err(axum::http::StatusCode::UNAUTHORIZED);
                    }
                    let (nonce, challenge) = codes
                        .lock()
                        .expect("lock")
                        .remove(&form["code"])
                        .ok_or(axum::http::StatusCode::BAD_REQUEST)?;
                    let verified = URL_SAFE_NO_PAD.encode(<sha2::Sha256 as sha2::Digest>::digest(
                        form["code_verifier"].as_bytes(),
                    ));
                    if verified != challenge {
                        return Err(axum::http::StatusCode::BAD_REQUEST);
                    }
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .expect("time")
                        .as_secs();
                    let mut claims = json!({"iss": base, "aud": "console", "iat": now, "exp": now + 300, "nonce": nonce});
                    for (name, value) in who.lock().expect("lock").as_object().expect("object") {
                        claims[name] = value.clone();
                    }
                    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
                    header.kid = Some("p1".into());
                    let id_token = jsonwebtoken::encode(&header, &claims, &key).expect("signs");
                    Ok(axum::Json(
                        json!({"id_token": id_token, "access_token": "unused", "token_type": "Bearer"}),
                    ))
                }
            }
        };
        let discovery = json!({
            "issuer": base, "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"), "jwks_uri": format!("{base}/jwks"),
        });
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || async move { axum::Json(discovery) }),
            )
            .route(
                "/jwks",
                axum::routing::get(move || async move { axum::Json(jwk) }),
            )
            .route("/authorize", axum::routing::get(authorize))
            .route("/token", axum::routing::post(token));
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serves") });
        Self { url, who }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_sign_in_with_the_organisations_login_and_strangers_do_not() {
    let provider = Provider::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("addr")
        .port();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("flaregate.toml");
    std::fs::write(
        &config,
        format!(
            "[console.sign_in]\nissuer = \"{}\"\nclient_id = \"console\"\nredirect_uri = \"http://127.0.0.1:{port}/console/callback\"\n\n\
             [[console.operator]]\nid = \"carol\"\nrole = \"approver\"\n[console.operator.oauth]\ngroups = [\"sre\"]\n",
            provider.url
        ),
    )
    .expect("config");
    let admin_addr = format!("127.0.0.1:{port}");
    let server = ServerProcess::start(
        &[
            "--sandbox",
            "--config",
            config.to_str().expect("utf-8"),
            "--admin",
            &admin_addr,
        ],
        &[("FLAREGATE_CONSOLE_CLIENT_SECRET", "s3cret")],
    );
    let admin = server
        .admin_url
        .clone()
        .expect("admin")
        .trim_end_matches('/')
        .to_string();
    let http = reqwest::Client::builder()
        .redirect(Redirects::none())
        .build()
        .expect("client");
    let location = |answer: &reqwest::Response| {
        answer.headers()["location"]
            .to_str()
            .expect("ascii")
            .to_string()
    };
    // Follows the login from the console to the provider and back.
    let login = || async {
        let start = http
            .get(format!("{admin}/console/login/idp"))
            .send()
            .await
            .expect("answers");
        assert_eq!(start.status(), StatusCode::SEE_OTHER);
        let at_provider = location(&start);
        assert!(at_provider.starts_with(&provider.url), "{at_provider}");
        let back = http.get(&at_provider).send().await.expect("answers");
        let callback = location(&back);
        assert!(
            callback.starts_with(&format!("{admin}/console/callback?")),
            "{callback}"
        );
        (http.get(&callback).send().await.expect("answers"), callback)
    };

    let (_, _, page) = {
        let answer = http
            .get(format!("{admin}/console/login"))
            .send()
            .await
            .expect("answers");
        (answer.status(), (), answer.text().await.expect("body"))
    };
    assert!(
        page.contains("Sign in with your organisation&#39;s login")
            || page.contains("Sign in with your organisation's login"),
        "{page}"
    );

    *provider.who.lock().expect("lock") =
        json!({"sub": "carol-id", "email": "carol@example.com", "groups": ["sre"]});
    let (signed_in, callback) = login().await;
    assert_eq!(
        signed_in.status(),
        StatusCode::SEE_OTHER,
        "{:?}",
        signed_in.text().await
    );
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let session = cookie.split(';').next().expect("pair").to_string();
    let access = http
        .get(format!("{admin}/console"))
        .header("cookie", &session)
        .send()
        .await
        .expect("answers")
        .text()
        .await
        .expect("body");
    assert!(access.contains("carol (approver)"), "{access}");

    // The same answer twice: its sign-in is used up.
    let replayed = http.get(&callback).send().await.expect("answers");
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);

    // A login whose claims make nobody an operator.
    *provider.who.lock().expect("lock") = json!({"sub": "mallory", "groups": ["dev"]});
    let (stranger, _) = login().await;
    assert_eq!(stranger.status(), StatusCode::UNAUTHORIZED);
    assert!(stranger.headers().get("set-cookie").is_none());
    assert!(stranger.text().await.expect("body").contains("no operator"));

    // An ID token minted for another sign-in (its nonce) is refused.
    *provider.who.lock().expect("lock") =
        json!({"sub": "carol-id", "groups": ["sre"], "nonce": "another"});
    let (replay, _) = login().await;
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    assert!(replay.text().await.expect("body").contains("nonce"));
}
