//! Reads policy files, checks them against the catalog and compiles them.
//! Every problem is reported with its file and line; all of them at once,
//! so an operator fixes a file in one pass.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;

use super::file::PolicyFile;
use super::model::{Agent, NameSource, Policy};
use crate::catalog::Catalog;

/// One thing wrong in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policies at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no policy files (*.toml) in {0}")]
    Empty(PathBuf),
    #[error("{}", list(.0))]
    Invalid(Vec<Problem>),
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `*.toml` files of a directory (or the one file given), in name order.
pub fn policy_files(path: &Path) -> Result<Vec<(PathBuf, String)>, PolicyError> {
    let io = |source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let files = crate::files::toml_files(path).map_err(io)?;
    if files.is_empty() {
        return Err(PolicyError::Empty(path.to_path_buf()));
    }
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).map_err(|source| PolicyError::Io {
                path: file.clone(),
                source,
            })?;
            Ok((file, text))
        })
        .collect()
}

/// Parses, checks and compiles policy sources.
pub fn compile(
    sources: &[(PathBuf, String)],
    catalog: Arc<Catalog>,
) -> Result<Policy, PolicyError> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let mut names = Vec::new();
    let mut agents: Vec<Agent> = Vec::new();
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut keys: HashMap<[u8; 32], String> = HashMap::new();
    // Where each agent is written, for problems found between agents.
    let mut origins: Vec<(PathBuf, usize)> = Vec::new();
    for (file, text) in sources {
        if text.trim().is_empty() {
            // Mid-save, or emptied by mistake: never "no agents" by accident.
            problems.push(Problem {
                file: file.clone(),
                line: 1,
                message:
                    "the file is empty (half saved?); write a comment in it to mean \"no agents\""
                        .into(),
            });
            continue;
        }
        let parsed: PolicyFile = match toml::from_str(text) {
            Ok(parsed) => parsed,
            Err(e) => {
                let line = e.span().map_or(1, |s| crate::text::line_of(text, s.start));
                let at = text.lines().nth(line.saturating_sub(1)).unwrap_or_default();
                problems.push(Problem {
                    file: file.clone(),
                    line,
                    message: plain(e.message().trim(), at),
                });
                continue;
            }
        };
        for spec in parsed.agents {
            let mut ctx = Context {
                file,
                text,
                catalog: &catalog,
                problems: &mut problems,
                warnings: &mut warnings,
                names: &mut names,
            };
            let here = ctx.location(&spec.id);
            if let Some(first) = ids.insert(spec.id.get_ref().clone(), here.clone()) {
                ctx.problem(
                    &spec.id,
                    format!(
                        "agent `{}` is already defined at {first}",
                        spec.id.get_ref()
                    ),
                );
                continue;
            }
            for key in &spec.key_sha256 {
                if let Some(hash) = ctx.key_hash(key)
                    && let Some(owner) = keys.insert(hash, spec.id.get_ref().clone())
                {
                    ctx.problem(
                        key,
                        format!("this key_sha256 is already used by agent `{owner}`"),
                    );
                }
            }
            origins.push((file.clone(), ctx.line(&spec.id)));
            agents.push(ctx.agent(spec));
        }
    }
    let overlaps = super::claims::overlaps(&agents, &origins);
    problems.extend(overlaps.problems);
    warnings.extend(overlaps.warnings);
    if !problems.is_empty() {
        return Err(PolicyError::Invalid(problems));
    }
    let by_id = agents
        .iter()
        .enumerate()
        .map(|(i, a)| (a.id.clone(), i))
        .collect();
    Ok(Policy {
        catalog,
        agents,
        by_id,
        warnings,
        names,
    })
}

/// A SHA-256 written as 64 hex characters.
pub(super) fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let mut hash = [0u8; 32];
    let text = text.trim();
    (text.len() == 64 && hex::decode_to_slice(text, &mut hash).is_ok()).then_some(hash)
}

pub(super) struct Context<'a> {
    pub(super) file: &'a Path,
    pub(super) text: &'a str,
    pub(super) catalog: &'a Catalog,
    pub(super) problems: &'a mut Vec<Problem>,
    pub(super) warnings: &'a mut Vec<String>,
    pub(super) names: &'a mut Vec<NameSource>,
}

impl Context<'_> {
    pub(super) fn line<T>(&self, at: &Spanned<T>) -> usize {
        crate::text::line_of(self.text, at.span().start)
    }

    pub(super) fn location<T>(&self, at: &Spanned<T>) -> String {
        format!("{}:{}", self.file.display(), self.line(at))
    }

    pub(super) fn problem<T>(&mut self, at: &Spanned<T>, message: String) {
        let line = self.line(at);
        self.problems.push(Problem {
            file: self.file.to_path_buf(),
            line,
            message,
        });
    }

    pub(super) fn warn<T>(&mut self, at: &Spanned<T>, message: String) {
        let location = self.location(at);
        self.warnings.push(format!("{location}: {message}"));
    }

    fn key_hash(&mut self, key: &Spanned<String>) -> Option<[u8; 32]> {
        let hash = parse_hash(key.get_ref());
        if hash.is_none() {
            self.problem(key, "key_sha256 must be 64 hex characters (the SHA-256 of the key; `flaregate keygen` prints it)".into());
        }
        hash
    }
}

/// The TOML reader's words for the two slips people make most, said the
/// way the other problems are: a list entry written as one table
/// (`[agent.constraint]`), and a level that is not one.
fn plain(message: &str, line: &str) -> String {
    let table = line.trim().trim_start_matches('[').trim_end_matches(']');
    if message.starts_with("invalid type: map, expected a sequence") && line.trim().starts_with('[')
    {
        return format!("`[{table}]` is a list: write `[[{table}]]` (two brackets) for each entry");
    }
    if let Some(rest) = message.strip_prefix("unknown variant `")
        && message.contains("expected one of `off`, `read`, `full`")
    {
        let word = rest.split('`').next().unwrap_or_default();
        let hint = match word {
            "write" | "rw" | "admin" | "edit" => " (write access is `full`)".to_string(),
            _ => crate::text::did_you_mean(word, ["off", "read", "full"]),
        };
        return format!("`{word}` is not a level{hint}: a grant is off, read or full");
    }
    message.to_string()
}
