//! The code's layering (README, "What is here"): each top-level module of
//! `src/` uses only modules below it, so there is no import cycle and no
//! upward import; and the server's pipeline knows nothing of MCP. Read
//! from the source, so an upward `use` fails here before review.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

/// Top-level modules from the bottom up; a module may use only modules of
/// an earlier layer.
const LAYERS: &[&[&str]] = &[
    &[
        "text",
        "files",
        "net",
        "clock",
        "histogram",
        "logging",
        "telemetry",
        "postgres_target",
    ],
    &["catalog"],
    &["cloudflare"],
    &["policy"],
    &["budget"],
    &["audit"],
    &["approval", "metrics", "alerts"],
    &["config"],
    &["oauth"],
    &["sandbox"],
    &["server"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Every `.rs` file under `path`.
fn sources(path: &Path) -> Vec<std::path::PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).expect("readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The top-level modules a source text names through `crate::`, whether
/// as `crate::name` or in a `crate::{a, b::c}` group.
fn crate_uses(text: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    used.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            used.insert(name);
        }
    }
    used
}

#[test]
fn every_module_uses_only_modules_below_it() {
    let src = common::repo_path("src");
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for entry in std::fs::read_dir(&src).expect("src") {
        let path = entry.expect("entry").path();
        let module = path
            .file_stem()
            .expect("name")
            .to_string_lossy()
            .to_string();
        if matches!(module.as_str(), "lib" | "main") {
            continue;
        }
        seen.insert(module.clone());
        let Some(layer) = layer_of(&module) else {
            problems.push(format!(
                "src/{module} is in no layer: add it to LAYERS and the README"
            ));
            continue;
        };
        for file in sources(&path) {
            let text = std::fs::read_to_string(&file).expect("utf-8");
            for used in crate_uses(&text) {
                if used == module {
                    continue;
                }
                match layer_of(&used) {
                    Some(below) if below < layer => {}
                    _ => problems.push(format!(
                        "{} uses crate::{used}, which is not below `{module}`",
                        file.strip_prefix(&src).unwrap_or(&file).display()
                    )),
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The check reads what is there: every layer's module exists.
    for module in LAYERS.iter().flat_map(|l| l.iter()) {
        assert!(
            seen.contains(*module),
            "LAYERS names a missing module {module}"
        );
    }
}

#[test]
fn the_pipeline_knows_nothing_of_mcp() {
    let pipeline = common::repo_path("src/server/pipeline");
    let mut problems = Vec::new();
    for file in sources(&pipeline) {
        let text = std::fs::read_to_string(&file).expect("utf-8");
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            if line.contains("rmcp") || line.contains("mcp::") || line.contains("Gateway") {
                problems.push(format!("{}: {}", file.display(), line.trim()));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_layer_reader_sees_both_forms_of_use() {
    let used = crate_uses("use crate::{telemetry, text};\nlet x = crate::audit::now();");
    assert_eq!(
        used.into_iter().collect::<Vec<_>>(),
        vec!["audit", "telemetry", "text"]
    );
}

/// The suite runs against what the project ships, whatever a user put in
/// the checkout: the README has them import the whole API into
/// `catalog/imported` and write policies into `policies/`. No test reads
/// those folders; they read [`common::shipped`], which holds exactly the
/// built-in catalog and the demo policy.
#[test]
fn tests_read_the_shipped_files_not_the_checkouts_folders() {
    let mut offenders = Vec::new();
    for file in sources(&common::repo_path("tests"))
        .into_iter()
        .chain(sources(&common::repo_path("src")))
        .filter(|file| !file.ends_with("layering.rs"))
    {
        let text = std::fs::read_to_string(&file).expect("readable");
        for needle in [
            "repo_path(\"catalog",
            "repo_path(\"policies",
            "join(\"catalog\")",
            "current_dir(repo_path(",
        ] {
            if text.contains(needle) {
                offenders.push(format!("{}: {needle}", file.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
    let shipped: BTreeSet<_> = std::fs::read_dir(common::shipped("catalog"))
        .expect("the shipped catalog")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let builtin: BTreeSet<_> = flaregate::catalog::builtin_sources()
        .into_iter()
        .map(|(name, _)| {
            name.file_name()
                .expect("a name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(shipped, builtin);
}
