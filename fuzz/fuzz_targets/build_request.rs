//! Any JSON as a tool's arguments: if validation accepts them, building the
//! request must not panic and the path must stay inside its template.
#![no_main]

use std::sync::OnceLock;

use flaregate::catalog::{Catalog, builtin};
use flaregate::cloudflare::build;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(builtin)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, json)) = data.split_first() else {
        return;
    };
    let Ok(Value::Object(args)) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    let catalog = catalog();
    let endpoint = &catalog.endpoints()[selector as usize % catalog.endpoints().len()];
    let valid = catalog.validate_arguments(&endpoint.tool, &args).is_ok();
    if let Ok(request) = build(endpoint, &args) {
        for bad in ["..", "?", "#", "//", "%2f", "%2F", "\\\\"] {
            assert!(
                !request.path.contains(bad),
                "{} built {:?}",
                endpoint.tool,
                request.path
            );
        }
        assert_eq!(
            request.path.matches('/').count(),
            endpoint.path.raw.matches('/').count()
        );
    } else {
        assert!(
            !valid,
            "arguments that pass validation must build: {} {:?}",
            endpoint.tool, args
        );
    }
});
