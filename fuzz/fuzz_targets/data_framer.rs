//! The DATA framer over an in-memory stream delivered in fuzzer-chosen
//! chunk sizes. Beyond "never panics", it checks the properties that stop
//! SMTP smuggling and memory blow-ups:
//! - the message ends exactly where RFC 5321 says (the first `.` line that
//!   follows a CRLF), so the next command the session reads is the one the
//!   client sent after the dot, whatever the chunking;
//! - the kept body never exceeds `max_size`;
//! - with a fuzzer-chosen memory budget (flags' upper bits), the buffer's
//!   capacity never exceeds what the budget granted, and running out of it
//!   changes only the verdict, never where the message ends;
//! - a body judged clean is canonical CRLF text that survives dot-stuffing
//!   for the upstream and framing again unchanged.
#![no_main]

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use libfuzzer_sys::fuzz_target;
use spamgate::smtp::codec::{
    dot_stuff_into, DataBody, DataBudget, DataFlaw, DataLimits, Line, SmtpStream, Unbounded,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes handed out at most `chunk` at a time; writes are dropped.
struct Mem {
    data: Vec<u8>,
    pos: usize,
    chunk: usize,
}

impl AsyncRead for Mem {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self
            .chunk
            .min(buf.remaining())
            .min(self.data.len() - self.pos);
        let start = self.pos;
        buf.put_slice(&self.data[start..start + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Mem {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A budget of `left` bytes, as a session's share of the shared pool.
struct Pool {
    left: usize,
    granted: usize,
}

impl DataBudget for Pool {
    fn take(&mut self, least: usize, most: usize) -> Option<usize> {
        if least > self.left {
            return None;
        }
        let n = most.min(self.left);
        self.left -= n;
        self.granted += n;
        Some(n)
    }
}

thread_local! {
    static RT: RefCell<tokio::runtime::Runtime> = RefCell::new(
        tokio::runtime::Builder::new_current_thread().build().expect("runtime"),
    );
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    RT.with(|rt| rt.borrow().block_on(future))
}

fuzz_target!(|input: &[u8]| {
    let [flags, line_sel, size_sel, chunk_sel, data @ ..] = input else {
        return;
    };
    let limits = DataLimits {
        max_line: 8 + *line_sel as usize,
        max_size: 64 + 16 * *size_sel as usize,
        normalize: flags & 1 == 1,
    };
    let chunk = 1 + *chunk_sel as usize;
    let mut stream = SmtpStream::new(Mem {
        data: data.to_vec(),
        pos: 0,
        chunk,
    });
    // 0: no budget; else 64-octet steps up to about 8 KiB.
    let mut pool = Pool {
        left: (*flags >> 1) as usize * 64,
        granted: 0,
    };
    let budget: &mut dyn DataBudget = match pool.left {
        0 => &mut Unbounded,
        _ => &mut pool,
    };
    let (framed, next) = block_on(async {
        let framed = stream.read_data_within(limits, budget).await;
        let next = stream.read_line(1 << 20).await;
        (framed, next)
    });
    let Some(end) = rfc_end(data) else {
        assert!(framed.is_err(), "data ended where the RFC sees no end");
        return;
    };
    let body = framed.expect("the RFC sees an end of data but the framer did not");
    assert_next_line(&data[end + 3..], next);
    check_body(&body, limits);
    check_budget(&body, &pool);
    if !limits.normalize && body.flaw.is_none() {
        assert_eq!(
            body.bytes,
            unstuffed(&data[..end]),
            "clean body differs from the wire"
        );
    }
});

/// Where the terminating `.` CRLF starts, per RFC 5321 §4.1.1.4.
fn rfc_end(data: &[u8]) -> Option<usize> {
    if data.starts_with(b".\r\n") {
        return Some(0);
    }
    data.windows(5)
        .position(|w| w == b"\r\n.\r\n")
        .map(|p| p + 2)
}

/// The line the session reads after DATA must be the client's next line.
fn assert_next_line(rest: &[u8], next: Result<Line, spamgate::smtp::codec::ReadError>) {
    let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
        assert!(next.is_err(), "a line appeared out of nowhere");
        return;
    };
    let raw = &rest[..lf];
    let want = raw.strip_suffix(b"\r").unwrap_or(raw);
    match next {
        Ok(Line::Text { bytes, .. }) => assert_eq!(&bytes[..], want, "framer desynchronised"),
        other => panic!("expected the next line {want:?}, got {other:?}"),
    }
}

fn check_body(body: &DataBody, limits: DataLimits) {
    assert!(body.bytes.len() <= limits.max_size, "body over max_size");
    if body.flaw.is_some() {
        return;
    }
    assert!(body.bytes.is_empty() || body.bytes.ends_with(b"\r\n"));
    for line in body.bytes.split(|&b| b == b'\n') {
        let content = line.strip_suffix(b"\r").unwrap_or(line);
        assert!(!content.contains(&b'\r'), "bare CR in a clean body");
        assert!(!content.contains(&0), "NUL in a clean body");
    }
    let mut wire = Vec::new();
    dot_stuff_into(&mut wire, &body.bytes);
    let strict = DataLimits {
        normalize: false,
        max_size: usize::MAX,
        max_line: usize::MAX,
    };
    let mut again = SmtpStream::new(Mem {
        data: wire,
        pos: 0,
        chunk: 4096,
    });
    let reframed = block_on(again.read_data(strict)).expect("our own dot-stuffing frames");
    assert_eq!(
        reframed.bytes, body.bytes,
        "dot-stuffing round trip changed the body"
    );
}

fn check_budget(body: &DataBody, pool: &Pool) {
    if pool.granted == 0 && pool.left == 0 {
        return; // unbounded, or a budget that was never asked
    }
    assert!(
        body.bytes.capacity() <= pool.granted,
        "buffer capacity {} over the {} granted",
        body.bytes.capacity(),
        pool.granted
    );
    if body.flaw == Some(DataFlaw::NoMemory) {
        assert!(body.bytes.is_empty(), "a refused body is dropped");
    }
}

/// The body as the RFC defines it: CRLF lines, one leading dot removed.
fn unstuffed(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in wire.split_inclusive(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r\n").unwrap_or(line);
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        out.extend_from_slice(b"\r\n");
    }
    out
}
