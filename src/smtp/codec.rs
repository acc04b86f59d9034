//! Bytes on the wire: bounded line reads, the DATA framer and buffered
//! replies. Nothing here ever grows a buffer past the configured limits.

use bytes::{Buf, BytesMut};
use memchr::{memchr, memchr2, memchr_iter};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::judgement::reply::Reply;

/// Reads during DATA: large, so a message takes few system calls (the
/// buffer shrinks back to [`LINE_CHUNK`] after the final dot). Not larger:
/// with 64 KiB, freeing it after every message made malloc trim and regrow
/// the heap each time (`madvise`, page faults: 2% of the CPU per message).
const READ_CHUNK: usize = 16 * 1024;
/// Reads of command lines: small, so ten thousand idle sessions stay cheap.
const LINE_CHUNK: usize = 1024;
/// A write buffer larger than this (a relayed message) is freed once sent.
const WRITE_KEEP: usize = 16 * 1024;
/// The DATA buffer's first size; it doubles from there as the message grows.
pub const FIRST_GRANT: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("peer closed the connection")]
    Closed,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// One line as read, without its terminator.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// `canonical` is false when the line ended in a bare LF or held a bare CR.
    Text { bytes: BytesMut, canonical: bool },
    /// Longer than the limit; its bytes were read and dropped.
    TooLong,
}

/// What may be wrong with a message, in the order the reply is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DataFlaw {
    TooBig,
    LineTooLong,
    BareNewline,
    Nul,
    /// The shared DATA memory budget could not cover the message (transient).
    NoMemory,
}

/// Grants the DATA buffer room to grow. A session's budget draws on a pool
/// shared by all sessions, so that their sum stays bounded even though each
/// message alone is within `max_size`.
pub trait DataBudget: Send {
    /// Asks for at least `least` and at most `most` bytes on top of
    /// everything granted so far; returns how many were granted.
    fn take(&mut self, least: usize, most: usize) -> Option<usize>;
}

/// No bound beyond `max_size` (tools, tests, fuzzing).
pub struct Unbounded;

impl DataBudget for Unbounded {
    fn take(&mut self, _least: usize, most: usize) -> Option<usize> {
        Some(most)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct DataLimits {
    pub max_size: usize,
    pub max_line: usize,
    /// Split at bare CR/LF instead of flagging them.
    pub normalize: bool,
}

/// A received message: canonical CRLF lines, dot-unstuffed.
#[derive(Debug, Default)]
pub struct DataBody {
    pub bytes: Vec<u8>,
    /// Octets the client sent, even past the size limit.
    pub received: usize,
    pub flaw: Option<DataFlaw>,
}

impl DataBody {
    fn flag(&mut self, flaw: DataFlaw) {
        self.flaw = Some(self.flaw.map_or(flaw, |old| old.min(flaw)));
    }
}

/// A buffered SMTP connection: one read buffer, one write buffer.
pub struct SmtpStream<S> {
    io: S,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> SmtpStream<S> {
    pub fn new(io: S) -> Self {
        SmtpStream {
            io,
            rbuf: BytesMut::with_capacity(LINE_CHUNK),
            wbuf: Vec::new(),
        }
    }

    /// True when the client has sent bytes we have not consumed yet.
    pub fn has_buffered_input(&self) -> bool {
        !self.rbuf.is_empty()
    }

    /// True when a whole line is already buffered (no read needed).
    pub fn has_buffered_line(&self) -> bool {
        memchr(b'\n', &self.rbuf).is_some()
    }

    /// The underlying stream, for an in-place TLS upgrade. The read buffer
    /// must be empty then (the caller refused pipelined bytes).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    async fn fill(&mut self, chunk: usize) -> Result<(), ReadError> {
        self.rbuf.reserve(chunk);
        match self.io.read_buf(&mut self.rbuf).await? {
            0 => Err(ReadError::Closed),
            _ => Ok(()),
        }
    }

    /// Reads a line of at most `max` octets including CRLF.
    pub async fn read_line(&mut self, max: usize) -> Result<Line, ReadError> {
        let mut overlong = false;
        loop {
            if let Some(pos) = memchr(b'\n', &self.rbuf) {
                let raw = self.rbuf.split_to(pos + 1);
                return Ok(match overlong || raw.len() > max {
                    true => Line::TooLong,
                    false => split_terminator(raw),
                });
            }
            if self.rbuf.len() >= max {
                overlong = true;
                self.rbuf.clear();
            }
            self.fill(LINE_CHUNK).await?;
        }
    }

    /// Reads message content up to the lone `.` line, enforcing `limits`
    /// while never holding more than `max_size` plus one line in memory.
    pub async fn read_data(&mut self, limits: DataLimits) -> Result<DataBody, ReadError> {
        self.read_data_within(limits, &mut Unbounded).await
    }

    /// [`Self::read_data`], growing the buffer only as far as `budget` grants.
    pub async fn read_data_within(
        &mut self,
        limits: DataLimits,
        budget: &mut dyn DataBudget,
    ) -> Result<DataBody, ReadError> {
        let mut framer = Framer::new(limits, budget);
        loop {
            let (used, done) = framer.feed(&self.rbuf);
            self.rbuf.advance(used);
            if done {
                self.shrink();
                return Ok(framer.body);
            }
            if self.rbuf.len() >= limits.max_line {
                framer.overlong_chunk(&self.rbuf);
                let keep_cr = self.rbuf.last() == Some(&b'\r');
                self.rbuf.clear();
                if keep_cr {
                    self.rbuf.extend_from_slice(b"\r");
                }
            }
            self.fill(READ_CHUNK).await?;
        }
    }

    /// Gives back the large DATA buffer once nothing is pending in it, so
    /// a session idling between messages holds a small one.
    fn shrink(&mut self) {
        if self.rbuf.capacity() > LINE_CHUNK && self.rbuf.len() <= LINE_CHUNK {
            let mut small = BytesMut::with_capacity(LINE_CHUNK);
            small.extend_from_slice(&self.rbuf);
            self.rbuf = small;
        }
    }

    /// Drops whatever the client sent ahead of time (after an error that
    /// desynchronised the dialogue).
    pub fn discard_input(&mut self) {
        self.rbuf.clear();
    }

    pub fn queue(&mut self, reply: &Reply) {
        reply.write_to(&mut self.wbuf);
    }

    pub fn queue_raw(&mut self, bytes: &[u8]) {
        self.wbuf.extend_from_slice(bytes);
    }

    /// The bytes queued for the next flush, for callers that format a
    /// command or a whole message straight into it (no copy in between).
    pub fn queued_mut(&mut self) -> &mut Vec<u8> {
        &mut self.wbuf
    }

    /// Writes everything queued in one `write` (the kernel takes it whole
    /// unless the socket buffer is full). A buffer grown by a large
    /// message is given back, so a session idling after it stays small.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        if !self.wbuf.is_empty() {
            self.io.write_all(&self.wbuf).await?;
            self.wbuf.clear();
            if self.wbuf.capacity() > WRITE_KEEP {
                self.wbuf = Vec::new();
            }
        }
        self.io.flush().await
    }

    pub async fn send(&mut self, reply: &Reply) -> std::io::Result<()> {
        self.queue(reply);
        self.flush().await
    }

    pub async fn shutdown(&mut self) {
        let _ = self.flush().await;
        let _ = self.io.shutdown().await;
    }
}

fn split_terminator(mut raw: BytesMut) -> Line {
    let crlf = raw.ends_with(b"\r\n");
    raw.truncate(raw.len() - if crlf { 2 } else { 1 });
    let canonical = crlf && memchr(b'\r', &raw).is_none();
    Line::Text {
        bytes: raw,
        canonical,
    }
}

/// The DATA state machine, one physical (LF-terminated) line at a time.
struct Framer<'b> {
    limits: DataLimits,
    budget: &'b mut dyn DataBudget,
    /// What `budget` granted so far: the buffer's capacity.
    granted: usize,
    body: DataBody,
    /// The previous line ended in a proper CRLF, so `.` CRLF may end data.
    after_crlf: bool,
    /// Inside a line longer than the limit, part of which was dropped.
    in_overlong: bool,
}

impl<'b> Framer<'b> {
    fn new(limits: DataLimits, budget: &'b mut dyn DataBudget) -> Self {
        Framer {
            limits,
            budget,
            granted: 0,
            body: DataBody::default(),
            after_crlf: true,
            in_overlong: false,
        }
    }

    /// Takes every whole line in `buf` in place (no copy or split per
    /// line); returns the octets used and whether the end of data was
    /// among them.
    fn feed(&mut self, buf: &[u8]) -> (usize, bool) {
        let mut used = 0;
        for end in memchr_iter(b'\n', buf) {
            let done = self.line(&buf[used..=end]);
            used = end + 1;
            if done {
                return (used, true);
            }
        }
        (used, false)
    }

    /// Takes a line including its LF; returns true at end of data.
    fn line(&mut self, raw: &[u8]) -> bool {
        let crlf = raw.ends_with(b"\r\n");
        let content = &raw[..raw.len() - if crlf { 2 } else { 1 }];
        if self.after_crlf && crlf && content == b"." && !self.in_overlong {
            return true;
        }
        self.body.received += raw.len();
        if std::mem::take(&mut self.in_overlong) || raw.len() > self.limits.max_line {
            self.body.flag(DataFlaw::LineTooLong);
        }
        // One pass finds both rarities; the common line has neither.
        let (nul, bare_cr) = match memchr2(0, b'\r', content) {
            None => (false, false),
            Some(_) => (
                memchr(0, content).is_some(),
                memchr(b'\r', content).is_some(),
            ),
        };
        if nul {
            self.body.flag(DataFlaw::Nul);
        }
        let canonical = crlf && !bare_cr;
        if !canonical && !self.limits.normalize {
            self.body.flag(DataFlaw::BareNewline);
        }
        self.after_crlf = crlf;
        self.store(content, canonical);
        false
    }

    fn overlong_chunk(&mut self, chunk: &[u8]) {
        self.in_overlong = true;
        self.body.received += chunk.len();
        self.body.flag(DataFlaw::LineTooLong);
    }

    /// Keeps the line, unstuffed, each bare-CR segment as its own CRLF line.
    fn store(&mut self, content: &[u8], canonical: bool) {
        if self.body.flaw.is_some() {
            self.body.bytes = Vec::new();
            return;
        }
        let unstuffed = content.strip_prefix(b".").unwrap_or(content);
        // Each bare CR becomes a CRLF when normalised: count what is stored.
        let added_crs = if canonical {
            0
        } else {
            memchr::memchr_iter(b'\r', unstuffed).count()
        };
        let needed = self.body.bytes.len() + unstuffed.len() + added_crs + 2;
        if needed > self.limits.max_size {
            self.body.flag(DataFlaw::TooBig);
            self.body.bytes = Vec::new();
            return;
        }
        if needed > self.granted && !self.grow(needed) {
            self.body.flag(DataFlaw::NoMemory);
            self.body.bytes = Vec::new();
            return;
        }
        if canonical {
            self.body.bytes.extend_from_slice(unstuffed);
            self.body.bytes.extend_from_slice(b"\r\n");
            return;
        }
        // Each segment is a line of its own from here on, so it loses a
        // leading dot as a line after a bare LF does: `a CR . CRLF` and
        // `a LF . CRLF` give the same message (and neither ends it).
        for (i, segment) in unstuffed.split(|&b| b == b'\r').enumerate() {
            let segment = match i {
                0 => segment,
                _ => segment.strip_prefix(b".").unwrap_or(segment),
            };
            self.body.bytes.extend_from_slice(segment);
            self.body.bytes.extend_from_slice(b"\r\n");
        }
    }
}

impl Framer<'_> {
    /// Doubles the buffer, or grows it as far as the budget allows (once:
    /// the next growth fails) but at least to `needed`. Capacity stays
    /// equal to the grant, and there are no small steps that would copy a
    /// large buffer over and over.
    fn grow(&mut self, needed: usize) -> bool {
        let doubled = (self.granted * 2)
            .max(FIRST_GRANT)
            .max(needed)
            .min(self.limits.max_size);
        let (least, most) = (needed - self.granted, doubled - self.granted);
        let Some(more) = self.budget.take(least, most) else {
            return false;
        };
        self.granted += more.clamp(least, most);
        let len = self.body.bytes.len();
        self.body.bytes.reserve_exact(self.granted - len);
        true
    }
}

/// Writes `body` dot-stuffed and terminated, ready for the DATA phase.
/// Searches for the rare `LF .` instead of walking line by line, so a
/// message goes over in a few large copies.
pub fn dot_stuff_into(out: &mut Vec<u8>, body: &[u8]) {
    out.reserve(body.len() + 8);
    if body.first() == Some(&b'.') {
        out.push(b'.');
    }
    let mut start = 0;
    for lf in memchr::memmem::find_iter(body, b"\n.") {
        out.extend_from_slice(&body[start..=lf]);
        out.push(b'.');
        start = lf + 1;
    }
    out.extend_from_slice(&body[start..]);
    if !body.is_empty() && !body.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

#[cfg(test)]
mod tests;
