//! Errors from loading a catalog: each names the file, the line when known,
//! the endpoint and the field at fault, so an operator can fix it at once.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read catalog {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("catalog directory {0} holds no .toml files")]
    Empty(PathBuf),

    #[error("{}:{line}: {entry}: {message}", file.display())]
    Syntax {
        file: PathBuf,
        line: usize,
        entry: String,
        message: String,
    },

    #[error("{}:{line}: {entry}, field `{field}`: {message}", file.display())]
    Invalid {
        file: PathBuf,
        line: usize,
        entry: String,
        field: String,
        message: String,
    },
}
