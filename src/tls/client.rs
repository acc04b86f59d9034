//! TLS towards the upstream: what we present and check ([`TlsClient`],
//! built by config validation), and the connection itself ([`UpstreamIo`]):
//! plain TCP, or TLS after STARTTLS (RFC 3207). One type for both, so the
//! lockstep client keeps a single buffered stream across the upgrade.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::{info, MaybeTls, TlsInfo};

#[derive(Debug, thiserror::Error)]
pub enum TlsClientError {
    #[error("cannot read CA certificates {path}: {message}")]
    CaFile { path: PathBuf, message: String },
    #[error("'{0}' is not a valid TLS server name")]
    ServerName(String),
    #[error("TLS client setup: {0}")]
    Setup(String),
}

/// What we present and check when talking TLS to the upstream: built once
/// from the configuration and shared by every upstream connection.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
    name: ServerName<'static>,
    verify: bool,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient")
            .field("name", &self.name)
            .field("verify", &self.verify)
            .finish()
    }
}

impl TlsClient {
    /// With `verify`, the chain must lead to a certificate in `ca_file`
    /// (or to a public root when there is none) and name `server_name`;
    /// without, any certificate is taken, which only defeats passive
    /// eavesdropping.
    pub fn new(
        verify: bool,
        ca_file: Option<&Path>,
        server_name: &str,
    ) -> Result<TlsClient, TlsClientError> {
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|_| TlsClientError::ServerName(server_name.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsClientError::Setup(e.to_string()))?;
        let config = match verify {
            true => builder.with_root_certificates(roots(ca_file)?),
            false => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider))),
        };
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config.with_no_client_auth())),
            name,
            verify,
        })
    }
}

/// The CA certificates in `ca_file`, or Mozilla's roots without one.
fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, TlsClientError> {
    let Some(path) = ca_file else {
        return Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    };
    let error = |message: String| TlsClientError::CaFile {
        path: path.to_path_buf(),
        message,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| error(e.to_string()))? {
        let cert = cert.map_err(|e| error(e.to_string()))?;
        roots.add(cert).map_err(|e| error(e.to_string()))?;
    }
    match roots.is_empty() {
        true => Err(error("no certificate in file".into())),
        false => Ok(roots),
    }
}

/// `verify: false`: any certificate is accepted, but the handshake
/// signatures are still checked, so the session is at least encrypted to
/// whoever holds the key of the certificate shown.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The upstream socket, upgraded in place by STARTTLS.
pub type UpstreamIo = MaybeTls<TcpStream, TlsStream<TcpStream>>;

impl UpstreamIo {
    /// Runs the client handshake on the plain stream. On failure the
    /// connection is gone: a half-done handshake leaves nothing to reuse.
    pub async fn start_tls(&mut self, client: &TlsClient) -> io::Result<TlsInfo> {
        let plain = self.take_plain()?;
        let tls = client.connector.connect(client.name.clone(), plain).await?;
        let info = info(tls.get_ref().1);
        *self = MaybeTls::Tls(Box::new(tls));
        Ok(info)
    }
}
