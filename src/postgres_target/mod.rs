//! How flaregate reaches a PostgreSQL server: the URL as libpq reads it,
//! with TLS (`sslmode`, `sslrootcert`) and the password from a file
//! (`passfile`, else `PGPASSFILE`) so no secret need sit in the
//! configuration. The audit store, the approvals and the shared limits all
//! connect through here.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

mod passfile;

use passfile::password_from;

/// libpq's `sslmode`, with its meaning: whether TLS is used, and what of
/// the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, the certificate not checked (libpq's default).
    Prefer,
    /// TLS always; the certificate not checked (encryption only).
    Require,
    /// TLS always; the certificate chains to a trusted root.
    VerifyCa,
    /// TLS always; the certificate chains to a trusted root and names the host.
    VerifyFull,
}

impl TlsMode {
    fn parse(value: &str) -> Result<Self, TargetError> {
        Ok(match value {
            "disable" => TlsMode::Disable,
            "prefer" => TlsMode::Prefer,
            "require" => TlsMode::Require,
            "verify-ca" => TlsMode::VerifyCa,
            "verify-full" => TlsMode::VerifyFull,
            other => return Err(TargetError::SslMode(other.to_string())),
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }

    fn verifies(self) -> bool {
        matches!(self, TlsMode::VerifyCa | TlsMode::VerifyFull)
    }
}

/// A PostgreSQL server to connect to, read from its URL once.
#[derive(Clone)]
pub struct PostgresTarget {
    config: tokio_postgres::Config,
    tls: Option<MakeRustlsConnect>,
    mode: TlsMode,
}

impl std::fmt::Debug for PostgresTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresTarget")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Why a PostgreSQL URL cannot be used: each names the parameter or file
/// at fault, never the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("sslmode `{0}` is not one of disable, prefer, require, verify-ca, verify-full")]
    SslMode(String),
    #[error("the PostgreSQL URL {url}: {message}")]
    Url { url: String, message: String },
    #[error(
        "sslrootcert is given but sslmode is {0}: the certificate is checked only with sslmode=verify-full, verify-ca or require"
    )]
    RootWithoutVerify(&'static str),
    #[error(
        "sslmode=verify-full: the system has no trusted root certificates; give the server's CA as sslrootcert=/path/ca.pem"
    )]
    NoSystemRoots,
    #[error("sslrootcert {path}: {message}")]
    RootCert { path: String, message: String },
    #[error("the trusted roots: {0}")]
    Roots(String),
    #[error("passfile {path}: {message}")]
    PassFile { path: String, message: String },
    #[error("passfile {0} can be read by other users: `chmod 600 {0}`")]
    PassFileShared(String),
}

impl PostgresTarget {
    /// Reads `url` (`postgres://user@host:port/db?sslmode=verify-full&…`):
    /// flaregate's own parameters (`sslmode`, `sslrootcert`, `passfile`)
    /// are taken out, the rest is read by the PostgreSQL client. A bad
    /// parameter, an unreadable CA or password file is an error naming it.
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        let (mut mode, mut root, mut passfile) = (TlsMode::Prefer, None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned();
            match key {
                "sslmode" => mode = TlsMode::parse(&decoded)?,
                "sslrootcert" => root = Some(decoded),
                "passfile" => passfile = Some(PathBuf::from(decoded)),
                _ => kept.push(pair),
            }
        }
        let url = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config: tokio_postgres::Config =
            url.parse()
                .map_err(|e: tokio_postgres::Error| TargetError::Url {
                    url: shown(&url),
                    message: e.to_string(),
                })?;
        config.connect_timeout(Duration::from_secs(5));
        config.application_name("flaregate");
        if config.get_password().is_none() {
            let file = passfile.or_else(|| std::env::var_os("PGPASSFILE").map(PathBuf::from));
            if let Some(file) = file
                && let Some(password) = password_from(&file, &config)?
            {
                config.password(password);
            }
        }
        // As libpq: `require` with a CA file checks the chain (verify-ca).
        if root.is_some() && mode == TlsMode::Require {
            mode = TlsMode::VerifyCa;
        }
        if root.is_some() && !mode.verifies() {
            return Err(TargetError::RootWithoutVerify(mode.as_str()));
        }
        config.ssl_mode(match mode {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        });
        let tls = match mode {
            TlsMode::Disable => None,
            TlsMode::Prefer | TlsMode::Require => Some(unverified()),
            TlsMode::VerifyCa | TlsMode::VerifyFull => {
                let roots = roots(root.as_deref())?;
                Some(verified(roots, mode == TlsMode::VerifyFull)?)
            }
        };
        Ok(Self { config, tls, mode })
    }

    /// The TLS mode the URL asked for.
    pub fn mode(&self) -> TlsMode {
        self.mode
    }

    /// A blocking connection (the audit writer's thread, the command line).
    pub fn connect_blocking(&self) -> Result<postgres::Client, postgres::Error> {
        let config = postgres::Config::from(self.config.clone());
        match &self.tls {
            Some(tls) => config.connect(tls.clone()),
            None => config.connect(tokio_postgres::NoTls),
        }
    }

    /// An async connection; its I/O runs on a task of its own until it ends.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        match &self.tls {
            Some(tls) => {
                let (client, connection) = self.config.connect(tls.clone()).await?;
                drive(connection);
                Ok(client)
            }
            None => {
                let (client, connection) = self.config.connect(tokio_postgres::NoTls).await?;
                drive(connection);
                Ok(client)
            }
        }
    }
}

/// A client error with its causes ("error performing TLS handshake:
/// invalid peer certificate: UnknownIssuer"), or the server's message.
pub fn explain(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return db.message().to_string();
    }
    let mut said = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        let text = inner.to_string();
        if !said.contains(&text) {
            said = format!("{said}: {text}");
        }
        cause = inner.source();
    }
    said
}

/// Runs a connection's I/O until it ends.
fn drive(
    connection: impl std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
) {
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "a PostgreSQL connection ended");
        }
    });
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

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The roots a `verify-*` connection trusts: the CA file given, or the
/// system's (also `sslrootcert=system`, as libpq 16 spells it).
fn roots(file: Option<&str>) -> Result<RootCertStore, TargetError> {
    let mut roots = RootCertStore::empty();
    match file {
        None | Some("system") => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(TargetError::NoSystemRoots);
            }
        }
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| TargetError::RootCert {
                    path: path.to_string(),
                    message: e.to_string(),
                })?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(TargetError::RootCert {
                    path: path.to_string(),
                    message: "no certificate in it".into(),
                });
            }
        }
    }
    Ok(roots)
}

fn verified(roots: RootCertStore, check_name: bool) -> Result<MakeRustlsConnect, TargetError> {
    let webpki =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| TargetError::Roots(e.to_string()))?;
    let config = builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Verify { webpki, check_name }))
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

fn unverified() -> MakeRustlsConnect {
    let config = builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Encrypted(provider())))
        .with_no_client_auth();
    MakeRustlsConnect::new(config)
}

fn builder() -> rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
}

/// `verify-ca` and `verify-full`: the chain is checked; the name only for
/// `verify-full`.
#[derive(Debug)]
struct Verify {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    check_name: bool,
}

impl ServerCertVerifier for Verify {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// `prefer` and `require`, as libpq: the session is encrypted, the
/// certificate taken as offered (the handshake's signatures still checked).
#[derive(Debug)]
struct Encrypted(Arc<CryptoProvider>);

impl ServerCertVerifier for Encrypted {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passfile(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("temp");
        std::fs::write(file.path(), text).expect("write");
        file
    }

    #[test]
    fn the_password_comes_from_the_line_matching_host_port_database_and_user() {
        let file = passfile(
            "# comment\nother:5432:*:flaregate:wrong\ndb.internal:5433:audit:flaregate:s3cr\\:et\n",
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o600))
                .expect("chmod");
        }
        let url = format!(
            "postgres://flaregate@db.internal:5433/audit?passfile={}&sslmode=disable",
            file.path().display()
        );
        let target = PostgresTarget::parse(&url).expect("parses");
        assert_eq!(target.config.get_password(), Some(&b"s3cr:et"[..]));
        assert_eq!(target.mode(), TlsMode::Disable);
    }

    #[cfg(unix)]
    #[test]
    fn a_passfile_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let file = passfile("*:*:*:*:pw\n");
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        let url = format!("postgres://u@h/db?passfile={}", file.path().display());
        let error = PostgresTarget::parse(&url).expect_err("refused");
        assert!(matches!(error, TargetError::PassFileShared(_)), "{error}");
        assert!(error.to_string().contains("chmod 600"), "{error}");
    }

    #[test]
    fn bad_tls_settings_are_named() {
        let error = PostgresTarget::parse("postgres://u@h/db?sslmode=strict").expect_err("bad");
        assert_eq!(error, TargetError::SslMode("strict".into()));
        let error =
            PostgresTarget::parse("postgres://u@h/db?sslmode=verify-full&sslrootcert=/nope")
                .expect_err("no CA file");
        assert!(
            matches!(&error, TargetError::RootCert { path, .. } if path == "/nope"),
            "{error}"
        );
        let error = PostgresTarget::parse("postgres://u@h/db?sslmode=prefer&sslrootcert=/x")
            .expect_err("a CA without verification");
        assert_eq!(error, TargetError::RootWithoutVerify("prefer"));
        let plain = PostgresTarget::parse("postgres://u:pw@h/db").expect("parses");
        assert_eq!(plain.mode(), TlsMode::Prefer);
    }
}
