//! Any JSON as an OpenAPI schema: `catalog import` writes entries or says
//! why it skips them, and what it writes loads; never a panic.
#![no_main]

use flaregate::catalog::import::{self, Filter, Rules};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let curated = flaregate::catalog::builtin();
    let rules = Rules::parse(import::BUILTIN_RULES).expect("shipped table");
    let filter = Filter::new(&[], &[]).expect("no globs");
    let Ok(imported) = import::import(&spec, "fuzz", &curated, &rules, &filter) else {
        return;
    };
    let mut sources = flaregate::catalog::builtin_sources();
    sources.extend(
        imported
            .files
            .into_iter()
            .map(|(name, text)| (std::path::PathBuf::from("imported").join(name), text)),
    );
    flaregate::catalog::load_sources(&sources).expect("what the import writes loads");
});
