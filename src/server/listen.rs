//! Where flaregate's HTTP listeners (MCP and admin) take connections:
//! plain TCP, or TLS when `[http] tls_cert` and `tls_key` are set.

use std::net::SocketAddr;

use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::tls::{TlsFiles, TlsListener};

/// A bound listener, plain or TLS.
pub enum Listening {
    Plain(TcpListener),
    Tls(TlsListener),
}

impl Listening {
    /// Binds `addr`; with `tls`, serves TLS from those files. The error
    /// says what could not be listened on or loaded.
    pub async fn bind(
        addr: SocketAddr,
        tls: Option<&TlsFiles>,
        what: &str,
        shutdown: &CancellationToken,
    ) -> Result<Self, String> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr} for {what}: {e}"))?;
        Ok(match tls {
            Some(files) => Listening::Tls(TlsListener::start(
                listener,
                files.clone(),
                shutdown.clone(),
            )?),
            None => Listening::Plain(listener),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        use axum::serve::Listener;
        match self {
            Listening::Plain(listener) => listener.local_addr(),
            Listening::Tls(listener) => listener.local_addr(),
        }
        .expect("a bound listener has an address")
    }

    /// `http://` or `https://`, the address and `path`.
    pub fn url(&self, path: &str) -> String {
        let scheme = match self {
            Listening::Plain(_) => "http",
            Listening::Tls(_) => "https",
        };
        format!("{scheme}://{}{path}", self.local_addr())
    }

    /// Serves `app` until `shutdown` is cancelled.
    pub async fn serve(self, app: Router, shutdown: CancellationToken) -> std::io::Result<()> {
        match self {
            Listening::Plain(listener) => {
                axum::serve(listener.tap_io(crate::net::no_delay), app)
                    .with_graceful_shutdown(shutdown.cancelled_owned())
                    .await
            }
            Listening::Tls(listener) => {
                axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown.cancelled_owned())
                    .await
            }
        }
    }
}
