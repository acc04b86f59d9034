//! Log output, text or JSON, chosen in the configuration.
//!
//! Lines go to stderr through one writer thread. A session never waits for
//! a slow reader of stderr (a stalled journald pipe would otherwise stall
//! every session of that runtime worker), and under load one `write`
//! carries every line logged since the last one instead of one system call
//! per line. Sessions append to a shared buffer and wake the thread only
//! when it sleeps idle, so a busy server pays neither a wake-up nor an
//! allocation per line. Never lossy: transaction lines are the audit
//! trail, so past [`MAX_QUEUED`] octets a session waits for the writer.

use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, MakeWriter};
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Octets queued before loggers wait for the writer thread.
const MAX_QUEUED: usize = 4 << 20;
/// The writer's rest after each write: lines logged meanwhile share the
/// next write. Short enough that `tail -f` looks live.
const BATCH_PAUSE: Duration = Duration::from_millis(10);

/// Installs the global subscriber. `RUST_LOG`, when set, wins over the
/// configured level so an operator can turn up detail for one run.
/// Colour codes only when stderr is a terminal, never into a file or the
/// journal.
pub fn init(config: &LogConfig) -> LogGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.level));
    let ansi = io::stderr().is_terminal();
    let (writer, guard) = spawn_writer(io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    let _ = match config.format {
        LogFormat::Text => builder.fmt_fields(TextFields).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    guard
}

/// Text fields as `name=value`, as tracing's default formatter writes
/// them but without its styling calls per field: those cost more than the
/// values on the one-line-per-transaction hot path (a fifth of spamgate's
/// own instructions per relayed message, measured with callgrind).
pub struct TextFields;

impl<'writer> FormatFields<'writer> for TextFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = TextVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct TextVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl Visit for TextVisitor<'_> {
    /// Strings are quoted, except the message, as tracing's default does.
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.record_debug(field, &format_args!("{value}")),
            _ => self.record_debug(field, &value),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        let name = field.name();
        self.result = match name {
            "message" => write!(self.writer, "{separator}{value:?}"),
            _ => {
                let name = name.strip_prefix("r#").unwrap_or(name);
                write!(self.writer, "{separator}{name}={value:?}")
            }
        };
    }
}

/// Starts the writer thread that empties the queue into `out`.
pub fn spawn_writer(out: impl Write + Send + 'static) -> (LogWriter, LogGuard) {
    let shared = Arc::new(Shared::default());
    let thread = std::thread::Builder::new()
        .name("spamgate-log".into())
        .spawn({
            let shared = shared.clone();
            move || shared.write_out(out)
        })
        .expect("starting the log writer thread");
    let writer = LogWriter {
        shared: shared.clone(),
    };
    let guard = LogGuard {
        shared,
        thread: Some(thread),
    };
    (writer, guard)
}

#[derive(Default)]
struct Queue {
    lines: Vec<u8>,
    /// The writer thread waits on `Shared::wake` for the next line.
    idle: bool,
    /// The guard was dropped: write out what is left and end.
    stop: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the idle writer (a line arrived, or stop).
    wake: Condvar,
    /// Wakes loggers waiting for room.
    room: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one whole line (the formatter writes each event at once, so
    /// lines of different threads never interleave).
    fn append(&self, line: &[u8]) -> io::Result<()> {
        let mut queue = self.lock();
        while queue.lines.len() >= MAX_QUEUED && !queue.stop {
            queue = self
                .room
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if queue.stop {
            // Logged after shutdown began: straight out, not lost.
            drop(queue);
            return io::stderr().write_all(line);
        }
        queue.lines.extend_from_slice(line);
        if std::mem::take(&mut queue.idle) {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// The writer thread: takes the whole queue, writes it at once, rests.
    fn write_out(&self, mut out: impl Write) {
        let mut batch = Vec::new();
        loop {
            let stop = self.take_batch(&mut batch);
            // A failing stderr leaves nowhere to report to; keep draining
            // so that loggers never block on it.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
            if stop {
                return;
            }
            std::thread::sleep(BATCH_PAUSE);
        }
    }

    /// Waits for lines (or stop) and swaps them into `batch`; true at stop.
    fn take_batch(&self, batch: &mut Vec<u8>) -> bool {
        let mut queue = self.lock();
        while queue.lines.is_empty() && !queue.stop {
            queue.idle = true;
            queue = self
                .wake
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
        std::mem::swap(&mut queue.lines, batch);
        self.room.notify_all();
        queue.stop
    }
}

/// The subscriber's writer: hands each formatted line to the writer thread.
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

/// One event's writer, borrowed from [`LogWriter`] (no clone per line).
pub struct LineSink<'a>(&'a Shared);

impl Write for LineSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.append(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LineSink<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineSink(&self.shared)
    }
}

/// Keeps the log writer running. Dropping it writes out every line still
/// queued and waits for that, so `main` holds it until the server stopped.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        self.shared.room.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as operators and their log parsers know them: the message,
    /// then `name=value`, strings quoted, displayed values bare.
    #[test]
    fn text_fields_look_like_tracing_defaults() {
        let sink = Sink::default();
        let (writer, guard) = spawn_writer(sink.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .with_writer(writer)
            .fmt_fields(TextFields)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("session", id = 7);
            let _entered = span.enter();
            let r#type = "x";
            tracing::info!(tx = %"a-1.1", size = 4096, helo = "mx.example", r#type, "transaction");
        });
        drop(guard);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            " INFO session{id=7}: spamgate::logging::tests: transaction tx=a-1.1 size=4096 helo=\"mx.example\" type=\"x\"\n"
        );
    }

    /// A `Write` whose bytes the test can read after the writer is done.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_arrives_whole_and_in_order_per_thread_by_shutdown() {
        let sink = Sink::default();
        let (writer, guard) = spawn_writer(sink.clone());
        std::thread::scope(|scope| {
            for t in 0..4 {
                let writer = &writer;
                scope.spawn(move || {
                    for i in 0..2000 {
                        let line = format!("thread {t} line {i} {}\n", "x".repeat(i % 300));
                        writer.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                });
            }
        });
        drop(guard);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let mut next = [0usize; 4];
        for line in text.lines() {
            let words: Vec<&str> = line.split(' ').collect();
            let (t, i): (usize, usize) = (words[1].parse().unwrap(), words[3].parse().unwrap());
            assert_eq!(i, next[t], "thread {t}: lines in order, none torn");
            assert_eq!(words[4].len(), i % 300, "line {i} of thread {t} is whole");
            next[t] += 1;
        }
        assert_eq!(next, [2000; 4], "nothing lost at shutdown");
    }

    #[test]
    fn a_full_queue_makes_loggers_wait_not_drop() {
        let sink = Sink::default();
        let (writer, guard) = spawn_writer(sink.clone());
        let line = vec![b'y'; 64 * 1024];
        // Well past MAX_QUEUED in total: the logger must block on room
        // while the writer drains, then everything must be there.
        let rounds = 3 * MAX_QUEUED / line.len();
        for _ in 0..rounds {
            writer.make_writer().write_all(&line).unwrap();
        }
        drop(guard);
        assert_eq!(sink.0.lock().unwrap().len(), rounds * line.len());
    }
}
