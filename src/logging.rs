//! Log output for operators: human-readable by default, JSON on request,
//! always on stderr (stdout belongs to the MCP stdio transport).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The shape of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. `RUST_LOG` wins over `level` when set.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default_directives(level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never in a file.
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// `level` for flaregate; rmcp's own lines one step quieter unless the
/// operator asks for debug or trace. rmcp logs every session opened at
/// INFO and every call of an unknown tool at WARN: an agent could flood
/// the operator's log with them. flaregate logs its refusals itself (and
/// the audit log holds every one).
fn default_directives(level: &str) -> String {
    let verbose = matches!(
        level.trim().to_ascii_lowercase().as_str(),
        "debug" | "trace"
    );
    if verbose || level.contains('=') {
        level.to_string()
    } else {
        format!("{level},rmcp=warn,rmcp::service=error")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmcp_is_quieter_unless_debugging() {
        assert_eq!(
            default_directives("info"),
            "info,rmcp=warn,rmcp::service=error"
        );
        assert_eq!(default_directives("debug"), "debug");
        assert_eq!(
            default_directives("warn,flaregate=debug"),
            "warn,flaregate=debug"
        );
    }
}
