//! The SQLite store behind the writer: one file that other processes may
//! append to as well, each batch committed under SQLite's write lock.

use rusqlite::{Connection, TransactionBehavior};

use super::AuditError;
use super::append::{Chain, StoreError};
use super::key::ChainKey;
use super::writer::{RowRef, Tip, Write};

/// A SQLite log that other processes may append to as well (a stdio
/// server beside an HTTP one): each batch is committed under SQLite's
/// write lock, and the tip is read again whenever another process
/// committed since this one last did.
pub(super) struct SqliteLog {
    connection: Connection,
    /// `PRAGMA data_version` at this process's last commit; it changes
    /// only when another connection commits.
    seen: Option<i64>,
    /// `audit_max_mb`, as a page count: a log that reached it takes no rows.
    max_pages: Option<i64>,
}

impl SqliteLog {
    pub(super) fn new(connection: Connection, max_pages: Option<i64>) -> Self {
        Self {
            connection,
            seen: None,
            max_pages,
        }
    }

    /// Whether a row could be written now: the write lock can be taken
    /// (no other process holds it past the busy timeout, the file is
    /// writable) and the log is below its size cap.
    pub(super) fn writable(&mut self) -> Result<(), AuditError> {
        let unavailable = |e: rusqlite::Error| {
            AuditError::Unavailable(format!("the audit log cannot take rows: {e}"))
        };
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        if let Some(max_pages) = self.max_pages {
            let pages: i64 = tx
                .query_row("SELECT page_count - freelist_count FROM pragma_page_count(), pragma_freelist_count()", [], |row| row.get(0))
                .map_err(unavailable)?;
            if pages >= max_pages {
                return Err(AuditError::Unavailable(
                    "the audit log is full (audit_max_mb): raise the cap, or start a new log and keep this one with its key and head".into(),
                ));
            }
        }
        Ok(())
    }

    /// Writes a batch in one transaction, under SQLite's write lock; the new
    /// tip and each job's row. The tip is read from the database when another
    /// process committed since this one's last commit.
    pub(super) fn commit(
        &mut self,
        key: &ChainKey,
        tip: &Tip,
        batch: &[Write],
    ) -> Result<(Tip, Vec<RowRef>), StoreError> {
        let mut tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |row| row.get(0))?;
        let tip = if self.seen == Some(version) {
            tip.clone()
        } else {
            stored_tip(&tx)?
        };
        let mut chain = Chain::new(key, tip);
        let rows = chain.write(&mut tx, batch)?;
        tx.commit()?;
        self.seen = Some(version);
        Ok((chain.tip, rows))
    }
}

/// The chain's end and the last row id as the database holds them.
pub(super) fn stored_tip(connection: &Connection) -> rusqlite::Result<Tip> {
    let head = super::chain::stored_head(connection)?;
    let last_id = connection.query_row("SELECT COALESCE(MAX(id), 0) FROM calls", [], |row| {
        row.get(0)
    })?;
    Ok(Tip { head, last_id })
}
