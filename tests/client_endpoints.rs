//! Every catalog endpoint through the real client against a sandbox
//! process: a happy path each, and at least one Cloudflare error per group.

mod common;

use common::{SandboxProcess, args, catalog, endpoint};
use flaregate::catalog::Catalog;
use flaregate::cloudflare::{ApiResponse, Client, CloudflareError};
use flaregate::sandbox::{ACCOUNT_ID, EXAMPLE_COM, EXAMPLE_ORG};
use serde_json::{Value, json};

struct Harness {
    _sandbox: SandboxProcess,
    client: Client,
    catalog: Catalog,
}

impl Harness {
    fn new() -> Self {
        let sandbox = SandboxProcess::start(&[]);
        Self {
            client: sandbox.client(),
            _sandbox: sandbox,
            catalog: catalog(),
        }
    }

    async fn call(&self, tool: &str, arguments: Value) -> Result<ApiResponse, CloudflareError> {
        self.client
            .call(endpoint(&self.catalog, tool), &args(arguments))
            .await
    }

    async fn ok(&self, tool: &str, arguments: Value) -> Value {
        self.call(tool, arguments)
            .await
            .unwrap_or_else(|e| panic!("{tool}: {e}"))
            .result
    }

    /// The call fails with this HTTP status and Cloudflare code.
    async fn fails(&self, tool: &str, arguments: Value, status: u16, code: i64) {
        let error = self.call(tool, arguments).await.expect_err(tool);
        assert_eq!(
            (error.status(), error.codes().first().copied()),
            (Some(status), Some(code)),
            "{tool}: {error}"
        );
    }
}

fn names(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|v| v[field].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn zones() {
    let h = Harness::new();
    let zones = h.ok("list_zones", json!({})).await;
    assert_eq!(names(&zones, "name"), ["example.com", "example.org"]);
    let filtered = h.ok("list_zones", json!({"name": "example.org"})).await;
    assert_eq!(filtered[0]["id"], EXAMPLE_ORG);
    assert_eq!(
        h.ok("get_zone", json!({"zone_id": EXAMPLE_COM})).await["name"],
        "example.com"
    );

    let created = h
        .ok(
            "create_zone",
            json!({"name": "example.net", "account_id": ACCOUNT_ID}),
        )
        .await;
    assert_eq!(created["status"], "pending");
    assert_eq!(
        created["account"]["id"], ACCOUNT_ID,
        "account_id travels as account.id"
    );
    let id = created["id"].as_str().expect("id").to_string();
    h.fails(
        "create_zone",
        json!({"name": "example.net", "account_id": ACCOUNT_ID}),
        400,
        1061,
    )
    .await;

    assert_eq!(
        h.ok("delete_zone", json!({"zone_id": id})).await["id"],
        id.as_str()
    );
    h.fails("get_zone", json!({"zone_id": id}), 404, 7003).await;
}

#[tokio::test]
async fn dns_records() {
    let h = Harness::new();
    let zone = EXAMPLE_COM;
    let records = h.ok("list_dns_records", json!({"zone_id": zone})).await;
    assert!(names(&records, "name").contains(&"www.example.com".to_string()));
    let only_a = h
        .ok("list_dns_records", json!({"zone_id": zone, "type": "A"}))
        .await;
    assert!(
        only_a
            .as_array()
            .expect("list")
            .iter()
            .all(|r| r["type"] == "A")
    );

    let created = h
        .ok("create_dns_record", json!({"zone_id": zone, "type": "A", "name": "new.example.com", "content": "192.0.2.50", "ttl": 300}))
        .await;
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!(
        h.ok(
            "get_dns_record",
            json!({"zone_id": zone, "dns_record_id": id})
        )
        .await["content"],
        "192.0.2.50"
    );
    h.fails("create_dns_record", json!({"zone_id": zone, "type": "A", "name": "new.example.com", "content": "192.0.2.50", "ttl": 300}), 400, 81057).await;
    h.fails("create_dns_record", json!({"zone_id": zone, "type": "A", "name": "www.example.com", "content": "192.0.2.51", "ttl": 1}), 400, 81054).await;
    h.fails("create_dns_record", json!({"zone_id": zone, "type": "A", "name": "bad.example.com", "content": "192.0.2.52", "ttl": 30}), 400, 9021).await;

    let replaced = h
        .ok("update_dns_record", json!({"zone_id": zone, "dns_record_id": id, "type": "A", "name": "new", "content": "192.0.2.60", "ttl": 120}))
        .await;
    assert_eq!(
        (replaced["content"].as_str(), replaced["ttl"].as_i64()),
        (Some("192.0.2.60"), Some(120))
    );
    h.fails("update_dns_record", json!({"zone_id": zone, "dns_record_id": id, "type": "AAAA", "name": "new", "content": "2001:db8::9", "ttl": 1}), 400, 1004).await;

    let patched = h
        .ok(
            "patch_dns_record",
            json!({"zone_id": zone, "dns_record_id": id, "comment": "moved"}),
        )
        .await;
    assert_eq!(
        (patched["comment"].as_str(), patched["content"].as_str()),
        (Some("moved"), Some("192.0.2.60"))
    );

    assert_eq!(
        h.ok(
            "delete_dns_record",
            json!({"zone_id": zone, "dns_record_id": id})
        )
        .await["id"],
        id.as_str()
    );
    h.fails(
        "get_dns_record",
        json!({"zone_id": zone, "dns_record_id": id}),
        404,
        81044,
    )
    .await;
}

#[tokio::test]
async fn firewall_rulesets() {
    let h = Harness::new();
    let zone = EXAMPLE_COM;
    let rulesets = h.ok("list_rulesets", json!({"zone_id": zone})).await;
    assert_eq!(rulesets.as_array().expect("list").len(), 2);
    assert!(
        rulesets[0].get("rules").is_none(),
        "lists come without rules"
    );
    let id = rulesets[0]["id"].as_str().expect("id").to_string();
    let ruleset = h
        .ok("get_ruleset", json!({"zone_id": zone, "ruleset_id": id}))
        .await;
    assert_eq!(ruleset["rules"].as_array().expect("rules").len(), 2);

    let updated = h
        .ok("update_ruleset", json!({"zone_id": zone, "ruleset_id": id, "rules": [{"action": "block", "expression": "(ip.src eq 203.0.113.7)"}]}))
        .await;
    assert_eq!(updated["rules"].as_array().expect("rules").len(), 1);
    assert_eq!(updated["version"], "4");
    h.fails(
        "get_ruleset",
        json!({"zone_id": zone, "ruleset_id": "00000000000000000000000000000000"}),
        404,
        10003,
    )
    .await;
}

#[tokio::test]
async fn page_rules() {
    let h = Harness::new();
    let zone = EXAMPLE_COM;
    assert_eq!(
        h.ok("list_page_rules", json!({"zone_id": zone}))
            .await
            .as_array()
            .expect("list")
            .len(),
        1
    );
    let rule = h
        .ok("create_page_rule", json!({"zone_id": zone,
            "targets": [{"target": "url", "constraint": {"operator": "matches", "value": "*example.com/old/*"}}],
            "actions": [{"id": "forwarding_url", "value": {"url": "https://example.com/new", "status_code": 301}}]}))
        .await;
    let id = rule["id"].as_str().expect("id").to_string();
    assert_eq!(
        h.ok("list_page_rules", json!({"zone_id": zone}))
            .await
            .as_array()
            .expect("list")
            .len(),
        2
    );
    h.ok(
        "delete_page_rule",
        json!({"zone_id": zone, "pagerule_id": id}),
    )
    .await;
    h.fails(
        "delete_page_rule",
        json!({"zone_id": zone, "pagerule_id": id}),
        404,
        1002,
    )
    .await;
}

#[tokio::test]
async fn cache_purge() {
    let h = Harness::new();
    let purged = h
        .ok(
            "purge_cache",
            json!({"zone_id": EXAMPLE_COM, "files": ["https://example.com/app.css"]}),
        )
        .await;
    assert!(purged["id"].is_string());
    h.ok(
        "purge_cache",
        json!({"zone_id": EXAMPLE_COM, "purge_everything": true}),
    )
    .await;
    // The client sends what it is given; the sandbox answers as Cloudflare.
    h.fails(
        "purge_cache",
        json!({"zone_id": EXAMPLE_COM, "files": [], "tags": ["a"]}),
        400,
        1012,
    )
    .await;
}

#[tokio::test]
async fn worker_scripts() {
    let h = Harness::new();
    let account = ACCOUNT_ID;
    let scripts = h
        .ok("list_worker_scripts", json!({"account_id": account}))
        .await;
    assert_eq!(names(&scripts, "id"), ["site-router", "api-gateway"]);
    let code = h
        .ok(
            "get_worker_script",
            json!({"account_id": account, "script_name": "site-router"}),
        )
        .await;
    assert!(
        code["content"]
            .as_str()
            .expect("text")
            .contains("export default")
    );
    assert_eq!(code["content_type"], "application/javascript");

    let source = "export default { fetch() { return new Response('hi'); } };";
    let uploaded = h
        .ok("put_worker_script", json!({"account_id": account, "script_name": "site-blog", "script": source, "compatibility_date": "2025-01-01"}))
        .await;
    assert_eq!(
        (
            uploaded["id"].as_str(),
            uploaded["compatibility_date"].as_str()
        ),
        (Some("site-blog"), Some("2025-01-01"))
    );
    let fetched = h
        .ok(
            "get_worker_script",
            json!({"account_id": account, "script_name": "site-blog"}),
        )
        .await;
    assert_eq!(fetched["content"], source, "the module part arrived intact");

    assert_eq!(
        h.ok(
            "delete_worker_script",
            json!({"account_id": account, "script_name": "site-blog"})
        )
        .await,
        Value::Null
    );
    h.fails(
        "get_worker_script",
        json!({"account_id": account, "script_name": "site-blog"}),
        404,
        10007,
    )
    .await;
}

#[tokio::test]
async fn r2_buckets() {
    let h = Harness::new();
    let account = ACCOUNT_ID;
    let listed = h
        .ok("list_r2_buckets", json!({"account_id": account}))
        .await;
    assert_eq!(
        names(&listed["buckets"], "name"),
        ["backups", "site-assets"]
    );
    assert_eq!(
        h.ok(
            "get_r2_bucket",
            json!({"account_id": account, "bucket_name": "backups"})
        )
        .await["location"],
        "WEUR"
    );
    let created = h
        .ok(
            "create_r2_bucket",
            json!({"account_id": account, "name": "logs-2026", "locationHint": "weur"}),
        )
        .await;
    assert_eq!(created["name"], "logs-2026");
    h.fails(
        "create_r2_bucket",
        json!({"account_id": account, "name": "logs-2026"}),
        409,
        10004,
    )
    .await;
    h.fails(
        "get_r2_bucket",
        json!({"account_id": account, "bucket_name": "missing"}),
        404,
        10006,
    )
    .await;
}

#[tokio::test]
async fn ssl() {
    let h = Harness::new();
    let certificates = h
        .ok("list_custom_certificates", json!({"zone_id": EXAMPLE_COM}))
        .await;
    assert_eq!(certificates[0]["issuer"], "GlobalSign");
    assert_eq!(
        h.ok(
            "get_universal_ssl_settings",
            json!({"zone_id": EXAMPLE_COM})
        )
        .await["enabled"],
        true
    );
    h.ok(
        "update_universal_ssl_settings",
        json!({"zone_id": EXAMPLE_COM, "enabled": false}),
    )
    .await;
    assert_eq!(
        h.ok(
            "get_universal_ssl_settings",
            json!({"zone_id": EXAMPLE_COM})
        )
        .await["enabled"],
        false
    );
    h.fails(
        "update_universal_ssl_settings",
        json!({"zone_id": "ffffffffffffffffffffffffffffffff", "enabled": true}),
        404,
        7003,
    )
    .await;
}

#[tokio::test]
async fn load_balancers() {
    let h = Harness::new();
    let zone = EXAMPLE_COM;
    let before = h.ok("list_load_balancers", json!({"zone_id": zone})).await;
    assert_eq!(names(&before, "name"), ["lb.example.com"]);
    let pools = before[0]["default_pools"].clone();
    let fallback = before[0]["fallback_pool"].clone();
    h.ok("create_load_balancer", json!({"zone_id": zone, "name": "api.example.com", "default_pools": pools, "fallback_pool": fallback})).await;
    assert_eq!(
        h.ok("list_load_balancers", json!({"zone_id": zone}))
            .await
            .as_array()
            .expect("list")
            .len(),
        2
    );
    h.fails("create_load_balancer", json!({"zone_id": zone, "name": "api.example.com", "default_pools": pools, "fallback_pool": fallback}), 400, 1003).await;
}

#[tokio::test]
async fn accounts() {
    let h = Harness::new();
    let accounts = h.ok("list_accounts", json!({})).await;
    assert_eq!(accounts[0]["id"], ACCOUNT_ID);
    assert_eq!(
        h.ok("get_account", json!({"account_id": ACCOUNT_ID})).await["name"],
        "Example Corp"
    );
    h.fails(
        "get_account",
        json!({"account_id": "0123456789abcdef0123456789abcdef"}),
        404,
        7003,
    )
    .await;
}

#[tokio::test]
async fn token_verification() {
    let h = Harness::new();
    assert_eq!(
        h.client.verify_token().await.expect("valid token"),
        (
            "active".to_string(),
            flaregate::cloudflare::TokenOwner::User
        )
    );
}
