//! The `flaregate` binary; everything lives in the library's `cli` module.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    flaregate::cli::run().await
}
