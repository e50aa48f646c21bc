//! `flaregate catalog import`: writes catalog files for the whole
//! Cloudflare API from its OpenAPI schema, beside the curated catalog.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{ConfigPath, Outcome, Paths, setup};
use crate::catalog::import::{self, Filter, GENERATED_MARK, Rules};
use crate::catalog::{self, Catalog};

#[derive(Args)]
pub(super) struct CatalogArgs {
    #[command(subcommand)]
    command: CatalogCommand,
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Write catalog files for Cloudflare's OpenAPI schema (one per group).
    Import(ImportArgs),
}

#[derive(Args)]
struct ImportArgs {
    #[command(flatten)]
    config: ConfigPath,
    /// The catalog folder (to keep curated tools' names).
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// Cloudflare's OpenAPI schema (JSON), e.g.
    /// openapi/cloudflare-openapi-2024-08-06.json.
    #[arg(long, value_name = "FILE")]
    openapi: PathBuf,
    /// Import only operations whose path, tool name, group or tag matches
    /// one of these globs (default: all).
    #[arg(long, value_name = "GLOB")]
    include: Vec<String>,
    /// Leave out operations whose path, tool name, group or tag matches.
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Where to write (e.g. catalog/imported: the catalog folder's
    /// subfolders are read with it). Files an earlier import wrote there
    /// are replaced; no other file is touched.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The table of groups and permissions (default: the shipped
    /// openapi/groups.toml).
    #[arg(long, value_name = "FILE")]
    groups: Option<PathBuf>,
}

pub(super) fn run(args: &CatalogArgs) -> Outcome {
    match &args.command {
        CatalogCommand::Import(args) => import(args),
    }
}

fn import(args: &ImportArgs) -> Outcome {
    let paths = Paths {
        catalog: args.catalog.clone(),
        ..args.config.paths()
    };
    let config = setup::config(&paths)?;
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let spec = import::read_spec(&read(&args.openapi)?)
        .map_err(|e| format!("{}: {e}", args.openapi.display()))?;
    let rules = match &args.groups {
        Some(path) => Rules::parse(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))?,
        None => Rules::parse(import::BUILTIN_RULES).expect("the shipped table is tested"),
    };
    let filter = Filter::new(&args.include, &args.exclude)?;
    let curated_sources = curated(&config.catalog, args.catalog.is_some())?;
    let curated = catalog::load_sources(&curated_sources).map_err(|e| e.to_string())?;
    let source = args.openapi.file_name().map_or_else(
        || args.openapi.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let imported = import::import(&spec, &source, &curated, &rules, &filter)?;

    // Everything together must load before anything is written.
    let mut all = curated_sources;
    all.extend(
        imported
            .files
            .iter()
            .map(|(name, text)| (args.out.join(name), text.clone())),
    );
    let combined: Catalog = catalog::load_sources(&all)
        .map_err(|e| format!("the imported catalog does not load (nothing written): {e}"))?;
    write(&args.out, &imported.files)?;

    let curated_count = curated.endpoints().len();
    let mut report = format!(
        "wrote {} operations in {} groups to {} ({} tools with the {curated_count} curated ones)\n",
        imported.written,
        imported.per_group.len(),
        args.out.display(),
        combined.endpoints().len(),
    );
    if imported.filtered > 0 {
        report += &format!("left out by --include/--exclude: {}\n", imported.filtered);
    }
    if imported.dropped_patterns > 0 {
        report += &format!(
            "patterns Rust's regex engine cannot compile, left to Cloudflare to check: {}\n",
            imported.dropped_patterns
        );
    }
    report += &format!("skipped {}:\n", imported.skipped.len());
    for line in &imported.skipped {
        report += &format!("  {line}\n");
    }
    report += "per group:\n";
    for (group, count) in &imported.per_group {
        let note = if group == import::UNCLASSIFIED {
            "  (permission not known: granted only by tool name)"
        } else {
            ""
        };
        report += &format!("  {group:<24} {count:>4}{note}\n");
    }
    // A reader that stops early (`| head`) is not an error: the files are written.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), report.as_bytes());
    Ok(ExitCode::SUCCESS)
}

/// The hand-written catalog: the configured folder's files less those an
/// import wrote, or the shipped catalog.
fn curated(dir: &Path, asked: bool) -> Result<Vec<(PathBuf, String)>, String> {
    if !dir.is_dir() && !asked {
        return Ok(catalog::builtin_sources());
    }
    let sources = catalog::read_dir(dir).map_err(|e| e.to_string())?;
    Ok(sources
        .into_iter()
        .filter(|(_, text)| !text.starts_with(GENERATED_MARK))
        .collect())
}

/// Replaces the files an earlier import wrote in `out` with `files`.
fn write(out: &Path, files: &[(String, String)]) -> Result<(), String> {
    let io = |path: &Path, e: std::io::Error| format!("{}: {e}", path.display());
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    for path in crate::files::toml_files(out).map_err(|e| io(out, e))? {
        let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        if text.starts_with(GENERATED_MARK) {
            std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
        }
    }
    for (name, text) in files {
        let path = out.join(name);
        if path.exists() {
            return Err(format!(
                "{} exists and was not written by an import: move it, or import elsewhere",
                path.display()
            ));
        }
        std::fs::write(&path, text).map_err(|e| io(&path, e))?;
    }
    Ok(())
}
