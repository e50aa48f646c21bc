//! The shared test harness: starts the real `flaregate` binary on free
//! loopback ports and cleans up after it.
#![allow(dead_code)] // each test binary uses a different part

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use flaregate::catalog::{Catalog, Endpoint};
use flaregate::cloudflare::{Client, ClientConfig, Credential, RateSpec, RetryPolicy};
use flaregate::sandbox::LoggedRequest;
use serde_json::{Map, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_flaregate");

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

pub fn catalog() -> Catalog {
    Catalog::load(&repo_path("catalog")).expect("shipped catalog loads")
}

/// A `flaregate sandbox` process on a free port.
pub struct SandboxProcess {
    child: Child,
    pub base_url: String,
    pub token: String,
    /// Kept open so the child never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl SandboxProcess {
    /// Starts the sandbox with extra command-line arguments.
    pub fn start(extra: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(["sandbox", "--listen", "127.0.0.1:0", "--log-level", "warn"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start flaregate sandbox");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let (mut base_url, mut token) = (None, None);
        let mut line = String::new();
        while base_url.is_none() || token.is_none() {
            line.clear();
            if stdout.read_line(&mut line).expect("read sandbox banner") == 0 {
                panic!("sandbox exited before printing its address");
            }
            if let Some(url) = line.trim().strip_prefix("API:") {
                base_url = Some(url.trim().to_string());
            }
            if let Some(t) = line.trim().strip_prefix("token:") {
                token = Some(t.trim().to_string());
            }
        }
        Self {
            child,
            base_url: base_url.expect("read above"),
            token: token.expect("read above"),
            _stdout: stdout,
        }
    }

    /// The root URL (without /client/v4).
    pub fn root(&self) -> String {
        self.base_url.trim_end_matches("/client/v4").to_string()
    }

    /// A client with the sandbox's full-access token and fast retries.
    pub fn client(&self) -> Client {
        self.client_with(Credential::Token(self.token.clone()), RateSpec::Off)
    }

    pub fn client_with(&self, credential: Credential, rate_limit: RateSpec) -> Client {
        let mut config = ClientConfig::new(self.base_url.clone(), credential);
        config.rate_limit = rate_limit;
        config.retry = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(2),
        };
        config.timeout = Duration::from_secs(10);
        Client::new(config).expect("client builds")
    }

    /// Every request the sandbox has received, oldest first.
    pub async fn requests(&self) -> Vec<LoggedRequest> {
        reqwest::get(format!("{}/__sandbox/requests", self.root()))
            .await
            .expect("request log reachable")
            .json()
            .await
            .expect("request log is JSON")
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A JSON object literal as call arguments.
pub fn args(value: Value) -> Map<String, Value> {
    value
        .as_object()
        .cloned()
        .expect("arguments are a JSON object")
}

/// The catalog entry of `tool`.
pub fn endpoint<'a>(catalog: &'a Catalog, tool: &str) -> &'a Endpoint {
    catalog
        .endpoint(tool)
        .unwrap_or_else(|| panic!("no tool {tool}"))
}
