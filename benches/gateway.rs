//! Micro benchmarks of the per-call work flaregate adds: the decision,
//! tools/list for small and very large catalogs, argument validation,
//! request building, and audit appends (single and batched).
//!
//! `cargo bench --bench gateway`; results and method in docs/performance.md.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use flaregate::audit::{AuditFiles, AuditLog, CallRecord, Durability, Outcome};
use flaregate::catalog::{Catalog, import, load_sources};
use flaregate::cloudflare;
use flaregate::policy::{Directory, Policy, compile};
use flaregate::server::ToolTable;
use rmcp::model::ListToolsResult;
use serde_json::{Map, Value, json};

const COM: &str = "023e105f4ecef8ad9ca31a8372d0c353";

fn shipped() -> Arc<Catalog> {
    Arc::new(
        Catalog::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("catalog")).expect("catalog"),
    )
}

fn args(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("object")
}

const POLICY: &str = r#"
[[agent]]
id = "reader"
zones = ["example.com"]
grants = { dns = "read" }

[[agent]]
id = "editor"
zones = ["example.com"]
grants = { dns = "full" }
[[agent.constraint]]
tool = "create_dns_record"
arg = "name"
allow = ["*.staging.example.com"]

[[agent]]
id = "everything"
zones = ["*"]
accounts = ["*"]
grants = { zones = "full", dns = "full", firewall = "full", page_rules = "full", cache = "full", workers = "full", r2 = "full", ssl = "full", load_balancers = "full", accounts = "full" }
"#;

fn policy(catalog: Arc<Catalog>, text: &str) -> Policy {
    compile(&[(PathBuf::from("bench.toml"), text.to_string())], catalog).expect("policy")
}

fn directory() -> Directory {
    let mut directory = Directory::default();
    directory.add_zone("example.com", COM);
    directory
}

fn decisions(c: &mut Criterion) {
    let catalog = shipped();
    let policy = policy(catalog, POLICY);
    let directory = directory();
    let read = args(json!({"zone_id": COM}));
    let create = args(
        json!({"zone_id": COM, "type": "A", "name": "a.staging.example.com", "content": "192.0.2.1", "ttl": 1}),
    );
    let reader = policy.agent("reader").expect("agent");
    let editor = policy.agent("editor").expect("agent");
    c.bench_function("decide/allow_read", |b| {
        b.iter(|| {
            black_box(policy.decide(
                reader,
                "list_dns_records",
                black_box(&read),
                &directory,
                None,
            ))
        })
    });
    c.bench_function("decide/deny_by_grant", |b| {
        b.iter(|| {
            black_box(policy.decide(reader, "delete_zone", black_box(&read), &directory, None))
        })
    });
    c.bench_function("decide/allow_with_constraint", |b| {
        b.iter(|| {
            black_box(policy.decide(
                editor,
                "create_dns_record",
                black_box(&create),
                &directory,
                None,
            ))
        })
    });
}

/// The shipped catalog with Cloudflare's whole 2024 schema imported beside
/// it (1,507 tools), as `flaregate catalog import` writes it.
fn imported() -> Arc<Catalog> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let curated = flaregate::catalog::builtin();
    let text = std::fs::read_to_string(root.join("openapi/cloudflare-openapi-2024-08-06.json"))
        .expect("schema");
    let spec = import::read_spec(&text).expect("JSON");
    let rules = import::Rules::parse(import::BUILTIN_RULES).expect("rules");
    let filter = import::Filter::new(&[], &[]).expect("filter");
    let imported = import::import(&spec, "bench", &curated, &rules, &filter).expect("imports");
    let mut sources = flaregate::catalog::builtin_sources();
    sources.extend(
        imported
            .files
            .into_iter()
            .map(|(name, text)| (PathBuf::from("imported").join(name), text)),
    );
    Arc::new(load_sources(&sources).expect("loads"))
}

const EVERYTHING: &str = "[[agent]]\nid = \"all\"\nzones = [\"*\"]\naccounts = [\"*\"]\ngrants = { \"*\" = \"full\" }\ntool_mode = \"typed\"\n[[agent.constraint]]\ngroup = \"zone_settings\"\narg = \"setting_id\"\nallow = [\"always_use_https\"]\n";

/// The decision and one tools/list page with the whole API imported.
fn whole_api(c: &mut Criterion) {
    let catalog = imported();
    let policy = policy(catalog.clone(), EVERYTHING);
    let agent = policy.agent("all").expect("agent");
    let directory = directory();
    let read = args(json!({"zone_id": COM}));
    let setting = args(
        json!({"zone_id": COM, "setting_id": "always_use_https", "body": {"id": "always_use_https", "value": "on"}}),
    );
    c.bench_function("imported/decide/allow_read", |b| {
        b.iter(|| {
            black_box(policy.decide(
                agent,
                "list_dns_records",
                black_box(&read),
                &directory,
                None,
            ))
        })
    });
    c.bench_function("imported/decide/allow_with_constraint", |b| {
        b.iter(|| {
            black_box(policy.decide(
                agent,
                "zone_settings_edit_single_setting",
                black_box(&setting),
                &directory,
                None,
            ))
        })
    });
    let table = ToolTable::new(&catalog);
    c.bench_function("imported/tools_list/first_page", |b| {
        b.iter(|| {
            let (tools, next) = table.page(agent, None).expect("page");
            let mut result = ListToolsResult::with_all_items(tools);
            result.next_cursor = next;
            black_box(serde_json::to_vec(&result).expect("serialises"))
        })
    });
    c.bench_function("imported/tools_list/last_page", |b| {
        let pages = agent.visible_tools(&catalog).count() / flaregate::server::PAGE_SIZE;
        let cursor = (pages * flaregate::server::PAGE_SIZE).to_string();
        b.iter(|| {
            let (tools, _) = table.page(agent, Some(&cursor)).expect("page");
            black_box(
                serde_json::to_vec(&ListToolsResult::with_all_items(tools)).expect("serialises"),
            )
        })
    });
}

/// A catalog of `n` endpoints in groups of 50, shaped like the real ones.
fn synthetic_catalog(n: usize) -> Arc<Catalog> {
    let mut sources = Vec::new();
    for group in 0..n.div_ceil(50) {
        let mut text = format!(
            "[group]\nid = \"g{group}\"\ntitle = \"Group {group}\"\ndescription = \"Synthetic group.\"\n"
        );
        for i in (group * 50)..((group + 1) * 50).min(n) {
            text.push_str(&format!(
                r#"
[[endpoint]]
tool = "tool_{i}"
title = "Tool {i}"
method = "GET"
path = "/zones/{{zone_id}}/things_{i}/{{thing_id}}"
access = "read"
permission = "Thing Read"
scope = "zone"
result = "object"
description = "Reads thing {i} of a zone: a synthetic endpoint for benchmarks, with a description about as long as the real ones."
annotations = {{ read_only = true, destructive = false, idempotent = true }}

[[endpoint.param]]
name = "zone_id"
in = "path"
type = "string"
required = true
pattern = "^[0-9a-f]{{32}}$"
description = "The zone's 32-character hex id."

[[endpoint.param]]
name = "thing_id"
in = "path"
type = "string"
required = true
pattern = "^[0-9a-f]{{32}}$"
description = "The thing's id."

[[endpoint.param]]
name = "per_page"
in = "query"
type = "integer"
minimum = 1
maximum = 100
description = "Things per page."
"#
            ));
        }
        sources.push((PathBuf::from(format!("g{group}.toml")), text));
    }
    Arc::new(load_sources(&sources).expect("synthetic catalog"))
}

/// Unknown and wrong keys must cost the same: the key is hashed, then
/// every known hash is compared in constant time.
fn identity(c: &mut Criterion) {
    let catalog = shipped();
    let keys: Vec<(String, String)> = (0..50).map(|_| flaregate::policy::new_key()).collect();
    let text: String = keys
        .iter()
        .enumerate()
        .map(|(i, (_, hash))| format!("[[agent]]\nid = \"a{i}\"\nkey_sha256 = [\"{hash}\"]\n"))
        .collect();
    let policy = policy(catalog, &text);
    let right = keys[25].0.clone();
    let mut near_miss = right.clone().into_bytes();
    let last = near_miss.len() - 1;
    near_miss[last] = if near_miss[last] == b'0' { b'1' } else { b'0' };
    let near_miss = String::from_utf8(near_miss).expect("hex");
    let unknown = flaregate::policy::new_key().0;
    assert!(policy.agent_for_key(&right).is_some() && policy.agent_for_key(&near_miss).is_none());
    c.bench_function("identity/right_key_50_agents", |b| {
        b.iter(|| black_box(policy.agent_for_key(black_box(&right))))
    });
    c.bench_function("identity/near_miss_key_50_agents", |b| {
        b.iter(|| black_box(policy.agent_for_key(black_box(&near_miss))))
    });
    c.bench_function("identity/unknown_key_50_agents", |b| {
        b.iter(|| black_box(policy.agent_for_key(black_box(&unknown))))
    });
}

fn tools_list(c: &mut Criterion) {
    let shipped = shipped();
    let shipped_policy = policy(shipped.clone(), POLICY);
    let big = synthetic_catalog(1500);
    let groups: Vec<String> = big
        .groups()
        .iter()
        .map(|g| format!("{} = \"read\"", g.id))
        .collect();
    let big_policy = policy(
        big.clone(),
        &format!(
            "[[agent]]\nid = \"all\"\nzones = [\"*\"]\n[agent.grants]\n{}\n",
            groups.join("\n")
        ),
    );
    let cases = [
        ("3_tools", &shipped, &shipped_policy, "reader"),
        ("31_tools", &shipped, &shipped_policy, "everything"),
        ("1500_tools", &big, &big_policy, "all"),
    ];
    for (name, catalog, policy, agent) in cases {
        let table = ToolTable::new(catalog);
        let agent = policy.agent(agent).expect("agent");
        let expected = agent.visible_tools(catalog).count();
        assert_eq!(table.visible(agent).len(), expected);
        // One tools/list answer: the first page (all tools up to 100).
        c.bench_function(&format!("tools_list/{name}/first_page"), |b| {
            b.iter(|| {
                let (tools, next) = table.page(agent, None).expect("page");
                let mut result = ListToolsResult::with_all_items(tools);
                result.next_cursor = next;
                black_box(serde_json::to_vec(&result).expect("serialises"))
            })
        });
        // Every tool in one answer, as a server without pages would send it.
        c.bench_function(&format!("tools_list/{name}/all_in_one"), |b| {
            b.iter(|| {
                black_box(
                    serde_json::to_vec(&ListToolsResult::with_all_items(table.visible(agent)))
                        .expect("serialises"),
                )
            })
        });
    }
}

fn arguments_and_requests(c: &mut Criterion) {
    let catalog = shipped();
    let create = args(
        json!({"zone_id": COM, "type": "A", "name": "a.staging.example.com", "content": "192.0.2.1", "ttl": 1, "proxied": true}),
    );
    let list = args(json!({"zone_id": COM, "type": "A", "per_page": 50}));
    c.bench_function("validate/create_dns_record", |b| {
        b.iter(|| black_box(catalog.validate_arguments("create_dns_record", black_box(&create))))
    });
    c.bench_function("validate/list_dns_records", |b| {
        b.iter(|| black_box(catalog.validate_arguments("list_dns_records", black_box(&list))))
    });
    let endpoint = catalog
        .endpoint("create_dns_record")
        .expect("endpoint")
        .clone();
    c.bench_function("build_request/create_dns_record", |b| {
        b.iter(|| black_box(cloudflare::build(&endpoint, black_box(&create))))
    });
}

fn record(n: usize) -> CallRecord {
    CallRecord {
        ts: flaregate::audit::now_rfc3339(),
        ts_unix_ms: flaregate::audit::now_unix_ms(),
        agent: "bench".into(),
        tool: "list_dns_records".into(),
        method: "GET".into(),
        path: format!("/zones/{COM}/dns_records"),
        target: "example.com".into(),
        args: format!("{{\"n\":{n}}}"),
        decision: flaregate::audit::Decision::Allow,
        reason: "its DNS grant is read".into(),
        rule: "grants.dns = read".into(),
        summary: "bench was allowed to list DNS records on example.com".into(),
        lookup: String::new(),
        sandbox: false,
    }
}

fn audit(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::open(&dir.path().join("bench.db")).expect("audit log");
    let unsynced = AuditLog::open_with(
        &AuditFiles::beside(&dir.path().join("normal.db").into()),
        Durability::Normal,
        None,
    )
    .expect("audit log");
    let outcome = Outcome {
        status: Some(200),
        duration_ms: Some(3),
        text: "Cloudflare answered 200 in 3 ms".into(),
        ..Outcome::default()
    };
    c.bench_function("audit/one_call_begin_and_complete", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let (row, flushed) = log.begin(record(1)).await.expect("begin");
                flushed.wait().await.expect("flushed");
                log.complete(row, outcome.clone()).await.expect("complete");
            })
        })
    });
    c.bench_function("audit/one_call_begin_and_complete_normal", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let (row, _) = unsynced.begin(record(1)).await.expect("begin");
                unsynced
                    .complete(row, outcome.clone())
                    .await
                    .expect("complete");
            })
        })
    });
    c.bench_function("audit/64_concurrent_calls", |b| {
        b.iter_batched(
            || (0..64).map(record).collect::<Vec<_>>(),
            |records| {
                runtime.block_on(async {
                    let tasks: Vec<_> = records
                        .into_iter()
                        .map(|r| {
                            let (log, outcome) = (log.clone(), outcome.clone());
                            tokio::spawn(async move {
                                let (row, flushed) = log.begin(r).await.expect("begin");
                                flushed.wait().await.expect("flushed");
                                log.complete(row, outcome).await.expect("complete");
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("task");
                    }
                })
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(
    benches,
    decisions,
    identity,
    tools_list,
    arguments_and_requests,
    audit,
    whole_api
);
criterion_main!(benches);
