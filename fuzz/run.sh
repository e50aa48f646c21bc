#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 60 s each).
# Needs cargo-fuzz (`cargo install cargo-fuzz`); on a stable toolchain it runs
# with RUSTC_BOOTSTRAP=1 and no sanitizer. Not part of CI's default path.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${1:-60}
export RUSTC_BOOTSTRAP=1
for target in catalog_toml policy_toml build_request jsonrpc_call openapi_import; do
    echo "== $target ($SECONDS_EACH s)"
    mkdir -p "corpus/$target"
    cargo fuzz run --sanitizer none "$target" "corpus/$target" -- -max_total_time="$SECONDS_EACH" -max_len=65536 2>&1 | tail -3
done
