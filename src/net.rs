//! Socket settings shared by flaregate's HTTP listeners.

use tokio::net::TcpStream;

/// Sends each write at once. MCP answers and SSE events are small writes;
/// with Nagle's algorithm the end of a stream waits for the client's
/// delayed ACK, about 40 ms, on every call.
pub fn no_delay(stream: &mut TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
    }
}
