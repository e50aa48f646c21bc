//! The PostgreSQL store: the same log as SQLite's, for several instances
//! writing one chain. The chain's head (event count, last hash, last row
//! id) lives in a one-row table that each batch locks (`FOR UPDATE`) for
//! its transaction, so instances take turns at the end of the chain and
//! every row is in one order. A commit is durable when it returns
//! (`synchronous_commit` on, PostgreSQL's default): there is no separate
//! flush. The chain key stays outside the database, as with SQLite.

mod reader;

use postgres::{Client, Statement, Transaction};

use super::append::{Chain, Sink, StoreError};
use super::chain::Head;
use super::record::{CallRecord, Outcome};
use super::snapshot::{self, Snapshot};
use super::writer::{RowRef, Tip, Write};
use super::{AuditError, ChainKey};

pub(super) use crate::postgres_target::shown;

impl From<postgres::Error> for StoreError {
    fn from(error: postgres::Error) -> Self {
        StoreError(format!(
            "PostgreSQL: {}",
            crate::postgres_target::explain(&error)
        ))
    }
}

/// Migration N takes the schema from version N to N + 1.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE calls (
        id BIGINT PRIMARY KEY,
        ts TEXT NOT NULL,
        ts_unix_ms BIGINT NOT NULL,
        agent TEXT NOT NULL,
        tool TEXT NOT NULL,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        target TEXT NOT NULL,
        args TEXT NOT NULL,
        decision TEXT NOT NULL
            CHECK (decision IN ('allow', 'deny', 'preview', 'approved', 'rejected')),
        reason TEXT NOT NULL,
        rule TEXT NOT NULL,
        summary TEXT NOT NULL,
        lookup TEXT NOT NULL DEFAULT '',
        sandbox BOOLEAN NOT NULL DEFAULT false,
        seq BIGINT NOT NULL UNIQUE,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        status INTEGER,
        cf_codes TEXT,
        error TEXT,
        duration_ms BIGINT,
        outcome TEXT,
        outcome_seq BIGINT,
        outcome_prev_hash TEXT,
        outcome_hash TEXT
    );
    CREATE UNIQUE INDEX calls_by_outcome_seq ON calls (outcome_seq) WHERE outcome_seq IS NOT NULL;
    CREATE INDEX calls_by_time ON calls (ts_unix_ms);
    CREATE INDEX calls_by_agent ON calls (agent, ts_unix_ms);
    CREATE TABLE snapshots (
        call_id BIGINT PRIMARY KEY,
        reader TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('object', 'text', 'missing', 'nothing')),
        prior BYTEA,
        digest TEXT,
        after BYTEA,
        created TEXT
    );
    CREATE TABLE chain_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        events BIGINT NOT NULL,
        hash TEXT NOT NULL,
        last_id BIGINT NOT NULL
    );
    INSERT INTO chain_head VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000', 0);",
    // 2: the limits instances share (see `budget/postgres.rs`).
    crate::budget::SHARED_SCHEMA,
    // 3: requests for a person's approval (see `approvals.rs`).
    super::approvals::POSTGRES_TABLE,
    // 4: several requests drawn from a bucket at once (see `budget/postgres.rs`).
    crate::budget::SHARED_SPEND_N,
    // 5: facts about the chain: the fingerprint of the key it is made with.
    "CREATE TABLE chain_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);",
    // 6: the approval a row belongs to, in a column of its own (as the
    // SQLite schema's 7).
    "ALTER TABLE calls ADD COLUMN approval TEXT;
    UPDATE calls SET approval = substr(rule, 10) WHERE rule LIKE 'approval %';
    CREATE INDEX calls_by_approval ON calls (approval) WHERE approval IS NOT NULL;",
    // 7: a change an operator made to the policy is an event of its own.
    "ALTER TABLE calls DROP CONSTRAINT calls_decision_check;
    ALTER TABLE calls ADD CONSTRAINT calls_decision_check
        CHECK (decision IN ('allow', 'deny', 'preview', 'approved', 'rejected', 'policy'));",
    // 8: a person's note on their decision on a request for approval.
    super::approvals::NOTE_COLUMN,
    // 9: who asked for approval, when a token named a person and client.
    super::approvals::ASKED_BY_COLUMN,
    // 10: an alert Cloudflare sent to a webhook is an event of its own.
    "ALTER TABLE calls DROP CONSTRAINT calls_decision_check;
    ALTER TABLE calls ADD CONSTRAINT calls_decision_check
        CHECK (decision IN ('allow', 'deny', 'preview', 'approved', 'rejected', 'policy', 'alert'));",
];

/// The PostgreSQL client blocks on a runtime of its own, which tokio does
/// not allow inside another: every use runs on a thread of its own — the
/// writer's store on [`Worker`], a read on a scoped thread.
pub fn off_runtime<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(work)
            .join()
            .expect("PostgreSQL work does not panic")
    })
}

/// The writer's store on a thread of its own: batches go there and come
/// back with their rows.
pub(super) struct Worker {
    jobs: std::sync::mpsc::Sender<Job>,
}

type Committed = (Vec<Write>, Result<(Tip, Vec<RowRef>), StoreError>);

enum Job {
    Commit {
        key: ChainKey,
        batch: Vec<Write>,
        reply: std::sync::mpsc::SyncSender<Committed>,
    },
    Ping(std::sync::mpsc::SyncSender<Result<(), StoreError>>),
    ClaimKey(
        String,
        std::sync::mpsc::SyncSender<Result<String, StoreError>>,
    ),
}

impl Worker {
    /// Connects (and migrates) on the worker's thread; the chain's end.
    pub(super) fn start(url: &str) -> Result<(Self, Tip), AuditError> {
        let (jobs, inbox) = std::sync::mpsc::channel::<Job>();
        let (opened, open) = std::sync::mpsc::sync_channel(1);
        let url = url.to_string();
        std::thread::Builder::new()
            .name("audit-postgres".into())
            .spawn(move || {
                let mut pg = match Pg::open(&url).and_then(|mut pg| {
                    let tip = pg
                        .head()
                        .map_err(|e| AuditError::Unavailable(e.to_string()))?;
                    Ok((pg, tip))
                }) {
                    Ok((pg, tip)) => {
                        let _ = opened.send(Ok(tip));
                        pg
                    }
                    Err(error) => {
                        let _ = opened.send(Err(error));
                        return;
                    }
                };
                for job in inbox {
                    match job {
                        Job::Commit { key, batch, reply } => {
                            let result = pg.commit(&key, &batch);
                            let _ = reply.send((batch, result));
                        }
                        Job::Ping(reply) => {
                            let _ = reply.send(pg.ping());
                        }
                        Job::ClaimKey(fingerprint, reply) => {
                            let _ = reply.send(pg.claim_key(&fingerprint));
                        }
                    }
                }
            })
            .map_err(|e| {
                AuditError::Unavailable(format!("cannot start the PostgreSQL thread: {e}"))
            })?;
        let tip = open
            .recv()
            .map_err(|_| AuditError::Unavailable("the PostgreSQL thread stopped".into()))??;
        Ok((Self { jobs }, tip))
    }

    /// Whether the database answers now.
    pub(super) fn ping(&self) -> Result<(), StoreError> {
        let stopped = || StoreError("the PostgreSQL thread stopped".into());
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.jobs.send(Job::Ping(reply)).map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }

    /// Records `fingerprint` as the log's key unless one is; the one
    /// recorded (see `schema::claim_key`).
    pub(super) fn claim_key(&self, fingerprint: &str) -> Result<String, StoreError> {
        let stopped = || StoreError("the PostgreSQL thread stopped".into());
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.jobs
            .send(Job::ClaimKey(fingerprint.to_string(), reply))
            .map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }

    /// Commits `batch`; gives it back with the outcome.
    pub(super) fn commit(&self, key: &ChainKey, batch: Vec<Write>) -> Committed {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let job = Job::Commit {
            key: key.clone(),
            batch,
            reply,
        };
        if let Err(std::sync::mpsc::SendError(Job::Commit { batch, .. })) = self.jobs.send(job) {
            let stopped = StoreError("the PostgreSQL thread stopped".into());
            return (batch, Err(stopped));
        }
        answer.recv().unwrap_or_else(|_| {
            (
                Vec::new(),
                Err(StoreError("the PostgreSQL thread stopped".into())),
            )
        })
    }
}

/// Any number unlikely to clash with another application's advisory lock:
/// held while migrating, so instances starting together migrate once.
const MIGRATION_LOCK: i64 = 0x666c_6172_6567_6174;

/// An open connection with the statements the writer runs.
pub(super) struct Pg {
    url: String,
    client: Client,
    statements: Statements,
}

struct Statements {
    lock_head: Statement,
    set_head: Statement,
    insert: Statement,
    outcome: Statement,
    snapshot: Statement,
    snapshot_outcome: Statement,
}

impl Pg {
    /// Connects, brings the schema up to date, prepares the statements.
    pub(super) fn open(url: &str) -> Result<Self, AuditError> {
        let unavailable = |e: StoreError| {
            AuditError::Unavailable(format!("the audit database {}: {e}", shown(url)))
        };
        let mut client = connect(url).map_err(unavailable)?;
        migrate(&mut client).map_err(unavailable)?;
        let statements = prepare(&mut client).map_err(unavailable)?;
        Ok(Self {
            url: url.to_string(),
            client,
            statements,
        })
    }

    /// A round trip (reconnecting first if the connection broke).
    fn ping(&mut self) -> Result<(), StoreError> {
        if self.client.is_closed() {
            *self = Self::open(&self.url).map_err(reopen_failed)?;
        }
        self.client.simple_query("SELECT 1")?;
        Ok(())
    }

    fn claim_key(&mut self, fingerprint: &str) -> Result<String, StoreError> {
        self.client.execute(
            "INSERT INTO chain_meta (name, value) VALUES ('key', $1) ON CONFLICT (name) DO NOTHING",
            &[&fingerprint],
        )?;
        let row = self
            .client
            .query_one("SELECT value FROM chain_meta WHERE name = 'key'", &[])?;
        Ok(row.get(0))
    }

    /// The chain's end as stored.
    pub(super) fn head(&mut self) -> Result<Tip, StoreError> {
        let row = self.client.query_one(
            "SELECT events, hash, last_id FROM chain_head WHERE id = 1",
            &[],
        )?;
        Ok(Tip {
            head: Head {
                events: row.get(0),
                hash: row.get(1),
            },
            last_id: row.get(2),
        })
    }

    /// Writes a batch in one transaction at the end of the chain, whoever
    /// else writes it: the head row is locked until the commit.
    pub(super) fn commit(
        &mut self,
        key: &ChainKey,
        batch: &[Write],
    ) -> Result<(Tip, Vec<RowRef>), StoreError> {
        if self.client.is_closed() {
            *self = Self::open(&self.url).map_err(reopen_failed)?;
        }
        let statements = &self.statements;
        let mut tx = self.client.transaction()?;
        let head = tx.query_one(&statements.lock_head, &[])?;
        let tip = Tip {
            head: Head {
                events: head.get(0),
                hash: head.get(1),
            },
            last_id: head.get(2),
        };
        let mut chain = Chain::new(key, tip);
        let mut sink = PgSink {
            tx: &mut tx,
            statements,
        };
        let rows = chain.write(&mut sink, batch)?;
        let tip = chain.tip;
        tx.execute(
            &statements.set_head,
            &[&tip.head.events, &tip.head.hash, &tip.last_id],
        )?;
        tx.commit()?;
        Ok((tip, rows))
    }
}

/// A connection to the database at `url`, its schema brought up to date
/// (for the approvals, which the command line also reads and writes).
pub fn open_migrated(url: &str) -> Result<Client, String> {
    let mut client = connect(url).map_err(|e| e.to_string())?;
    migrate(&mut client).map_err(|e| e.to_string())?;
    Ok(client)
}

pub(crate) use reader::{Reader, numbered};

/// A failed reconnection, said once (the writer adds "the audit log is
/// unavailable").
fn reopen_failed(error: AuditError) -> StoreError {
    match error {
        AuditError::Unavailable(message) => StoreError(message),
        other => StoreError(other.to_string()),
    }
}

fn connect(url: &str) -> Result<Client, StoreError> {
    let target = crate::postgres_target::PostgresTarget::parse(url)
        .map_err(|e| StoreError(e.to_string()))?;
    Ok(target.connect_blocking()?)
}

fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS flaregate_schema (version INTEGER NOT NULL)")?;
    let version: i32 = tx
        .query_opt("SELECT version FROM flaregate_schema", &[])?
        .map_or(0, |row| row.get(0));
    if version == 0 {
        tx.execute("INSERT INTO flaregate_schema VALUES (0)", &[])?;
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        tx.batch_execute(migration)?;
        tx.execute(
            "UPDATE flaregate_schema SET version = $1",
            &[&(index as i32 + 1)],
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn prepare(client: &mut Client) -> Result<Statements, StoreError> {
    Ok(Statements {
        lock_head: client.prepare("SELECT events, hash, last_id FROM chain_head WHERE id = 1 FOR UPDATE")?,
        set_head: client.prepare("UPDATE chain_head SET events = $1, hash = $2, last_id = $3 WHERE id = 1")?,
        insert: client.prepare(
            "INSERT INTO calls (id, ts, ts_unix_ms, agent, tool, method, path, target, args, decision, reason, rule, summary, lookup, sandbox, seq, prev_hash, hash, approval)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
        )?,
        outcome: client.prepare(
            "UPDATE calls SET status = $1, cf_codes = $2, error = $3, duration_ms = $4, outcome = $5,
                              outcome_seq = $6, outcome_prev_hash = $7, outcome_hash = $8
             WHERE id = $9 AND outcome_seq IS NULL",
        )?,
        snapshot: client.prepare(
            "INSERT INTO snapshots (call_id, reader, kind, prior, digest) VALUES ($1, $2, $3, $4, $5)",
        )?,
        snapshot_outcome: client
            .prepare("UPDATE snapshots SET after = $1, created = $2 WHERE call_id = $3")?,
    })
}

/// One batch's transaction.
struct PgSink<'a, 'b> {
    tx: &'a mut Transaction<'b>,
    statements: &'a Statements,
}

impl Sink for PgSink<'_, '_> {
    fn decision(
        &mut self,
        (id, seq): (i64, i64),
        (prev, hash): (&str, &str),
        r: &CallRecord,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            &self.statements.insert,
            &[
                &id,
                &r.ts,
                &r.ts_unix_ms,
                &r.agent,
                &r.tool,
                &r.method,
                &r.path,
                &r.target,
                &r.args,
                &r.decision.as_str(),
                &r.reason,
                &r.rule,
                &r.summary,
                &r.lookup,
                &r.sandbox,
                &seq,
                &prev,
                &hash,
                &r.approval(),
            ],
        )?;
        Ok(())
    }

    fn outcome(
        &mut self,
        row: RowRef,
        seq: i64,
        (prev, hash): (&str, &str),
        o: &Outcome,
        codes: &str,
    ) -> Result<bool, StoreError> {
        let status = o.status.map(i32::from);
        let duration = o.duration_ms.map(|d| d as i64);
        let changed = self.tx.execute(
            &self.statements.outcome,
            &[
                &status, &codes, &o.error, &duration, &o.text, &seq, &prev, &hash, &row.id,
            ],
        )?;
        Ok(changed == 1)
    }

    fn snapshot(&mut self, id: i64, s: &Snapshot) -> Result<(), StoreError> {
        let (kind, prior, digest) = snapshot::stored_form(&s.prior);
        self.tx.execute(
            &self.statements.snapshot,
            &[&id, &s.reader, &kind, &prior, &digest],
        )?;
        Ok(())
    }

    fn snapshot_outcome(
        &mut self,
        id: i64,
        after: Option<&str>,
        created: Option<&str>,
    ) -> Result<(), StoreError> {
        if after.is_none() && created.is_none() {
            return Ok(());
        }
        let after = after.map(|a| snapshot::deflate(a.as_bytes()));
        self.tx
            .execute(&self.statements.snapshot_outcome, &[&after, &created, &id])?;
        Ok(())
    }
}
