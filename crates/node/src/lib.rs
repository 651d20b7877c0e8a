//! The fax server: enrolls with the supervisor, keeps the link to it (opened from here, so it works behind
//! NAT), executes the attempts it is offered on its lines, and uploads what its lines receive.
//!
//! Architecture invariant: the node never opens the supervisor's database; everything it knows of jobs
//! comes over the link. What it must not forget across a restart (its credential, the attempts it holds,
//! messages not yet acknowledged) lives in its state directory.

mod journal;
pub mod line;
pub mod pages;
mod runtime;
pub mod sip_line;

pub use line::{Line, LineOutcome, LineProgress, ReceivedFax, SendJob, SettingsError};
pub use runtime::{NodeConfig, NodeHandle, OfferObserver, Stopped, enroll, run};
pub use sip_line::{SipLine, SipLineConfig};

use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("enrollment refused by the supervisor: {0}")]
    EnrollmentRefused(String),
    #[error("cannot reach the supervisor at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("the state directory {path} is unusable: {message}")]
    State { path: String, message: String },
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("this fax server is not enrolled; run it once with an enrollment token")]
    NotEnrolled,
}

/// A rustls client configuration trusting `ca_pem` (the supervisor's certificate or its CA) when given,
/// else the web PKI roots.
pub fn tls_client_config(ca_pem: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| Error::Tls(format!("reading {}: {e}", path.display())))?;
            for cert in rustls_pemfile_certs(&pem)? {
                roots
                    .add(cert)
                    .map_err(|e| Error::Tls(format!("{}: {e}", path.display())))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

fn rustls_pemfile_certs(
    pem: &[u8],
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, Error> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Tls(format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Tls("no certificate in the PEM file".into()));
    }
    Ok(certs)
}
