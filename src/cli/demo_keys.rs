//! The demo agents' keys for `serve --sandbox`: made once and kept beside
//! the sandbox's log (owner-only), so the `claude mcp add … --header` line
//! a user pasted keeps working across restarts. Printed at every start.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::policy::{self, AuthMode, Policy};

/// A demo agent's key, and its SHA-256 for the policy.
pub(super) struct DemoKey {
    pub agent: String,
    pub key: String,
    pub hash: [u8; 32],
}

/// Where the keys live: beside the audit key (`flaregate-sandbox-audit.key`
/// → `flaregate-sandbox-audit.demo-keys`).
pub(super) fn file_beside(audit_key: &Path) -> PathBuf {
    audit_key.with_extension("demo-keys")
}

/// A key for each agent of `policy` that takes a key and has none: the
/// one kept in `file` if there is one, else a new one, which is kept.
pub(super) fn load_or_make(policy: &Policy, file: &Path) -> Result<Vec<DemoKey>, String> {
    let mut kept = read(file)?;
    let mut changed = false;
    let keys = policy
        .agents()
        .iter()
        .filter(|a| a.auth == AuthMode::Key && !a.has_keys())
        .map(|agent| {
            let key = kept
                .entry(agent.id.clone())
                .or_insert_with(|| {
                    changed = true;
                    policy::new_key().0
                })
                .clone();
            let mut hash = [0u8; 32];
            hex::decode_to_slice(policy::sha256_hex(&key), &mut hash)
                .expect("SHA-256 is 64 hex characters");
            DemoKey {
                agent: agent.id.clone(),
                key,
                hash,
            }
        })
        .collect();
    if changed {
        write(file, &kept)?;
    }
    Ok(keys)
}

/// `agent = "fgk_…"` lines; a missing file holds none.
fn read(file: &Path) -> Result<BTreeMap<String, String>, String> {
    match std::fs::read_to_string(file) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            format!(
                "{}: {} (delete it to make new demo keys)",
                file.display(),
                e.message()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(format!("cannot read {}: {e}", file.display())),
    }
}

/// Writes the keys readable by their owner only, through a file renamed
/// into place.
fn write(file: &Path, keys: &BTreeMap<String, String>) -> Result<(), String> {
    let cannot =
        |e: std::io::Error| format!("cannot keep the demo keys in {}: {e}", file.display());
    let staged = file.with_extension("demo-keys.new");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut out = options.open(&staged).map_err(cannot)?;
    let mut text = String::from(
        "# Keys of the sandbox's demo agents (serve --sandbox); not for Cloudflare.\n",
    );
    for (agent, key) in keys {
        text.push_str(&format!("{agent:?} = {key:?}\n"));
    }
    out.write_all(text.as_bytes()).map_err(cannot)?;
    std::fs::rename(&staged, file).map_err(cannot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_kept_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("x.demo-keys");
        let keys = BTreeMap::from([("auditor".to_string(), "fgk_ab".to_string())]);
        write(&file, &keys).expect("written");
        assert_eq!(read(&file).expect("read"), keys);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
