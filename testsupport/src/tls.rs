//! A self-signed certificate for TLS tests (`wss://`).

use std::path::PathBuf;

/// A self-signed certificate for `localhost` and `127.0.0.1`, as PEM files
/// in a temporary directory removed on drop. Clients trust it by loading
/// [`SelfSigned::cert`] as their root.
pub struct SelfSigned {
    _dir: tempfile::TempDir,
    /// The certificate, PEM.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
}

impl SelfSigned {
    /// Generates a fresh certificate and key.
    pub fn new() -> SelfSigned {
        let certified = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .expect("generate a certificate");
        let dir = tempfile::Builder::new()
            .prefix("specwire-tls-")
            .tempdir()
            .expect("make a temporary directory");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, certified.cert.pem()).expect("write cert.pem");
        std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key.pem");
        SelfSigned {
            _dir: dir,
            cert,
            key,
        }
    }
}

impl Default for SelfSigned {
    fn default() -> Self {
        SelfSigned::new()
    }
}
