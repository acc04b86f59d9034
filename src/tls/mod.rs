//! TLS towards clients: STARTTLS (RFC 3207) on plain listeners and
//! implicit-TLS listeners (port 465). Certificates are read at start and
//! again on reload (SIGHUP) without dropping sessions. TLS towards the
//! upstream is in [`client`].

pub mod client;

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use rustls::{CommonState, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate chain {path}: {message}")]
    Certificate { path: PathBuf, message: String },
    #[error("cannot read private key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("certificate and key do not fit together: {0}")]
    Mismatch(String),
}

/// The certificate in use, swappable at reload.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    acceptor: RwLock<TlsAcceptor>,
}

impl Tls {
    pub fn load(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        let acceptor = acceptor(cert, key)?;
        Ok(Tls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            acceptor: RwLock::new(acceptor),
        })
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.read().expect("tls lock").clone()
    }

    /// Re-reads the files; on error the old certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = acceptor(&self.cert, &self.key)?;
        *self.acceptor.write().expect("tls lock") = fresh;
        Ok(())
    }
}

/// Checks that the files load, for `spamgate check` and config validation.
pub fn validate(cert: &Path, key: &Path) -> Result<(), TlsError> {
    acceptor(cert, key).map(|_| ())
}

fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let chain = read_chain(cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_path_buf(),
        message: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Mismatch(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| TlsError::Mismatch(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |message: String| TlsError::Certificate {
        path: path.to_path_buf(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    match chain.is_empty() {
        true => Err(error("no certificate in file".into())),
        false => Ok(chain),
    }
}

/// What the handshake settled on, for the trace headers and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
}

/// A connection that can turn into TLS in place (STARTTLS, RFC 3207), so
/// the code above it keeps one buffered stream across the upgrade. `T` is
/// the TLS stream over `P`: server side towards clients ([`ClientIo`]),
/// client side towards the upstream ([`client::UpstreamIo`]).
pub enum MaybeTls<P, T> {
    Plain(P),
    Tls(Box<T>),
    /// Only during a handshake; any I/O on it is an error.
    Upgrading,
}

/// A client connection: plain, or TLS after STARTTLS or on an implicit-TLS listener.
pub type ClientIo<S> = MaybeTls<S, TlsStream<S>>;

impl<P, T> MaybeTls<P, T> {
    /// Takes the plain stream out for a handshake, leaving `Upgrading`.
    pub fn take_plain(&mut self) -> io::Result<P> {
        match std::mem::replace(self, MaybeTls::Upgrading) {
            MaybeTls::Plain(plain) => Ok(plain),
            other => {
                *self = other;
                Err(io::Error::other("TLS already active"))
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ClientIo<S> {
    /// Runs the server handshake on the plain stream.
    pub async fn start_tls(&mut self, acceptor: TlsAcceptor) -> io::Result<TlsInfo> {
        let plain = self.take_plain()?;
        let tls = acceptor.accept(plain).await?;
        let info = info(tls.get_ref().1);
        *self = MaybeTls::Tls(Box::new(tls));
        Ok(info)
    }

    pub fn tls_info(&self) -> Option<TlsInfo> {
        match self {
            MaybeTls::Tls(tls) => Some(info(tls.get_ref().1)),
            _ => None,
        }
    }
}

/// The protocol version and cipher suite, as the trace headers name them.
pub fn info(state: &CommonState) -> TlsInfo {
    let version = state
        .protocol_version()
        .map_or("unknown".into(), |v| format!("{v:?}").replace('_', "."));
    let cipher = state
        .negotiated_cipher_suite()
        .map_or("unknown".into(), |c| format!("{:?}", c.suite()));
    TlsInfo { version, cipher }
}

fn upgrading() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "TLS handshake in progress")
}

impl<P: AsyncRead + Unpin, T: AsyncRead + Unpin> AsyncRead for MaybeTls<P, T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            MaybeTls::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }
}

impl<P: AsyncWrite + Unpin, T: AsyncWrite + Unpin> AsyncWrite for MaybeTls<P, T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            MaybeTls::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            MaybeTls::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTls::Plain(s) => s.is_write_vectored(),
            MaybeTls::Tls(s) => s.is_write_vectored(),
            MaybeTls::Upgrading => false,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            MaybeTls::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            MaybeTls::Upgrading => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, RootCertStore};

    struct Pem {
        cert: String,
        key: String,
    }

    fn generate() -> Pem {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        Pem {
            cert: made.cert.pem(),
            key: made.signing_key.serialize_pem(),
        }
    }

    fn trusting(cert_pem: &str) -> tokio_rustls::TlsConnector {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    /// True if a client trusting `cert_pem` completes a handshake with `tls`.
    async fn handshake(tls: &Tls, cert_pem: &str) -> bool {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let mut server = ClientIo::Plain(server_io);
        let acceptor = tls.acceptor();
        let name = ServerName::try_from("localhost").unwrap();
        let (client, server) = tokio::join!(
            trusting(cert_pem).connect(name, client_io),
            server.start_tls(acceptor)
        );
        client.is_ok() && server.is_ok()
    }

    #[tokio::test]
    async fn reload_swaps_the_certificate_and_a_bad_file_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let (first, second) = (generate(), generate());
        std::fs::write(&cert_path, &first.cert).unwrap();
        std::fs::write(&key_path, &first.key).unwrap();
        let tls = Tls::load(&cert_path, &key_path).unwrap();
        assert!(handshake(&tls, &first.cert).await);
        assert!(!handshake(&tls, &second.cert).await);
        std::fs::write(&cert_path, &second.cert).unwrap();
        std::fs::write(&key_path, &second.key).unwrap();
        tls.reload().unwrap();
        assert!(
            handshake(&tls, &second.cert).await,
            "new certificate after reload"
        );
        std::fs::write(&cert_path, "garbage").unwrap();
        assert!(tls.reload().is_err());
        assert!(handshake(&tls, &second.cert).await, "old certificate kept");
    }

    #[test]
    fn mismatched_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (generate(), generate());
        std::fs::write(dir.path().join("c.pem"), &a.cert).unwrap();
        std::fs::write(dir.path().join("k.pem"), &b.key).unwrap();
        let result = validate(&dir.path().join("c.pem"), &dir.path().join("k.pem"));
        assert!(matches!(result, Err(TlsError::Mismatch(_))), "{result:?}");
    }
}
