//! `flaregate audit export`, `audit archive` and `audit verify --file`:
//! keeping a log within its cap without losing what it proves.

use std::path::Path;
use std::process::ExitCode;

use super::{LogPaths, Outcome, setup};
use crate::audit::{self, ChainVerdict, Written};

/// A moment on the command line: `2026-11-01`, `2026-11-01T12:00:00Z`, or
/// a stretch back from now (`90d`, `12h`), as milliseconds since the epoch.
pub(super) fn moment(text: &str) -> Result<i64, String> {
    let ms = |time: std::time::SystemTime| {
        time.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    };
    if let Ok(time) = humantime::parse_rfc3339_weak(text) {
        return Ok(ms(time));
    }
    if let Ok(time) = humantime::parse_rfc3339_weak(&format!("{text} 00:00:00")) {
        return Ok(ms(time));
    }
    if let Ok(ago) = humantime::parse_duration(text) {
        return Ok(ms(std::time::SystemTime::now() - ago));
    }
    Err(format!(
        "`{text}` is not a time: write a date (2026-11-01), a UTC time (2026-11-01T12:00:00Z) or a stretch back from now (90d)"
    ))
}

/// Writes the rows decided in `[since, until)` to `out` (or stdout).
pub(super) fn export(
    paths: &LogPaths,
    since: Option<i64>,
    until: Option<i64>,
    out: Option<&Path>,
) -> Outcome {
    let config = setup::log_config(paths)?;
    let files = config.audit_files();
    let written = match out {
        Some(path) => {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            let written = audit::export(&files, since, until, &mut file);
            if !matches!(written, Ok(Some(_))) {
                let _ = std::fs::remove_file(path);
            }
            written
        }
        None => audit::export(&files, since, until, &mut std::io::stdout()),
    }
    .map_err(|e| e.to_string())?;
    let Some(written) = written else {
        return Err(format!("no rows were decided in that time in {}", files.db));
    };
    eprintln!("{}", said("exported", &written, out));
    Ok(ExitCode::SUCCESS)
}

/// Moves the rows decided before `before` into a new file at `out`.
pub(super) fn archive(paths: &LogPaths, before: i64, out: &Path) -> Outcome {
    let config = setup::log_config(paths)?;
    let files = config.audit_files();
    if out.exists() {
        return Err(format!(
            "{} already exists: an archive is never written over",
            out.display()
        ));
    }
    match audit::archive(&files, before, out).map_err(|e| e.to_string())? {
        Some(written) => {
            println!("{}", said("archived", &written, Some(out)));
            println!(
                "The log now starts at event {}; `flaregate audit verify` checks it from there, and `flaregate audit verify --file {}` checks the archive. Keep the archive with the audit key.",
                written.span.last_event + 1,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        None => {
            println!(
                "nothing to archive: no finished row before that time (the newest row always stays)"
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn said(what: &str, written: &Written, out: Option<&Path>) -> String {
    let span = &written.span;
    format!(
        "{what} rows {}–{} ({} rows, chain events {}–{}, ending at head {}:{}){}",
        written.first_row,
        written.last_row,
        span.rows,
        span.first_event,
        span.last_event,
        span.last_event,
        span.head,
        out.map(|p| format!(" to {}", p.display()))
            .unwrap_or_default()
    )
}

/// Checks an export or archive file with the configured audit key.
pub(super) fn verify_file(paths: &LogPaths, file: &Path) -> Outcome {
    let config = setup::log_config(paths)?;
    let files = config.audit_files();
    let key = audit::ChainKey::load(&files.key).map_err(|e| e.to_string())?;
    let (span, verdict) = audit::verify_file(file, &key).map_err(|e| e.to_string())?;
    match verdict {
        ChainVerdict::Valid { rows, .. } => {
            println!(
                "{}: all {rows} rows verify with the audit key (chain events {}–{}, from {} to head {}:{})",
                file.display(),
                span.first_event,
                span.last_event,
                span.prev,
                span.last_event,
                span.head
            );
            Ok(ExitCode::SUCCESS)
        }
        ChainVerdict::Broken { row, problem } => {
            let at = row.map(|r| format!(" at row {r}")).unwrap_or_default();
            println!("{} does not verify{at}: {problem}", file.display());
            Ok(ExitCode::FAILURE)
        }
    }
}
