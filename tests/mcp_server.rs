//! The MCP server end to end: rmcp's client over HTTP and stdio against the
//! real binary with its in-process sandbox. What reaches the sandbox and
//! what the audit log says are checked for every kind of call.

mod common;

use common::{ServerProcess, call, shipped, text, try_call};
use flaregate::sandbox::{EXAMPLE_COM, EXAMPLE_ORG};
use serde_json::{Value, json};

fn names(tools: &[rmcp::model::Tool]) -> Vec<String> {
    let mut names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn agents_see_only_their_tools() {
    let server = ServerProcess::sandbox(&[]);
    let deployer = server.connect("site-deployer").await;
    let auditor = server.connect("auditor").await;
    let editor = server.connect("dns-editor").await;
    let deployer_tools = deployer.list_all_tools().await.expect("tools");
    assert_eq!(
        names(&deployer_tools),
        [
            "delete_worker_script",
            "get_worker_script",
            "list_worker_scripts",
            "purge_cache",
            "put_worker_script"
        ]
    );
    let auditor_tools = auditor.list_all_tools().await.expect("tools");
    // 18 read tools of the catalog, and list_alerts.
    assert_eq!(auditor_tools.len(), 19);
    assert!(
        auditor_tools
            .iter()
            .all(|t| t.annotations.as_ref().and_then(|a| a.read_only_hint) == Some(true))
    );
    let editor_tools = editor.list_all_tools().await.expect("tools");
    assert_eq!(editor_tools.len(), 8);

    let put = deployer_tools
        .iter()
        .find(|t| t.name == "put_worker_script")
        .expect("put_worker_script");
    let hints = put.annotations.as_ref().expect("annotations");
    assert_eq!(
        (
            hints.read_only_hint,
            hints.destructive_hint,
            hints.idempotent_hint,
            hints.open_world_hint
        ),
        (Some(false), Some(true), Some(true), Some(true))
    );
    assert_eq!(put.title.as_deref(), Some("Upload a Worker script"));
    assert!(
        put.description
            .as_deref()
            .unwrap_or_default()
            .contains("A write here deploys code to production")
    );
    assert_eq!(
        put.input_schema["properties"]["script_name"]["pattern"],
        "^[a-z0-9_][a-z0-9-_]*$"
    );
    assert!(
        put.output_schema.is_some(),
        "object results publish an output schema"
    );
    let list = deployer_tools
        .iter()
        .find(|t| t.name == "list_worker_scripts")
        .expect("list");
    assert!(list.output_schema.is_none(), "array results do not");
}

#[tokio::test]
async fn a_dns_record_is_created_without_a_ttl() {
    let server = ServerProcess::sandbox(&[]);
    let editor = server.connect("dns-editor").await;
    // ttl may be left out: Cloudflare takes 1 (automatic).
    let no_ttl = call(&editor, "create_dns_record", json!({"zone_id": EXAMPLE_COM, "type": "A", "name": "nottl.staging.example.com", "content": "192.0.2.78"})).await;
    assert_eq!(no_ttl.is_error, Some(false), "{}", text(&no_ttl));
    assert_eq!(
        no_ttl.structured_content.as_ref().expect("structured")["result"]["ttl"],
        1
    );
}

#[tokio::test]
async fn allowed_calls_reach_the_sandbox_and_are_audited() {
    let server = ServerProcess::sandbox(&[]);
    let editor = server.connect("dns-editor").await;
    let created = call(&editor, "create_dns_record", json!({"zone_id": EXAMPLE_COM, "type": "A", "name": "web.staging.example.com", "content": "192.0.2.77", "ttl": 1})).await;
    assert_eq!(created.is_error, Some(false), "{}", text(&created));
    let record = &created.structured_content.as_ref().expect("structured")["result"];
    assert_eq!(record["name"], "web.staging.example.com");

    let auditor = server.connect("auditor").await;
    let listed = call(
        &auditor,
        "list_dns_records",
        json!({"zone_id": EXAMPLE_COM, "name": "web.staging.example.com"}),
    )
    .await;
    let found = &listed.structured_content.as_ref().expect("structured")["result"];
    assert_eq!(
        found.as_array().map(Vec::len),
        Some(1),
        "the sandbox's state changed"
    );
    assert!(
        text(&listed).contains("192.0.2.77"),
        "a readable rendering too"
    );

    let posts: Vec<_> = server
        .sandbox_requests()
        .await
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].path, format!("/zones/{EXAMPLE_COM}/dns_records"));

    let rows = server.audit_rows();
    let create = rows
        .iter()
        .find(|r| r.tool == "create_dns_record")
        .expect("audited");
    assert_eq!(
        (
            create.agent.as_str(),
            create.decision.as_str(),
            create.status
        ),
        ("dns-editor", "allow", Some(200))
    );
    assert!(create.summary.starts_with("dns-editor was allowed to create a DNS record (name web.staging.example.com) on example.com; Cloudflare answered 200 in"), "{}", create.summary);
}

#[tokio::test]
async fn denied_and_invalid_calls_never_reach_the_sandbox() {
    let server = ServerProcess::sandbox(&[]);
    let editor = server.connect("dns-editor").await;
    let outside_name = call(&editor, "create_dns_record", json!({"zone_id": EXAMPLE_COM, "type": "A", "name": "www2.example.com", "content": "192.0.2.1", "ttl": 1})).await;
    assert_eq!(outside_name.is_error, Some(true));
    assert!(text(&outside_name).contains("Denied by flaregate policy: name \"www2.example.com\" is not among your allowed values (*.staging.example.com)"), "{}", text(&outside_name));

    let outside_zone = call(&editor, "list_dns_records", json!({"zone_id": EXAMPLE_ORG})).await;
    assert!(
        text(&outside_zone).contains("zone example.org (5a7805061c76ada191ed06f989cc3dac) is outside your zones; your zones are example.com (023e105f4ecef8ad9ca31a8372d0c353)"),
        "{}",
        text(&outside_zone)
    );

    let bad_type = call(&editor, "create_dns_record", json!({"zone_id": EXAMPLE_COM, "type": "A", "name": "x.staging.example.com", "ttl": "soon"})).await;
    assert_eq!(bad_type.is_error, Some(true));
    assert!(
        text(&bad_type).contains("invalid argument `ttl`") && text(&bad_type).contains("integer"),
        "{}",
        text(&bad_type)
    );

    let hostile = call(
        &editor,
        "get_dns_record",
        json!({"zone_id": EXAMPLE_COM, "dns_record_id": "../../accounts"}),
    )
    .await;
    assert!(
        text(&hostile).contains("invalid argument `dns_record_id`"),
        "{}",
        text(&hostile)
    );

    let requests = server.sandbox_requests().await;
    let reached: Vec<_> = requests
        .iter()
        .filter(|r| r.path.contains("dns_records") || r.path.contains(EXAMPLE_ORG))
        .collect();
    assert!(
        reached.is_empty(),
        "nothing denied reached the sandbox: {reached:?}"
    );

    let rows = server.audit_rows();
    let denials: Vec<_> = rows.iter().filter(|r| r.decision == "deny").collect();
    assert_eq!(denials.len(), 4, "{rows:?}");
    assert!(
        denials
            .iter()
            .any(|r| r.reason.starts_with("invalid argument `ttl`"))
    );
    assert!(
        denials[0].summary.contains(
            "dns-editor was denied create_dns_record on example.com: name \"www2.example.com\""
        ),
        "{}",
        denials[0].summary
    );
}

#[tokio::test]
async fn a_hidden_tool_answers_like_a_missing_one() {
    let server = ServerProcess::sandbox(&[]);
    let deployer = server.connect("site-deployer").await;
    let hidden = try_call(&deployer, "delete_zone", json!({"zone_id": EXAMPLE_COM}))
        .await
        .expect_err("protocol error");
    let missing = try_call(&deployer, "delete_zonf", json!({"zone_id": EXAMPLE_COM}))
        .await
        .expect_err("protocol error");
    assert_eq!(
        hidden.replace("delete_zone", "X"),
        missing.replace("delete_zonf", "X")
    );
    assert!(hidden.contains("Unknown tool"), "{hidden}");
    let requests = server.sandbox_requests().await;
    assert!(
        requests.iter().all(|r| r.method == "GET"),
        "only name resolution reached the sandbox: {requests:?}"
    );
    let rows = server.audit_rows();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.decision == "deny"));
    assert!(
        rows[0].reason.contains("no Zones grant"),
        "{}",
        rows[0].reason
    );
    assert!(
        rows[1]
            .reason
            .contains("there is no tool named delete_zonf"),
        "{}",
        rows[1].reason
    );
}

#[tokio::test]
async fn cloudflare_errors_and_pages_come_back_readable() {
    let server = ServerProcess::sandbox(&[]);
    let editor = server.connect("dns-editor").await;
    let record = json!({"zone_id": EXAMPLE_COM, "type": "TXT", "name": "t.staging.example.com", "content": "hello", "ttl": 1});
    call(&editor, "create_dns_record", record.clone()).await;
    let duplicate = call(&editor, "create_dns_record", record).await;
    assert_eq!(duplicate.is_error, Some(true));
    let message = text(&duplicate);
    assert!(
        message.contains("HTTP 400")
            && message.contains("81057 Record already exists")
            && message.contains("update or patch it by id"),
        "{message}"
    );
    let row = server
        .audit_rows()
        .into_iter()
        .rfind(|r| r.tool == "create_dns_record")
        .expect("row");
    assert_eq!((row.status, row.cf_codes.clone()), (Some(400), vec![81057]));

    let auditor = server.connect("auditor").await;
    let page = call(
        &auditor,
        "list_dns_records",
        json!({"zone_id": EXAMPLE_COM, "per_page": 5}),
    )
    .await;
    let structured = page.structured_content.as_ref().expect("structured");
    assert_eq!(structured["next_page"], 2);
    assert_eq!(structured["result_info"]["total_count"], 6);
    assert!(
        text(&page).contains("call again with page = 2"),
        "{}",
        text(&page)
    );

    let buckets = call(
        &auditor,
        "list_r2_buckets",
        json!({"account_id": flaregate::sandbox::ACCOUNT_ID, "per_page": 1}),
    )
    .await;
    let structured = buckets.structured_content.expect("structured");
    assert_eq!(structured["next_cursor"], "1");
}

#[tokio::test]
async fn changing_a_records_type_in_place_is_refused() {
    let server = ServerProcess::sandbox(&[]);
    let editor = server.connect("dns-editor").await;
    let staging = "c0ffee00c0ffee00c0ffee00c0ffee00";
    let retype = call(&editor, "update_dns_record", json!({"zone_id": EXAMPLE_COM, "dns_record_id": staging, "type": "AAAA", "name": "api.staging.example.com", "content": "2001:db8::5", "ttl": 1})).await;
    assert_eq!(retype.is_error, Some(true));
    assert!(
        text(&retype).contains("delete the record and create a new one"),
        "{}",
        text(&retype)
    );
    assert!(
        server
            .sandbox_requests()
            .await
            .iter()
            .all(|r| r.method == "GET"),
        "only the lookup reached the sandbox"
    );
}

#[tokio::test]
async fn stdio_serves_one_agent_with_only_protocol_on_stdout() {
    use rmcp::ServiceExt;
    use rmcp::transport::TokioChildProcess;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = tokio::process::Command::new(common::BIN);
    command
        .args([
            "serve",
            "--sandbox",
            "--stdio",
            "--agent",
            "auditor",
            "--log-level",
            "warn",
        ])
        .args([
            "--catalog",
            shipped("catalog").to_str().expect("utf-8"),
            "--policies",
            shipped("policies").to_str().expect("utf-8"),
        ])
        .args([
            "--audit-db",
            dir.path().join("a.db").to_str().expect("utf-8"),
        ]);
    let client =
        ().serve(TokioChildProcess::new(command).expect("spawn"))
            .await
            .expect("stdio handshake");
    let tools = client.list_all_tools().await.expect("tools");
    assert_eq!(tools.len(), 19);
    let zones = call(&client, "list_zones", json!({})).await;
    let result: &Value = &zones.structured_content.as_ref().expect("structured")["result"];
    assert_eq!(result.as_array().map(Vec::len), Some(2));
    client.cancel().await.expect("closes");
}

/// The README's Claude Desktop line, started as Claude Desktop does: from
/// another working folder (`/` on macOS). Everything relative in the
/// configuration is found from the file's folder, and nothing is written
/// where the process runs.
#[tokio::test]
async fn the_stdio_line_works_from_another_working_folder() {
    use rmcp::ServiceExt;
    use rmcp::transport::TokioChildProcess;
    let home = tempfile::tempdir().expect("tempdir");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        home.path().join("flaregate.toml"),
        "policies = \"mine\"\naudit_db = \"logs/audit.db\"\n",
    )
    .expect("config");
    std::fs::create_dir(home.path().join("logs")).expect("logs");
    std::fs::create_dir(home.path().join("mine")).expect("policies");
    std::fs::copy(
        shipped("policies/demo.toml"),
        home.path().join("mine/demo.toml"),
    )
    .expect("policy");
    let config = home.path().join("flaregate.toml");
    let mut command = tokio::process::Command::new(common::BIN);
    command
        .args(["serve", "--stdio", "--sandbox", "--agent", "auditor"])
        .args(["--log-level", "warn", "--config"])
        .arg(&config)
        .current_dir(elsewhere.path());
    let client =
        ().serve(TokioChildProcess::new(command).expect("spawn"))
            .await
            .expect("stdio handshake");
    let zones = call(&client, "list_zones", json!({})).await;
    assert_eq!(zones.is_error, Some(false), "{}", text(&zones));
    client.cancel().await.expect("closes");
    assert!(
        home.path()
            .join("logs/flaregate-sandbox-audit.db")
            .is_file()
            && home
                .path()
                .join("logs/flaregate-sandbox-audit.key")
                .is_file(),
        "the log and its key are beside the configured log"
    );
    let stray: Vec<_> = std::fs::read_dir(elsewhere.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(stray.is_empty(), "nothing in the working folder: {stray:?}");
}

#[tokio::test]
async fn zone_and_account_lists_show_only_what_the_agent_holds() {
    let server = ServerProcess::sandbox(&[]);
    let editor = server.connect("dns-editor").await;
    let zones = call(&editor, "list_zones", json!({})).await;
    let result = &zones.structured_content.as_ref().expect("structured")["result"];
    let names: Vec<&str> = result
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|z| z["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["example.com"],
        "example.org is outside the editor's zones"
    );
    assert!(!text(&zones).contains("example.org"));
    let auditor = server.connect("auditor").await;
    let all = call(&auditor, "list_zones", json!({})).await;
    assert_eq!(
        all.structured_content.as_ref().expect("structured")["result"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

#[tokio::test]
async fn an_agent_is_told_its_own_lines_with_names_and_ids() {
    let server = ServerProcess::sandbox(&[]);
    let editor = server.connect("dns-editor").await;
    let instructions = editor
        .peer_info()
        .and_then(|info| info.instructions.clone())
        .expect("instructions");
    for expected in [
        "agent \"dns-editor\"",
        "Your zones: example.com (023e105f4ecef8ad9ca31a8372d0c353).",
        "Your accounts: none.",
        "Rule: name allowed: *.staging.example.com (for create_dns_record, update_dns_record, patch_dns_record, delete_dns_record).",
        "Your limits: 30 refused calls per minute",
    ] {
        assert!(
            instructions.contains(expected),
            "{expected}\n{instructions}"
        );
    }
    let deployer = server.connect("site-deployer").await;
    let instructions = deployer
        .peer_info()
        .and_then(|info| info.instructions.clone())
        .expect("instructions");
    assert!(
        instructions.contains("Your accounts: Example Corp (a1b2c3d4e5f60718293a4b5c6d7e8f90).")
            && instructions.contains("60 calls per minute, 30 writes per hour"),
        "{instructions}"
    );

    // Its tools offer the ids it holds, and point to no tool it cannot see.
    let tools = deployer.list_all_tools().await.expect("tools");
    let purge = tools
        .iter()
        .find(|t| t.name == "purge_cache")
        .expect("purge_cache");
    let zone_id = &purge.input_schema["properties"]["zone_id"];
    assert_eq!(zone_id["enum"], json!([EXAMPLE_COM]), "{zone_id}");
    assert!(
        zone_id["description"]
            .as_str()
            .expect("text")
            .contains("example.com (023e")
    );
    let all = serde_json::to_string(&tools).expect("JSON");
    assert!(
        !all.contains("(see list_zones)") && !all.contains("(see list_accounts)"),
        "{all}"
    );
    // The auditor may list zones: its pointers stay.
    let auditor = server.connect("auditor").await;
    let all = serde_json::to_string(&auditor.list_all_tools().await.expect("tools")).expect("JSON");
    assert!(all.contains("(see list_zones)"));
}

#[tokio::test]
async fn errors_read_once_and_fit_and_a_delete_says_what_it_removed() {
    let server = ServerProcess::sandbox(&[]);
    let editor = server.connect("dns-editor").await;
    let record = json!({"zone_id": EXAMPLE_COM, "type": "A", "name": "dup.staging.example.com", "content": "192.0.2.9", "ttl": 1});
    let first = call(&editor, "create_dns_record", record.clone()).await;
    assert_ne!(first.is_error, Some(true), "{}", text(&first));
    let again = call(&editor, "create_dns_record", record).await;
    let message = text(&again);
    assert_eq!(again.is_error, Some(true));
    assert!(message.contains("exists already"), "{message}");
    assert!(
        !message.contains("fix the named parameter") && !message.contains(".."),
        "{message}"
    );

    let deployer = server.connect("site-deployer").await;
    let account = flaregate::sandbox::ACCOUNT_ID;
    let put = call(
        &deployer,
        "put_worker_script",
        json!({"account_id": account, "script_name": "site-gone", "script": "export default {}"}),
    )
    .await;
    assert_ne!(put.is_error, Some(true), "{}", text(&put));
    let deleted = call(
        &deployer,
        "delete_worker_script",
        json!({"account_id": account, "script_name": "site-gone"}),
    )
    .await;
    assert_ne!(deleted.is_error, Some(true), "{}", text(&deleted));
    let result = &deleted.structured_content.expect("structured")["result"];
    assert_eq!(result["deleted"], true, "{result}");
    assert_eq!(result["script_name"], "site-gone", "{result}");
}

/// Several clients drop the server instructions: each tool states the
/// agent's rules on its arguments itself.
#[tokio::test]
async fn a_tool_states_the_agents_rules_on_its_arguments() {
    let server = ServerProcess::sandbox(&[]);
    let editor = server.connect("dns-editor").await;
    let tools = editor.list_all_tools().await.expect("tools");
    let create = tools
        .iter()
        .find(|t| t.name == "create_dns_record")
        .expect("visible");
    let description = create.description.as_deref().unwrap_or_default();
    assert!(
        description.contains("Your rules: name allowed: *.staging.example.com."),
        "{description}"
    );
    let name = create.input_schema["properties"]["name"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(
        name.ends_with("Your rule: allowed: *.staging.example.com."),
        "{name}"
    );
    // Another agent's tool carries no rule it does not have.
    let auditor = server.connect("auditor").await;
    let listed = auditor.list_all_tools().await.expect("tools");
    assert!(
        listed.iter().all(|t| !t
            .description
            .as_deref()
            .unwrap_or_default()
            .contains("Your rules")),
        "the auditor has no constraints"
    );
}

/// A write whose constrained argument must be given (there is no current
/// value to judge instead) requires it in its schema, and the other ways
/// to call it, which would be refused, are not offered.
#[tokio::test]
async fn a_constraint_narrows_the_schema_it_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("p.toml");
    std::fs::write(
        &policy,
        "[[agent]]\nid = \"purger\"\nauth = \"none\"\nzones = [\"example.com\"]\ngrants = { cache = \"full\" }\n\
         [[agent.constraint]]\ntool = \"purge_cache\"\narg = \"files\"\nallow = [\"https://example.com/static/*\"]\n",
    )
    .expect("policy");
    let server = ServerProcess::sandbox(&["--policies", policy.to_str().expect("utf-8")]);
    let client = common::connect_http(&server.mcp_url, None).await;
    let tools = client.list_all_tools().await.expect("tools");
    let purge = tools
        .iter()
        .find(|t| t.name == "purge_cache")
        .expect("visible");
    let properties = purge.input_schema["properties"]
        .as_object()
        .expect("properties");
    assert!(properties.contains_key("files"));
    let files = properties["files"]["description"]
        .as_str()
        .expect("described");
    assert!(
        !files.contains("www.example.com/app.css") && files.contains("example.com/static/*"),
        "no example outside the rule: {files}"
    );
    for other in ["purge_everything", "tags", "hosts", "prefixes"] {
        assert!(!properties.contains_key(other), "{other} is not offered");
    }
    assert!(
        purge.input_schema["required"]
            .as_array()
            .is_some_and(|r| r.iter().any(|n| n == "files")),
        "{:?}",
        purge.input_schema
    );
    // The schema is advice; the rule still holds for a call that ignores it.
    let everything = call(
        &client,
        "purge_cache",
        json!({"zone_id": EXAMPLE_COM, "purge_everything": true}),
    )
    .await;
    assert_eq!(everything.is_error, Some(true));
}
