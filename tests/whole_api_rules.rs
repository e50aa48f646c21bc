//! Rules that hold over the whole API (issue 26), with Cloudflare's 2024
//! schema imported as the README says: what needs approval is said by
//! method, access or group so no imported delete slips past a name
//! pattern; the person who approves is the operator unless the policy
//! trusts the client; `explain` and `tools` say which calls wait for a
//! person.

mod common;

use std::process::Command;

use common::{BIN, ServerProcess, catalog_copy, import, text};
use serde_json::json;

const COM: &str = "023e105f4ecef8ad9ca31a8372d0c353";

/// Every DELETE a person approves; zone settings (imported) in full.
const BY_METHOD: &str = r#"
[[agent]]
id = "settings"
auth = "none"
zones = ["example.com"]
grants = { zone_settings = "full", dns = "full" }
approve = ["method:DELETE"]
"#;

/// A policy in a folder of its own, over a copy of the shipped catalog
/// with the API imported as the README says (kept as long as the value).
struct Setup {
    catalog: tempfile::TempDir,
    _policies: tempfile::TempDir,
    policy: std::path::PathBuf,
}

impl Setup {
    /// `filters` as the import takes them (`--include GROUP`); none: all.
    fn imported(filters: &[&str], policy: &str) -> Self {
        let catalog = catalog_copy();
        import(catalog.path(), filters);
        let policies = tempfile::tempdir().expect("tempdir");
        let file = policies.path().join("policy.toml");
        std::fs::write(&file, policy).expect("policy");
        Setup {
            catalog,
            _policies: policies,
            policy: file,
        }
    }

    /// `--catalog` and `--policies`.
    fn paths(&self) -> Vec<String> {
        vec![
            "--catalog".into(),
            self.catalog.path().display().to_string(),
            "--policies".into(),
            self.policy.display().to_string(),
        ]
    }

    /// `serve --sandbox` with this catalog and policy.
    fn serve(&self, extra: &[&str]) -> ServerProcess {
        let paths = self.paths();
        let mut args: Vec<&str> = vec!["--sandbox"];
        args.extend(paths.iter().map(String::as_str));
        args.extend_from_slice(extra);
        ServerProcess::start(&args, &[])
    }

    /// A `flaregate` command with this catalog and policy.
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .args(self.paths())
            .output()
            .expect("runs")
    }
}

#[tokio::test]
async fn approval_by_method_covers_every_imported_delete() {
    let setup = Setup::imported(&["--include", "zone_settings"], BY_METHOD);
    let server = setup.serve(&[]);
    let client = common::connect_http(&server.mcp_url, None).await;
    // An imported DELETE whose name a `delete_*` pattern would miss.
    let before = server.sandbox_requests().await.len();
    let asked = common::call(
        &client,
        "dnssec_delete_dnssec_records",
        json!({"zone_id": COM, "body": {}}),
    )
    .await;
    assert_eq!(asked.is_error, Some(true), "{}", text(&asked));
    assert!(
        text(&asked).contains("a person must approve this call first"),
        "{}",
        text(&asked)
    );
    let deletes = server.sandbox_requests().await[before..]
        .iter()
        .filter(|r| r.method == "DELETE")
        .count();
    assert_eq!(deletes, 0, "nothing was deleted");
    // A curated delete too; a write of another method is not asked.
    let curated = common::call(
        &client,
        "delete_dns_record",
        json!({"zone_id": COM, "dns_record_id": "8ce0e8a8a7b7b3c1d0e9f8a7b6c5d4e3"}),
    )
    .await;
    assert!(
        text(&curated).contains("a person must approve"),
        "{}",
        text(&curated)
    );

    // `tools` and `explain` say which calls wait for a person.
    let tools = setup.run(&["tools", "--agent", "settings"]);
    let listed = String::from_utf8_lossy(&tools.stdout);
    let line = |tool: &str| {
        listed
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{tool} ")))
            .unwrap_or_else(|| panic!("{tool} listed: {listed}"))
            .to_string()
    };
    assert!(
        line("dnssec_delete_dnssec_records").contains("needs approval"),
        "{listed}"
    );
    assert!(
        !line("create_dns_record").contains("needs approval"),
        "{listed}"
    );
    let call = json!({"zone_id": COM, "dns_record_id": "8ce0e8a8a7b7b3c1d0e9f8a7b6c5d4e3"});
    let explain = setup.run(&[
        "explain",
        "--sandbox",
        "--agent",
        "settings",
        "--tool",
        "delete_dns_record",
        "--args",
        &call.to_string(),
    ]);
    let said = String::from_utf8_lossy(&explain.stdout);
    assert!(
        said.contains("allowed once a person approves it"),
        "{said}{}",
        String::from_utf8_lossy(&explain.stderr)
    );
}

#[tokio::test]
async fn a_policy_naming_nothing_real_for_approval_is_refused_with_its_line() {
    let setup = Setup::imported(
        &[],
        "[[agent]]\nid = \"a\"\nauth = \"none\"\nzones = [\"example.com\"]\ngrants = { dns = \"full\" }\napprove = [\"method:DROP\", \"group:nope\", \"verb:delete\"]\n",
    );
    let check = setup.run(&["check"]);
    let said = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success());
    for problem in ["`method:DROP`", "`group:nope`", "`verb:delete`"] {
        assert!(said.contains(problem), "{problem}: {said}");
    }
    assert!(said.contains("policy.toml:6"), "{said}");
}

/// A delete a person must approve, by an agent whose policy does not name
/// who approves.
const UNNAMED_APPROVER: &str = r#"
[[agent]]
id = "ops"
zones = ["example.com"]
grants = { dns = "full" }
approve = ["method:DELETE"]
"#;

#[tokio::test]
async fn a_client_that_can_ask_does_not_approve_its_own_calls_by_default() {
    let setup = Setup::imported(&[], UNNAMED_APPROVER);
    let server = setup.serve(&[]);
    // A 2026-07-28 client that declares elicitation: it could answer yes
    // itself, so by default it is not asked; the operator is.
    let elicits =
        json!({"io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}}}});
    let answer = common::modern_call(
        &server.mcp_url,
        server.key("ops"),
        (
            "delete_dns_record",
            json!({"zone_id": COM, "dns_record_id": "8ce0e8a8a7b7b3c1d0e9f8a7b6c5d4e3"}),
        ),
        elicits,
        json!({}),
    )
    .await;
    assert_ne!(answer["resultType"], "input_required", "{answer}");
    assert_eq!(answer["isError"], true, "{answer}");
    let said = answer["content"][0]["text"].as_str().unwrap_or_default();
    assert!(said.contains("flaregate approve"), "{answer}");
    // `check` states who approves, and what trusting the client means.
    let check = setup.run(&["check"]);
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(out.contains("ops: approvals by the operator"), "{out}");
}

/// An editor of staging names over the whole imported DNS group.
const STAGING: &str = r#"
[[agent]]
id = "staging"
auth = "none"
zones = ["example.com"]
grants = { dns = "full" }

[[agent.constraint]]
group = "dns"
arg = "name"
allow = ["*.staging.example.com"]
"#;

#[tokio::test]
async fn a_constraint_takes_away_the_tools_it_cannot_be_checked_on() {
    let setup = Setup::imported(&[], STAGING);
    let catalog_arg = setup.paths()[1].clone();

    // The shipped demo policy with the whole API imported: check names
    // the zone-file upload among what dns-editor's constraints took away.
    let demo = common::shipped("policies");
    let check = Command::new(BIN)
        .args(["check", "--catalog", &catalog_arg, "--policies"])
        .arg(&demo)
        .output()
        .expect("runs");
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // 55 groups: each agent's grants are listed, not a table 500 wide
    // (notes under an agent are indented; warnings are sentences).
    let widest = out
        .lines()
        .filter(|l| !l.starts_with("warning:") && !l.starts_with("  "))
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0);
    assert!(widest <= 200, "a line of {widest} characters: {out}");
    assert!(out.contains("    full  "), "{out}");
    assert!(out.contains("off   the other"), "{out}");
    let line = out
        .lines()
        .find(|l| {
            l.trim_start()
                .starts_with("dns-editor: its constraints took away")
        })
        .unwrap_or_else(|| panic!("check lists what constraints took away: {out}"));
    assert!(
        line.contains("dns_records_for_a_zone_import_dns_records"),
        "{line}"
    );

    // Through the server: the upload is not offered and is refused; the
    // curated tools the constraint covers are still there.
    let server = setup.serve(&[]);
    let client = common::connect_http(&server.mcp_url, None).await;
    let tools = client.list_all_tools().await.expect("tools");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for gone in [
        "dns_records_for_a_zone_import_dns_records",
        "dns_records_for_a_zone_export_dns_records",
        "dns_records_for_a_zone_scan_dns_records",
    ] {
        assert!(!names.contains(&gone), "{gone} offered");
    }
    for kept in ["create_dns_record", "list_dns_records", "get_dns_record"] {
        assert!(names.contains(&kept), "{kept} missing");
    }
    let before = server.sandbox_requests().await.len();
    let zone_file = "www.example.com. 300 IN A 192.0.2.66\n";
    let refused = common::try_call(
        &client,
        "dns_records_for_a_zone_import_dns_records",
        json!({"zone_id": COM, "file": zone_file}),
    )
    .await;
    assert!(refused.is_err_and(|e| e.contains("Unknown tool")));
    assert_eq!(
        server.sandbox_requests().await.len(),
        before,
        "nothing sent"
    );
    // The row says why.
    let rows = server.audit_rows();
    let row = rows.last().expect("the refusal's row");
    assert_eq!(row.tool, "dns_records_for_a_zone_import_dns_records");
    assert!(row.reason.contains("whole zone"), "{row:#?}");

    // `tools` says which were taken away and why; naming one grants it.
    let tools = setup.run(&["tools", "--agent", "staging"]);
    let listed = String::from_utf8_lossy(&tools.stdout);
    assert!(listed.contains("taken away by constraints"), "{listed}");
    assert!(
        listed.contains("dns_records_for_a_zone_export_dns_records"),
        "{listed}"
    );
    let named =
        format!("{STAGING}\n[agent.tools]\ndns_records_for_a_zone_export_dns_records = \"on\"\n");
    std::fs::write(&setup.policy, named).expect("policy");
    let tools = setup.run(&["tools", "--agent", "staging"]);
    let listed = String::from_utf8_lossy(&tools.stdout);
    let granted = listed
        .lines()
        .take_while(|l| !l.starts_with("taken away"))
        .any(|l| {
            l.trim_start()
                .starts_with("dns_records_for_a_zone_export_dns_records ")
        });
    assert!(granted, "{listed}");
}

/// Everything on one zone, and no account, through discovery.
const FINDER: &str = r#"
[[agent]]
id = "finder"
auth = "none"
zones = ["example.com"]
grants = { "*" = "full" }
tool_mode = "discover"
"#;

#[tokio::test]
async fn search_finds_the_readmes_examples_and_only_what_the_agent_may_call() {
    let setup = Setup::imported(&[], FINDER);
    let server = setup.serve(&[]);
    let client = common::connect_http(&server.mcp_url, None).await;
    let search = |query: &'static str| {
        let client = &client;
        async move {
            let found =
                common::call(client, "search_api", json!({"query": query, "limit": 50})).await;
            let value = found.structured_content.expect("structured");
            value["endpoints"]
                .as_array()
                .expect("a list")
                .iter()
                .map(|e| e["name"].as_str().expect("name").to_string())
                .collect::<Vec<String>>()
        }
    };
    let https = search("always use https").await;
    // The endpoints that edit a zone setting come first (the one setting,
    // or all of them), before anything that merely mentions HTTPS.
    assert!(
        https[..2]
            .iter()
            .all(|n| n.starts_with("zone_settings_edit")),
        "{https:?}"
    );
    assert!(
        https[..2].contains(&"zone_settings_edit_single_setting".to_string()),
        "{https:?}"
    );
    let create = search("dns record create").await;
    assert_eq!(
        create.first().map(String::as_str),
        Some("create_dns_record"),
        "{create:?}"
    );
    // Nothing on an account: this agent holds none, so it can call none.
    let catalog =
        flaregate::catalog::Catalog::load(std::path::Path::new(&setup.paths()[1])).expect("loads");
    for query in [
        "account members",
        "workers script",
        "dns firewall",
        "always use https",
    ] {
        for name in search(query).await {
            let endpoint = catalog.endpoint(&name).expect("a catalog tool");
            assert_ne!(
                endpoint.scope(),
                Some(flaregate::catalog::Scope::Account),
                "{query}: {name}"
            );
        }
    }
}

/// Zone settings in full, typed.
const SETTINGS: &str = r#"
[[agent]]
id = "settings"
auth = "none"
zones = ["example.com"]
grants = { zone_settings = "full" }
tool_mode = "typed"
"#;

#[tokio::test]
async fn a_zone_setting_answers_with_its_default_before_anything_wrote_it() {
    let setup = Setup::imported(&["--include", "zone_settings"], SETTINGS);
    let server = setup.serve(&[]);
    let client = common::connect_http(&server.mcp_url, None).await;
    let get = |setting: &'static str| {
        let client = &client;
        async move {
            common::call(
                client,
                "zone_settings_get_single_setting",
                json!({"zone_id": COM, "setting_id": setting}),
            )
            .await
        }
    };
    let now = get("always_use_https").await;
    assert_ne!(now.is_error, Some(true), "{}", text(&now));
    let result = &now.structured_content.expect("structured")["result"];
    assert_eq!(result["value"], "off", "{result}");
    // A write reads it first (its snapshot), changes it, and reads back.
    let edit = common::call(
        &client,
        "zone_settings_edit_single_setting",
        json!({"zone_id": COM, "setting_id": "always_use_https", "body": {"id": "always_use_https", "value": "on"}}),
    )
    .await;
    assert_ne!(edit.is_error, Some(true), "{}", text(&edit));
    let after = get("always_use_https").await;
    assert_eq!(
        after.structured_content.expect("structured")["result"]["value"],
        "on"
    );
    let rows = server.audit_rows();
    let write = rows
        .iter()
        .find(|r| r.tool == "zone_settings_edit_single_setting")
        .expect("the write's row");
    assert!(
        write.lookup.contains("GET") && !write.lookup.contains("no snapshot"),
        "{write:#?}"
    );
    // A setting no schema knows is Cloudflare's 404.
    let unknown = get("no_such_setting").await;
    assert_eq!(unknown.is_error, Some(true), "{}", text(&unknown));
    assert!(text(&unknown).contains("404"), "{}", text(&unknown));
}

/// Purges a person must approve.
const PURGER: &str = r#"
[[agent]]
id = "purger"
zones = ["example.com"]
grants = { cache = "full" }
approve = ["purge_cache"]
"#;

#[tokio::test]
async fn the_person_approving_sees_the_exact_call_whole() {
    let setup = Setup::imported(&[], PURGER);
    let server = setup.serve(&[]);
    let client = server.connect("purger").await;
    // Forty files: the audit form of a list stops at 32.
    let files: Vec<String> = (0..40)
        .map(|n| format!("https://example.com/assets/{n}.css"))
        .collect();
    let asked = common::call(
        &client,
        "purge_cache",
        json!({"zone_id": COM, "files": files}),
    )
    .await;
    assert_eq!(asked.is_error, Some(true));
    let preview = asked.structured_content.expect("the preview");
    assert_eq!(preview["arguments"]["files"], json!(files), "{preview}");
    // The operator's listing shows the last file too.
    let listed = Command::new(BIN)
        .args([
            "approvals",
            "--audit-db",
            server.audit_db.to_str().expect("utf-8"),
        ])
        .output()
        .expect("runs");
    let out = String::from_utf8_lossy(&listed.stdout);
    assert!(out.contains("https://example.com/assets/39.css"), "{out}");
}

/// Writes DNS with snapshots; deletes need the operator's approval.
const KEEPER: &str = r#"
[[agent]]
id = "keeper"
zones = ["example.com"]
grants = { dns = "full" }
approve = ["method:DELETE"]
"#;

/// A copy of the log at `db` (with its key and head) in `into`.
fn copy_log(db: &std::path::Path, into: &std::path::Path) -> std::path::PathBuf {
    for suffix in ["db", "db-wal", "db-shm", "key", "head"] {
        let from = db.with_extension(suffix);
        if from.exists() {
            std::fs::copy(&from, into.join(format!("audit.{suffix}"))).expect("copy");
        }
    }
    into.join("audit.db")
}

fn deflated(text: &str) -> Vec<u8> {
    use std::io::Write;
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text.as_bytes()).expect("deflate");
    encoder.finish().expect("deflate")
}

#[tokio::test]
async fn what_undo_and_approval_rely_on_is_in_the_chain() {
    let setup = Setup::imported(&[], KEEPER);
    let mut server = setup.serve(&[]);
    let keeper = server.connect("keeper").await;
    let created = common::call(
        &keeper,
        "create_dns_record",
        json!({"zone_id": COM, "type": "A", "name": "kept.example.com", "content": "192.0.2.8", "ttl": 1}),
    )
    .await;
    assert_ne!(created.is_error, Some(true), "{}", text(&created));
    let patched = common::call(
        &keeper,
        "patch_dns_record",
        json!({"zone_id": COM, "dns_record_id": "8ce0e8a8a7b7b3c1d0e9f8a7b6c5d4e3", "content": "kept.example.net"}),
    )
    .await;
    assert_ne!(patched.is_error, Some(true), "{}", text(&patched));
    // A delete under an approval, used once.
    let delete = json!({"zone_id": COM, "dns_record_id": "3d2c1b0a99887766554433221100ffee"});
    let asked = common::call(&keeper, "delete_dns_record", delete.clone()).await;
    assert!(asked.structured_content.is_some(), "the preview to approve");
    let said = text(&asked);
    let at = said.find("approval ").expect("an approval id") + "approval ".len();
    let id = said[at..at + 32].to_string();
    let approved = Command::new(BIN)
        .args([
            "approve",
            &id,
            "--audit-db",
            server.audit_db.to_str().expect("utf-8"),
        ])
        .output()
        .expect("runs");
    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    let mut with_id = delete.clone();
    with_id["approval_id"] = json!(id);
    let used = common::call(&keeper, "delete_dns_record", with_id.clone()).await;
    assert_ne!(used.is_error, Some(true), "{}", text(&used));
    server.terminate();
    let db = server.audit_db.clone();
    assert!(matches!(
        common::verify(&db),
        flaregate::audit::ChainVerdict::Valid { .. }
    ));

    let rows = server.audit_rows();
    let row_of = |tool: &str| {
        rows.iter()
            .find(|r| r.tool == tool && r.decision == "allow")
            .expect("row")
            .id
    };
    let (create_row, patch_row) = (row_of("create_dns_record"), row_of("patch_dns_record"));
    let forgeries: Vec<(&str, String, Vec<rusqlite::types::Value>)> = vec![
        (
            "which object an undo deletes",
            "UPDATE snapshots SET created = 'ffffffffffffffffffffffffffffffff' WHERE call_id = ?1"
                .into(),
            vec![create_row.into()],
        ),
        (
            "what the write left",
            "UPDATE snapshots SET after = ?2 WHERE call_id = ?1".into(),
            vec![patch_row.into(), deflated("{}").into()],
        ),
        (
            "the snapshot's kind",
            "UPDATE snapshots SET kind = 'missing', prior = NULL, digest = NULL WHERE call_id = ?1"
                .into(),
            vec![patch_row.into()],
        ),
        (
            "the snapshot's reader",
            "UPDATE snapshots SET reader = 'list_dns_records' WHERE call_id = ?1".into(),
            vec![patch_row.into()],
        ),
        (
            "a deleted snapshot",
            "DELETE FROM snapshots WHERE call_id = ?1".into(),
            vec![patch_row.into()],
        ),
        (
            "a call moved to another approval",
            "UPDATE calls SET approval = 'ffffffffffffffffffffffffffffffff' WHERE approval IS NOT NULL AND decision = 'allow'".into(),
            vec![],
        ),
        (
            "a call taken out of its approval",
            "UPDATE calls SET approval = NULL WHERE approval IS NOT NULL".into(),
            vec![],
        ),
    ];
    for (what, sql, params) in forgeries {
        let copy = tempfile::tempdir().expect("tempdir");
        let forged = copy_log(&db, copy.path());
        let connection = rusqlite::Connection::open(&forged).expect("open");
        connection
            .execute(&sql, rusqlite::params_from_iter(params))
            .expect(what);
        drop(connection);
        let verdict = common::verify(&forged);
        assert!(
            matches!(verdict, flaregate::audit::ChainVerdict::Broken { .. }),
            "{what}: {verdict:?}"
        );
    }

    // A used approval re-armed lets a second call through; verify says so.
    let connection = rusqlite::Connection::open(&db).expect("open");
    connection
        .execute("UPDATE approvals SET used_ms = NULL", [])
        .expect("re-arm");
    drop(connection);
    let again = setup.serve(&["--audit-db", db.to_str().expect("utf-8")]);
    let keeper = again.connect("keeper").await;
    let mut other = with_id.clone();
    other["dns_record_id"] = json!("3d2c1b0a99887766554433221100ffee");
    let second = common::call(&keeper, "delete_dns_record", other).await;
    drop(again);
    assert_ne!(
        second.is_error,
        Some(true),
        "re-armed, it let a second call through: {}",
        text(&second)
    );
    let verdict = common::verify(&db);
    assert!(
        matches!(&verdict, flaregate::audit::ChainVerdict::Broken { problem, .. } if problem.contains("re-armed")),
        "{verdict:?}"
    );
}

const ORG: &str = "5a7805061c76ada191ed06f989cc3dac";
const ACCOUNT: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

/// One zone and its account, Workers platform and legacy firewall in full.
const ONE_ZONE: &str = r#"
[[agent]]
id = "one-zone"
auth = "none"
zones = ["example.com"]
accounts = ["Example Corp"]
grants = { workers_platform = "full", firewall_legacy = "full" }
"#;

#[tokio::test]
async fn an_account_endpoint_that_names_a_zone_is_judged_on_that_zone() {
    let setup = Setup::imported(&[], ONE_ZONE);
    let server = setup.serve(&[]);
    let client = common::connect_http(&server.mcp_url, None).await;
    let attach = |hostname: &str, zone: &str| {
        json!({"account_id": ACCOUNT, "environment": "production", "hostname": hostname,
               "service": "site-blog", "zone_id": zone})
    };
    let before = server.sandbox_requests().await.len();
    for (hostname, zone) in [
        ("app.example.org", COM),
        ("app.example.com", ORG),
        ("app.elsewhere.test", COM),
    ] {
        let refused = common::call(
            &client,
            "worker_domain_attach_to_domain",
            attach(hostname, zone),
        )
        .await;
        assert_eq!(
            refused.is_error,
            Some(true),
            "{hostname} {zone}: {}",
            text(&refused)
        );
        assert!(text(&refused).contains("zone"), "{}", text(&refused));
    }
    assert_eq!(
        server.sandbox_requests().await.len(),
        before,
        "nothing sent"
    );
    let allowed = common::call(
        &client,
        "worker_domain_attach_to_domain",
        attach("app.example.com", COM),
    )
    .await;
    assert_ne!(allowed.is_error, Some(true), "{}", text(&allowed));

    // An account endpoint whose body may name zones where flaregate cannot
    // read them is not granted to a zone-limited agent by its group grant.
    let tools = client.list_all_tools().await.expect("tools");
    assert!(!tools.iter().any(|t| t.name == "lists_create_list_items"));
    let listed = setup.run(&["tools", "--agent", "one-zone"]);
    let out = String::from_utf8_lossy(&listed.stdout);
    assert!(
        out.lines()
            .any(|l| l.contains("lists_create_list_items") && l.contains("cannot check")),
        "{out}"
    );
}

#[test]
fn check_live_probes_each_granted_write_permission_without_changing_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        "[[token]]\nvalue = \"dns-read-only\"\npermissions = [\"Zone Read\", \"DNS Read\", \"Account Settings Read\"]\n",
    )
    .expect("tokens");
    let sandbox =
        common::SandboxProcess::start(&["--tokens-file", tokens.to_str().expect("utf-8")]);
    let setup = Setup::imported(
        &[],
        "[[agent]]\nid = \"editor\"\nzones = [\"example.com\"]\ngrants = { dns = \"full\" }\n",
    );
    let check = |token: &str| {
        Command::new(BIN)
            .args(["check", "--live"])
            .args(setup.paths())
            .env("CLOUDFLARE_API_BASE_URL", &sandbox.base_url)
            .env("CLOUDFLARE_API_TOKEN", token)
            .output()
            .expect("runs")
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let before = rt.block_on(sandbox.requests()).len();
    let short = check("dns-read-only");
    let said = String::from_utf8_lossy(&short.stderr);
    assert!(!short.status.success(), "{said}");
    assert!(
        said.contains("cannot write dns on zone example.com")
            && said.contains("it lacks DNS Write"),
        "{said}"
    );
    let full = check(&sandbox.token);
    assert!(
        full.status.success(),
        "{}",
        String::from_utf8_lossy(&full.stderr)
    );
    // The probe deleted nothing: every record is still there.
    let sent = rt.block_on(sandbox.requests());
    let deletes: Vec<_> = sent[before..]
        .iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    assert!(!deletes.is_empty(), "the write was probed");
    assert!(
        deletes
            .iter()
            .all(|r| r.path.ends_with("/00000000000000000000000000000000")),
        "{deletes:?}"
    );
}

/// Workers for Platforms on the one account.
const PLATFORM: &str = r#"
[[agent]]
id = "platform"
auth = "none"
accounts = ["Example Corp"]
grants = { workers_platform = "full" }
"#;

#[tokio::test]
async fn a_path_value_a_url_parser_would_rewrite_is_refused_before_the_decision() {
    let setup = Setup::imported(&[], PLATFORM);
    let server = setup.serve(&[]);
    let client = common::connect_http(&server.mcp_url, None).await;
    let before = server.sandbox_requests().await.len();
    // The schema lets a namespace be any text: `.` would send DELETE
    // …/dispatch/namespaces/ — every namespace's collection.
    let refused = common::call(
        &client,
        "namespace_worker_delete_namespace",
        json!({"account_id": ACCOUNT, "dispatch_namespace": "."}),
    )
    .await;
    assert_eq!(refused.is_error, Some(true), "{}", text(&refused));
    assert!(
        text(&refused).contains("dispatch_namespace"),
        "{}",
        text(&refused)
    );
    assert_eq!(
        server.sandbox_requests().await.len(),
        before,
        "nothing sent"
    );
    let rows = server.audit_rows();
    let row = rows.last().expect("the refusal's row");
    assert_eq!(
        (row.decision.as_str(), row.tool.as_str()),
        ("deny", "namespace_worker_delete_namespace")
    );
    assert!(row.reason.contains("must not be ."), "{row:#?}");
}
