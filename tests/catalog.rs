//! The shipped catalog and the loader's checks.

use std::collections::HashSet;
use std::path::PathBuf;

use flaregate::catalog::{Access, Catalog, CatalogError, Location, load_sources};
use serde_json::{Value, json};

/// The catalog built into the binary: the project's `catalog/*.toml`,
/// never a user's `catalog/imported` beside them.
fn shipped() -> Catalog {
    flaregate::catalog::builtin()
}

#[test]
fn shipped_catalog_has_the_34_endpoints_in_12_groups() {
    let catalog = shipped();
    assert_eq!(catalog.endpoints().len(), 34);
    assert_eq!(catalog.groups().len(), 12);
    let reads = catalog
        .endpoints()
        .iter()
        .filter(|e| e.access == Access::Read)
        .count();
    assert_eq!((reads, 34 - reads), (18, 16));
    let permissions: HashSet<&str> = catalog
        .endpoints()
        .iter()
        .map(|e| e.permission.as_str())
        .collect();
    assert_eq!(permissions.len(), 19);
}

#[test]
fn tool_names_match_the_design() {
    let expected = [
        ("zones", "list_zones get_zone create_zone delete_zone"),
        (
            "dns",
            "list_dns_records get_dns_record create_dns_record update_dns_record patch_dns_record delete_dns_record",
        ),
        ("firewall", "list_rulesets get_ruleset update_ruleset"),
        (
            "page_rules",
            "list_page_rules create_page_rule get_page_rule delete_page_rule",
        ),
        ("cache", "purge_cache"),
        ("analytics", "query_analytics"),
        (
            "workers",
            "list_worker_scripts get_worker_script put_worker_script delete_worker_script",
        ),
        ("r2", "list_r2_buckets get_r2_bucket create_r2_bucket"),
        (
            "ssl",
            "list_custom_certificates get_universal_ssl_settings update_universal_ssl_settings",
        ),
        (
            "load_balancers",
            "list_load_balancers create_load_balancer delete_load_balancer",
        ),
        ("accounts", "list_accounts get_account"),
    ];
    let catalog = shipped();
    for (group, tools) in expected {
        let got: Vec<&str> = catalog
            .group_endpoints(group)
            .map(|e| e.tool.as_str())
            .collect();
        assert_eq!(got, tools.split(' ').collect::<Vec<_>>(), "group {group}");
    }
}

#[test]
fn every_input_schema_is_valid_json_schema() {
    for endpoint in shipped().endpoints() {
        let schema = Value::Object((*endpoint.input_schema).clone());
        jsonschema::meta::validate(&schema)
            .unwrap_or_else(|e| panic!("{}: invalid schema: {e}", endpoint.tool));
        assert_eq!(schema["type"], "object", "{}", endpoint.tool);
        assert_eq!(schema["additionalProperties"], false, "{}", endpoint.tool);
    }
}

#[test]
fn every_path_placeholder_is_a_required_string_with_a_pattern() {
    for endpoint in shipped().endpoints() {
        let required: Vec<&str> = endpoint
            .input_schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for name in endpoint.path.params() {
            let param = endpoint
                .param(name)
                .unwrap_or_else(|| panic!("{}: no param {name}", endpoint.tool));
            assert_eq!(param.location, Location::Path);
            assert!(
                required.contains(&name),
                "{}: {name} not required",
                endpoint.tool
            );
            let schema = &endpoint.input_schema["properties"][name];
            assert_eq!(schema["type"], "string", "{}: {name}", endpoint.tool);
            assert!(
                schema["pattern"].is_string(),
                "{}: {name} has no pattern",
                endpoint.tool
            );
        }
    }
}

#[test]
fn write_endpoints_carry_a_risk_line_and_reads_are_read_only() {
    for e in shipped().endpoints() {
        match e.access {
            Access::Write => {
                assert!(e.description.contains("A write here"), "{}", e.tool);
                assert!(!e.annotations.read_only, "{}", e.tool);
            }
            Access::Read => assert!(
                e.annotations.read_only && !e.annotations.destructive,
                "{}",
                e.tool
            ),
        }
    }
}

#[test]
fn arguments_are_validated_with_the_field_named() {
    let catalog = shipped();
    let args = |v: Value| v.as_object().cloned().expect("object");
    let zone = "023e105f4ecef8ad9ca31a8372d0c353";

    let ok = catalog.validate_arguments("create_dns_record", &args(json!({
        "zone_id": zone, "type": "A", "name": "www.example.com", "content": "192.0.2.1", "ttl": 1
    })));
    assert_eq!(ok, Ok(()));

    let missing = catalog
        .validate_arguments(
            "create_dns_record",
            &args(json!({"zone_id": zone, "type": "A"})),
        )
        .unwrap_err();
    assert_eq!(missing.expected, "is required but missing");
    assert!(
        ["name", "ttl"].contains(&missing.field.as_str()),
        "{missing}"
    );

    let wrong_type = catalog
        .validate_arguments(
            "create_dns_record",
            &args(json!({
                "zone_id": zone, "type": "A", "name": "x", "ttl": "one"
            })),
        )
        .unwrap_err();
    assert_eq!(wrong_type.field, "ttl");
    assert!(wrong_type.expected.contains("integer"), "{wrong_type}");

    let bad_id = catalog
        .validate_arguments("get_zone", &args(json!({"zone_id": "../../accounts"})))
        .unwrap_err();
    assert_eq!(bad_id.field, "zone_id");
    assert!(
        !bad_id.expected.contains("accounts"),
        "the value is not echoed: {bad_id}"
    );

    let extra = catalog
        .validate_arguments("get_zone", &args(json!({"zone_id": zone, "force": true})))
        .unwrap_err();
    assert_eq!(
        (extra.field.as_str(), extra.expected.as_str()),
        ("force", "is not an accepted argument")
    );

    let nested = catalog.validate_arguments("update_ruleset", &args(json!({
        "zone_id": zone, "ruleset_id": zone, "rules": [{"action": "explode", "expression": "true"}]
    }))).unwrap_err();
    assert_eq!(nested.field, "rules/0/action");
}

#[test]
fn purge_cache_needs_exactly_one_target() {
    let catalog = shipped();
    let zone = "023e105f4ecef8ad9ca31a8372d0c353";
    let check =
        |v: Value| catalog.validate_arguments("purge_cache", v.as_object().expect("object"));
    assert!(check(json!({"zone_id": zone, "files": ["https://example.com/a"]})).is_ok());
    let none = check(json!({"zone_id": zone})).unwrap_err();
    assert!(
        none.expected.contains("exactly one of files, tags"),
        "{none}"
    );
    assert!(check(json!({"zone_id": zone, "tags": ["a"], "purge_everything": true})).is_err());
}

const GOOD: &str = r#"
[group]
id = "things"
title = "Things"
description = "Test things."

[[endpoint]]
tool = "get_thing"
title = "Get a thing"
method = "GET"
path = "/accounts/{account_id}/things/{thing_id}"
access = "read"
permission = "Thing Read"
scope = "account"
result = "object"
description = "Get a thing."
annotations = { read_only = true, destructive = false, idempotent = true }

[[endpoint.param]]
name = "thing_id"
in = "path"
type = "string"
required = true
pattern = "^[0-9a-f]{32}$"
description = "The thing."

[[endpoint.param]]
name = "account_id"
in = "path"
type = "string"
required = true
pattern = "^[0-9a-f]{32}$"
description = "The account."
"#;

fn load_one(text: &str) -> Result<Catalog, CatalogError> {
    load_sources(&[(PathBuf::from("catalog/things.toml"), text.to_string())])
}

/// The error's text for a catalog edited by `from` → `to`.
fn error_for(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "test edits text that exists: {from}");
    load_one(&GOOD.replacen(from, to, 1))
        .expect_err("edited catalog is refused")
        .to_string()
}

#[test]
fn a_new_endpoint_is_a_toml_edit() {
    let catalog = load_one(GOOD).expect("good catalog loads");
    assert_eq!(
        catalog.endpoint("get_thing").expect("present").path.raw,
        "/accounts/{account_id}/things/{thing_id}"
    );
}

#[test]
fn bad_catalogs_name_file_line_entry_and_field() {
    let cases = [
        // (edit from, edit to, what the message must hold)
        (
            "pattern = \"^[0-9a-f]{32}$\"",
            "pattern = \"[0-9a-f]{32}\"",
            "must be anchored",
        ),
        // Found by fuzzing: a pattern Rust's regex accepts but the JSON
        // Schema engine cannot compile.
        (
            "pattern = \"^[0-9a-f]{32}$\"",
            "pattern = \"^[0--af9]{32}$\"",
            "cannot be compiled",
        ),
        (
            "annotations = { read_only = true, destructive = false, idempotent = true }",
            "annotations = { read_only = true, destructive = false, idempotent = true }\n[endpoint.lookup]\ntool = \"fetch_thing\"",
            "field `lookup`: no tool named `fetch_thing`",
        ),
        (
            "method = \"GET\"",
            "method = \"FETCH\"",
            "catalog/things.toml:10: endpoint `get_thing`: unknown variant `FETCH`",
        ),
        (
            "pattern = \"^[0-9a-f]{32}$\"\n",
            "",
            "field `param.thing_id.pattern`",
        ),
        (
            "required = true\n",
            "",
            "a path parameter must be a required string",
        ),
        (
            "path = \"/accounts/{account_id}/things/{thing_id}\"",
            "path = \"/accounts/{account_id}/things/{thing_id}/{other}\"",
            "{other} has no parameter",
        ),
        (
            "access = \"read\"",
            "access = \"write\"",
            "read_only must be true exactly",
        ),
        (
            "type = \"string\"",
            "type = \"strang\"",
            "field `param.thing_id.type`: is not valid JSON Schema",
        ),
        (
            "pattern = \"^[0-9a-f]{32}$\"",
            "pattern = \"^[0-9a-f\"",
            "invalid regex",
        ),
        (
            "description = \"The thing.\"",
            "descripton = \"The thing.\"",
            "`param.thing_id.descripton`: unknown key",
        ),
        (
            "result = \"object\"",
            "result = \"object\"\nshared = [\"nope\"]",
            "no [shared.nope]",
        ),
    ];
    for (from, to, want) in cases {
        let message = error_for(from, to);
        assert!(message.contains(want), "editing {from:?}: {message}");
        assert!(message.starts_with("catalog/things.toml:"), "{message}");
    }
    let invalid = error_for("access = \"read\"", "access = \"write\"");
    assert!(invalid.contains("endpoint `get_thing`"), "{invalid}");
    assert!(
        invalid.contains("catalog/things.toml:7:"),
        "line of the entry ([[endpoint]]): {invalid}"
    );
    // Written with single quotes and spaces, a bad lookup is still an
    // error with its line, never a panic.
    let odd = GOOD.replace("tool = \"get_thing\"", "tool='get_thing'")
        + "\n[endpoint.lookup]\ntool = \"no_such_tool\"\n";
    let err = load_sources(&[(PathBuf::from("catalog/things.toml"), odd)])
        .expect_err("a lookup of a missing tool");
    let message = err.to_string();
    assert!(
        message.starts_with("catalog/things.toml:7: endpoint `get_thing`, field `lookup`"),
        "{message}"
    );
}

#[test]
fn duplicate_tools_across_files_are_refused() {
    let err = load_sources(&[
        (PathBuf::from("a.toml"), GOOD.to_string()),
        (
            PathBuf::from("b.toml"),
            GOOD.replace("id = \"things\"", "id = \"others\""),
        ),
    ])
    .expect_err("duplicate tool");
    assert!(err.to_string().contains("already used"), "{err}");
}
