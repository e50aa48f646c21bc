//! The PostgreSQL store: the same log as SQLite's, for several instances
//! writing one chain. The chain's head (event count, last hash, last row
//! id) lives in a one-row table that each batch locks (`FOR UPDATE`) for
//! its transaction, so instances take turns at the end of the chain and
//! every row is in one order. A commit is durable when it returns
//! (`synchronous_commit` on, PostgreSQL's default): there is no separate
//! flush. The chain key stays outside the database, as with SQLite.

use postgres::{Client, NoTls, Statement, Transaction};

use super::chain::{Event, Head};
use super::query::{Entry, Filter};
use super::record::{CallRecord, Decision, Outcome};
use super::snapshot::{self, Snapshot, Stored};
use super::writer::{Chain, RowRef, Sink, StoreError, Tip, Write};
use super::{AuditError, ChainKey};

/// Whether the audit "path" is a PostgreSQL URL.
pub fn is_url(db: &std::path::Path) -> bool {
    db.to_str()
        .is_some_and(|s| s.starts_with("postgres://") || s.starts_with("postgresql://"))
}

/// The URL without its password, for messages.
pub fn shown(url: &str) -> String {
    match url.split_once("://").and_then(|(scheme, rest)| {
        let (credentials, host) = rest.split_once('@')?;
        let user = credentials.split(':').next().unwrap_or_default();
        Some(format!("{scheme}://{user}@{host}"))
    }) {
        Some(shown) => shown,
        None => url.to_string(),
    }
}

impl From<postgres::Error> for StoreError {
    fn from(error: postgres::Error) -> Self {
        StoreError(match error.as_db_error() {
            Some(db) => format!("PostgreSQL: {}", db.message()),
            None => format!("PostgreSQL: {error}"),
        })
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
    // 3: requests for a person's approval (see `approval/`).
    "CREATE TABLE approvals (
        id TEXT PRIMARY KEY,
        agent TEXT NOT NULL,
        tool TEXT NOT NULL,
        digest TEXT NOT NULL,
        summary TEXT NOT NULL,
        preview TEXT NOT NULL,
        requested_ms BIGINT NOT NULL,
        expires_ms BIGINT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
        decided_by TEXT,
        decided_ms BIGINT,
        used_ms BIGINT,
        recorded BIGINT NOT NULL DEFAULT 0
    );",
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
pub struct Worker {
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
}

impl Worker {
    /// Connects (and migrates) on the worker's thread; the chain's end.
    pub fn start(url: &str) -> Result<(Self, Tip), AuditError> {
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
    pub fn ping(&self) -> Result<(), StoreError> {
        let stopped = || StoreError("the PostgreSQL thread stopped".into());
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.jobs.send(Job::Ping(reply)).map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }

    /// Commits `batch`; gives it back with the outcome.
    pub fn commit(&self, key: &ChainKey, batch: Vec<Write>) -> Committed {
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
pub struct Pg {
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
    pub fn open(url: &str) -> Result<Self, AuditError> {
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
            *self = Self::open(&self.url).map_err(|e| StoreError(e.to_string()))?;
        }
        self.client.simple_query("SELECT 1")?;
        Ok(())
    }

    /// The chain's end as stored.
    pub fn head(&mut self) -> Result<Tip, StoreError> {
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
    pub fn commit(
        &mut self,
        key: &ChainKey,
        batch: &[Write],
    ) -> Result<(Tip, Vec<RowRef>), StoreError> {
        if self.client.is_closed() {
            *self = Self::open(&self.url).map_err(|e| StoreError(e.to_string()))?;
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

fn connect(url: &str) -> Result<Client, StoreError> {
    let mut config: postgres::Config = url.parse()?;
    config.connect_timeout(std::time::Duration::from_secs(5));
    config.application_name("flaregate");
    Ok(config.connect(NoTls)?)
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
            "INSERT INTO calls (id, ts, ts_unix_ms, agent, tool, method, path, target, args, decision, reason, rule, summary, lookup, sandbox, seq, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
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

/// A connection for reading (`flaregate audit`, verify, undo).
pub struct Reader(Client);

impl Reader {
    pub fn open(url: &str) -> Result<Self, AuditError> {
        let mut client = connect(url).map_err(|e| {
            AuditError::Unavailable(format!("the audit database {}: {e}", shown(url)))
        })?;
        let exists: bool = client
            .query_one("SELECT to_regclass('flaregate_schema') IS NOT NULL", &[])
            .map_err(|e| AuditError::Unavailable(StoreError::from(e).0))?
            .get(0);
        if !exists {
            return Err(AuditError::Unavailable(format!(
                "the audit database {} holds no flaregate log yet: `flaregate serve` makes it",
                shown(url)
            )));
        }
        Ok(Self(client))
    }

    /// Every event of every row, in chain order, and the number of rows.
    pub fn events(&mut self) -> Result<(u64, Vec<Event>), StoreError> {
        let mut events = Vec::new();
        let mut rows = 0;
        for row in self.0.query(
            "SELECT id, ts, ts_unix_ms, agent, tool, method, path, target, args, decision, reason, rule, summary,
                    lookup, sandbox, seq, prev_hash, hash, status, cf_codes, error, duration_ms, outcome,
                    outcome_seq, outcome_prev_hash, outcome_hash
             FROM calls ORDER BY id",
            &[],
        )? {
            rows += 1;
            let id: i64 = row.get("id");
            let seq: i64 = row.get("seq");
            let record = CallRecord {
                ts: row.get("ts"),
                ts_unix_ms: row.get("ts_unix_ms"),
                agent: row.get("agent"),
                tool: row.get("tool"),
                method: row.get("method"),
                path: row.get("path"),
                target: row.get("target"),
                args: row.get("args"),
                decision: Decision::parse(row.get("decision")),
                reason: row.get("reason"),
                rule: row.get("rule"),
                summary: row.get("summary"),
                lookup: row.get("lookup"),
                sandbox: row.get("sandbox"),
            };
            events.push(Event::decision(seq, id, row.get("prev_hash"), row.get("hash"), record));
            if let Some(outcome_seq) = row.get::<_, Option<i64>>("outcome_seq") {
                let outcome = Outcome {
                    status: row.get::<_, Option<i32>>("status").map(|s| s as u16),
                    error: row.get("error"),
                    duration_ms: row.get::<_, Option<i64>>("duration_ms").map(|d| d.max(0) as u64),
                    text: row.get::<_, Option<String>>("outcome").unwrap_or_default(),
                    ..Outcome::default()
                };
                events.push(Event::outcome(
                    (outcome_seq, id, seq),
                    row.get::<_, Option<String>>("outcome_prev_hash").unwrap_or_default(),
                    row.get::<_, Option<String>>("outcome_hash").unwrap_or_default(),
                    outcome,
                    row.get::<_, Option<String>>("cf_codes").unwrap_or_default(),
                ));
            }
        }
        events.sort_by_key(Event::seq);
        Ok((rows, events))
    }

    /// The end of the chain as stored.
    pub fn head(&mut self) -> Result<Head, StoreError> {
        let row = self
            .0
            .query_opt("SELECT events, hash FROM chain_head WHERE id = 1", &[])?;
        Ok(row.map_or_else(Head::genesis, |row| Head {
            events: row.get(0),
            hash: row.get(1),
        }))
    }

    /// The rows `filter` selects, oldest first.
    pub fn query(&mut self, filter: &Filter, now_ms: i64) -> Result<Vec<Entry>, StoreError> {
        let (sql, values) = super::query::select(filter, now_ms);
        self.entries(&numbered(&sql), &values)
    }

    /// Allowed writes after row `after` on one of `paths` or below it.
    pub fn later_writes(&mut self, after: i64, paths: &[String]) -> Result<Vec<Entry>, StoreError> {
        let mut found: Vec<Entry> = Vec::new();
        for path in paths {
            let values = super::query::later_writes_values(after, path);
            for entry in self.entries(&numbered(super::query::LATER_WRITES), &values)? {
                if !found.iter().any(|e| e.id == entry.id) {
                    found.push(entry);
                }
            }
        }
        found.sort_by_key(|e| e.id);
        Ok(found)
    }

    /// The rows that undo row `row`.
    pub fn undos_of(&mut self, row: i64) -> Result<Vec<Entry>, StoreError> {
        let values = [
            super::query::Value::Int(row),
            super::query::Value::Text(super::undo_note(row)),
        ];
        self.entries(&numbered(super::query::UNDOS_OF), &values)
    }

    /// The agents with rows in the log.
    pub fn agents(&mut self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .0
            .query("SELECT DISTINCT agent FROM calls ORDER BY agent", &[])?
            .iter()
            .map(|row| row.get(0))
            .collect())
    }

    /// Row `id`'s snapshot, if it has one.
    pub fn snapshot(&mut self, id: i64) -> Result<Option<Stored>, StoreError> {
        let row = self.0.query_opt(
            "SELECT reader, kind, prior, after, created FROM snapshots WHERE call_id = $1",
            &[&id],
        )?;
        Ok(row.map(|row| {
            snapshot::stored(row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
        }))
    }

    /// The first snapshot that no longer matches the digest its row noted.
    pub fn first_mismatch(&mut self) -> Result<Option<(i64, String)>, StoreError> {
        let rows = self.0.query(
            "SELECT s.call_id, s.prior, s.digest, c.lookup FROM snapshots s
             LEFT JOIN calls c ON c.id = s.call_id WHERE s.prior IS NOT NULL ORDER BY s.call_id",
            &[],
        )?;
        Ok(rows
            .iter()
            .find_map(|row| snapshot::mismatch(row.get(0), row.get(1), row.get(2), row.get(3))))
    }

    fn entries(
        &mut self,
        sql: &str,
        values: &[super::query::Value],
    ) -> Result<Vec<Entry>, StoreError> {
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
            values.iter().map(super::query::Value::as_pg).collect();
        Ok(self
            .0
            .query(sql, &params)?
            .iter()
            .map(|row| {
                super::query::Entry::from_parts(super::query::Parts {
                    id: row.get("id"),
                    ts: row.get("ts"),
                    agent: row.get("agent"),
                    tool: row.get("tool"),
                    method: row.get("method"),
                    path: row.get("path"),
                    decision: row.get("decision"),
                    reason: row.get("reason"),
                    rule: row.get("rule"),
                    target: row.get("target"),
                    args: row.get("args"),
                    status: row.get::<_, Option<i32>>("status").map(|s| s as u16),
                    cf_codes: row.get("cf_codes"),
                    duration_ms: row.get("duration_ms"),
                    summary: row.get("summary"),
                    outcome: row.get("outcome"),
                    lookup: row.get("lookup"),
                    sandbox: row.get("sandbox"),
                })
            })
            .collect())
    }
}

/// `?` placeholders as PostgreSQL's `$1, $2, …` (the shared SQL is
/// written for SQLite; no query text holds a literal `?`).
pub fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}
