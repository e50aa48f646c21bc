//! Any text as a catalog file: an error or a catalog, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = flaregate::catalog::load_sources(&[("fuzz.toml".into(), text.to_string())]);
    }
});
