//! The operator's commands: check, tools, explain, keygen, schema; and the
//! async runtime each runs on.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{SandboxProcess, ServerProcess, shipped};
use flaregate::sandbox::{EXAMPLE_COM, EXAMPLE_ORG};
use serde_json::Value;

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(common::BIN);
    command.args(args).current_dir(shipped(""));
    for key in [
        "CLOUDFLARE_API_TOKEN",
        "CLOUDFLARE_API_KEY",
        "CLOUDFLARE_EMAIL",
        "CLOUDFLARE_API_BASE_URL",
        "TOKIO_WORKER_THREADS",
    ] {
        command.env_remove(key);
    }
    command
        .envs(env.iter().copied())
        .output()
        .expect("flaregate runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn check_prints_the_agent_group_matrix() {
    let output = run(&["check"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(out.contains("34 endpoints in 12 groups"), "{out}");
    let deployer = out
        .lines()
        .find(|l| l.starts_with("site-deployer"))
        .expect("a row per agent");
    let cells: Vec<&str> = deployer.split_whitespace().collect();
    assert_eq!(cells[..3], ["site-deployer", "key", "example.com"]);
    assert!(
        cells.contains(&"full") && cells.contains(&"off"),
        "{deployer}"
    );
    let editor = out
        .lines()
        .find(|l| l.starts_with("dns-editor"))
        .expect("a row per agent");
    assert!(editor.split_whitespace().any(|c| c == "full"), "{editor}");
}

#[test]
fn check_fails_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("bad.toml");
    std::fs::write(
        &policy,
        "[[agent]]\nid = \"a\"\n\n[agent.grants]\nworkerz = \"full\"\n",
    )
    .expect("write");
    let output = run(
        &["check", "--policies", policy.to_str().expect("utf-8")],
        &[],
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("bad.toml:5: unknown capability group `workerz`"),
        "{}",
        stderr(&output)
    );

    let config = dir.path().join("flaregate.toml");
    std::fs::write(
        &config,
        "catalog = \"catalog\"\n[cloudflare]\nrate_limit = 12\n",
    )
    .expect("write");
    let output = run(&["check", "--config", config.to_str().expect("utf-8")], &[]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("flaregate.toml:3:"),
        "{}",
        stderr(&output)
    );

    let output = run(&["check", "--catalog", "tests"], &[]);
    assert!(
        !output.status.success(),
        "a folder without a catalog is refused"
    );
}

#[test]
fn tools_lists_what_an_agent_sees() {
    let output = run(&["tools", "--agent", "site-deployer"], &[]);
    let out = stdout(&output);
    assert!(out.starts_with("site-deployer sees 5 of 34 tools"), "{out}");
    assert!(out.contains("put_worker_script") && !out.contains("create_dns_record"));
    let unknown = run(&["tools", "--agent", "ghost"], &[]);
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains(
            "no agent `ghost` in the policies; the agents are auditor, site-deployer, dns-editor"
        ),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn explain_resolves_zone_names_through_the_configured_api() {
    let sandbox = SandboxProcess::start(&[]);
    let env = [
        ("CLOUDFLARE_API_BASE_URL", sandbox.base_url.as_str()),
        ("CLOUDFLARE_API_TOKEN", sandbox.token.as_str()),
    ];
    let explain = |zone: &str| {
        run(
            &[
                "explain",
                "--live",
                "--agent",
                "site-deployer",
                "--tool",
                "purge_cache",
                "--args",
                &format!("{{\"zone_id\":\"{zone}\",\"purge_everything\":true}}"),
            ],
            &env,
        )
    };

    let allowed = explain(EXAMPLE_COM);
    assert!(
        allowed.status.success(),
        "{}{}",
        stdout(&allowed),
        stderr(&allowed)
    );
    assert!(
        stdout(&allowed).contains("allowed: your Cache grant is full"),
        "{}",
        stdout(&allowed)
    );
    assert!(
        stdout(&allowed).contains(
            "site-deployer was allowed to purge everything from the cache on example.com"
        ),
        "{}",
        stdout(&allowed)
    );

    let denied = explain(EXAMPLE_ORG);
    assert_eq!(denied.status.code(), Some(1), "denied: exit 1");
    let invalid = explain("not a zone id");
    assert_eq!(
        invalid.status.code(),
        Some(2),
        "invalid: exit 2: {}",
        stdout(&invalid)
    );
    assert!(
        stdout(&invalid).starts_with("invalid:"),
        "{}",
        stdout(&invalid)
    );
    assert!(
        stdout(&denied).contains("denied: zone example.org (5a7805061c76ada191ed06f989cc3dac) is outside your zones; your zones are example.com (023e105f4ecef8ad9ca31a8372d0c353)"),
        "{}",
        stdout(&denied)
    );

    let requests: Vec<String> = tokio::runtime::Runtime::new()
        .expect("rt")
        .block_on(sandbox.requests())
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert!(
        requests.iter().all(|p| p == "/zones" || p == "/accounts"),
        "explain only resolves names: {requests:?}"
    );

    let invalid = run(
        &[
            "explain",
            "--agent",
            "site-deployer",
            "--tool",
            "purge_cache",
            "--args",
            "{\"zone_id\": 7}",
        ],
        &[],
    );
    assert!(
        stdout(&invalid).contains("invalid argument `zone_id`"),
        "{}",
        stdout(&invalid)
    );
    let not_json = run(
        &[
            "explain",
            "--agent",
            "site-deployer",
            "--tool",
            "purge_cache",
            "--args",
            "{",
        ],
        &[],
    );
    assert!(stderr(&not_json).contains("--args is not valid JSON"));
}

#[test]
fn keygen_prints_a_key_and_its_hash() {
    let out = stdout(&run(&["keygen", "--agent", "ci-bot"], &[]));
    let key = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("fgk_"))
        .expect("a key line");
    let line = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("key_sha256"))
        .expect("a policy line");
    assert!(line.contains(&flaregate::policy::sha256_hex(key)), "{line}");
    assert!(key.len() >= 68, "256 random bits: {key}");
    let again = stdout(&run(&["keygen", "--agent", "ci-bot"], &[]));
    assert!(!again.contains(key), "keys differ each time");
}

#[test]
fn the_policy_schema_accepts_the_demo_policy_and_rejects_typos() {
    let schema: Value =
        serde_json::from_str(&stdout(&run(&["schema", "policy"], &[]))).expect("JSON schema");
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let demo: Value = toml::from_str(
        &std::fs::read_to_string(Path::new(&shipped("policies/demo.toml"))).expect("demo"),
    )
    .expect("TOML");
    assert!(
        validator.is_valid(&demo),
        "{:?}",
        validator
            .iter_errors(&demo)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );
    let typo: Value = serde_json::json!({"agent": [{"id": "a", "grant": {"dns": "full"}}]});
    assert!(!validator.is_valid(&typo));
    let bad_level: Value = serde_json::json!({"agent": [{"id": "a", "grants": {"dns": "write"}}]});
    assert!(!validator.is_valid(&bad_level));
}

#[test]
fn serve_needs_a_working_credential_unless_sandboxed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("a.db");
    let serve = |env: &[(&str, &str)]| {
        run(
            &[
                "serve",
                "--http",
                "127.0.0.1:0",
                "--audit-db",
                db.to_str().expect("utf-8"),
            ],
            env,
        )
    };
    let none = serve(&[]);
    assert!(!none.status.success());
    assert!(
        stderr(&none).contains("no Cloudflare credential: set CLOUDFLARE_API_TOKEN"),
        "{}",
        stderr(&none)
    );

    let sandbox = SandboxProcess::start(&[]);
    let secret = "wrong-token-that-must-not-be-printed";
    let wrong = serve(&[
        ("CLOUDFLARE_API_BASE_URL", sandbox.base_url.as_str()),
        ("CLOUDFLARE_API_TOKEN", secret),
    ]);
    assert!(!wrong.status.success());
    let message = stderr(&wrong);
    assert!(
        message.contains("cannot verify the Cloudflare token") && message.contains("9109"),
        "{message}"
    );
    assert!(!message.contains(secret) && !stdout(&wrong).contains(secret));
}

/// The async worker threads of a running process, from /proc.
fn async_workers(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the process is running")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "tokio-rt-worker")
        .count()
}

#[test]
fn serve_runs_one_async_worker_unless_the_operator_asks_for_more() {
    let default = ServerProcess::sandbox(&[]);
    assert_eq!(async_workers(default.pid()), 1);
    let more = ServerProcess::start(&["--sandbox"], &[("TOKIO_WORKER_THREADS", "3")]);
    assert_eq!(async_workers(more.pid()), 3);
}

#[test]
fn a_bad_worker_count_is_refused_with_a_clear_error() {
    for bad in ["0", "two", "-1"] {
        let output = run(&["check"], &[("TOKIO_WORKER_THREADS", bad)]);
        assert!(!output.status.success(), "{bad} was accepted");
        let error = stderr(&output);
        assert!(
            error.contains("TOKIO_WORKER_THREADS must be a whole number above 0")
                && !error.contains("panicked"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn sandbox_calls_go_to_a_log_of_their_own_and_are_marked() {
    let server = ServerProcess::sandbox_with_default_audit_db();
    assert!(
        server.audit_db.ends_with("flaregate-sandbox-audit.db"),
        "{}",
        server.audit_db.display()
    );
    let auditor = server.connect("auditor").await;
    common::call(&auditor, "list_zones", serde_json::json!({})).await;
    let rows = server.audit_rows();
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r.sandbox),
        "{rows:?}"
    );
    let dir = server.audit_db.parent().expect("a folder");
    assert!(
        !dir.join("flaregate-audit.db").exists(),
        "the production default is untouched"
    );
    let view = run(
        &[
            "audit",
            "--audit-db",
            server.audit_db.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert!(
        stdout(&view).contains("[sandbox] auditor was allowed to list zones"),
        "{}",
        stdout(&view)
    );

    // From the folder the server runs in, as the README's transcript:
    // `--sandbox` finds that log; without it the error names the file
    // tried and the sandbox's log.
    let in_dir = |args: &[&str]| {
        Command::new(common::BIN)
            .args(args)
            .current_dir(dir)
            .output()
            .expect("runs")
    };
    let missing = in_dir(&["approvals"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("no audit log at")
            && stderr(&missing).contains("flaregate-audit.db")
            && stderr(&missing).contains("add --sandbox"),
        "{}",
        stderr(&missing)
    );
    for args in [
        &["approvals", "--sandbox"][..],
        &["audit", "--sandbox"],
        &["audit", "verify", "--sandbox"],
        &["audit", "head", "--sandbox"],
    ] {
        let output = in_dir(args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    }
    assert!(stdout(&in_dir(&["audit", "--sandbox"])).contains("auditor was allowed to list zones"));
    let rejected = in_dir(&["reject", "--sandbox", "0123"]);
    assert!(
        stderr(&rejected).contains("approval 0123"),
        "the sandbox's log was opened: {}",
        stderr(&rejected)
    );
}

/// The README's `explain` example, pasted from a folder of the user's.
const README_EXAMPLE: &[&str] = &[
    "explain",
    "--agent",
    "dns-editor",
    "--tool",
    "create_dns_record",
    "--args",
    r#"{"zone_id":"023e105f4ecef8ad9ca31a8372d0c353","type":"A","name":"www.example.com","content":"192.0.2.1","ttl":1}"#,
];

#[test]
fn explain_sends_nothing_unless_asked_and_decides_against_the_demo_data_with_sandbox() {
    let sandbox = SandboxProcess::start(&[]);
    let env = [
        ("CLOUDFLARE_API_BASE_URL", sandbox.base_url.as_str()),
        ("CLOUDFLARE_API_TOKEN", sandbox.token.as_str()),
    ];
    // A token in the environment is not a request to use it.
    let offline = run(README_EXAMPLE, &env);
    assert_eq!(offline.status.code(), Some(3), "undecided: exit 3");
    assert!(
        stdout(&offline).contains("undecided") && stdout(&offline).contains("--live"),
        "{}",
        stdout(&offline)
    );
    let requests = tokio::runtime::Runtime::new()
        .expect("rt")
        .block_on(sandbox.requests());
    assert!(requests.is_empty(), "nothing was sent: {requests:?}");

    let mut demo = README_EXAMPLE.to_vec();
    demo.push("--sandbox");
    let decided = run(&demo, &[]);
    assert!(
        stdout(&decided).contains(
            "denied: name \"www.example.com\" is not among your allowed values (*.staging.example.com)"
        ),
        "{}{}",
        stdout(&decided),
        stderr(&decided)
    );
}

#[test]
fn the_commands_work_from_a_folder_without_a_catalog() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policies = shipped("policies");
    let policies = policies.to_str().expect("utf-8");
    for args in [
        vec!["check", "--policies", policies],
        vec!["tools", "--agent", "auditor", "--policies", policies],
    ] {
        let output = Command::new(common::BIN)
            .args(&args)
            .current_dir(dir.path())
            .output()
            .expect("runs");
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    }
    let mut explain = README_EXAMPLE.to_vec();
    explain.extend(["--sandbox", "--policies", policies]);
    let output = Command::new(common::BIN)
        .args(&explain)
        .current_dir(dir.path())
        .output()
        .expect("runs");
    assert!(
        stdout(&output).contains("is not among your allowed values"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn check_refuses_an_empty_policy_and_warns_of_likely_mistakes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "\n").expect("write");
    let output = run(
        &["check", "--policies", empty.to_str().expect("utf-8")],
        &[],
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("empty.toml:1: the file is empty"),
        "{}",
        stderr(&output)
    );

    let odd = dir.path().join("odd.toml");
    std::fs::write(
        &odd,
        "[[agent]]\nid = \"lonely\"\ngrants = { dns = \"read\" }\n",
    )
    .expect("write");
    let output = run(&["check", "--policies", odd.to_str().expect("utf-8")], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(
        out.contains("agent `lonely` has no key: over HTTP only"),
        "{out}"
    );
    assert!(
        out.contains("agent `lonely` is granted dns but holds no zones"),
        "{out}"
    );
    let header = out
        .lines()
        .find(|l| l.starts_with("agent"))
        .expect("a header");
    let names: Vec<&str> = header
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    let unique: std::collections::HashSet<&&str> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "no name twice in {header}");
}

#[test]
fn tools_shows_constraints_and_limits_and_keygen_refuses_a_bad_id() {
    let output = run(&["tools", "--agent", "site-deployer"], &[]);
    let out = stdout(&output);
    assert!(out.contains("script_name: allowed: site-*"), "{out}");
    assert!(
        out.contains("60 calls per minute, 30 writes per hour"),
        "{out}"
    );
    let bad = run(&["keygen", "--agent", "Bad Agent"], &[]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("must be 1-64 lowercase"),
        "{}",
        stderr(&bad)
    );
    assert!(
        stdout(&bad).is_empty(),
        "no key is printed for an id the policy would refuse"
    );
}

#[tokio::test]
async fn names_that_never_resolve_are_reported_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("typo.toml");
    std::fs::write(
        &policy,
        "[[agent]]\nid = \"typo\"\nzones = [\"example.com\",\n  \"exmaple.org\"]\naccounts = [\"Example Corp\"]\ngrants = { dns = \"read\" }\n",
    )
    .expect("policy");
    let policies = policy.to_str().expect("utf-8");
    let checked = run(&["check", "--sandbox", "--policies", policies], &[]);
    assert!(!checked.status.success());
    assert!(
        stderr(&checked)
            .contains("typo.toml:4: zone `exmaple.org` is not one the Cloudflare token reaches"),
        "{}",
        stderr(&checked)
    );
    assert!(
        !stderr(&checked).contains("example.com`"),
        "{}",
        stderr(&checked)
    );
    let demo = run(&["check", "--sandbox"], &[]);
    assert!(
        stdout(&demo).contains("every zone and account name resolves"),
        "{}",
        stdout(&demo)
    );

    // serve says so at start, naming the file and line.
    let log = dir.path().join("serve.log");
    let server = ServerProcess::start_logging_to(&["--sandbox", "--policies", policies], &[], &log);
    let mut logged = String::new();
    for _ in 0..100 {
        logged = std::fs::read_to_string(&log).unwrap_or_default();
        if logged.contains("exmaple.org") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        logged.contains("typo.toml:4: zone `exmaple.org` is not one"),
        "{logged}"
    );
    drop(server);
}

#[test]
fn check_prints_the_token_permissions_the_policies_need() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("p.toml");
    std::fs::write(
        &policy,
        "[[agent]]\nid = \"dns\"\nzones = [\"example.com\"]\ngrants = { dns = \"full\" }\n",
    )
    .expect("policy");
    let output = run(
        &["check", "--policies", policy.to_str().expect("utf-8")],
        &[],
    );
    let out = stdout(&output);
    let section: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("Cloudflare token permissions"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(str::trim)
        .collect();
    assert_eq!(
        section,
        [
            "Zone · DNS · Read  DNS Read                      zones: example.com",
            "Zone · DNS · Edit  DNS Write                     zones: example.com"
        ],
        "{out}"
    );

    // A write's snapshot is a read: the token needs it too, unless the
    // policy keeps no snapshots.
    let permissions = |snapshots: &str| {
        std::fs::write(
            &policy,
            format!("[[agent]]\nid = \"w\"\naccounts = [\"Example Corp\"]\n{snapshots}tools = {{ put_worker_script = \"on\" }}\n"),
        )
        .expect("policy");
        stdout(&run(
            &["check", "--policies", policy.to_str().expect("utf-8")],
            &[],
        ))
    };
    assert!(permissions("").contains("Account · Workers Scripts · Read"));
    assert!(!permissions("snapshots = \"off\"\n").contains("Workers Scripts Read"));
}

#[tokio::test]
async fn check_live_and_serve_name_the_permission_the_token_lacks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        "[[token]]\nvalue = \"dns-only\"\npermissions = [\"Zone Read\", \"DNS Read\", \"Account Settings Read\"]\n",
    )
    .expect("tokens");
    let sandbox = SandboxProcess::start(&["--tokens-file", tokens.to_str().expect("utf-8")]);
    let policy = dir.path().join("p.toml");
    std::fs::write(
        &policy,
        "[[agent]]\nid = \"ops\"\nzones = [\"example.com\"]\naccounts = [\"Example Corp\"]\ngrants = { dns = \"read\", workers = \"read\" }\n",
    )
    .expect("policy");
    let policies = policy.to_str().expect("utf-8");
    let with = |token: &str| {
        run(
            &["check", "--live", "--policies", policies],
            &[
                ("CLOUDFLARE_API_BASE_URL", sandbox.base_url.as_str()),
                ("CLOUDFLARE_API_TOKEN", token),
            ],
        )
    };
    let short = with("dns-only");
    assert!(!short.status.success());
    let message = stderr(&short);
    assert!(
        message.contains(
            "cannot serve workers on account Example Corp: it lacks Workers Scripts Read"
        ),
        "{message}"
    );
    assert!(!message.contains("cannot serve dns"), "{message}");
    let full = with(&sandbox.token);
    assert!(full.status.success(), "{}", stderr(&full));
    assert!(stdout(&full).contains("the token serves every granted group"));

    // A call Cloudflare refuses for want of a permission says which.
    let key_policy = dir.path().join("keyed.toml");
    let (key, hash) = flaregate::policy::new_key();
    std::fs::write(
        &key_policy,
        format!("[[agent]]\nid = \"ops\"\nkey_sha256 = [\"{hash}\"]\naccounts = [\"Example Corp\"]\ngrants = {{ workers = \"read\" }}\n"),
    )
    .expect("policy");
    let log = dir.path().join("serve.log");
    let server = ServerProcess::start_logging_to(
        &["--policies", key_policy.to_str().expect("utf-8")],
        &[
            ("CLOUDFLARE_API_BASE_URL", sandbox.base_url.as_str()),
            ("CLOUDFLARE_API_TOKEN", "dns-only"),
        ],
        &log,
    );
    // serve says at start what the token lacks, and starts anyway.
    let mut logged = String::new();
    for _ in 0..100 {
        logged = std::fs::read_to_string(&log).unwrap_or_default();
        if logged.contains("cannot serve workers") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(logged.contains("it lacks Workers Scripts Read"), "{logged}");
    let client = common::connect_http(&server.mcp_url, Some(&key)).await;
    let refused = common::call(
        &client,
        "list_worker_scripts",
        serde_json::json!({"account_id": flaregate::sandbox::ACCOUNT_ID}),
    )
    .await;
    assert_eq!(refused.is_error, Some(true));
    assert!(
        common::text(&refused).contains("lacks Workers Scripts Read"),
        "{}",
        common::text(&refused)
    );
}

#[tokio::test]
async fn demo_keys_stay_the_same_across_restarts_and_the_files_are_ignored_by_git() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("flaregate-sandbox-audit.db");
    let db_arg = db.to_str().expect("utf-8");
    let mut first = ServerProcess::sandbox(&["--audit-db", db_arg]);
    let keys = first.keys.clone();
    assert!(keys.contains_key("auditor"), "{keys:?}");
    assert!(first.terminate().success());
    let second = ServerProcess::sandbox(&["--audit-db", db_arg]);
    assert_eq!(second.keys, keys, "the same keys, printed again");
    let auditor = common::connect_http(&second.mcp_url, Some(&keys["auditor"])).await;
    let zones = common::call(&auditor, "list_zones", serde_json::json!({})).await;
    assert_eq!(zones.is_error, Some(false));

    // Every file flaregate wrote beside its log is one git ignores.
    let written: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        written.iter().any(|f| f.ends_with(".demo-keys")),
        "{written:?}"
    );
    if !repo_root_is_git() {
        eprintln!("SKIPPED the .gitignore half: no git checkout here");
        return;
    }
    for file in &written {
        let ignored = Command::new("git")
            .args(["check-ignore", "--no-index", "-q", file])
            .current_dir(common::repo_path(""))
            .status()
            .expect("git runs");
        assert!(ignored.success(), "{file} is not ignored by .gitignore");
    }
}

fn repo_root_is_git() -> bool {
    common::repo_path(".git").exists()
        && Command::new("git")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn an_account_owned_token_is_verified_at_its_account_and_a_404_is_not_a_missing_permission() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "[[token]]\nvalue = \"account-owned\"\naccount = \"{}\"\n",
            flaregate::sandbox::ACCOUNT_ID
        ),
    )
    .expect("tokens");
    let sandbox = SandboxProcess::start(&[
        "--tokens-file",
        tokens.to_str().expect("utf-8"),
        "--fault",
        "GET:/accounts/*/workers/scripts:404",
    ]);
    let policy = dir.path().join("p.toml");
    let (key, hash) = flaregate::policy::new_key();
    std::fs::write(
        &policy,
        format!("[[agent]]\nid = \"ops\"\nkey_sha256 = [\"{hash}\"]\nzones = [\"example.com\"]\naccounts = [\"Example Corp\"]\ngrants = {{ dns = \"read\", workers = \"read\" }}\n"),
    )
    .expect("policy");
    let env = [
        ("CLOUDFLARE_API_BASE_URL", sandbox.base_url.as_str()),
        ("CLOUDFLARE_API_TOKEN", "account-owned"),
    ];
    let checked = run(
        &[
            "check",
            "--live",
            "--policies",
            policy.to_str().expect("utf-8"),
        ],
        &env,
    );
    assert!(
        stdout(&checked).contains(&format!(
            "the token is active (owned by account {})",
            flaregate::sandbox::ACCOUNT_ID
        )),
        "{}{}",
        stdout(&checked),
        stderr(&checked)
    );
    let message = stderr(&checked);
    assert!(
        message.contains("workers on account Example Corp is not there for this token: not on the plan, or not found (404")
            && !message.contains("lacks"),
        "{message}"
    );

    // serve starts with it, and calls go through.
    let server = ServerProcess::start(&["--policies", policy.to_str().expect("utf-8")], &env);
    let client = common::connect_http(&server.mcp_url, Some(&key)).await;
    let zone = common::call(
        &client,
        "list_dns_records",
        serde_json::json!({"zone_id": EXAMPLE_COM}),
    )
    .await;
    assert_eq!(zone.is_error, Some(false), "{}", common::text(&zone));
}

#[tokio::test]
async fn init_writes_a_setup_that_checks_and_serves_with_the_key_it_printed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("fg");
    let home_arg = home.to_str().expect("utf-8");
    let made = run(&["init", home_arg], &[]);
    assert!(made.status.success(), "{}", stderr(&made));
    let said = stdout(&made);
    let key = said
        .split_whitespace()
        .find(|w| w.starts_with("fgk_"))
        .expect("the key is printed")
        .to_string();
    let policy = std::fs::read_to_string(home.join("policies/my-agent.toml")).expect("policy");
    assert!(
        policy.contains(&flaregate::policy::sha256_hex(&key)) && !policy.contains(&key),
        "only the key's SHA-256 is written"
    );
    for next in [
        "flaregate check --config",
        "flaregate serve --config",
        "claude mcp add",
    ] {
        assert!(said.contains(next), "{said}");
    }
    let ignore = std::fs::read_to_string(home.join(".gitignore")).expect(".gitignore");
    assert!(ignore.contains("*.key") && ignore.contains("*.db"));

    let config = home.join("flaregate.toml");
    let checked = run(&["check", "--config", config.to_str().expect("utf-8")], &[]);
    assert!(checked.status.success(), "{}", stderr(&checked));
    let again = run(&["init", home_arg], &[]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("there already"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        std::fs::read_to_string(home.join("policies/my-agent.toml")).expect("policy"),
        policy,
        "nothing overwritten"
    );

    // The printed key opens a session on a server started from it.
    let server = ServerProcess::sandbox(&[
        "--config",
        config.to_str().expect("utf-8"),
        "--policies",
        home.join("policies").to_str().expect("utf-8"),
    ]);
    let client = common::connect_http(&server.mcp_url, Some(&key)).await;
    let tools = client.list_all_tools().await.expect("tools");
    assert!(
        tools.iter().any(|t| t.name == "list_dns_records"),
        "{tools:?}"
    );
}

#[tokio::test]
async fn auto_tool_mode_switches_to_discovery_by_the_size_of_tools_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("p.toml");
    std::fs::write(
        &policy,
        "[[agent]]\nid = \"wide\"\nauth = \"none\"\nzones = [\"*\"]\naccounts = [\"*\"]\n\
         grants = { zones = \"full\", dns = \"full\", firewall = \"full\", page_rules = \"full\", cache = \"full\", workers = \"full\", r2 = \"full\", ssl = \"full\", load_balancers = \"full\", accounts = \"full\" }\n\
         [[agent]]\nid = \"narrow\"\nzones = [\"*\"]\ngrants = { dns = \"read\" }\n",
    )
    .expect("policy");
    let checked = run(
        &["check", "--policies", policy.to_str().expect("utf-8")],
        &[],
    );
    let said = stdout(&checked);
    let wide = said
        .lines()
        .find(|l| l.trim_start().starts_with("wide:") && l.contains("KB"))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        wide.contains("found through search_api") && !wide.contains(" 60 "),
        "fewer than 60 tools, but past the size: {wide}"
    );
    let narrow = said
        .lines()
        .find(|l| l.trim_start().starts_with("narrow:") && l.contains("KB"))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(narrow.contains("typed tools"), "{narrow}");

    // The server offers the wide agent the three discovery tools.
    let server = ServerProcess::sandbox(&["--policies", policy.to_str().expect("utf-8")]);
    let client = common::connect_http(&server.mcp_url, None).await;
    let names: Vec<String> = client
        .list_all_tools()
        .await
        .expect("tools")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(names.contains(&"search_api".to_string()), "{names:?}");
    assert!(
        !names.contains(&"list_dns_records".to_string()),
        "{names:?}"
    );
}

/// `check`, `tools` and `explain` answer scripts in JSON with what the
/// text says; `explain`'s exit code is the same either way.
#[test]
fn check_tools_and_explain_answer_in_json() {
    let policies = shipped("policies");
    let policies = policies.to_str().expect("utf-8");
    let json_of = |output: &std::process::Output| -> serde_json::Value {
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(output), stderr(output)))
    };
    let checked = run(&["check", "--json", "--policies", policies], &[]);
    assert!(checked.status.success(), "{}", stderr(&checked));
    let report = json_of(&checked);
    assert_eq!(report["ok"], true);
    let deployer = report["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .find(|a| a["id"] == "site-deployer")
        .expect("site-deployer");
    assert_eq!(deployer["grants"]["cache"], "full", "{deployer}");
    assert!(
        deployer["grants"].get("dns").is_none(),
        "off is not listed: {deployer}"
    );
    assert!(
        report["token_permissions"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    );

    let tools = run(
        &[
            "tools",
            "--json",
            "--agent",
            "site-deployer",
            "--policies",
            policies,
        ],
        &[],
    );
    assert!(tools.status.success(), "{}", stderr(&tools));
    let listing = json_of(&tools);
    assert_eq!(listing["agent"], "site-deployer");
    assert!(
        listing["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .any(|t| t["tool"] == "purge_cache" && t["access"] == "write"),
        "{listing}"
    );

    let explained = run(
        &[
            "explain",
            "--json",
            "--agent",
            "site-deployer",
            "--tool",
            "purge_cache",
            "--args",
            &format!(
                "{{\"zone_id\":\"{}\",\"purge_everything\":true}}",
                flaregate::sandbox::EXAMPLE_ORG
            ),
            "--sandbox",
            "--policies",
            policies,
        ],
        &[],
    );
    assert_eq!(explained.status.code(), Some(1), "denied: exit 1");
    let answer = json_of(&explained);
    assert_eq!(answer["answer"], "denied", "{answer}");
    assert!(
        answer["reason"]
            .as_str()
            .is_some_and(|r| r.contains("outside your zones")),
        "{answer}"
    );
}

/// Each subcommand lists only the flags it uses.
#[test]
fn subcommands_offer_only_the_flags_they_use() {
    let help = |args: &[&str]| stdout(&run(args, &[]));
    for command in ["check", "tools", "explain"] {
        let said = help(&[command, "--help"]);
        assert!(said.contains("--policies"), "{command}: {said}");
        assert!(
            !said.contains("--audit-db"),
            "{command} reads no log: {said}"
        );
    }
    for command in [
        &["approvals"][..],
        &["approve"],
        &["audit", "verify"],
        &["audit", "archive"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let said = help(&args);
        assert!(said.contains("--audit-db"), "{command:?}: {said}");
        assert!(
            !said.contains("--policies") && !said.contains("--catalog"),
            "{command:?}: {said}"
        );
    }
    let said = help(&["undo", "--help"]);
    assert!(
        !said.contains("--audit-db") && !said.contains("--policies"),
        "{said}"
    );
}
