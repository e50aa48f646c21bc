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

pub mod certs;
pub mod postgres;

pub const BIN: &str = env!("CARGO_BIN_EXE_flaregate");

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// `relative` in a copy of what the project ships — `flaregate.toml`,
/// the built-in catalog, the demo policy — made once per build under
/// Cargo's target folder. Tests read this, never the checkout's own
/// `catalog/` and `policies/`, which a user's import or edits change.
pub fn shipped(relative: &str) -> PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("shipped");
        let config = std::fs::read_to_string(repo_path("flaregate.toml")).expect("flaregate.toml");
        let mut files = vec![(PathBuf::from("flaregate.toml"), config)];
        for (name, text) in flaregate::catalog::builtin_sources() {
            let name = name.file_name().expect("a file name").to_owned();
            files.push((Path::new("catalog").join(name), text));
        }
        files.push((
            PathBuf::from("policies/demo.toml"),
            flaregate::policy::DEMO.to_string(),
        ));
        for (path, text) in files {
            write_if_changed(&root.join(path), &text);
        }
        root
    })
    .join(relative)
}

/// Writes `text` to `path` unless it holds it already; by rename, so a
/// test process reading it meanwhile sees the old file or the new one.
fn write_if_changed(path: &Path, text: &str) {
    if std::fs::read_to_string(path).is_ok_and(|held| held == text) {
        return;
    }
    std::fs::create_dir_all(path.parent().expect("a folder")).expect("make the folder");
    let staged = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&staged, text).expect("write");
    std::fs::rename(&staged, path).expect("rename");
}

pub fn catalog() -> Catalog {
    flaregate::catalog::builtin()
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

    /// How many requests the sandbox has received on paths ending `end`.
    pub async fn requests_to(&self, end: &str) -> usize {
        self.requests()
            .await
            .iter()
            .filter(|r| r.path.ends_with(end))
            .count()
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

/// A `flaregate serve` process on a free port, with its own audit database.
pub struct ServerProcess {
    child: Child,
    pub mcp_url: String,
    /// The in-process sandbox's API URL (with --sandbox).
    pub sandbox_url: Option<String>,
    /// The admin listener's URL (with --admin).
    pub admin_url: Option<String>,
    /// Demo keys by agent (with --sandbox).
    pub keys: std::collections::HashMap<String, String>,
    pub audit_db: PathBuf,
    _stdout: BufReader<ChildStdout>,
    _dir: tempfile::TempDir,
}

impl ServerProcess {
    /// `serve --sandbox --http 127.0.0.1:0` with the demo policy.
    pub fn sandbox(extra: &[&str]) -> Self {
        let mut args = vec!["--sandbox"];
        args.extend_from_slice(extra);
        Self::start(&args, &[])
    }

    /// `serve --http 127.0.0.1:0` with extra arguments and environment.
    pub fn start(extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_with(extra, env, |_| {})
    }

    /// As [`ServerProcess::start`]; `starting` runs with the process id
    /// once the process is spawned, before it is ready.
    pub fn start_with(extra: &[&str], env: &[(&str, &str)], starting: impl FnOnce(u32)) -> Self {
        Self::spawn(extra, env, starting, Stdio::inherit(), false)
    }

    /// `serve --sandbox` as a user runs it: no `--audit-db`, so the log is
    /// wherever flaregate puts it by default (in the process's own folder).
    pub fn sandbox_with_default_audit_db() -> Self {
        Self::spawn(&["--sandbox"], &[], |_| {}, Stdio::inherit(), true)
    }

    /// As [`ServerProcess::start`], with the server's log lines written to
    /// `stderr` for the test to read.
    pub fn start_logging_to(extra: &[&str], env: &[(&str, &str)], stderr: &Path) -> Self {
        let file = std::fs::File::create(stderr).expect("create the log file");
        Self::spawn(extra, env, |_| {}, Stdio::from(file), false)
    }

    fn spawn(
        extra: &[&str],
        env: &[(&str, &str)],
        starting: impl FnOnce(u32),
        stderr: Stdio,
        default_audit_db: bool,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        // An --audit-db among `extra` (a test reusing a database) wins.
        let given_db = extra
            .iter()
            .position(|a| *a == "--audit-db")
            .and_then(|i| extra.get(i + 1));
        let audit_db = given_db.map_or_else(|| dir.path().join("audit.db"), PathBuf::from);
        let mut command = Command::new(BIN);
        command.args(["serve", "--http", "127.0.0.1:0", "--log-level", "warn"]);
        // A test's own --catalog wins over the shipped one.
        if !extra.contains(&"--catalog") {
            command.args(["--catalog", shipped("catalog").to_str().expect("utf-8")]);
        }
        command
            .args(extra)
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let env_db = env.iter().any(|(name, _)| *name == "FLAREGATE_AUDIT_DB");
        if given_db.is_none() && !default_audit_db && !env_db {
            command.args(["--audit-db", audit_db.to_str().expect("utf-8")]);
        }
        if !extra.contains(&"--policies") {
            command.args(["--policies", shipped("policies").to_str().expect("utf-8")]);
        }
        for key in [
            "CLOUDFLARE_API_TOKEN",
            "CLOUDFLARE_API_KEY",
            "CLOUDFLARE_EMAIL",
            "CLOUDFLARE_API_BASE_URL",
            "FLAREGATE_AUDIT_DB",
            "RUST_LOG",
            "TOKIO_WORKER_THREADS",
        ] {
            command.env_remove(key);
        }
        command.envs(env.iter().copied());
        let mut child = command.spawn().expect("start flaregate serve");
        starting(child.id());
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let (mut mcp_url, mut sandbox_url, mut keys) =
            (None, None, std::collections::HashMap::new());
        let mut banner_db = None;
        let mut admin_url = None;
        let mut line = String::new();
        loop {
            line.clear();
            if stdout.read_line(&mut line).expect("read banner") == 0 {
                panic!("flaregate serve exited before it was ready");
            }
            let text = line.trim();
            if let Some(url) = text.strip_prefix("MCP:") {
                mcp_url = Some(url.trim().to_string());
            } else if let Some(rest) = text.strip_prefix("admin:") {
                admin_url = rest.split_whitespace().next().map(str::to_string);
            } else if let Some(path) = text.strip_prefix("audit log:") {
                banner_db = Some(dir.path().join(path.trim()));
            } else if let Some(url) = text.strip_prefix("sandbox API:") {
                sandbox_url = Some(url.trim().to_string());
            } else if let Some(rest) = text.strip_prefix("key for ") {
                let (agent, key) = rest.split_once(": ").expect("key line");
                keys.insert(agent.to_string(), key.to_string());
            } else if text == "Ready." {
                break;
            }
        }
        Self {
            child,
            mcp_url: mcp_url.expect("MCP URL printed"),
            sandbox_url,
            admin_url,
            keys,
            audit_db: if default_audit_db {
                banner_db.expect("the banner names the audit log")
            } else {
                audit_db
            },
            _stdout: stdout,
            _dir: dir,
        }
    }

    pub fn key(&self, agent: &str) -> &str {
        self.keys
            .get(agent)
            .unwrap_or_else(|| panic!("no demo key for {agent}"))
    }

    /// An rmcp client connected over HTTP with `agent`'s key.
    pub async fn connect(
        &self,
        agent: &str,
    ) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
        connect_http(&self.mcp_url, Some(self.key(agent))).await
    }

    /// The requests the in-process sandbox received.
    pub async fn sandbox_requests(&self) -> Vec<LoggedRequest> {
        let url = self.sandbox_url.as_ref().expect("started with --sandbox");
        let root = url.trim_end_matches("/client/v4");
        reqwest::get(format!("{root}/__sandbox/requests"))
            .await
            .expect("log")
            .json()
            .await
            .expect("JSON")
    }

    /// Every audit row, oldest first.
    pub fn audit_rows(&self) -> Vec<flaregate::audit::Entry> {
        let filter = flaregate::audit::Filter {
            limit: 100_000,
            ..Default::default()
        };
        flaregate::audit::read(&self.audit_db.clone().into(), &filter).expect("audit log readable")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`"HUP"`, `"TERM"`) with `kill`.
    pub fn signal(&self, name: &str) {
        signal(self.child.id(), name);
    }

    /// Sends SIGTERM and waits (up to a generous while) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("flaregate did not stop on SIGTERM");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An rmcp client over streamable HTTP, with a bearer key if given.
pub async fn connect_http(
    url: &str,
    key: Option<&str>,
) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    use rmcp::ServiceExt;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_string());
    if let Some(key) = key {
        config = config.auth_header(key.to_string());
    }
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("MCP client connects")
}

/// Calls a tool; returns the result (protocol errors panic).
pub async fn call(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    tool: &str,
    arguments: Value,
) -> rmcp::model::CallToolResult {
    try_call(client, tool, arguments)
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

/// Calls a tool; protocol errors come back as `Err(message)`.
pub async fn try_call(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    tool: &str,
    arguments: Value,
) -> Result<rmcp::model::CallToolResult, String> {
    let params =
        rmcp::model::CallToolRequestParams::new(tool.to_string()).with_arguments(args(arguments));
    client.call_tool(params).await.map_err(|e| e.to_string())
}

/// Sends signal `name` (`"HUP"`, `"TERM"`, `"KILL"`) to process `pid` with `kill`.
pub fn signal(pid: u32, name: &str) {
    let sent = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill -{name} {pid}");
}

/// The text of a tool result.
/// What a command printed, stdout then stderr, for assertions.
/// What a streaming response (server-sent events) sent until `needle`
/// appeared; panics, with what it sent, if it does not within 10 s.
pub async fn read_until(mut response: reqwest::Response, needle: &str) -> String {
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(chunk)) = response.chunk().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains(needle) {
                return true;
            }
        }
        false
    })
    .await;
    assert!(matches!(found, Ok(true)), "{needle:?} never came: {seen}");
    seen
}

pub fn said(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub fn text(result: &rmcp::model::CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `audit verify` of the log at `db` (key and head checkpoint beside it).
pub fn verify(db: &Path) -> flaregate::audit::ChainVerdict {
    flaregate::audit::verify(&flaregate::audit::AuditFiles::beside(&db.into()), None)
        .expect("the log can be verified")
}

/// One stateless 2026-07-28 `tools/call` over plain HTTP, as a client
/// without a session sends it: `meta` goes into `_meta` beside the
/// protocol version, `extra` beside the name and arguments (a retry's
/// `inputResponses` / `requestState`). Returns the JSON-RPC result.
pub async fn modern_call(
    url: &str,
    key: &str,
    (tool, arguments): (&str, Value),
    meta: Value,
    extra: Value,
) -> Value {
    let mut params = serde_json::json!({
        "name": tool,
        "arguments": arguments,
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "flaregate-test", "version": "1"}
        }
    });
    for (name, value) in meta.as_object().into_iter().flatten() {
        params["_meta"][name] = value.clone();
    }
    for (name, value) in extra.as_object().into_iter().flatten() {
        params[name] = value.clone();
    }
    let body =
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params});
    let (_, _, text) = modern_post(url, key, &body, &[]).await;
    let message = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .chain(std::iter::once(text.as_str()))
        .find_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .unwrap_or_else(|| panic!("a JSON-RPC answer: {text}"));
    message["result"].clone()
}

/// POSTs a 2026-07-28 JSON-RPC `tools/call` `body` with the headers such a
/// client sends (`headers` replace or add to them); the answer's status,
/// content type and text.
pub async fn modern_post(
    url: &str,
    key: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let tool = body["params"]["name"].as_str().unwrap_or_default();
    let mut sent = vec![
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", tool),
    ];
    for (name, value) in headers {
        sent.retain(|(n, _)| n != name);
        sent.push((name, value));
    }
    let mut request = reqwest::Client::new().post(url).bearer_auth(key).json(body);
    for (name, value) in sent {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("server answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, content_type, response.text().await.expect("body"))
}

/// Cloudflare's OpenAPI schema, as the README's import reads it.
pub const SCHEMA: &str = "openapi/cloudflare-openapi-2024-08-06.json";

/// A copy of the shipped catalog in a fresh folder, to import beside.
pub fn catalog_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(shipped("catalog")).expect("catalog") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
    }
    dir
}

/// Runs the import into `catalog/imported`; returns its report.
pub fn import(catalog: &Path, filters: &[&str]) -> String {
    let output = Command::new(BIN)
        .args(["catalog", "import", "--openapi"])
        .arg(repo_path(SCHEMA))
        .arg("--catalog")
        .arg(catalog)
        .arg("--out")
        .arg(catalog.join("imported"))
        .args(filters)
        .output()
        .expect("run flaregate");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    report
}
