//! Table-driven decisions against the shipped catalog, and policy
//! validation messages with file and line.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use flaregate::policy::{Directory, Policy, PolicyError, compile, sha256_hex};
use serde_json::{Value, json};

const COM: &str = "023e105f4ecef8ad9ca31a8372d0c353";
const ORG: &str = "5a7805061c76ada191ed06f989cc3dac";
const ACCOUNT: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const OTHER_ACCOUNT: &str = "ffffffffffffffffffffffffffffffff";

const POLICY: &str = r#"
[[agent]]
id = "nobody"

[[agent]]
id = "reader"
zones = ["*"]
accounts = ["*"]
grants = { dns = "read", zones = "read", workers = "read" }

[[agent]]
id = "editor"
zones = ["example.com"]
grants = { dns = "full" }
tools = { delete_dns_record = "off", get_zone = "on" }

[[agent.constraint]]
tool = "create_dns_record"
arg = "name"
allow = ["*.staging.example.com"]
deny = ["secret.staging.example.com"]

[[agent]]
id = "by-id"
zones = ["5a7805061c76ada191ed06f989cc3dac"]
grants = { dns = "read" }

[[agent]]
id = "deployer"
accounts = ["Example Corp"]
zones = ["example.com"]
grants = { workers = "full", cache = "full" }
tools = { list_worker_scripts = "on" }
limits = { calls_per_minute = 5, writes_per_hour = 2 }

[[agent.constraint]]
tool = "put_worker_script"
arg = "script_name"
allow = ["site-*"]

[[agent.constraint]]
tool = "purge_cache"
arg = "files"
allow = ["https://example.com/*"]
"#;

fn policy() -> Policy {
    compile(
        &[(PathBuf::from("policies/test.toml"), POLICY.to_string())],
        Arc::new(common::catalog()),
    )
    .expect("test policy compiles")
}

fn directory() -> Directory {
    let mut directory = Directory::default();
    directory.add_zone("example.com", COM);
    directory.add_zone("example.org", ORG);
    directory.add_account("Example Corp", ACCOUNT);
    directory
}

/// Runs one call; returns (allowed, reason).
fn decide(policy: &Policy, agent: &str, tool: &str, args: Value) -> (bool, String) {
    let agent = policy.agent(agent).expect("agent exists");
    let decision = policy.decide(
        agent,
        tool,
        args.as_object().expect("object"),
        &directory(),
        None,
    );
    (decision.is_allowed(), decision.reason().to_string())
}

#[test]
fn the_decision_table() {
    let p = policy();
    let record = |zone: &str, name: &str| json!({"zone_id": zone, "type": "A", "name": name, "content": "192.0.2.1", "ttl": 1});
    // (agent, tool, arguments, allowed, words the reason must hold)
    let table: Vec<(&str, &str, Value, bool, &str)> = vec![
        // deny by default
        (
            "nobody",
            "list_zones",
            json!({}),
            false,
            "no Zones grant (deny by default)",
        ),
        (
            "nobody",
            "get_account",
            json!({"account_id": ACCOUNT}),
            false,
            "deny by default",
        ),
        (
            "reader",
            "list_accounts",
            json!({}),
            false,
            "no Accounts grant",
        ),
        // read vs full
        (
            "reader",
            "list_dns_records",
            json!({"zone_id": COM}),
            true,
            "your DNS grant is read",
        ),
        (
            "reader",
            "create_dns_record",
            record(COM, "a.example.com"),
            false,
            "your DNS grant is read",
        ),
        (
            "editor",
            "create_dns_record",
            record(COM, "a.staging.example.com"),
            true,
            "your DNS grant is full",
        ),
        // overrides beat group grants
        (
            "editor",
            "delete_dns_record",
            json!({"zone_id": COM, "dns_record_id": COM}),
            false,
            "tools.delete_dns_record override is off",
        ),
        (
            "editor",
            "get_zone",
            json!({"zone_id": COM}),
            true,
            "tools.get_zone override is on",
        ),
        // zone scope by name and by id
        (
            "editor",
            "list_dns_records",
            json!({"zone_id": ORG}),
            false,
            "zone example.org (5a7805061c76ada191ed06f989cc3dac) is outside your zones; your zones are example.com (023e105f4ecef8ad9ca31a8372d0c353)",
        ),
        (
            "by-id",
            "list_dns_records",
            json!({"zone_id": ORG}),
            true,
            "DNS grant is read",
        ),
        (
            "by-id",
            "list_dns_records",
            json!({"zone_id": COM}),
            false,
            "zone example.com (023e",
        ),
        (
            "reader",
            "list_dns_records",
            json!({"zone_id": ORG}),
            true,
            "DNS grant is read",
        ),
        // account scope by name
        (
            "deployer",
            "list_worker_scripts",
            json!({"account_id": ACCOUNT}),
            true,
            "tools.list_worker_scripts override is on",
        ),
        (
            "deployer",
            "list_worker_scripts",
            json!({"account_id": OTHER_ACCOUNT}),
            false,
            "is outside your accounts; your accounts are Example Corp (",
        ),
        (
            "editor",
            "get_zone",
            json!({"zone_id": ORG}),
            false,
            "outside your zones",
        ),
        // constraints: allow, deny, case, lists
        (
            "editor",
            "create_dns_record",
            record(COM, "www.example.com"),
            false,
            "name \"www.example.com\" is not among your allowed values (*.staging.example.com)",
        ),
        (
            "editor",
            "create_dns_record",
            record(COM, "secret.staging.example.com"),
            false,
            "matches your denied values",
        ),
        (
            "editor",
            "create_dns_record",
            record(COM, "SECRET.staging.example.com"),
            false,
            "matches your denied values",
        ),
        (
            "editor",
            "create_dns_record",
            record(COM, "a.STAGING.example.com"),
            false,
            "not among your allowed values",
        ),
        (
            "deployer",
            "put_worker_script",
            json!({"account_id": ACCOUNT, "script_name": "site-blog", "script": "x"}),
            true,
            "Workers grant is full",
        ),
        (
            "deployer",
            "put_worker_script",
            json!({"account_id": ACCOUNT, "script_name": "api-gateway", "script": "x"}),
            false,
            "script_name \"api-gateway\" is not among your allowed values (site-*)",
        ),
        (
            "deployer",
            "purge_cache",
            json!({"zone_id": COM, "files": ["https://example.com/a", "https://evil.example/b"]}),
            false,
            "https://evil.example/b",
        ),
        (
            "deployer",
            "purge_cache",
            json!({"zone_id": COM, "purge_everything": true}),
            false,
            "gives no files",
        ),
        // unknown tools
        (
            "reader",
            "drop_everything",
            json!({}),
            false,
            "there is no tool named drop_everything",
        ),
    ];
    for (agent, tool, args, allowed, words) in table {
        let (got, reason) = decide(&p, agent, tool, args.clone());
        assert_eq!(got, allowed, "{agent} {tool} {args}: {reason}");
        assert!(
            reason.contains(words),
            "{agent} {tool}: reason {reason:?} lacks {words:?}"
        );
    }
}

#[test]
fn deciding_spends_nothing() {
    let p = policy();
    let write = json!({"account_id": ACCOUNT, "script_name": "site-a", "script": "x"});
    // The deployer may make 2 writes an hour and 5 calls a minute; a
    // decision is not a call: budgets are spent by the pipeline after it.
    for _ in 0..20 {
        assert!(decide(&p, "deployer", "put_worker_script", write.clone()).0);
    }
}

#[test]
fn unresolved_names_deny_and_say_so() {
    let p = policy();
    let agent = p.agent("deployer").expect("agent");
    let decision = p.decide(
        agent,
        "list_worker_scripts",
        json!({"account_id": ACCOUNT}).as_object().expect("object"),
        &Directory::default(),
        None,
    );
    assert_eq!(
        decision.deny_kind(),
        Some(flaregate::policy::DenyKind::Unresolved),
        "{decision:?}"
    );
}

#[test]
fn visible_tools_follow_grants_and_overrides() {
    let p = policy();
    let catalog = p.catalog().clone();
    let tools = |id: &str| {
        p.agent(id)
            .expect("agent")
            .visible_tools(&catalog)
            .collect::<Vec<_>>()
    };
    assert_eq!(tools("nobody"), Vec::<&str>::new());
    assert_eq!(
        tools("editor"),
        [
            "list_dns_records",
            "get_dns_record",
            "create_dns_record",
            "update_dns_record",
            "patch_dns_record",
            "get_zone"
        ]
    );
    assert_eq!(tools("reader").len(), 2 + 2 + 2);
}

#[test]
fn agents_are_found_by_key() {
    let text = format!(
        "[[agent]]\nid = \"a\"\nkey_sha256 = [\"{}\"]\n[[agent]]\nid = \"b\"\nkey_sha256 = [\"{}\"]\n",
        sha256_hex("key-a"),
        sha256_hex("key-b")
    );
    let p = compile(
        &[(PathBuf::from("k.toml"), text)],
        Arc::new(common::catalog()),
    )
    .expect("compiles");
    assert_eq!(p.agent_for_key("key-b").map(|a| a.id.as_str()), Some("b"));
    assert_eq!(p.agent_for_key("key-a").map(|a| a.id.as_str()), Some("a"));
    assert!(p.agent_for_key("key-c").is_none());
    assert!(p.agent_for_key("").is_none());
}

fn problems(files: &[(&str, &str)]) -> String {
    let sources: Vec<(PathBuf, String)> = files
        .iter()
        .map(|(f, t)| (PathBuf::from(f), t.to_string()))
        .collect();
    match compile(&sources, Arc::new(common::catalog())) {
        Err(PolicyError::Invalid(problems)) => problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("policy should be refused"),
    }
}

#[test]
fn validation_names_file_and_line() {
    let cases = [
        (
            "[[agent]]\nid = \"a\"\ngrants = { dnss = \"read\" }\n",
            "p.toml:3: unknown capability group `dnss` (did you mean `dns`?)",
        ),
        (
            "[[agent]]\nid = \"a\"\n\n[agent.tools]\nlist_dns_record = \"on\"\n",
            "p.toml:5: unknown tool `list_dns_record` (did you mean `list_dns_records`?)",
        ),
        (
            "[[agent]]\nid = \"a\"\n[[agent.constraint]]\ngroup = \"worker\"\narg = \"script_name\"\nallow = [\"x\"]\n",
            "p.toml:4: constraint on unknown group `worker` (did you mean `workers`?)",
        ),
        (
            "[[agent]]\nid = \"a\"\n\n[agent.tools]\ndrop_zone = \"off\"\n",
            "p.toml:5: unknown tool `drop_zone`",
        ),
        (
            "[[agent]]\nid = \"a\"\n[[agent.constraint]]\ntool = \"create_dns_record\"\narg = \"nmae\"\nallow = [\"x\"]\n",
            "p.toml:5: create_dns_record has no argument `nmae`",
        ),
        (
            "[[agent]]\nid = \"a\"\n[[agent.constraint]]\ntool = \"create_dns_record\"\narg = \"name\"\nallow = [\"[x\"]\n",
            "p.toml:6: invalid glob `[x`",
        ),
        (
            "[[agent]]\nid = \"a\"\nkey_sha256 = [\"abc\"]\n",
            "p.toml:3: key_sha256 must be 64 hex characters",
        ),
        (
            "[[agent]]\nid = \"a\"\ngrants = { dns = \"write\" }\n",
            "p.toml:3: `write` is not a level (write access is `full`): a grant is off, read or full",
        ),
        (
            "[[agent]]\nid = \"a\"\n[agent.constraint]\ntool = \"create_dns_record\"\narg = \"name\"\nallow = [\"x\"]\n",
            "p.toml:3: `[agent.constraint]` is a list: write `[[agent.constraint]]` (two brackets) for each entry",
        ),
        (
            "[[agent]]\nid = \"a\"\nzones = [\"not a zone\"]\n",
            "p.toml:3: `not a zone` is not a zone name",
        ),
        (
            "[[agent]]\nid = \"Bad Id\"\n",
            "p.toml:2: agent id `Bad Id` must be",
        ),
        (
            "[[agent]]\nid = \"a\"\ncolour = \"red\"\n",
            "p.toml:3: unknown field `colour`",
        ),
    ];
    for (text, want) in cases {
        let got = problems(&[("p.toml", text)]);
        assert!(got.contains(want), "{text}\n=> {got}");
    }
}

#[test]
fn duplicates_across_files_are_errors() {
    let key = sha256_hex("shared");
    let a = format!("[[agent]]\nid = \"a\"\nkey_sha256 = [\"{key}\"]\n");
    let b = format!("\n[[agent]]\nid = \"a\"\n\n[[agent]]\nid = \"b\"\nkey_sha256 = [\"{key}\"]\n");
    let got = problems(&[("one.toml", &a), ("two.toml", &b)]);
    assert!(
        got.contains("two.toml:3: agent `a` is already defined at one.toml:2"),
        "{got}"
    );
    assert!(
        got.contains("two.toml:7: this key_sha256 is already used by agent `a`"),
        "{got}"
    );
}

#[test]
fn an_agent_granted_nothing_is_a_warning() {
    let p = policy();
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("policies/test.toml:3: agent `nobody` is granted nothing")),
        "{:?}",
        p.warnings
    );
}

const BROAD: &str = r#"
[[agent]]
id = "workers"
accounts = ["*"]
grants = { workers = "full" }

[[agent.constraint]]
tool = "*_worker_script"
arg = "script_name"
allow = ["site-*"]

[[agent]]
id = "dns"
zones = ["*"]
grants = { dns = "full" }

[[agent.constraint]]
group = "dns"
arg = "name"
allow = ["*.staging.example.com"]

[[agent]]
id = "half"
accounts = ["*"]
grants = { workers = "full" }

[[agent.constraint]]
tool = "put_worker_script"
arg = "script_name"
allow = ["site-*"]
"#;

#[test]
fn a_constraint_can_name_a_tool_glob_or_a_group_and_a_half_constrained_group_is_a_warning() {
    let p = compile(
        &[(PathBuf::from("policies/broad.toml"), BROAD.to_string())],
        Arc::new(common::catalog()),
    )
    .expect("compiles");
    let script = |name: &str| json!({"account_id": ACCOUNT, "script_name": name});
    for tool in ["get_worker_script", "delete_worker_script"] {
        let (allowed, reason) = decide(&p, "workers", tool, script("api"));
        assert!(
            !allowed && reason.contains("not among your allowed values"),
            "{tool}: {reason}"
        );
        assert!(decide(&p, "workers", tool, script("site-a")).0, "{tool}");
    }
    let record = json!({"zone_id": COM, "type": "A", "name": "www.example.com", "content": "192.0.2.1", "ttl": 1});
    assert!(
        !decide(&p, "dns", "create_dns_record", record).0,
        "the group's create is constrained"
    );
    let warnings = p.warnings.join("\n");
    assert!(
        warnings.contains("agent `half` has workers tools constrained on `script_name` but not delete_worker_script"),
        "{warnings}"
    );
    assert!(
        !warnings.contains("agent `workers` has workers tools"),
        "{warnings}"
    );
    assert!(
        !warnings.contains("agent `dns` has dns tools"),
        "{warnings}"
    );

    let both = problems(&[(
        "p.toml",
        "[[agent]]\nid = \"x\"\n[[agent.constraint]]\ntool = \"*_nothing\"\narg = \"name\"\nallow = [\"a\"]\n[[agent.constraint]]\ngroup = \"nope\"\narg = \"name\"\nallow = [\"a\"]\n[[agent.constraint]]\ngroup = \"workers\"\narg = \"name\"\nallow = [\"a\"]\n",
    )]);
    assert!(
        both.contains("p.toml:4: the tool glob `*_nothing` matches no tool"),
        "{both}"
    );
    assert!(
        both.contains("p.toml:8: constraint on unknown group `nope`"),
        "{both}"
    );
    assert!(
        both.contains("p.toml:13: no tool that `workers` names has an argument `name`"),
        "{both}"
    );
}

/// An endpoint as an import writes it: the zone's placeholder is not
/// called `zone_id`.
const IMPORTED: &str = r#"
[group]
id = "settings"
title = "Zone settings"
description = "Settings of a zone."

[[endpoint]]
tool = "get_zone_setting"
title = "Get a zone setting"
method = "GET"
path = "/zones/{zone_identifier}/settings/{setting_id}"
access = "read"
permission = "Zone Settings Read"
scope = "zone"
result = "object"
description = "Get one setting of a zone."
annotations = { read_only = true, destructive = false, idempotent = true }

[[endpoint.param]]
name = "zone_identifier"
in = "path"
type = "string"
required = true
pattern = "^[0-9a-f]{32}$"
description = "The zone's id."

[[endpoint.param]]
name = "setting_id"
in = "path"
type = "string"
required = true
pattern = "^[a-z_]{1,64}$"
description = "The setting."
"#;

#[test]
fn scope_comes_from_the_paths_shape_whatever_the_placeholder_is_called() {
    let catalog = flaregate::catalog::load_sources(&[(
        PathBuf::from("catalog/settings.toml"),
        IMPORTED.to_string(),
    )])
    .expect("loads");
    let endpoint = catalog.endpoint("get_zone_setting").expect("loaded");
    assert_eq!(
        endpoint.scope_param().map(|p| p.name.as_str()),
        Some("zone_identifier")
    );
    let policy = compile(
        &[(PathBuf::from("p.toml"), "[[agent]]\nid = \"one\"\nzones = [\"example.com\"]\ngrants = { settings = \"read\" }\n".to_string())],
        Arc::new(catalog),
    )
    .expect("compiles");
    let call = |zone: &str| json!({"zone_identifier": zone, "setting_id": "always_use_https"});
    assert!(decide(&policy, "one", "get_zone_setting", call(COM)).0);
    let (allowed, reason) = decide(&policy, "one", "get_zone_setting", call(ORG));
    assert!(
        !allowed && reason.contains("outside your zones"),
        "{reason}"
    );

    // A zone-scoped endpoint whose zone cannot be found is a load error.
    let unscoped = IMPORTED.replace(
        "/zones/{zone_identifier}/settings/{setting_id}",
        "/settings/{zone_identifier}/{setting_id}",
    );
    let error =
        flaregate::catalog::load_sources(&[(PathBuf::from("catalog/settings.toml"), unscoped)])
            .expect_err("cannot be scoped")
            .to_string();
    assert!(
        error.contains("field `scope`: a zone-scoped endpoint must name its zone"),
        "{error}"
    );
}
