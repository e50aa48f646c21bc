//! Which agent opened each HTTP session, and with what token scopes it
//! last came: a session is used only by the agent that opened it, and a
//! request whose scopes changed since (a step-up, or a narrower token) is
//! marked so the handler tells the client its tool list changed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;

use super::Caller;
use crate::oauth::TokenAccess;

/// A request extension: this session's token scopes changed since its
/// last request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScopesChanged;

/// What a request's session says of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen {
    /// Another agent's session, or none flaregate knows.
    Foreign,
    Same,
    /// The agent's own, now with other scopes.
    ScopesChanged,
}

struct Owner {
    agent: String,
    scopes: TokenAccess,
}

/// The sessions of one HTTP listener.
pub(super) struct Sessions {
    owners: Mutex<HashMap<String, Owner>>,
    /// rmcp's live sessions: owners of sessions it has closed (idle, or
    /// gone) are forgotten when the next one opens.
    live: Arc<LocalSessionManager>,
}

impl Sessions {
    pub(super) fn new(live: Arc<LocalSessionManager>) -> Self {
        Self {
            owners: Mutex::new(HashMap::new()),
            live,
        }
    }

    /// What session `id` says of `caller` (an unknown id is no one's: a
    /// live session is in the map before its id is sent); a change of
    /// scopes is remembered.
    pub(super) fn check(&self, id: &str, caller: &Caller) -> Seen {
        let mut owners = self.lock();
        match owners.get_mut(id) {
            Some(owner) if owner.agent != caller.agent => Seen::Foreign,
            Some(owner) if owner.scopes != caller.scopes => {
                owner.scopes = caller.scopes.clone();
                Seen::ScopesChanged
            }
            Some(_) => Seen::Same,
            None => Seen::Foreign,
        }
    }

    /// Remembers who opened the session a response named when the request
    /// named none (dropping ended ones), and forgets one a DELETE closed.
    pub(super) async fn note(
        &self,
        sent: Option<String>,
        answered: Option<String>,
        closed: bool,
        caller: &Caller,
    ) {
        if let Some(opened) = answered.filter(|_| sent.is_none()) {
            let live = self.live.sessions.read().await;
            let mut owners = self.lock();
            owners.retain(|id, _| live.contains_key(id.as_str()));
            let owner = Owner {
                agent: caller.agent.clone(),
                scopes: caller.scopes.clone(),
            };
            owners.insert(opened, owner);
        } else if let Some(closed) = sent.filter(|_| closed) {
            self.lock().remove(&closed);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Owner>> {
        self.owners
            .lock()
            .expect("session map lock is never poisoned")
    }
}
