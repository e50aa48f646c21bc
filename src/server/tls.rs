//! TLS on flaregate's own listeners (`[http] tls_cert`, `tls_key`), so
//! agent keys never cross the network in clear. The certificate and key
//! are read at start (an unreadable pair stops the start) and again when
//! either file changes — a renewed certificate is served without a
//! restart; a broken one is logged and the one in use kept.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// How often the files are checked for a change.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections handshaken and not yet taken by the server.
const BACKLOG: usize = 128;

pub use crate::config::TlsFiles;

/// Reading the files, here with the rest of TLS; the configuration only
/// names them.
impl TlsFiles {
    /// A server configuration from the files, or an error naming the file
    /// at fault.
    pub fn load(&self) -> Result<ServerConfig, String> {
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("tls_cert {}: {e}", self.cert.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "tls_cert {}: no certificate in it",
                self.cert.display()
            ));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| format!("tls_key {}: {e}", self.key.display()))?;
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .map_err(|e| {
                    format!(
                        "tls_cert {} and tls_key {}: {e}",
                        self.cert.display(),
                        self.key.display()
                    )
                })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    fn stamp(&self) -> Option<(SystemTime, SystemTime)> {
        let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
        Some((modified(&self.cert)?, modified(&self.key)?))
    }
}

/// A listener whose connections are TLS sessions: handshakes run on tasks
/// of their own (a slow client holds up no one), then are handed to the
/// HTTP server.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Serves TLS on `listener` with `files` until `shutdown`; fails when
    /// the files do not make a usable certificate.
    pub fn start(
        listener: TcpListener,
        files: TlsFiles,
        shutdown: CancellationToken,
    ) -> Result<Self, String> {
        let config = Arc::new(ArcSwap::from_pointee(files.load()?));
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        let (sender, ready) = mpsc::channel(BACKLOG);
        tokio::spawn(watch(files, config.clone(), shutdown.clone()));
        tokio::spawn(accept(listener, config, sender, shutdown));
        Ok(Self { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // Shut down: the server stops on its own signal meanwhile.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

async fn accept(
    listener: TcpListener,
    config: Arc<ArcSwap<ServerConfig>>,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    shutdown: CancellationToken,
) {
    loop {
        let (mut stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::debug!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        crate::net::no_delay(&mut stream);
        let acceptor = TlsAcceptor::from(config.load_full());
        let ready = ready.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(session)) => {
                    let _ = ready.send((session, peer)).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// Loads the files again whenever either changes; keeps the configuration
/// in use when the new files are not usable (yet: a renewal may write the
/// certificate before the key).
async fn watch(files: TlsFiles, config: Arc<ArcSwap<ServerConfig>>, shutdown: CancellationToken) {
    let mut seen = files.stamp();
    let mut tick = tokio::time::interval(WATCH_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = files.stamp();
        if now == seen {
            continue;
        }
        seen = now;
        match files.load() {
            Ok(loaded) => {
                config.store(Arc::new(loaded));
                tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded");
            }
            Err(error) => {
                tracing::warn!(%error, "the TLS files changed but cannot be used; serving the certificate loaded before");
            }
        }
    }
}
