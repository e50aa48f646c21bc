//! The `flaregate` binary; everything lives in the library's `cli` module.

use std::process::ExitCode;

fn main() -> ExitCode {
    flaregate::cli::run()
}
