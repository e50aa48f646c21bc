//! The TOML files an operator keeps in a folder (the catalog, policies).

use std::path::{Path, PathBuf};

/// The `*.toml` files of folder `path` in name order, or `path` itself
/// when it is a file.
pub fn toml_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    Ok(files)
}
