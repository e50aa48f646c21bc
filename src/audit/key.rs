//! The audit key: the secret that makes the hash chain an HMAC chain, so
//! someone who can write the database but cannot read this file cannot
//! recompute the chain after an edit. It lives outside the database, in a
//! file only its owner can read, created at first start.

use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::AuditError;

/// The key of a PostgreSQL log, unless `audit_key` names one (in the
/// configuration's folder: the database is elsewhere).
pub const POSTGRES_KEY_FILE: &str = "flaregate-audit.key";

/// Where the log's three files are: the database, the key, and the head
/// checkpoint (the last known end of the chain, kept outside the database
/// so that cutting rows off the end shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFiles {
    pub db: super::Database,
    pub key: PathBuf,
    pub head: PathBuf,
}

impl AuditFiles {
    /// The key and head files beside `db`: `audit.db` → `audit.key`,
    /// `audit.head`.
    /// A PostgreSQL log's key is `flaregate-audit.key` in the working
    /// folder unless the configuration names one (`audit_key`).
    pub fn beside(db: &super::Database) -> Self {
        match db {
            super::Database::Sqlite(file) => Self::with_key(db, &file.with_extension("key")),
            super::Database::Postgres(_) => Self::with_key(db, Path::new(POSTGRES_KEY_FILE)),
        }
    }

    /// `db` with its key at `key`; the head checkpoint sits beside the key.
    pub fn with_key(db: &super::Database, key: &Path) -> Self {
        Self {
            db: db.clone(),
            key: key.to_path_buf(),
            head: key.with_extension("head"),
        }
    }
}

/// The HMAC-SHA256 key of the chain.
#[derive(Clone)]
pub struct ChainKey([u8; 32]);

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainKey(<secret>)")
    }
}

impl ChainKey {
    /// Reads the key at `path`.
    pub fn load(path: &Path) -> Result<Self, AuditError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            AuditError::Unavailable(format!(
                "cannot read the audit key {}: {e}",
                absolute(path).display()
            ))
        })?;
        let mut key = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut key).map_err(|_| {
            AuditError::Unavailable(format!(
                "the audit key {} is not 64 hex characters",
                absolute(path).display()
            ))
        })?;
        Ok(Self(key))
    }

    /// Makes a new random key and writes it to `path`, readable by its
    /// owner only; refuses to overwrite a file that is there.
    pub fn create(path: &Path) -> Result<Self, AuditError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| {
            AuditError::Unavailable(format!("no randomness for the audit key: {e}"))
        })?;
        let cannot = |e: std::io::Error| {
            AuditError::Unavailable(format!(
                "cannot create the audit key {}: {e}",
                absolute(path).display()
            ))
        };
        let mut file = owner_only(path).map_err(cannot)?;
        file.write_all(format!("{}\n", hex::encode(key)).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(cannot)?;
        Ok(Self(key))
    }

    #[cfg(test)]
    pub fn from_bytes(key: [u8; 32]) -> Self {
        Self(key)
    }

    /// What the log stores to know its key by: 16 hex characters of an
    /// HMAC under the key, which tell keys apart and reveal nothing of it.
    pub fn fingerprint(&self) -> String {
        let mut mac = self.mac(&[b"flaregate audit key fingerprint"]);
        mac.truncate(16);
        mac
    }

    /// HMAC-SHA256 over the parts, in order, as lowercase hex.
    pub fn mac(&self, parts: &[&[u8]]) -> String {
        let mut mac = self.hasher();
        for part in parts {
            mac.update(part);
        }
        hex::encode(mac.finalize().into_bytes())
    }

    /// A fresh HMAC state, for content written in pieces.
    pub fn hasher(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes a key of any length")
    }
}

/// Creates `path` (never overwriting) with mode 0600 where modes exist.
fn owner_only(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// `path` made absolute for messages, so an operator knows which file.
pub(super) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
