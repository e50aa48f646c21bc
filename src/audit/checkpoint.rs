//! The head checkpoint: the end of the chain (event count and hash),
//! written outside the database at start, every few seconds while rows are
//! written, and at shutdown, MAC'd with the audit key. Rows cut off the end
//! of the log, or an emptied table, leave a database shorter than its last
//! checkpoint, which `audit verify` reports.

use std::io::Write;
use std::path::Path;

use super::chain::Head;
use super::key::{ChainKey, absolute};

const MAGIC: &str = "flaregate audit head v1";

/// Writes `head` to `path` atomically (a temporary file renamed over it).
pub(super) fn write(path: &Path, key: &ChainKey, head: &Head) -> std::io::Result<()> {
    let body = format!("{MAGIC}\n{head}\n");
    let mac = key.mac(&[body.as_bytes()]);
    // Unique, so two processes on one log never share a temporary file.
    let temporary = path.with_extension(format!("head.{:016x}.tmp", fastrand::u64(..)));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(format!("{body}mac {mac}\n").as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// The checkpoint at `path`: `Ok(None)` when there is none, an error when
/// it cannot be read or its MAC does not match (it was not written by
/// flaregate with this key).
pub(super) fn read(path: &Path, key: &ChainKey) -> Result<Option<Head>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(format!(
                "cannot read the head checkpoint {}: {error}",
                absolute(path).display()
            ));
        }
    };
    let forged = || {
        format!(
            "the head checkpoint {} was not written by flaregate with this audit key",
            absolute(path).display()
        )
    };
    let (body, mac_line) = text.trim_end().rsplit_once('\n').ok_or_else(forged)?;
    let body = format!("{body}\n");
    let mac = mac_line.strip_prefix("mac ").ok_or_else(forged)?;
    if !body.starts_with(MAGIC) || key.mac(&[body.as_bytes()]) != mac {
        return Err(forged());
    }
    let head = body.lines().nth(1).ok_or_else(forged)?;
    head.parse().map(Some).map_err(|_| forged())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_reads_back_and_a_forged_one_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.head");
        let key = ChainKey::from_bytes([1; 32]);
        assert_eq!(read(&path, &key), Ok(None));
        let head = Head {
            events: 42,
            hash: "cd".repeat(32),
        };
        write(&path, &key, &head).expect("written");
        assert_eq!(read(&path, &key), Ok(Some(head)));

        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, text.replace("42:", "41:")).expect("forge");
        assert!(read(&path, &key).is_err(), "an edited count is refused");
        write(&path, &ChainKey::from_bytes([2; 32]), &Head::genesis()).expect("written");
        assert!(
            read(&path, &key).is_err(),
            "another key's checkpoint is refused"
        );
    }
}
