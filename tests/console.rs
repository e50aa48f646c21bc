//! The operator's console on the admin listener, through real HTTP: off
//! unless operators are named; sign-in with an operator key into an
//! `HttpOnly; Secure; SameSite=Strict` session; the access matrix; the log,
//! where what agents wrote renders inert under a strict CSP, and new rows
//! stream live; the approvals inbox, where a change without the form
//! token, from another origin or by a viewer is refused and changes
//! nothing, and an approver's decision lets the agent's retried call
//! through and is in the chain under the operator's name.

mod common;

use common::{ServerProcess, call, text};
use reqwest::StatusCode;
use reqwest::redirect::Policy as Redirects;
use serde_json::json;

const COM: &str = "023e105f4ecef8ad9ca31a8372d0c353";
const WWW: &str = "8ce0e8a8a7b7b3c1d0e9f8a7b6c5d4e3";

const POLICY: &str = r#"
# The DNS bot: deletes need a person.
[[agent]]
id = "ops"
zones = ["example.com"]
grants = { dns = "full" }  # kept by the console
approve = ["delete_dns_record"]

[[agent]]
id = "editor"
zones = ["example.com"]
grants = { dns = "full" }
"#;

struct Console {
    server: ServerProcess,
    admin: String,
    http: reqwest::Client,
    approver: String,
    viewer: String,
    admin_key: String,
    policy: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// The server with one approver and one viewer named in flaregate.toml.
fn start() -> Console {
    let dir = tempfile::tempdir().expect("tempdir");
    let (approver, approver_hash) = flaregate::policy::new_key();
    let (viewer, viewer_hash) = flaregate::policy::new_key();
    let (admin_key, admin_hash) = flaregate::policy::new_key();
    let config = dir.path().join("flaregate.toml");
    std::fs::write(
        &config,
        format!(
            "[[console.operator]]\nid = \"alice\"\nkey_sha256 = [\"{approver_hash}\"]\nrole = \"approver\"\n\n\
             [[console.operator]]\nid = \"victor\"\nkey_sha256 = [\"{viewer_hash}\"]\nrole = \"viewer\"\n\n\
             [[console.operator]]\nid = \"root\"\nkey_sha256 = [\"{admin_hash}\"]\nrole = \"admin\"\n"
        ),
    )
    .expect("config");
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, POLICY).expect("policy");
    let server = ServerProcess::start(
        &[
            "--sandbox",
            "--config",
            config.to_str().expect("utf-8"),
            "--policies",
            policy.to_str().expect("utf-8"),
            "--admin",
            "127.0.0.1:0",
        ],
        &[],
    );
    let admin = server.admin_url.clone().expect("an admin listener");
    Console {
        server,
        admin: admin.trim_end_matches('/').to_string(),
        http: reqwest::Client::builder()
            .redirect(Redirects::none())
            .build()
            .expect("client"),
        approver,
        viewer,
        admin_key,
        policy,
        _dir: dir,
    }
}

impl Console {
    /// Signs in with `key`; the session cookie (`name=value`).
    async fn sign_in(&self, key: &str) -> String {
        let answer = self
            .http
            .post(format!("{}/console/login", self.admin))
            .form(&[("key", key)])
            .send()
            .await
            .expect("answers");
        assert_eq!(answer.status(), StatusCode::SEE_OTHER);
        let cookie = answer.headers()["set-cookie"].to_str().expect("ascii");
        for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/console"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        cookie.split(';').next().expect("name=value").to_string()
    }

    async fn page(
        &self,
        cookie: &str,
        path: &str,
    ) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let answer = self
            .http
            .get(format!("{}{path}", self.admin))
            .header("cookie", cookie)
            .send()
            .await
            .expect("answers");
        let (status, headers) = (answer.status(), answer.headers().clone());
        (status, headers, answer.text().await.expect("body"))
    }

    /// Posts a decision on request `id` with these form fields and headers.
    async fn decide(
        &self,
        cookie: &str,
        id: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> StatusCode {
        let mut request = self
            .http
            .post(format!("{}/console/approvals/{id}", self.admin))
            .header("cookie", cookie)
            .form(form);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("answers").status()
    }
}

/// `text` for a URL's query.
fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The CSRF token on a page of the session.
fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form token") + 19;
    page[at..at + 64].to_string()
}

#[tokio::test]
async fn the_console_is_off_unless_operators_are_named() {
    let server = ServerProcess::sandbox(&["--admin", "127.0.0.1:0"]);
    let admin = server.admin_url.clone().expect("admin");
    let answer = reqwest::get(format!("{}/console", admin.trim_end_matches('/')))
        .await
        .expect("answers");
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn operators_sign_in_and_see_access_and_the_log_with_agent_text_inert() {
    let console = start();
    // No session: to the sign-in page. A wrong key: refused.
    let (status, headers, _) = console.page("", "/console").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/console/login");
    let wrong = console
        .http
        .post(format!("{}/console/login", console.admin))
        .form(&[("key", "fgk_0000")])
        .send()
        .await
        .expect("answers");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get("set-cookie").is_none());
    // From another site's page: refused before the key is looked at.
    let forged = console
        .http
        .post(format!("{}/console/login", console.admin))
        .header("origin", "https://evil.example")
        .form(&[("key", console.viewer.as_str())])
        .send()
        .await
        .expect("answers");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    let cookie = console.sign_in(&console.viewer).await;
    let (status, headers, access) = console.page(&cookie, "/console").await;
    assert_eq!(status, StatusCode::OK);
    let policy = headers["content-security-policy"].to_str().expect("ascii");
    assert!(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"));
    assert!(!policy.contains("unsafe-inline"));
    assert!(access.contains("victor (viewer)"), "{access}");
    // The matrix: the agent, its zone, Full on DNS.
    assert!(
        access.contains(">ops</a>") && access.contains("example.com"),
        "{access}"
    );
    assert!(
        access.contains("<td class=\"level full\">Full</td>"),
        "{access}"
    );
    // The token permissions the grants need, as `check` lists them.
    assert!(
        access.contains("Zone · DNS · Edit") && access.contains("DNS Write"),
        "{access}"
    );

    // What may an agent do: the policy's answer, nothing sent.
    let ask = |args: &str| {
        format!(
            "/console/explain?agent=ops&tool=create_dns_record&args={}",
            percent(args)
        )
    };
    let (_, _, allowed) = console
        .page(&cookie, &ask(r#"{"zone_id":"023e105f4ecef8ad9ca31a8372d0c353","type":"A","name":"a.example.com","content":"192.0.2.1"}"#))
        .await;
    assert!(allowed.contains("class=\"allowed\""), "{allowed}");
    let (_, _, denied) = console
        .page(&cookie, &ask(r#"{"zone_id":"5a7805061c76ada191ed06f989cc3dac","type":"A","name":"a.example.org","content":"192.0.2.1"}"#))
        .await;
    assert!(
        denied.contains("denied: ") && denied.contains("outside your zones"),
        "{denied}"
    );

    // An agent writes markup and control characters into its arguments.
    let ops = console.server.connect("ops").await;
    let hostile = "<script>alert(1)</script>\u{1b}[31m\"><img src=x onerror=alert(2)>";
    let created = call(
        &ops,
        "create_dns_record",
        json!({"zone_id": COM, "type": "TXT", "name": "x.example.com", "content": hostile}),
    )
    .await;
    assert_eq!(created.is_error, Some(false), "{}", text(&created));
    let (_, _, log) = console.page(&cookie, "/console/log?agent=ops").await;
    assert!(log.contains("create_dns_record"), "{log}");
    let row = {
        let at = log.find("<td><a href=\"/console/log/").expect("a row link") + 26;
        log[at..].split('"').next().expect("id").to_string()
    };
    let (status, _, detail) = console.page(&cookie, &format!("/console/log/{row}")).await;
    assert_eq!(status, StatusCode::OK);
    for page in [&log, &detail] {
        for raw in ["<script>alert", "<img src=x", "\u{1b}["] {
            assert!(!page.contains(raw), "{raw:?} rendered live: {page}");
        }
        // The only script is the console's own file.
        assert_eq!(page.matches("<script").count(), 1, "{page}");
        assert!(page.contains("<script src=\"/console/static/console.js\""));
    }
    // Shown, as text: the arguments with the agent's markup escaped.
    assert!(
        detail.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
            && detail.contains("&lt;img src=x onerror=alert(2)&gt;"),
        "{detail}"
    );

    // New rows stream as they are written.
    let last: i64 = {
        let at = log.find("data-last=\"").expect("data-last") + 11;
        log[at..]
            .split('"')
            .next()
            .expect("id")
            .parse()
            .expect("a number")
    };
    let stream = console
        .http
        .get(format!("{}/console/log/stream?after={last}", console.admin))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("a stream");
    assert_eq!(stream.status(), StatusCode::OK);
    let listed = call(&ops, "list_dns_records", json!({"zone_id": COM})).await;
    assert_eq!(listed.is_error, Some(false));
    let heard = common::read_until(stream, "list_dns_records").await;
    assert!(heard.contains("event: row"), "{heard}");
    // The current filter exported as JSON lines; the chain verified.
    let (status, headers, exported) = console.page(&cookie, "/console/log/export?agent=ops").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-disposition"]
            .to_str()
            .expect("ascii")
            .starts_with("attachment")
    );
    let lines: Vec<serde_json::Value> = exported
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(
        !lines.is_empty() && lines.iter().all(|l| l["agent"] == "ops"),
        "{exported}"
    );
    let (_, _, verified) = console.page(&cookie, "/console/log/verify").await;
    assert!(
        verified.contains("rows verify") && verified.contains("Head: "),
        "{verified}"
    );

    // Without a session, no stream.
    let (status, _, _) = console.page("", "/console/log/stream").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn an_approver_decides_in_the_console_and_forged_or_unentitled_changes_do_nothing() {
    let console = start();
    let ops = console.server.connect("ops").await;
    let delete = |approval: Option<&str>| {
        let mut args = json!({"zone_id": COM, "dns_record_id": WWW});
        if let Some(id) = approval {
            args["approval_id"] = json!(id);
        }
        args
    };
    // An open inbox hears of a new request at once.
    let viewer = console.sign_in(&console.viewer).await;
    let changes = console
        .http
        .get(format!(
            "{}/console/approvals/stream?pending=",
            console.admin
        ))
        .header("cookie", &viewer)
        .send()
        .await
        .expect("a stream");
    let asked = call(&ops, "delete_dns_record", delete(None)).await;
    assert_eq!(asked.is_error, Some(true));
    let said = text(&asked);
    let at = said.find("approval ").expect("an approval id") + 9;
    let id = said[at..at + 32].to_string();
    let heard = common::read_until(changes, &id).await;
    assert!(heard.contains("event: changed"), "{heard}");

    // The viewer sees it waiting, with no buttons, and may not decide.
    let (_, _, inbox) = console.page(&viewer, "/console/approvals").await;
    assert!(
        inbox.contains(&id) && inbox.contains("Waiting (1)"),
        "{inbox}"
    );
    assert!(!inbox.contains("value=\"approve\""), "{inbox}");
    assert!(
        inbox.contains("Asked by") && inbox.contains("no person named"),
        "a key names no person: {inbox}"
    );
    let token = csrf(&inbox);
    let approve = [("csrf", token.as_str()), ("decision", "approve")];
    assert_eq!(
        console.decide(&viewer, &id, &approve, &[]).await,
        StatusCode::FORBIDDEN
    );

    // The approver: without the form token, with another session's, or
    // from another origin, nothing changes.
    let approver = console.sign_in(&console.approver).await;
    let (_, _, inbox) = console.page(&approver, "/console/approvals").await;
    assert!(inbox.contains("value=\"approve\""), "{inbox}");
    let token = csrf(&inbox);
    for (form, headers, what) in [
        (vec![("decision", "approve")], vec![], "no token"),
        (
            vec![
                ("csrf", "0".repeat(64).leak() as &str),
                ("decision", "approve"),
            ],
            vec![],
            "a wrong token",
        ),
        (
            vec![("csrf", token.as_str()), ("decision", "approve")],
            vec![("origin", "https://evil.example")],
            "another origin",
        ),
        (
            vec![("csrf", token.as_str()), ("decision", "approve")],
            vec![("sec-fetch-site", "cross-site")],
            "a cross-site request",
        ),
    ] {
        assert_eq!(
            console.decide(&approver, &id, &form, &headers).await,
            StatusCode::FORBIDDEN,
            "{what}"
        );
    }
    let retried = call(&ops, "delete_dns_record", delete(Some(&id))).await;
    assert_eq!(
        retried.is_error,
        Some(true),
        "still pending: {}",
        text(&retried)
    );
    assert!(text(&retried).contains("waiting"), "{}", text(&retried));

    // A real decision, from the console's own page.
    let approve = [
        ("csrf", token.as_str()),
        ("decision", "approve"),
        ("note", "checked with\nthe zone's owner"),
    ];
    let status = console
        .decide(
            &approver,
            &id,
            &approve,
            &[("origin", console.admin.as_str())],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, inbox) = console.page(&approver, "/console/approvals").await;
    assert!(
        inbox.contains("Waiting (0)") && inbox.contains("alice (console)"),
        "{inbox}"
    );
    let done = call(&ops, "delete_dns_record", delete(Some(&id))).await;
    assert_eq!(done.is_error, Some(false), "{}", text(&done));

    // The decision is in the chain under the operator's name.
    let rows = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let rows = console.server.audit_rows();
            if rows.iter().any(|r| r.decision == "approved") {
                return rows;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the decision is recorded");
    let decided = rows.iter().find(|r| r.decision == "approved").expect("row");
    assert!(
        decided.summary.contains("alice (console)"),
        "{}",
        decided.summary
    );
    assert!(
        decided
            .reason
            .ends_with(": \"checked with the zone's owner\""),
        "the note, on one line: {}",
        decided.reason
    );

    // Health: the state, the agent's calls of the last hour, the chart.
    let (status, _, health) = console.page(&viewer, "/console/health").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        health.contains("takes rows") && health.contains("answering"),
        "{health}"
    );
    assert!(health.contains("<svg"), "{health}");
    assert!(
        health.contains("<th scope=\"row\">ops</th><td>1</td>"),
        "one allowed call: {health}"
    );
}

#[tokio::test]
async fn an_admin_changes_access_through_a_checked_diff_and_the_chain_records_it() {
    let console = start();
    let change = "/console/access/change?agent=ops&group=zones&level=read";

    // Only an admin may.
    let approver = console.sign_in(&console.approver).await;
    let (status, _, _) = console.page(&approver, change).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let root = console.sign_in(&console.admin_key).await;
    let (_, _, access) = console.page(&root, "/console").await;
    assert!(access.contains("Preview the change"), "{access}");
    let (status, _, preview) = console.page(&root, change).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert!(
        preview.contains("-grants = { dns = &quot;full&quot; }  # kept by the console")
            && preview.contains("+grants = { dns = &quot;full&quot;, zones = &quot;read&quot; }  # kept by the console"),
        "the exact diff: {preview}"
    );
    assert!(
        preview.contains("It checks") && preview.contains("list_zones"),
        "{preview}"
    );
    let field = |name: &str| {
        let at = preview
            .find(&format!("name=\"{name}\" value=\""))
            .unwrap_or_else(|| panic!("{name}"))
            + name.len()
            + 15;
        preview[at..].split('"').next().expect("value").to_string()
    };
    let (csrf, digest) = (field("csrf"), field("digest"));
    let post = |form: Vec<(&'static str, String)>| {
        console
            .http
            .post(format!("{}/console/access/change", console.admin))
            .header("cookie", &root)
            .form(&form)
            .send()
    };
    let asked = |csrf: &str, digest: &str| {
        vec![
            ("csrf", csrf.to_string()),
            ("agent", "ops".to_string()),
            ("group", "zones".to_string()),
            ("level", "read".to_string()),
            ("digest", digest.to_string()),
        ]
    };
    let original = std::fs::read_to_string(&console.policy).expect("policy");

    // No form token: refused, nothing written.
    let forged = post(asked("", &digest)).await.expect("answers");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        std::fs::read_to_string(&console.policy).expect("policy"),
        original
    );

    // The file changed on disk since the preview: refused, the hand edit stays.
    let by_hand = format!("{original}\n# edited by hand meanwhile\n");
    std::fs::write(&console.policy, &by_hand).expect("edit");
    let stale = post(asked(&csrf, &digest)).await.expect("answers");
    assert_eq!(stale.status(), StatusCode::CONFLICT);
    assert!(
        stale
            .text()
            .await
            .expect("body")
            .contains("changed since the preview")
    );
    assert_eq!(
        std::fs::read_to_string(&console.policy).expect("policy"),
        by_hand
    );
    std::fs::write(&console.policy, &original).expect("put back");

    // Confirmed: written in place, reloaded, recorded.
    let written = post(asked(&csrf, &digest)).await.expect("answers");
    assert_eq!(written.status(), StatusCode::SEE_OTHER);
    let now = std::fs::read_to_string(&console.policy).expect("policy");
    assert_eq!(
        now,
        original.replace(
            "grants = { dns = \"full\" }  # kept",
            "grants = { dns = \"full\", zones = \"read\" }  # kept"
        ),
        "only the grant moved; comments and layout kept"
    );
    let ops = console.server.connect("ops").await;
    let tools = ops.list_all_tools().await.expect("tools");
    assert!(
        tools.iter().any(|t| t.name == "list_zones"),
        "the new grant is in force"
    );
    let rows = console.server.audit_rows();
    let row = rows
        .iter()
        .find(|r| r.decision == "policy")
        .expect("a policy row");
    assert_eq!(row.agent, "ops");
    assert!(
        row.summary
            .starts_with("root (console) changed ops's grant on zones from off to read"),
        "{}",
        row.summary
    );
    // The chain, policy row included, verifies.
    let verified = std::process::Command::new(common::BIN)
        .args(["audit", "verify", "--audit-db"])
        .arg(&console.server.audit_db)
        .output()
        .expect("runs");
    assert!(verified.status.success(), "{}", common::said(&verified));
}

#[tokio::test]
async fn an_admin_undoes_a_row_after_its_preview_and_the_undo_names_the_operator() {
    let console = start();
    let editor = console.server.connect("editor").await;
    let created = call(
        &editor,
        "create_dns_record",
        json!({"zone_id": COM, "type": "A", "name": "undo-me.example.com", "content": "192.0.2.7"}),
    )
    .await;
    assert_eq!(created.is_error, Some(false), "{}", text(&created));
    let row = console
        .server
        .audit_rows()
        .iter()
        .find(|r| r.tool == "create_dns_record")
        .expect("the create's row")
        .id;
    let deletes = || async {
        console
            .server
            .sandbox_requests()
            .await
            .iter()
            .filter(|r| r.method == "DELETE")
            .count()
    };

    let approver = console.sign_in(&console.approver).await;
    let (status, _, _) = console
        .page(&approver, &format!("/console/log/{row}/undo"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let root = console.sign_in(&console.admin_key).await;
    let (_, _, detail) = console.page(&root, &format!("/console/log/{row}")).await;
    assert!(detail.contains("Undo this call"), "{detail}");
    let (status, _, preview) = console
        .page(&root, &format!("/console/log/{row}/undo"))
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert!(
        preview.contains("delete_dns_record") && preview.contains("undo-me.example.com"),
        "{preview}"
    );
    assert_eq!(deletes().await, 0, "a preview sends nothing");
    let token = csrf(&preview);

    let forged = console
        .http
        .post(format!("{}/console/log/{row}/undo", console.admin))
        .header("cookie", &root)
        .form(&[("csrf", "")])
        .send()
        .await
        .expect("answers");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(deletes().await, 0, "a refused undo sends nothing");

    let undone = console
        .http
        .post(format!("{}/console/log/{row}/undo", console.admin))
        .header("cookie", &root)
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .expect("answers");
    let status = undone.status();
    let said = undone.text().await.expect("body");
    assert_eq!(status, StatusCode::OK, "{said}");
    assert_eq!(deletes().await, 1, "the record created is deleted");
    let rows = console.server.audit_rows();
    let undo = rows
        .iter()
        .find(|r| r.tool == "delete_dns_record" && r.decision == "allow")
        .expect("the undo's row");
    assert!(
        undo.summary.starts_with("root (console) as editor"),
        "{}",
        undo.summary
    );
}

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
