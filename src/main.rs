//! The `flaregate` binary; everything lives in the library's `cli` module.

use std::process::ExitCode;

/// mimalloc rather than glibc's allocator: a call allocates and frees
/// hundreds of small blocks across threads, and under load glibc's
/// allocator took a sixth of flaregate's CPU (docs/performance.md). Built
/// without transparent huge pages, which would hold ~12 MB more while idle.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    flaregate::cli::run()
}
