//! Any text as a policy file against the shipped catalog: problems with
//! file and line, or a policy whose decisions do not panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use flaregate::catalog::{Catalog, builtin};
use flaregate::policy::{Directory, compile};
use libfuzzer_sys::fuzz_target;

fn catalog() -> Arc<Catalog> {
    static CATALOG: OnceLock<Arc<Catalog>> = OnceLock::new();
    CATALOG.get_or_init(|| Arc::new(builtin())).clone()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = compile(&[("fuzz.toml".into(), text.to_string())], catalog()) else {
        return;
    };
    let args =
        serde_json::json!({"zone_id": "023e105f4ecef8ad9ca31a8372d0c353", "name": "a.example.com"});
    for agent in policy.agents() {
        for tool in ["list_zones", "create_dns_record", "purge_cache"] {
            let _ = policy.decide(
                agent,
                tool,
                args.as_object().expect("object"),
                &Directory::default(),
                None,
            );
        }
    }
});
