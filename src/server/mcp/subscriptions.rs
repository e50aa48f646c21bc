//! Sessions subscribed to their alerts (`resources/subscribe` on
//! `flaregate://alerts`): each subscription is a task that hears of every
//! new alert and tells its session's peer of those the agent may see
//! (`notifications/resources/updated`); unsubscribing, or the session
//! going away, ends it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rmcp::{Peer, RoleServer};
use tokio::task::AbortHandle;

use crate::server::Gateway;

/// The live subscriptions, by session and URI.
#[derive(Clone, Default)]
pub(super) struct Subscriptions(Arc<Mutex<HashMap<(String, String), AbortHandle>>>);

impl Subscriptions {
    /// Tells `peer` of each new alert `agent` may see, until unsubscribed.
    pub(super) fn subscribe(
        &self,
        gateway: Arc<Gateway>,
        (session, agent): (String, String),
        uri: String,
        peer: Peer<RoleServer>,
    ) {
        let mut feed = gateway.alerts().listen();
        let told = uri.clone();
        let task = tokio::spawn(async move {
            loop {
                let row = match feed.recv().await {
                    Ok(row) => row,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                if peer.is_transport_closed() {
                    return;
                }
                let policy = gateway.engine().policy();
                let Some(agent) = policy.agent(&agent) else {
                    continue;
                };
                if super::alerts::sees(&gateway, agent, row).await
                    && let Err(error) = peer
                        .notify_resource_updated(
                            rmcp::model::ResourceUpdatedNotificationParam::new(told.clone()),
                        )
                        .await
                {
                    tracing::debug!(%error, "a subscribed client went away");
                    return;
                }
            }
        });
        let previous = self.map().insert((session, uri), task.abort_handle());
        if let Some(previous) = previous {
            previous.abort();
        }
    }

    pub(super) fn unsubscribe(&self, session: String, uri: String) {
        if let Some(task) = self.map().remove(&(session, uri)) {
            task.abort();
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), AbortHandle>> {
        self.0
            .lock()
            .expect("the subscriptions' lock is never poisoned")
    }
}
