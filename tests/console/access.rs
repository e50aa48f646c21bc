//! Sign-in, the access page and the log: what agents wrote is inert.

use crate::common::{self, ServerProcess, call, text};
use crate::{COM, csrf, percent, start};
use reqwest::StatusCode;
use serde_json::json;

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
        access.contains("<td class=\"level full\"><details><summary>Full</summary>"),
        "{access}"
    );
    assert!(
        !access.contains("/console/access/change"),
        "a viewer is offered no change: {access}"
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
async fn the_access_page_says_what_the_live_token_lacks_when_asked_and_only_then() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        "[[token]]\nvalue = \"dns-only\"\npermissions = [\"Zone Read\", \"DNS Read\", \"Account Settings Read\"]\n",
    )
    .expect("tokens");
    let upstream =
        common::SandboxProcess::start(&["--tokens-file", tokens.to_str().expect("utf-8")]);
    let policy = "[[agent]]\nid = \"ops\"\nzones = [\"example.com\"]\naccounts = [\"Example Corp\"]\ngrants = { dns = \"read\", workers = \"read\" }\n";
    let console = crate::start_with(policy, Some((&upstream.base_url, "dns-only")));
    let viewer = console.sign_in(&console.viewer).await;
    let (_, _, access) = console.page(&viewer, "/console").await;
    assert!(
        access.contains("Check what the live token lacks") && !access.contains("write probes"),
        "a viewer may run the reads, not the write probes: {access}"
    );
    let check = |cookie: &str, form: Vec<(&'static str, String)>| {
        console
            .http
            .post(format!("{}/console/access/token", console.admin))
            .header("cookie", cookie)
            .form(&form)
            .send()
    };
    let token = csrf(&access);
    // Without the form token, or the write probes as a viewer: refused.
    let forged = check(&viewer, vec![]).await.expect("answers");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let probes = vec![("csrf", token.clone()), ("writes", "on".into())];
    let probes = check(&viewer, probes).await.expect("answers");
    assert_eq!(probes.status(), StatusCode::FORBIDDEN);

    let checked = check(&viewer, vec![("csrf", token)])
        .await
        .expect("answers");
    assert_eq!(checked.status(), StatusCode::OK);
    let said = checked.text().await.expect("body");
    assert!(
        said.contains("the token is active")
            && said.contains(
                "cannot serve workers on account Example Corp: it lacks Workers Scripts Read"
            )
            && !said.contains("cannot serve dns"),
        "{said}"
    );
}
