//! Requests for a person's approval and their answers. A call the policy
//! says a person must approve is held: the person at the client answers
//! it at once (elicitation), or the operator decides it on the host
//! (`flaregate approve ID` / `reject ID`) and the agent repeats the same
//! call with that id. An approval is bound to the agent, the tool and a
//! digest of the exact arguments, keyed with the audit key (HMAC: no
//! agent can compute one), expires, and is used once. Kept in the audit
//! database, so the server and the command line share it; the server
//! writes each decision made on the host into the chain.

use serde_json::{Map, Value};

use crate::audit::ChainKey;
pub use crate::audit::approvals::{Approval, Status, StoreFailed};
use crate::audit::approvals::{NewRequest, Session, Table};

/// A time the approvals keep (milliseconds since the epoch), as RFC 3339.
pub fn time_of(ms: i64) -> humantime::Rfc3339Timestamp {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
    )
}

pub use crate::audit::approval_rule as rule_of;

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
    #[error("it is {0} already")]
    Decided(&'static str),
    #[error("the approvals cannot be read: {0}")]
    Store(StoreFailed),
}

/// The approvals kept in one audit database (a SQLite file, or the
/// PostgreSQL database several instances share).
#[derive(Debug, Clone)]
pub struct Approvals {
    store: Table,
}

impl Approvals {
    /// The approvals of the audit database at `db`.
    pub fn new(db: &crate::audit::Database) -> Self {
        Self {
            store: Table::new(db),
        }
    }

    /// Records a request for approval of `agent` calling `tool` with
    /// `args`; returns its id. The same call asked again while its request
    /// waits gets that request's id: a retry does not make another.
    pub fn request(
        &self,
        key: &ChainKey,
        (agent, tool, args): (&str, &str, &Map<String, Value>),
        (summary, preview, asked_by): (&str, &str, Option<&str>),
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<String, StoreFailed> {
        let digest = digest(key, agent, tool, args);
        self.store.with(|db| {
            if let Some(waiting) = db.waiting((agent, tool, &digest), now_ms)? {
                return Ok(waiting.id);
            }
            let id = format!("{:032x}", u128::from_le_bytes(random_bytes()));
            db.insert(&NewRequest {
                id: &id,
                agent,
                tool,
                digest: &digest,
                summary,
                preview,
                requested_ms: now_ms,
                expires_ms: now_ms + ttl_ms,
                asked_by,
            })?;
            Ok(id)
        })
    }

    /// Every approval still waiting, oldest first (expired ones left out).
    pub fn pending(&self, now_ms: i64) -> Result<Vec<Approval>, StoreFailed> {
        self.store.with(|db| db.pending(now_ms))
    }

    /// Approves or rejects a pending, unexpired request.
    /// `note` is what the person says of it, kept with the decision.
    pub fn decide(
        &self,
        id: &str,
        approve: bool,
        (by, note): (&str, Option<&str>),
        now_ms: i64,
    ) -> Result<Approval, Refused> {
        let status = if approve {
            Status::Approved
        } else {
            Status::Rejected
        };
        let (decided, found) = self
            .store
            .with(|db| Ok((db.decide(id, status, (by, note), now_ms)?, db.find(id)?)))
            .map_err(Refused::Store)?;
        match (decided, found) {
            (true, Some(approval)) => Ok(approval),
            (_, None) => Err(Refused::Unknown),
            (_, Some(a)) if a.expires_ms <= now_ms => Err(Refused::Expired),
            (_, Some(a)) => Err(Refused::Decided(a.status.as_str())),
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
        let answered = self.store.with(|db| {
            let approval = match bound(db, key, id, binding)? {
                Ok(approval) => approval,
                Err(refused) => return Ok(Err(refused)),
            };
            match approval.status {
                Status::Pending if approval.expires_ms <= now_ms => {
                    return Ok(Err(Refused::Expired));
                }
                Status::Pending => {}
                Status::Approved => return Ok(Err(Refused::Used)),
                Status::Rejected => {
                    let by = approval.decided_by.clone().unwrap_or_default();
                    return Ok(Err(Refused::Rejected(by)));
                }
            }
            let status = if approve {
                Status::Approved
            } else {
                Status::Rejected
            };
            if !db.answer(id, status, by, now_ms)? {
                return Ok(Err(Refused::Used));
            }
            Ok(db.find(id)?.ok_or(Refused::Unknown))
        });
        answered.map_err(Refused::Store)?
    }

    /// The `limit` requests decided last, newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<Approval>, StoreFailed> {
        self.store.with(|db| db.recent(limit))
    }

    /// Decisions made on the host that the audit chain does not have yet,
    /// oldest first.
    pub fn unrecorded(&self) -> Result<Vec<Approval>, StoreFailed> {
        self.store.with(Session::unrecorded)
    }

    /// Takes request `id`'s decision for the chain: false if another
    /// instance took it first (several write one PostgreSQL log).
    pub fn claim(&self, id: &str) -> Result<bool, StoreFailed> {
        self.store.with(|db| db.mark_recorded(id, true))
    }

    /// Gives back a claim whose row could not be written.
    pub fn unclaim(&self, id: &str) -> Result<(), StoreFailed> {
        self.store.with(|db| db.mark_recorded(id, false).map(drop))
    }

    /// The request `id`, whatever its state.
    pub fn get(&self, id: &str) -> Result<Option<Approval>, StoreFailed> {
        self.store.with(|db| db.find(id))
    }

    /// Lets one call through on approval `id`, if it was approved for this
    /// agent, tool and these exact arguments, has not expired and was not
    /// used: it is marked used in the same step.
    pub fn redeem(
        &self,
        key: &ChainKey,
        id: &str,
        binding: (&str, &str, &Map<String, Value>),
        now_ms: i64,
    ) -> Result<Approval, Refused> {
        let redeemed = self.store.with(|db| {
            let approval = match bound(db, key, id, binding)? {
                Ok(approval) => approval,
                Err(refused) => return Ok(Err(refused)),
            };
            let refused = match approval.status {
                Status::Pending if approval.expires_ms <= now_ms => Some(Refused::Expired),
                Status::Pending => Some(Refused::Pending),
                Status::Rejected => Some(Refused::Rejected(
                    approval.decided_by.clone().unwrap_or_default(),
                )),
                Status::Approved if approval.used => Some(Refused::Used),
                Status::Approved if approval.expires_ms <= now_ms => Some(Refused::Expired),
                Status::Approved => None,
            };
            if let Some(refused) = refused {
                return Ok(Err(refused));
            }
            Ok(if db.take(id, now_ms)? {
                Ok(approval)
            } else {
                Err(Refused::Used)
            })
        });
        redeemed.map_err(Refused::Store)?
    }
}

/// Request `id`, if it was made for this agent, tool and arguments.
fn bound(
    db: &mut Session,
    key: &ChainKey,
    id: &str,
    (agent, tool, args): (&str, &str, &Map<String, Value>),
) -> Result<Result<Approval, Refused>, StoreFailed> {
    let Some(approval) = db.find(id)? else {
        return Ok(Err(Refused::Unknown));
    };
    let expected = digest(key, agent, tool, args);
    let same_call = approval.agent == agent && approval.tool == tool;
    if !same_call || !constant_time_eq(approval.digest.as_bytes(), expected.as_bytes()) {
        return Ok(Err(Refused::Mismatch));
    }
    Ok(Ok(approval))
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
