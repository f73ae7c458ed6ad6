//! `[server.tls]`: the PEM certificate chain and private key, read into a
//! rustls server config (aws-lc-rs provider, ALPN h2 and http/1.1). Done
//! while validating, so a bad file is a config error at start and a reload
//! that keeps the old certificate.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::Fingerprint;

/// The server config for `cert` and `key`, with a fingerprint of the bytes
/// it was built from. Errors name the file and what is wrong with it.
pub(crate) fn server_config(
    cert: &Path,
    key: &Path,
) -> Result<(Arc<rustls::ServerConfig>, Fingerprint), String> {
    let cert_pem =
        std::fs::read(cert).map_err(|e| format!("cert: cannot read {}: {e}", cert.display()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            format!(
                "cert: {} is not a PEM certificate chain: {e}",
                cert.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!("cert: {} holds no certificate", cert.display()));
    }
    let unreadable = |e: &dyn std::fmt::Display| {
        format!(
            "key: {} is not a readable PEM private key: {e}",
            key.display()
        )
    };
    let key_pem = std::fs::read(key).map_err(|e| unreadable(&e))?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| unreadable(&e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| {
            format!(
                "key: does not match the certificate in {}: {e}",
                cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), Fingerprint::of(&[&cert_pem, &key_pem])))
}
