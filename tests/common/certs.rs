//! Certificates for the TLS tests: a throw-away CA and a server
//! certificate it signs for `127.0.0.1` and `localhost`, written as PEM.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// A CA's certificate and the server certificate and key it signed, as
/// files in `dir`.
pub struct Certs {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Certs {
    /// A new CA (`<name>-ca.pem`) and a server certificate for loopback
    /// (`<name>.pem`, `<name>.key`).
    pub fn new(dir: &Path, name: &str) -> Self {
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("the CA signs itself");
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("a server key");
        let params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("server params");
        let cert = params.signed_by(&key, &issuer).expect("the CA signs");
        let certs = Self {
            ca: dir.join(format!("{name}-ca.pem")),
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&certs.ca, ca_cert.pem()).expect("write the CA");
        std::fs::write(&certs.cert, cert.pem()).expect("write the certificate");
        std::fs::write(&certs.key, key.serialize_pem()).expect("write the key");
        certs
    }
}
