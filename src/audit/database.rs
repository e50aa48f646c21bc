//! Which database the log is in, decided once where the configuration is
//! read: a SQLite file, or a PostgreSQL server several instances share.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where the audit log (and the approvals and shared limits beside it) is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file (WAL), for one instance.
    Sqlite(PathBuf),
    /// A PostgreSQL URL (`postgres://…`), for one or several instances.
    Postgres(String),
}

impl Database {
    /// Reads a configured location: a `postgres://` or `postgresql://` URL,
    /// else a SQLite file's path.
    pub fn parse(location: &Path) -> Self {
        match location.to_str() {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Database::Postgres(url.to_string())
            }
            _ => Database::Sqlite(location.to_path_buf()),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Database::Postgres(_))
    }

    /// The SQLite file, if the log is one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Database::Sqlite(path) => Some(path),
            Database::Postgres(_) => None,
        }
    }
}

impl From<&Path> for Database {
    fn from(location: &Path) -> Self {
        Database::parse(location)
    }
}

impl From<PathBuf> for Database {
    fn from(location: PathBuf) -> Self {
        Database::parse(&location)
    }
}

/// Where the log is, for messages: a file's path, or the URL without its
/// password.
impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", super::key::absolute(path).display()),
            Database::Postgres(url) => write!(f, "{}", super::postgres::shown(url)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_postgres_and_shown_without_its_password() {
        let db = Database::parse(Path::new("postgres://flaregate:s3cret@db.internal/audit"));
        assert!(db.is_postgres());
        assert_eq!(db.to_string(), "postgres://flaregate@db.internal/audit");
        let file = Database::parse(Path::new("/var/lib/flaregate/audit.db"));
        assert_eq!(file.file(), Some(Path::new("/var/lib/flaregate/audit.db")));
        assert_eq!(file.to_string(), "/var/lib/flaregate/audit.db");
    }
}
