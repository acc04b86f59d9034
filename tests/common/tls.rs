//! TLS test material: a throw-away certificate and a client that trusts it.

use std::io::Write;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::client::{Client, Io};

/// A self-signed certificate for `localhost`, written to temp files.
pub struct TestCert {
    pub cert_pem: String,
    pub cert: tempfile::NamedTempFile,
    pub key: tempfile::NamedTempFile,
}

impl TestCert {
    pub fn new() -> TestCert {
        TestCert::for_name("localhost")
    }

    /// A self-signed certificate for another name (a name mismatch with a
    /// certificate that is trusted).
    pub fn for_name(name: &str) -> TestCert {
        let generated = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        let cert_pem = generated.cert.pem();
        TestCert {
            cert: pem_file(&cert_pem),
            key: pem_file(&generated.signing_key.serialize_pem()),
            cert_pem,
        }
    }

    /// The `tls:` YAML lines naming these files.
    pub fn yaml(&self, extra: &str) -> String {
        format!(
            "tls:\n  cert: '{}'\n  key: '{}'\n{extra}",
            self.cert.path().display(),
            self.key.path().display()
        )
    }

    /// A TLS server configuration with this certificate, for test servers
    /// (the recording upstream's STARTTLS).
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let chain = vec![CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_file(self.key.path()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        Arc::new(config)
    }

    pub fn connector(&self) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        let der = CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).unwrap();
        roots.add(der).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }

    /// Runs the client handshake on an open connection.
    pub async fn handshake<S: Io + 'static>(&self, io: S) -> std::io::Result<TlsStream<S>> {
        let name = ServerName::try_from("localhost").unwrap();
        self.connector().connect(name, io).await
    }

    /// Connects to an implicit-TLS listener.
    pub async fn connect(&self, addr: std::net::SocketAddr) -> Client {
        let tcp = TcpStream::connect(addr).await.unwrap();
        Client::over(Box::new(self.handshake(tcp).await.expect("TLS handshake")))
    }

    /// STARTTLS on a session that has said EHLO; returns the TLS client.
    pub async fn starttls(&self, mut client: Client) -> Client {
        let reply = client.cmd("STARTTLS").await;
        assert_eq!(
            (reply.code, reply.status()),
            (220, Some("2.0.0")),
            "{reply:?}"
        );
        let tls = self
            .handshake(client.into_inner())
            .await
            .expect("TLS handshake");
        Client::over(Box::new(tls))
    }
}

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

fn pem_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".pem").tempfile().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}
