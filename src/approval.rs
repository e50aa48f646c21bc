//! Requests for a person's approval and their answers. A call the policy
//! says a person must approve is held: the person at the client answers
//! it at once (elicitation), or the operator decides it on the host
//! (`flaregate approve ID` / `reject ID`) and the agent repeats the same
//! call with that id. An approval is bound to the agent, the tool and a
//! digest of the exact arguments, keyed with the audit key (HMAC: no
//! agent can compute one), expires, and is used once. Kept in the audit
//! database, so the server and the command line share it; the server
//! writes each decision made on the host into the chain.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};

use crate::audit::ChainKey;

/// Where a request for approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Approved,
    Rejected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "approved" => Status::Approved,
            "rejected" => Status::Rejected,
            _ => Status::Pending,
        }
    }
}

/// One request for approval.
#[derive(Debug, Clone)]
pub struct Approval {
    pub id: String,
    pub agent: String,
    pub tool: String,
    /// What the call does, in words ("delete DNS record … on example.com").
    pub summary: String,
    /// The call's preview (JSON): its request and what it would change.
    pub preview: String,
    pub requested_ms: i64,
    pub expires_ms: i64,
    pub status: Status,
    pub decided_by: Option<String>,
    pub decided_ms: Option<i64>,
    pub used: bool,
    /// Whether the audit chain has the decision.
    pub recorded: bool,
    digest: String,
}

/// A time the approvals keep (milliseconds since the epoch), as RFC 3339.
pub fn time_of(ms: i64) -> humantime::Rfc3339Timestamp {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
    )
}

/// The rule every audit row of approval `id`'s story carries (the request,
/// the decision, the call), so `flaregate audit --approval ID` finds them.
pub fn rule_of(id: &str) -> String {
    format!("approval {id}")
}

/// Why an approval id does not let a call through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("there is no approval with this id")]
    Unknown,
    #[error("it was given for another agent, tool or arguments: approve this exact call")]
    Mismatch,
    #[error("it is still waiting for a person to approve it")]
    Pending,
    #[error("{0} rejected it")]
    Rejected(String),
    #[error("it expired")]
    Expired,
    #[error("it was used already: an approval lets one call through")]
    Used,
    #[error("the approvals cannot be read: {0}")]
    Store(String),
}

/// The approvals kept in one audit database.
#[derive(Debug, Clone)]
pub struct Approvals {
    db: PathBuf,
}

impl Approvals {
    /// The approvals of the audit database at `db`.
    pub fn new(db: &Path) -> Self {
        Self {
            db: db.to_path_buf(),
        }
    }

    /// The database, brought to the current schema (the command line may
    /// run before a new server ever opened it).
    fn connect(&self) -> rusqlite::Result<Connection> {
        crate::audit::open_database(&self.db)
    }

    /// Records a request for approval of `agent` calling `tool` with
    /// `args`; returns its id.
    pub fn request(
        &self,
        key: &ChainKey,
        (agent, tool, args): (&str, &str, &Map<String, Value>),
        (summary, preview): (&str, &str),
        now_ms: i64,
        ttl_ms: i64,
    ) -> rusqlite::Result<String> {
        let id = format!("{:032x}", u128::from_le_bytes(random_bytes()));
        self.connect()?.execute(
            "INSERT INTO approvals (id, agent, tool, digest, summary, preview, requested_ms, expires_ms, status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending')",
            params![id, agent, tool, digest(key, agent, tool, args), summary, preview, now_ms, now_ms + ttl_ms],
        )?;
        Ok(id)
    }

    /// Every approval still waiting, oldest first (expired ones left out).
    pub fn pending(&self, now_ms: i64) -> rusqlite::Result<Vec<Approval>> {
        let connection = self.connect()?;
        let mut statement = connection.prepare(
            "SELECT * FROM approvals WHERE status = 'pending' AND expires_ms > ?1 ORDER BY requested_ms",
        )?;
        let rows = statement.query_map([now_ms], approval)?;
        rows.collect()
    }

    /// Approves or rejects a pending, unexpired request.
    pub fn decide(
        &self,
        id: &str,
        approve: bool,
        by: &str,
        now_ms: i64,
    ) -> Result<Approval, String> {
        let connection = self.connect().map_err(|e| e.to_string())?;
        let status = if approve { "approved" } else { "rejected" };
        let changed = connection
            .execute(
                "UPDATE approvals SET status = ?1, decided_by = ?2, decided_ms = ?3
                 WHERE id = ?4 AND status = 'pending' AND expires_ms > ?3",
                params![status, by, now_ms, id],
            )
            .map_err(|e| e.to_string())?;
        let found = find(&connection, id).map_err(|e| e.to_string())?;
        match (changed, found) {
            (1, Some(approval)) => Ok(approval),
            (_, None) => Err(format!("there is no approval {id}")),
            (_, Some(a)) if a.expires_ms <= now_ms => Err(format!("approval {id} expired")),
            (_, Some(a)) => Err(format!("approval {id} is {} already", a.status.as_str())),
        }
    }

    /// The answer of the person at the client to request `id`, which must
    /// be pending, unexpired and for this agent, tool and arguments: an
    /// approval is used at once by the call that asked (the call's own
    /// audit row records the answer, so it is marked recorded).
    pub fn answer(
        &self,
        key: &ChainKey,
        id: &str,
        binding: (&str, &str, &Map<String, Value>),
        approve: bool,
        (by, now_ms): (&str, i64),
    ) -> Result<Approval, Refused> {
        let store = |e: rusqlite::Error| Refused::Store(e.to_string());
        let connection = self.connect().map_err(store)?;
        let approval = bound(&connection, key, id, binding)?;
        match approval.status {
            Status::Pending if approval.expires_ms <= now_ms => return Err(Refused::Expired),
            Status::Pending => {}
            Status::Approved => return Err(Refused::Used),
            Status::Rejected => {
                return Err(Refused::Rejected(
                    approval.decided_by.clone().unwrap_or_default(),
                ));
            }
        }
        let (status, used) = if approve {
            ("approved", Some(now_ms))
        } else {
            ("rejected", None)
        };
        let changed = connection
            .execute(
                "UPDATE approvals SET status = ?1, decided_by = ?2, decided_ms = ?3, used_ms = ?4, recorded = 1
                 WHERE id = ?5 AND status = 'pending'",
                params![status, by, now_ms, used, id],
            )
            .map_err(store)?;
        if changed != 1 {
            return Err(Refused::Used);
        }
        find(&connection, id)
            .map_err(store)?
            .ok_or(Refused::Unknown)
    }

    /// Decisions made on the host that the audit chain does not have yet,
    /// oldest first.
    pub fn unrecorded(&self) -> rusqlite::Result<Vec<Approval>> {
        let connection = self.connect()?;
        let mut statement = connection.prepare(
            "SELECT * FROM approvals WHERE recorded = 0 AND decided_ms IS NOT NULL
             ORDER BY decided_ms LIMIT 100",
        )?;
        let rows = statement.query_map([], approval)?;
        rows.collect()
    }

    /// Notes that the chain has request `id`'s decision.
    pub fn mark_recorded(&self, id: &str) -> rusqlite::Result<()> {
        self.connect()?
            .execute("UPDATE approvals SET recorded = 1 WHERE id = ?1", [id])
            .map(|_| ())
    }

    /// The request `id`, whatever its state.
    pub fn get(&self, id: &str) -> rusqlite::Result<Option<Approval>> {
        find(&self.connect()?, id)
    }

    /// Lets one call through on approval `id`, if it was approved for this
    /// agent, tool and these exact arguments, has not expired and was not
    /// used: it is marked used in the same step.
    pub fn redeem(
        &self,
        key: &ChainKey,
        id: &str,
        (agent, tool, args): (&str, &str, &Map<String, Value>),
        now_ms: i64,
    ) -> Result<Approval, Refused> {
        let store = |e: rusqlite::Error| Refused::Store(e.to_string());
        let connection = self.connect().map_err(store)?;
        let approval = bound(&connection, key, id, (agent, tool, args))?;
        match approval.status {
            Status::Pending if approval.expires_ms <= now_ms => return Err(Refused::Expired),
            Status::Pending => return Err(Refused::Pending),
            Status::Rejected => {
                return Err(Refused::Rejected(
                    approval.decided_by.clone().unwrap_or_default(),
                ));
            }
            Status::Approved => {}
        }
        if approval.used {
            return Err(Refused::Used);
        }
        if approval.expires_ms <= now_ms {
            return Err(Refused::Expired);
        }
        let taken = connection
            .execute(
                "UPDATE approvals SET used_ms = ?1 WHERE id = ?2 AND used_ms IS NULL",
                params![now_ms, id],
            )
            .map_err(store)?;
        if taken != 1 {
            return Err(Refused::Used);
        }
        Ok(approval)
    }
}

/// Request `id`, if it was made for this agent, tool and arguments.
fn bound(
    connection: &Connection,
    key: &ChainKey,
    id: &str,
    (agent, tool, args): (&str, &str, &Map<String, Value>),
) -> Result<Approval, Refused> {
    let approval = find(connection, id)
        .map_err(|e| Refused::Store(e.to_string()))?
        .ok_or(Refused::Unknown)?;
    let expected = digest(key, agent, tool, args);
    let same_call = approval.agent == agent && approval.tool == tool;
    if !same_call || !constant_time_eq(approval.digest.as_bytes(), expected.as_bytes()) {
        return Err(Refused::Mismatch);
    }
    Ok(approval)
}

/// The arguments' binding: HMAC of the agent, the tool and the arguments
/// as canonical JSON (keys sorted).
fn digest(key: &ChainKey, agent: &str, tool: &str, args: &Map<String, Value>) -> String {
    let canonical = serde_json::to_string(args).expect("JSON values always serialise");
    key.mac(&[
        b"approval\0",
        agent.as_bytes(),
        b"\0",
        tool.as_bytes(),
        b"\0",
        canonical.as_bytes(),
    ])
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS has randomness");
    bytes
}

fn find(connection: &Connection, id: &str) -> rusqlite::Result<Option<Approval>> {
    connection
        .query_row("SELECT * FROM approvals WHERE id = ?1", [id], approval)
        .optional()
}

fn approval(row: &rusqlite::Row<'_>) -> rusqlite::Result<Approval> {
    Ok(Approval {
        id: row.get("id")?,
        agent: row.get("agent")?,
        tool: row.get("tool")?,
        digest: row.get("digest")?,
        summary: row.get("summary")?,
        preview: row.get("preview")?,
        requested_ms: row.get("requested_ms")?,
        expires_ms: row.get("expires_ms")?,
        status: Status::parse(&row.get::<_, String>("status")?),
        decided_by: row.get("decided_by")?,
        decided_ms: row.get("decided_ms")?,
        used: row.get::<_, Option<i64>>("used_ms")?.is_some(),
        recorded: row.get::<_, i64>("recorded")? != 0,
    })
}
