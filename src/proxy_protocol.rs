//! The PROXY protocol, versions 1 (text) and 2 (binary), as sent by HAProxy
//! and most TCP load balancers: a header in front of the client's bytes
//! that names the real client address.
//!
//! Only the header is consumed: whatever the client sent behind it (an
//! early talker, say) is handed back with [`Rewound`] so the SMTP session
//! sees the byte stream exactly as the client wrote it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest v1 line the specification allows, CRLF included.
const V1_MAX: usize = 107;
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const V2_FIXED: usize = 16;
/// Address block plus TLVs we accept. Addresses take at most 216 bytes (AF_UNIX);
/// the rest leaves room for the usual TLVs (ALPN, authority, SSL, unique id)
/// while keeping a misbehaving peer from making us buffer 64 KiB.
const V2_MAX_PAYLOAD: usize = 1024;

/// Every value of the `result` label of `spamgate_proxy_headers_total`:
/// [`Header::label`], [`ProxyError::label`], and `untrusted` (decided
/// before any header is read).
pub const RESULTS: [&str; 7] = [
    "proxied",
    "local",
    "unknown",
    "untrusted",
    "invalid",
    "timeout",
    "closed",
];

/// What the load balancer told us about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A relayed TCP connection from `source` to `destination`.
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// v2 LOCAL: the balancer speaks for itself (health checks).
    Local,
    /// v1 UNKNOWN or a v2 address family we cannot use (AF_UNSPEC, AF_UNIX).
    Unknown,
}

impl Header {
    /// The client address to judge; `None` means "use the socket's peer".
    pub fn source(&self) -> Option<SocketAddr> {
        match self {
            Header::Proxied { source, .. } => Some(*source),
            Header::Local | Header::Unknown => None,
        }
    }

    /// The metric label: a closed set.
    pub fn label(&self) -> &'static str {
        match self {
            Header::Proxied { .. } => "proxied",
            Header::Local => "local",
            Header::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("no PROXY protocol signature")]
    NoSignature,
    #[error("v1 header longer than {V1_MAX} bytes")]
    V1TooLong,
    #[error("v2 header announces {0} bytes (at most {V2_MAX_PAYLOAD})")]
    V2TooLong(usize),
    #[error("malformed v1 header: {0}")]
    V1(&'static str),
    #[error("malformed v2 header: {0}")]
    V2(&'static str),
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no PROXY header within {0:?}")]
    Timeout(Duration),
    #[error("connection closed before any PROXY header")]
    Closed,
    #[error("connection closed inside the PROXY header")]
    Truncated,
    #[error("reading the PROXY header: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Invalid(#[from] ParseError),
}

impl ProxyError {
    /// The metric label: a closed set.
    pub fn label(&self) -> &'static str {
        match self {
            ProxyError::Timeout(_) => "timeout",
            ProxyError::Closed => "closed",
            ProxyError::Truncated | ProxyError::Io(_) | ProxyError::Invalid(_) => "invalid",
        }
    }
}

/// The result of looking at the bytes received so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// Valid so far; more bytes are needed.
    Incomplete,
    /// A whole header, `len` bytes long.
    Complete { header: Header, len: usize },
}

/// Parses a header at the start of `buf`, of either version.
pub fn parse(buf: &[u8]) -> Result<Parsed, ParseError> {
    if starts_like(buf, V2_SIGNATURE) {
        return match buf.len() >= V2_SIGNATURE.len() {
            true => parse_v2(buf),
            false => Ok(Parsed::Incomplete),
        };
    }
    if starts_like(buf, V1_PREFIX) {
        return parse_v1(buf);
    }
    Err(ParseError::NoSignature)
}

/// Whether `buf` and `prefix` agree on their common length.
fn starts_like(buf: &[u8], prefix: &[u8]) -> bool {
    let n = buf.len().min(prefix.len());
    buf[..n] == prefix[..n]
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ParseError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.iter().position(|&b| b == b'\n') else {
        return match buf.len() >= V1_MAX {
            true => Err(ParseError::V1TooLong),
            false => Ok(Parsed::Incomplete),
        };
    };
    let line = window[..end]
        .strip_suffix(b"\r")
        .ok_or(ParseError::V1("line does not end in CRLF"))?;
    let text = std::str::from_utf8(line).map_err(|_| ParseError::V1("not ASCII"))?;
    let header = v1_fields(text)?;
    Ok(Parsed::Complete {
        header,
        len: end + 1,
    })
}

/// `PROXY TCP4 src dst sport dport`, single spaces, nothing else.
fn v1_fields(line: &str) -> Result<Header, ParseError> {
    let fields: Vec<&str> = line.split(' ').collect();
    match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Ok(Header::Unknown),
        ["PROXY", family @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let v6 = *family == "TCP6";
            Ok(Header::Proxied {
                source: SocketAddr::new(v1_ip(src, v6)?, v1_port(sport)?),
                destination: SocketAddr::new(v1_ip(dst, v6)?, v1_port(dport)?),
            })
        }
        ["PROXY", "TCP4" | "TCP6", ..] => Err(ParseError::V1("expected 4 address fields")),
        _ => Err(ParseError::V1("unknown protocol family")),
    }
}

fn v1_ip(text: &str, v6: bool) -> Result<IpAddr, ParseError> {
    let ip = match v6 {
        false => text.parse::<Ipv4Addr>().map(IpAddr::V4),
        true => text.parse::<Ipv6Addr>().map(IpAddr::V6),
    };
    ip.map(|ip| ip.to_canonical())
        .map_err(|_| ParseError::V1("bad address for its family"))
}

fn v1_port(text: &str) -> Result<u16, ParseError> {
    let digits = !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = text.len() > 1 && text.starts_with('0');
    match (digits, leading_zero) {
        (true, false) => text
            .parse()
            .map_err(|_| ParseError::V1("port out of range")),
        _ => Err(ParseError::V1("bad port")),
    }
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ParseError> {
    if buf.len() < V2_FIXED {
        return Ok(Parsed::Incomplete);
    }
    let (version, command) = (buf[12] >> 4, buf[12] & 0x0f);
    let (family, transport) = (buf[13] >> 4, buf[13] & 0x0f);
    let payload = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if version != 2 {
        return Err(ParseError::V2("version is not 2"));
    }
    if payload > V2_MAX_PAYLOAD {
        return Err(ParseError::V2TooLong(payload));
    }
    let len = V2_FIXED + payload;
    if buf.len() < len {
        return Ok(Parsed::Incomplete);
    }
    let header = match command {
        0x0 => Header::Local,
        0x1 => v2_addresses(family, transport, &buf[V2_FIXED..len])?,
        _ => return Err(ParseError::V2("unknown command")),
    };
    Ok(Parsed::Complete { header, len })
}

/// The address block of a v2 PROXY command; TLVs after it are ignored.
fn v2_addresses(family: u8, transport: u8, block: &[u8]) -> Result<Header, ParseError> {
    let needed = match family {
        0x0 | 0x3 => return Ok(Header::Unknown),
        0x1 => 12,
        0x2 => 36,
        _ => return Err(ParseError::V2("unknown address family")),
    };
    if transport != 0x1 {
        return Err(ParseError::V2("not a stream (TCP) connection"));
    }
    if block.len() < needed {
        return Err(ParseError::V2(
            "address block shorter than its family needs",
        ));
    }
    let half = (needed - 4) / 2;
    let ip = |bytes: &[u8]| -> IpAddr {
        match <[u8; 4]>::try_from(bytes) {
            Ok(v4) => IpAddr::from(v4),
            Err(_) => IpAddr::from(<[u8; 16]>::try_from(bytes).expect("16 bytes")),
        }
    };
    let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
    Ok(Header::Proxied {
        source: SocketAddr::new(ip(&block[..half]).to_canonical(), port(2 * half)),
        destination: SocketAddr::new(ip(&block[half..2 * half]), port(2 * half + 2)),
    })
}

/// Reads one header from `io` within `limit`. Returns it with the bytes
/// that followed it in the same reads, which belong to the client.
pub async fn read_header<S: AsyncRead + Unpin>(
    io: &mut S,
    limit: Duration,
) -> Result<(Header, Vec<u8>), ProxyError> {
    tokio::time::timeout(limit, read_until_parsed(io))
        .await
        .map_err(|_| ProxyError::Timeout(limit))?
}

async fn read_until_parsed<S: AsyncRead + Unpin>(
    io: &mut S,
) -> Result<(Header, Vec<u8>), ProxyError> {
    let mut buf = Vec::with_capacity(256);
    loop {
        // Reads stay bounded: parse() fails once a header would exceed its maximum.
        if io.read_buf(&mut buf).await? == 0 {
            return Err(match buf.is_empty() {
                true => ProxyError::Closed,
                false => ProxyError::Truncated,
            });
        }
        if let Parsed::Complete { header, len } = parse(&buf)? {
            return Ok((header, buf.split_off(len)));
        }
    }
}

/// A stream with bytes put back in front of it: reads drain `early` first.
pub struct Rewound<S> {
    early: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Rewound<S> {
    pub fn new(early: Vec<u8>, inner: S) -> Self {
        Rewound {
            early,
            pos: 0,
            inner,
        }
    }

    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewound<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let rest = &this.early[this.pos..];
        if rest.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        this.pos += n;
        if this.pos == this.early.len() {
            this.early = Vec::new();
            this.pos = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewound<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests;
