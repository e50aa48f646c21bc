//! The operator's console on the admin listener, through real HTTP: off
//! unless operators are named; sign-in with an operator key into an
//! `HttpOnly; Secure; SameSite=Strict` session; the access matrix; the log,
//! where what agents wrote renders inert under a strict CSP, and new rows
//! stream live; the approvals inbox, where a change without the form
//! token, from another origin or by a viewer is refused and changes
//! nothing, and an approver's decision lets the agent's retried call
//! through and is in the chain under the operator's name.
//!
//! One binary, a module per page; the server each test starts and the
//! helpers to drive it are here.

#[path = "../common/mod.rs"]
mod common;

mod access;
mod approvals;
mod change;
mod idp;
mod undo;

use common::ServerProcess;
use reqwest::StatusCode;
use reqwest::redirect::Policy as Redirects;

pub const COM: &str = "023e105f4ecef8ad9ca31a8372d0c353";
pub const WWW: &str = "8ce0e8a8a7b7b3c1d0e9f8a7b6c5d4e3";

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

pub struct Console {
    pub server: ServerProcess,
    pub admin: String,
    pub http: reqwest::Client,
    pub approver: String,
    pub viewer: String,
    pub admin_key: String,
    pub policy: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// The server with one approver and one viewer named in flaregate.toml.
pub fn start() -> Console {
    start_with(POLICY, None)
}

/// The server with `policy`, against the built-in sandbox, or with
/// `upstream` against another Cloudflare (its base URL and token).
pub fn start_with(policy_text: &str, upstream: Option<(&str, &str)>) -> Console {
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
    std::fs::write(&policy, policy_text).expect("policy");
    let mut args = vec![
        "--config",
        config.to_str().expect("utf-8"),
        "--policies",
        policy.to_str().expect("utf-8"),
        "--admin",
        "127.0.0.1:0",
    ];
    let env = match upstream {
        None => {
            args.push("--sandbox");
            vec![]
        }
        Some((base, token)) => vec![
            ("CLOUDFLARE_API_BASE_URL", base),
            ("CLOUDFLARE_API_TOKEN", token),
        ],
    };
    let server = ServerProcess::start(&args, &env);
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
    pub async fn sign_in(&self, key: &str) -> String {
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

    pub async fn page(
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
    pub async fn decide(
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
pub fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The CSRF token on a page of the session.
pub fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form token") + 19;
    page[at..at + 64].to_string()
}
