//! The demo data every sandbox starts with: one account, two zones and a
//! little of everything, with fixed ids so docs and tests can name them.

use serde_json::{Value, json};

use super::store::{AccountData, SandboxState, Script, ZoneData};

pub const ACCOUNT_ID: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
pub const ACCOUNT_NAME: &str = "Example Corp";
pub const EXAMPLE_COM: &str = "023e105f4ecef8ad9ca31a8372d0c353";
pub const EXAMPLE_ORG: &str = "5a7805061c76ada191ed06f989cc3dac";
pub(super) const POOL_PRIMARY: &str = "17b5962d775c646f3f9725cbc7a53df4";
pub(super) const POOL_FALLBACK: &str = "9290f38c5d07c2e2f4df57b1f61d4196";
pub(super) const CUSTOM_RULESET: &str = "2f2feab2026849078ba485f918791bdc";

const CREATED: &str = "2024-01-15T10:00:00.000000Z";

/// The store as it is when the sandbox starts.
pub(super) fn demo() -> SandboxState {
    let mut store = SandboxState {
        accounts: vec![json!({
            "id": ACCOUNT_ID, "name": ACCOUNT_NAME, "type": "standard", "created_on": CREATED,
            "settings": {"enforce_twofactor": false, "abuse_contact_email": null}
        })],
        zones: vec![
            zone(EXAMPLE_COM, "example.com", "pro"),
            zone(EXAMPLE_ORG, "example.org", "free"),
        ],
        ..SandboxState::default()
    };
    store.zone_data.insert(EXAMPLE_COM.into(), example_com());
    store.zone_data.insert(EXAMPLE_ORG.into(), example_org());
    store.account_data.insert(ACCOUNT_ID.into(), account());
    store
}

/// A zone object as Cloudflare lists it.
pub(super) fn zone(id: &str, name: &str, plan: &str) -> Value {
    json!({
        "id": id, "name": name, "status": "active", "paused": false, "type": "full",
        "development_mode": 0,
        "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
        "original_name_servers": ["ns1.registrar.example", "ns2.registrar.example"],
        "created_on": CREATED, "modified_on": CREATED, "activated_on": CREATED,
        "account": {"id": ACCOUNT_ID, "name": ACCOUNT_NAME},
        "plan": {"id": format!("{plan}-plan"), "name": format!("{} Website", capitalised(plan))},
        "meta": {"phishing_detected": false}
    })
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A DNS record object as Cloudflare returns it.
pub(super) fn dns_record(
    id: &str,
    zone: (&str, &str),
    kind: &str,
    name: &str,
    content: &str,
    proxied: bool,
) -> Value {
    json!({
        "id": id, "zone_id": zone.0, "zone_name": zone.1, "name": name, "type": kind,
        "content": content, "proxiable": matches!(kind, "A" | "AAAA" | "CNAME"), "proxied": proxied,
        "ttl": 1, "settings": {}, "meta": {}, "comment": null, "tags": [],
        "created_on": CREATED, "modified_on": CREATED
    })
}

fn example_com() -> ZoneData {
    let zone = (EXAMPLE_COM, "example.com");
    let mut mx = dns_record(
        "3d2c1b0a99887766554433221100ffee",
        zone,
        "MX",
        "example.com",
        "mail.example.com",
        false,
    );
    mx["priority"] = json!(10);
    ZoneData {
        dns: vec![
            dns_record(
                "372e67954025e0ba6aaa6d586b9e0b59",
                zone,
                "A",
                "example.com",
                "192.0.2.1",
                true,
            ),
            dns_record(
                "8ce0e8a8a7b7b3c1d0e9f8a7b6c5d4e3",
                zone,
                "CNAME",
                "www.example.com",
                "example.com",
                true,
            ),
            mx,
            dns_record(
                "b1a2c3d4e5f60718293a4b5c6d7e8f91",
                zone,
                "TXT",
                "example.com",
                "\"v=spf1 -all\"",
                false,
            ),
            dns_record(
                "c0ffee00c0ffee00c0ffee00c0ffee00",
                zone,
                "A",
                "api.staging.example.com",
                "192.0.2.10",
                false,
            ),
        ],
        rulesets: vec![
            json!({
                "id": CUSTOM_RULESET, "name": "default", "description": "Custom firewall rules",
                "kind": "zone", "phase": "http_request_firewall_custom", "version": "3",
                "last_updated": CREATED,
                "rules": [
                    {"id": "0f5b4e7bcf5e4a26b7a1e1c1d2f3a4b5", "version": "1", "action": "block",
                     "expression": "(ip.src.country eq \"T1\")", "description": "Block Tor exits",
                     "enabled": true, "last_updated": CREATED, "ref": "0f5b4e7bcf5e4a26b7a1e1c1d2f3a4b5"},
                    {"id": "1e6c5f8cd06f5b37c8b2f2d2e3a4b5c6", "version": "1", "action": "managed_challenge",
                     "expression": "(http.request.uri.path contains \"/wp-login.php\")",
                     "description": "Challenge WordPress logins", "enabled": true,
                     "last_updated": CREATED, "ref": "1e6c5f8cd06f5b37c8b2f2d2e3a4b5c6"}
                ]
            }),
            json!({
                "id": "efb7b8c949ac4650a09736fc376e9aee", "name": "Cloudflare Managed Ruleset",
                "description": "Created by the Cloudflare security team",
                "kind": "managed", "phase": "http_request_firewall_managed", "version": "62",
                "last_updated": CREATED,
                "rules": [
                    {"id": "5de7edfa648c4d6891dc3e7f84534ffa", "version": "1", "action": "block",
                     "expression": "true", "description": "Apache Struts - Code Injection",
                     "enabled": true, "last_updated": CREATED}
                ]
            }),
        ],
        page_rules: vec![json!({
            "id": "9a7806061c88ada191ed06f989cc3dac",
            "targets": [{"target": "url", "constraint": {"operator": "matches", "value": "*example.com/images/*"}}],
            "actions": [{"id": "cache_level", "value": "cache_everything"}],
            "priority": 1, "status": "active", "created_on": CREATED, "modified_on": CREATED
        })],
        certificates: vec![json!({
            "id": "2458ce5a0c354c7f82c78e9487d3ff60",
            "zone_id": EXAMPLE_COM, "hosts": ["example.com", "*.example.com"],
            "issuer": "GlobalSign", "signature": "SHA256WithRSA", "status": "active",
            "bundle_method": "ubiquitous", "expires_on": "2027-01-01T00:00:00Z",
            "uploaded_on": CREATED, "modified_on": CREATED, "priority": 1
        })],
        universal_ssl: true,
        load_balancers: vec![json!({
            "id": "699d98642c564d2e855e9661899b7252", "name": "lb.example.com",
            "description": "Web tier", "enabled": true, "proxied": true, "ttl": 30,
            "default_pools": [POOL_PRIMARY, POOL_FALLBACK], "fallback_pool": POOL_FALLBACK,
            "steering_policy": "dynamic_latency", "session_affinity": "none",
            "region_pools": {}, "country_pools": {}, "pop_pools": {}, "rules": [],
            "created_on": CREATED, "modified_on": CREATED
        })],
    }
}

fn example_org() -> ZoneData {
    let zone = (EXAMPLE_ORG, "example.org");
    ZoneData {
        dns: vec![
            dns_record(
                "44ee33dd22cc11bb00aa99887766aa01",
                zone,
                "A",
                "example.org",
                "198.51.100.1",
                true,
            ),
            dns_record(
                "44ee33dd22cc11bb00aa99887766aa02",
                zone,
                "AAAA",
                "example.org",
                "2001:db8::1",
                true,
            ),
            dns_record(
                "44ee33dd22cc11bb00aa99887766aa03",
                zone,
                "TXT",
                "_dmarc.example.org",
                "\"v=DMARC1; p=reject\"",
                false,
            ),
        ],
        rulesets: Vec::new(),
        page_rules: Vec::new(),
        certificates: Vec::new(),
        universal_ssl: true,
        load_balancers: Vec::new(),
    }
}

/// A Worker script's listed metadata.
pub(super) fn script_meta(name: &str, compatibility_date: &str, modified: &str) -> Value {
    json!({
        "id": name, "etag": format!("{:032x}", fastrand::u128(..)), "handlers": ["fetch"],
        "compatibility_date": compatibility_date, "compatibility_flags": [],
        "usage_model": "standard", "has_modules": true, "has_assets": false,
        "created_on": CREATED, "modified_on": modified, "tags": [], "logpush": false
    })
}

fn account() -> AccountData {
    let script = |name: &str, body: &str| Script {
        meta: script_meta(name, "2024-09-23", CREATED),
        content: body.to_string(),
    };
    let bucket = |name: &str, location: &str| {
        json!({"name": name, "creation_date": CREATED, "location": location,
               "storage_class": "Standard", "jurisdiction": "default"})
    };
    AccountData {
        scripts: vec![
            script(
                "site-router",
                "export default {\n  async fetch(request) {\n    return fetch(request);\n  },\n};\n",
            ),
            script(
                "api-gateway",
                "export default {\n  async fetch() {\n    return new Response(\"ok\");\n  },\n};\n",
            ),
        ],
        buckets: vec![bucket("site-assets", "WNAM"), bucket("backups", "WEUR")],
    }
}
