//! `flaregate catalog import` on Cloudflare's 2024 OpenAPI schema: the
//! real binary writes the files, the real loader and policy read them.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{catalog_copy, import};
use flaregate::catalog::Catalog;
use flaregate::policy::{Directory, Policy, compile};
use serde_json::{Value, json};

const COM: &str = "023e105f4ecef8ad9ca31a8372d0c353";
const ORG: &str = "5a7805061c76ada191ed06f989cc3dac";

fn policy(catalog: Catalog, text: &str) -> Policy {
    compile(
        &[(PathBuf::from("policies/p.toml"), text.to_string())],
        Arc::new(catalog),
    )
    .expect("policy compiles")
}

fn decide(policy: &Policy, tool: &str, args: Value) -> (bool, String) {
    let mut directory = Directory::default();
    directory.add_zone("example.com", COM);
    directory.add_zone("example.org", ORG);
    let agent = &policy.agents()[0];
    let verdict = policy.decide(
        agent,
        tool,
        args.as_object().expect("object"),
        &directory,
        None,
    );
    (verdict.is_allowed(), verdict.reason().to_string())
}

#[test]
fn the_whole_2024_schema_imports_with_only_explained_skips_and_loads() {
    let dir = catalog_copy();
    let report = import(dir.path(), &[]);
    let written: usize = report
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("the report starts with the count");
    assert!(written > 1_400, "{report}");
    // Every skip is one line with its reason, and none is the loader
    // refusing what the import wrote.
    let skipped: Vec<&str> = report
        .lines()
        .skip_while(|l| !l.starts_with("skipped"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert!(!skipped.is_empty());
    for line in &skipped {
        let known = [
            "curated as",
            "not JSON",
            "needs the header parameter",
            "is a GET with a body",
            "a list flaregate cannot encode",
            "not a form of named fields",
            "named by the upload itself",
        ];
        assert!(
            known.iter().any(|k| line.contains(k)),
            "unexplained skip: {line}"
        );
    }
    assert!(report.contains("unclassified"), "{report}");

    let catalog = Catalog::load(dir.path()).expect("curated and imported load together");
    let shipped = common::catalog();
    assert_eq!(
        catalog.endpoints().len(),
        shipped.endpoints().len() + written
    );
    // Curated entries keep their names, descriptions and lookups.
    for curated in shipped.endpoints() {
        let now = catalog.endpoint(&curated.tool).expect("curated tool kept");
        assert_eq!(now.description, curated.description);
        assert_eq!(now.lookup, curated.lookup);
    }
    let names: HashSet<&str> = catalog
        .endpoints()
        .iter()
        .map(|e| e.tool.as_str())
        .collect();
    assert_eq!(names.len(), catalog.endpoints().len());

    // A second import writes the same files: names are stable.
    let before = read_all(&dir.path().join("imported"));
    std::fs::write(dir.path().join("imported/NOTES.md"), "mine").expect("write");
    import(dir.path(), &[]);
    std::fs::remove_file(dir.path().join("imported/NOTES.md")).expect("kept, not replaced");
    assert_eq!(read_all(&dir.path().join("imported")), before);
}

fn read_all(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files: Vec<(PathBuf, String)> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read");
            (p, text)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn an_agent_granted_one_imported_group_sees_exactly_it_scoped_and_constrained() {
    let dir = catalog_copy();
    let report = import(dir.path(), &["--include", "zone_settings"]);
    assert!(report.contains("zone_settings"), "{report}");
    let catalog = Catalog::load(dir.path()).expect("loads");
    let group: Vec<String> = catalog
        .group_endpoints("zone_settings")
        .map(|e| e.tool.clone())
        .collect();
    assert!(group.len() > 5, "{group:?}");
    // The constraint holds for the whole group: the tools without a
    // `setting_id` are taken away, unless named (the custom pages list).
    let named = "custom_pages_for_a_zone_list_custom_pages";
    let expected: Vec<String> = catalog
        .group_endpoints("zone_settings")
        .filter(|e| e.param("setting_id").is_some() || e.tool == named)
        .map(|e| e.tool.clone())
        .collect();
    assert!(
        expected.len() >= 3 && expected.len() < group.len(),
        "{expected:?}"
    );
    let policy = policy(
        catalog,
        r#"
[[agent]]
id = "settings"
auth = "none"
zones = ["example.com"]
grants = { zone_settings = "full" }

[agent.tools]
custom_pages_for_a_zone_list_custom_pages = "on"

[[agent.constraint]]
group = "zone_settings"
arg = "setting_id"
allow = ["always_use_https", "min_tls_version"]
"#,
    );
    let agent = &policy.agents()[0];
    let visible: Vec<String> = agent
        .visible_tools(policy.catalog())
        .map(str::to_string)
        .collect();
    assert_eq!(visible, expected);
    assert_eq!(agent.removed.len(), group.len() - expected.len());
    assert!(
        agent
            .removed
            .iter()
            .all(|(_, why)| why.contains("setting_id") && why.contains("cannot be checked")),
        "{:?}",
        agent.removed
    );

    // The schema names the zone `zone_identifier` here and `zone_id`
    // there: either way the call is scoped to the agent's zones.
    let custom_pages = policy
        .catalog()
        .endpoints()
        .iter()
        .find(|e| e.path.raw == "/zones/{zone_identifier}/custom_pages")
        .expect("imported with the schema's placeholder name");
    let (allowed, _) = decide(&policy, &custom_pages.tool, json!({"zone_identifier": COM}));
    assert!(allowed);
    let (allowed, reason) = decide(&policy, &custom_pages.tool, json!({"zone_identifier": ORG}));
    assert!(
        !allowed && reason.contains("outside your zones"),
        "{reason}"
    );

    let edit = policy
        .catalog()
        .endpoints()
        .iter()
        .find(|e| {
            e.path.raw == "/zones/{zone_id}/settings/{setting_id}" && e.method.as_str() == "PATCH"
        })
        .expect("the edit-one-setting endpoint");
    let call =
        |zone: &str, setting: &str| json!({"zone_id": zone, "setting_id": setting, "value": "on"});
    assert!(decide(&policy, &edit.tool, call(COM, "always_use_https")).0);
    let (allowed, reason) = decide(&policy, &edit.tool, call(ORG, "always_use_https"));
    assert!(
        !allowed && reason.contains("outside your zones"),
        "{reason}"
    );
    let (allowed, reason) = decide(&policy, &edit.tool, call(COM, "ssl"));
    assert!(
        !allowed && reason.contains("not among your allowed values"),
        "{reason}"
    );
}

#[test]
fn user_global_and_unknown_permission_endpoints_are_granted_only_by_name() {
    let dir = catalog_copy();
    import(
        dir.path(),
        &[
            "--include",
            "radar",
            "--include",
            "user",
            "--include",
            "unclassified",
        ],
    );
    let catalog = Catalog::load(dir.path()).expect("loads");
    let radar = catalog
        .group_endpoints("radar")
        .next()
        .expect("radar imported")
        .tool
        .clone();
    let unknown = catalog
        .group_endpoints("unclassified")
        .next()
        .expect("unclassified imported")
        .tool
        .clone();
    assert!(catalog.group("unclassified").expect("group").explicit);

    // Everything granted, yet none of these: they need a grant by name.
    let everything = policy(
        catalog.clone(),
        "[[agent]]\nid = \"all\"\nauth = \"none\"\nzones = [\"*\"]\naccounts = [\"*\"]\ngrants = { \"*\" = \"full\" }\n",
    );
    let agent = &everything.agents()[0];
    for group in ["radar", "user", "unclassified"] {
        let seen: Vec<&str> = agent
            .visible_tools(everything.catalog())
            .filter(|t| {
                everything
                    .catalog()
                    .endpoint(t)
                    .is_some_and(|e| e.group == group)
            })
            .collect();
        assert!(seen.is_empty(), "{group}: {seen:?}");
    }
    assert!(agent.may_see(everything.catalog(), "list_dns_records"));
    let (allowed, reason) = decide(&everything, &radar, json!({}));
    assert!(
        !allowed && reason.contains("granted only by name"),
        "{reason}"
    );

    let by_name = policy(
        catalog.clone(),
        &format!(
            "[[agent]]\nid = \"one\"\nauth = \"none\"\ntools = {{ {radar} = \"on\", {unknown} = \"on\" }}\n"
        ),
    );
    let visible: Vec<&str> = by_name.agents()[0]
        .visible_tools(by_name.catalog())
        .collect();
    assert_eq!(visible.len(), 2, "{visible:?}");

    let error = compile(
        &[(
            PathBuf::from("policies/p.toml"),
            "[[agent]]\nid = \"x\"\nauth = \"none\"\ngrants = { unclassified = \"read\" }\n"
                .to_string(),
        )],
        Arc::new(catalog),
    )
    .expect_err("a group grant of an explicit group is refused")
    .to_string();
    assert!(
        error.contains("policies/p.toml:4") && error.contains("granted only tool by tool"),
        "{error}"
    );
}

const EVERYTHING: &str = r#"
[[agent]]
id = "everything"
auth = "none"
zones = ["example.com"]
accounts = ["*"]
grants = { "*" = "full" }
"#;

const NARROW: &str = r#"
[[agent]]
id = "narrow"
auth = "none"
zones = ["example.com"]
tool_mode = "discover"
grants = { zone_settings = "read" }
"#;

/// `serve --sandbox` over a copy of the shipped catalog with `filters`
/// imported beside it, for the one keyless agent of `policy`. The folders
/// live as long as the value.
struct Served {
    server: common::ServerProcess,
    catalog: tempfile::TempDir,
    _policies: tempfile::TempDir,
}

fn serve_imported(filters: &[&str], policy: &str) -> Served {
    let catalog = catalog_copy();
    import(catalog.path(), filters);
    let policies = tempfile::tempdir().expect("tempdir");
    let file = policies.path().join("policy.toml");
    std::fs::write(&file, policy).expect("write policy");
    let server = common::ServerProcess::start(
        &[
            "--sandbox",
            "--catalog",
            catalog.path().to_str().expect("utf-8"),
            "--policies",
            file.to_str().expect("utf-8"),
        ],
        &[],
    );
    Served {
        server,
        catalog,
        _policies: policies,
    }
}

#[tokio::test]
async fn a_large_grant_discovers_searches_describes_and_calls_through_the_same_pipeline() {
    let Served { server, .. } = serve_imported(
        &["--include", "zone_settings", "--include", "zero_trust"],
        EVERYTHING,
    );
    let client = common::connect_http(&server.mcp_url, None).await;

    // A tools/list past 24 KB: three tools instead (and, as "*" grants
    // the alerts group too, the alerts).
    let tools = client.list_all_tools().await.expect("tools");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(
        names,
        ["search_api", "describe_api", "call_api", "list_alerts"]
    );

    // Search, then describe the candidates to find the one-setting edit.
    let edit = find(
        &client,
        "edit zone setting",
        "PATCH",
        "/zones/{zone_id}/settings/{setting_id}",
    )
    .await;
    let set = |zone: &str| json!({"name": edit, "arguments": {"zone_id": zone, "setting_id": "always_use_https", "body": {"id": "always_use_https", "value": "on"}}});
    let answer = common::call(&client, "call_api", set(COM)).await;
    assert_ne!(answer.is_error, Some(true), "{}", common::text(&answer));
    let refused = common::call(&client, "call_api", set(ORG)).await;
    assert_eq!(refused.is_error, Some(true));
    assert!(
        common::text(&refused).contains("outside your zones"),
        "{}",
        common::text(&refused)
    );

    // The generic sandbox kept the setting.
    let get = find(
        &client,
        "get zone setting",
        "GET",
        "/zones/{zone_id}/settings/{setting_id}",
    )
    .await;
    let read = common::call(
        &client,
        "call_api",
        json!({"name": get, "arguments": {"zone_id": COM, "setting_id": "always_use_https"}}),
    )
    .await;
    let read = read.structured_content.expect("structured");
    assert_eq!(read["result"]["value"], "on", "{read}");

    // Audited under the endpoints' own names; nothing went to example.org.
    let rows = server.audit_rows();
    assert!(rows.iter().any(|r| r.tool == edit && r.decision == "allow"));
    assert!(rows.iter().any(|r| r.tool == edit && r.decision == "deny"));
    assert!(rows.iter().all(|r| r.tool != "call_api"));
    let requests = server.sandbox_requests().await;
    assert!(
        requests.iter().all(|r| !r.path.contains(ORG)),
        "{requests:?}"
    );
    let verdict = common::verify(&server.audit_db);
    assert!(
        matches!(verdict, flaregate::audit::ChainVerdict::Valid { .. }),
        "{verdict:?}"
    );
}

#[tokio::test]
async fn an_imported_write_is_undone_from_its_snapshot() {
    let policy = format!("{EVERYTHING}undo = true\n");
    let Served { server, .. } = serve_imported(
        &["--include", "zone_settings", "--include", "zero_trust"],
        &policy,
    );
    let client = common::connect_http(&server.mcp_url, None).await;
    let edit = find(
        &client,
        "edit zone setting",
        "PATCH",
        "/zones/{zone_id}/settings/{setting_id}",
    )
    .await;
    let get = find(
        &client,
        "get zone setting",
        "GET",
        "/zones/{zone_id}/settings/{setting_id}",
    )
    .await;
    let set = |value: &str| json!({"name": edit, "arguments": {"zone_id": COM, "setting_id": "always_use_https", "body": {"id": "always_use_https", "value": value}}});
    let value = || async {
        let read = common::call(
            &client,
            "call_api",
            json!({"name": get, "arguments": {"zone_id": COM, "setting_id": "always_use_https"}}),
        )
        .await;
        read.structured_content.expect("structured")["result"]["value"].clone()
    };
    for value in ["on", "off"] {
        let answer = common::call(&client, "call_api", set(value)).await;
        assert_ne!(answer.is_error, Some(true), "{}", common::text(&answer));
    }
    assert_eq!(value().await, "off");
    let row = server
        .audit_rows()
        .iter()
        .rev()
        .find(|r| r.tool == edit && r.decision == "allow")
        .map(|r| r.id)
        .expect("the second write's row");
    let undone = common::call(&client, "undo_call", json!({"row": row})).await;
    assert_ne!(undone.is_error, Some(true), "{}", common::text(&undone));
    assert_eq!(
        value().await,
        "on",
        "the imported setting is back as it was"
    );
}

/// The endpoint search_api finds for `query` whose description (from
/// describe_api) has `method` and `path`; its zone is offered as the one
/// id the agent holds.
async fn find(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    query: &str,
    method: &str,
    path: &str,
) -> String {
    let found = common::call(client, "search_api", json!({"query": query, "limit": 50})).await;
    let found = found.structured_content.expect("structured");
    for candidate in found["endpoints"].as_array().expect("list") {
        let name = candidate["name"].as_str().expect("name");
        let described = common::call(client, "describe_api", json!({"name": name})).await;
        let described = described.structured_content.expect("structured");
        if described["path"] == path && described["method"] == method {
            assert_eq!(
                described["input_schema"]["properties"]["zone_id"]["enum"],
                json!([COM])
            );
            return name.to_string();
        }
    }
    panic!("search_api finds no {method} {path} for {query:?}: {found}");
}

#[tokio::test]
async fn search_never_shows_an_endpoint_the_agent_may_not_call() {
    let Served {
        server, catalog, ..
    } = serve_imported(&["--include", "zone_settings"], NARROW);
    let client = common::connect_http(&server.mcp_url, None).await;
    let found = common::call(
        &client,
        "search_api",
        json!({"query": "zone setting dns record worker", "limit": 50}),
    )
    .await;
    let found = found.structured_content.expect("structured");
    let endpoints = found["endpoints"].as_array().expect("list");
    assert!(!endpoints.is_empty());
    for endpoint in endpoints {
        assert_eq!(endpoint["access"], "read", "{endpoint}");
        assert_eq!(endpoint["group"], "zone_settings", "{endpoint}");
    }
    // A write it may not call: not described, and refused when called.
    let loaded = Catalog::load(catalog.path()).expect("loads");
    let write = loaded
        .group_endpoints("zone_settings")
        .find(|e| e.method.as_str() == "PATCH")
        .expect("a write")
        .tool
        .clone();
    let described = common::call(&client, "describe_api", json!({"name": write})).await;
    assert_eq!(described.is_error, Some(true));
    let called = common::call(
        &client,
        "call_api",
        json!({"name": write, "arguments": {"zone_id": COM, "setting_id": "ssl", "body": {"id": "ssl", "value": "off"}}}),
    )
    .await;
    assert_eq!(called.is_error, Some(true));
    assert_eq!(
        server
            .sandbox_requests()
            .await
            .iter()
            .filter(|r| r.method == "PATCH")
            .count(),
        0
    );
}

#[tokio::test]
async fn the_sandbox_answers_every_imported_endpoint_from_its_generic_store() {
    let dir = catalog_copy();
    import(dir.path(), &["--include", "d1"]);
    let sandbox =
        common::SandboxProcess::start(&["--catalog", dir.path().to_str().expect("utf-8")]);
    let http = reqwest::Client::new();
    let account = flaregate::sandbox::ACCOUNT_ID;
    let databases = format!("{}/accounts/{account}/d1/database", sandbox.base_url);
    let send = |method: reqwest::Method, url: String, body: Option<Value>| {
        let request = http.request(method, url).bearer_auth(&sandbox.token);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        async move {
            let response = request.send().await.expect("sandbox answers");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("an envelope"))
        }
    };

    let (status, created) = send(
        reqwest::Method::POST,
        databases.clone(),
        Some(json!({"name": "notes"})),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let id = created["result"]["id"].as_str().expect("an id").to_string();
    assert!(
        id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    send(
        reqwest::Method::POST,
        databases.clone(),
        Some(json!({"name": "logs"})),
    )
    .await;

    let (_, listed) = send(
        reqwest::Method::GET,
        format!("{databases}?per_page=1&page=2"),
        None,
    )
    .await;
    assert_eq!(
        listed["result"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    assert_eq!(listed["result_info"]["total_count"], 2, "{listed}");
    let (_, got) = send(reqwest::Method::GET, format!("{databases}/{id}"), None).await;
    assert_eq!(got["result"]["name"], "notes");

    let (status, deleted) = send(reqwest::Method::DELETE, format!("{databases}/{id}"), None).await;
    assert_eq!(
        (status, deleted["result"]["id"].as_str()),
        (200, Some(id.as_str()))
    );
    let (status, gone) = send(reqwest::Method::GET, format!("{databases}/{id}"), None).await;
    assert_eq!(status, 404);
    assert_eq!(
        (gone["success"].clone(), gone["errors"][0]["code"].clone()),
        (json!(false), json!(7003))
    );

    // Objects live under their account: an unknown account has none.
    let elsewhere = format!(
        "{}/accounts/{}/d1/database",
        sandbox.base_url,
        "f".repeat(32)
    );
    let (status, _) = send(reqwest::Method::GET, elsewhere, None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_imported_multipart_upload_is_sent_as_a_form() {
    let Served { server, .. } = serve_imported(
        &["--include", "images"],
        "[[agent]]\nid = \"images\"\nauth = \"none\"\naccounts = [\"*\"]\ngrants = { images = \"full\" }\n",
    );
    let client = common::connect_http(&server.mcp_url, None).await;
    let uploaded = common::call(
        &client,
        "cloudflare_images_upload_an_image_via_url",
        json!({
            "account_id": flaregate::sandbox::ACCOUNT_ID,
            "url": "https://example.com/logo.png",
            "metadata": {"alt": "logo"},
            "require_signed_urls": true
        }),
    )
    .await;
    assert_ne!(uploaded.is_error, Some(true), "{}", common::text(&uploaded));
    // The sandbox read the fields back out of the form: text as it is,
    // objects as JSON, booleans as text, under their wire names.
    let result = &uploaded.structured_content.expect("structured")["result"];
    assert_eq!(result["url"], "https://example.com/logo.png", "{result}");
    assert_eq!(result["metadata"], "{\"alt\":\"logo\"}", "{result}");
    assert_eq!(result["requireSignedURLs"], "true", "{result}");
}
