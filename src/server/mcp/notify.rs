//! Telling connected clients that their tool list changed (after a policy
//! reload): stdio and session peers get notifications/tools/list_changed;
//! 2026-07-28 `subscriptions/listen` streams are woken through a broadcast.

use std::sync::Mutex;

use rmcp::{Peer, RoleServer};
use tokio::sync::broadcast;

#[derive(Debug)]
pub(crate) struct Notifier {
    peers: Mutex<Vec<Peer<RoleServer>>>,
    changed: broadcast::Sender<()>,
}

impl Default for Notifier {
    fn default() -> Self {
        Self {
            peers: Mutex::new(Vec::new()),
            changed: broadcast::channel(16).0,
        }
    }
}

impl Notifier {
    pub(crate) fn register(&self, peer: Peer<RoleServer>) {
        let mut peers = self.peers.lock().expect("peer list lock is never poisoned");
        peers.retain(|p| !p.is_transport_closed());
        peers.push(peer);
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<()> {
        self.changed.subscribe()
    }

    /// Sends tools/list_changed to every live client.
    pub(crate) async fn tools_changed(&self) {
        let peers: Vec<Peer<RoleServer>> = {
            let mut peers = self.peers.lock().expect("peer list lock is never poisoned");
            peers.retain(|p| !p.is_transport_closed());
            peers.clone()
        };
        for peer in peers {
            if let Err(error) = peer.notify_tool_list_changed().await {
                tracing::debug!(%error, "a client went away before hearing of the new tools");
            }
        }
        let _ = self.changed.send(());
    }
}
