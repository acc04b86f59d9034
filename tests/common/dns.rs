//! A real authoritative DNS server for tests: knotd (Debian `knot`) on
//! 127.0.0.1, serving the records a test gives from a catch-all root zone,
//! so that every other name gets NXDOMAIN (not REFUSED) exactly as on the
//! Internet.
//!
//! Names can also be made to fail: [`Zones::silent`] names are forwarded by
//! knot to a socket that never answers (the resolver times out), and
//! [`Zones::servfail`] names are forwarded to a closed port (knot answers
//! SERVFAIL at once).
//!
//! The server is killed when the [`DnsServer`] is dropped.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const START_DEADLINE: Duration = Duration::from_secs(15);
/// How long knot holds a query for a silent name before giving up; longer
/// than any resolver timeout the tests configure.
const SILENT_HOLD_MS: u64 = 3_000;

/// The records to serve, in zone-file syntax.
#[derive(Debug, Clone, Default)]
pub struct Zones {
    /// (owner name in zone-file form, zone-file line).
    records: Vec<(String, String)>,
    silent: Vec<String>,
    servfail: Vec<String>,
}

impl Zones {
    pub fn new() -> Zones {
        Zones::default()
    }

    /// One record: owner name, type (`A`, `MX`, `TXT`, `TYPE99`...) and the
    /// record data exactly as a zone file writes it.
    pub fn record(mut self, name: &str, rtype: &str, rdata: &str) -> Zones {
        self.push(name, rtype, rdata);
        self
    }

    pub fn push(&mut self, name: &str, rtype: &str, rdata: &str) {
        let owner = zone_name(name);
        let line = format!("{owner} 60 IN {rtype} {rdata}");
        self.records.push((owner, line));
    }

    /// A TXT record of one text (split into 255-byte strings as DNS needs).
    pub fn txt(self, name: &str, text: &str) -> Zones {
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(255).collect();
        let chunks = if chunks.is_empty() {
            vec![&b""[..]]
        } else {
            chunks
        };
        self.txt_strings(name, &chunks)
    }

    /// A TXT record made of exactly these character strings.
    pub fn txt_strings(self, name: &str, strings: &[&[u8]]) -> Zones {
        let rdata = txt_rdata(strings);
        self.record(name, "TXT", &rdata)
    }

    pub fn a(self, name: &str, ip: &str) -> Zones {
        self.record(name, "A", ip)
    }

    /// Queries for `name` and every name below it are never answered
    /// (names below it that have records of their own still answer).
    pub fn silent(mut self, name: &str) -> Zones {
        self.push_silent(name);
        self
    }

    pub fn push_silent(&mut self, name: &str) {
        self.silent.push(zone_name(name));
    }

    /// Queries for `name` and every name below it get SERVFAIL (names
    /// below it that have records of their own still answer).
    pub fn servfail(mut self, name: &str) -> Zones {
        self.servfail.push(zone_name(name));
        self
    }

    /// Owners that must be zones of their own because they lie below a
    /// failing name (knot answers from the most specific zone).
    fn own_zones(&self) -> Vec<String> {
        let failing: Vec<&String> = self.silent.iter().chain(&self.servfail).collect();
        let below = |owner: &str| {
            failing
                .iter()
                .any(|f| owner != f.as_str() && owner.ends_with(&format!(".{f}")))
        };
        let mut owners: Vec<String> = self
            .records
            .iter()
            .map(|(owner, _)| owner.clone())
            .filter(|owner| below(owner))
            .collect();
        owners.sort();
        owners.dedup();
        owners
    }
}

/// A name in zone-file form: absolute, lowercase, and every byte that is
/// not a letter, digit, hyphen or underscore written as `\DDD`.
pub fn zone_name(name: &str) -> String {
    let mut out = String::new();
    for label in name.trim_end_matches('.').split('.') {
        for &b in label.as_bytes() {
            match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => {
                    out.push(b.to_ascii_lowercase() as char)
                }
                _ => write!(out, "\\{b:03}").unwrap(),
            }
        }
        out.push('.');
    }
    out
}

/// Zone-file form of TXT data: each string quoted, with `"` and `\`
/// escaped and any byte outside printable ASCII written as `\DDD`.
pub fn txt_rdata(strings: &[&[u8]]) -> String {
    let mut out = String::new();
    for (i, s) in strings.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push('"');
        for &b in s.iter() {
            match b {
                b'"' | b'\\' => {
                    out.push('\\');
                    out.push(b as char);
                }
                0x20..=0x7e => out.push(b as char),
                _ => write!(out, "\\{b:03}").unwrap(),
            }
        }
        out.push('"');
    }
    out
}

/// A running knotd. `addr` serves UDP and TCP.
pub struct DnsServer {
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
    /// Bound and never read: where silent names are forwarded.
    _silent_udp: UdpSocket,
    _silent_tcp: TcpListener,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DnsServer {
    /// Starts knotd with `zones`; panics if it is not answering in time.
    pub fn start(zones: &Zones) -> DnsServer {
        let silent_udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let silent_port = silent_udp.local_addr().unwrap().port();
        let silent_tcp = TcpListener::bind(("127.0.0.1", silent_port))
            .unwrap_or_else(|_| TcpListener::bind("127.0.0.1:0").unwrap());
        // Knot binds UDP with SO_REUSEPORT: two instances given the same
        // free port would share it, each answering the other's queries
        // (NXDOMAIN from the wrong zones). Starts are serialised across
        // test processes, and each instance must answer with its own id.
        let _lock = start_lock();
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let id = instance_id();
            write_files(
                dir.path(),
                port,
                silent_port,
                &zones.clone().txt(ID_NAME, &id),
            );
            let mut child = spawn_knotd(dir.path());
            if wait_ready(port, &id, &mut child) {
                let log = std::fs::read_to_string(dir.path().join("knotd.log")).unwrap_or_default();
                assert!(!log.contains("error"), "knotd reported errors:\n{log}");
                return DnsServer {
                    addr: SocketAddr::from(([127, 0, 0, 1], port)),
                    child,
                    _dir: dir,
                    _silent_udp: silent_udp,
                    _silent_tcp: silent_tcp,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.path().join("knotd.log")).unwrap_or_default();
            eprintln!("knotd did not start on port {port}; retrying\n{log}");
        }
        panic!("knotd would not start");
    }

    /// The `dns:` section pointing spamgate at this server.
    pub fn yaml(&self, timeout: &str) -> String {
        format!(
            "dns:\n  nameservers: ['{}']\n  timeout: {timeout}\n  attempts: 1\n",
            self.addr
        )
    }
}

/// The name whose TXT record tells one knot instance from another.
const ID_NAME: &str = "spamgate-test-knot-id";

fn instance_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{}-{n}-{nanos}", std::process::id())
}

/// An exclusive lock held while one knot starts, across every test
/// process of the machine; released when the file is dropped.
fn start_lock() -> std::fs::File {
    let path = std::env::temp_dir().join("spamgate-test-knot.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file.lock().expect("lock the knot start file");
    file
}

fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A port on which nothing listens: UDP sent there is refused at once.
fn closed_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Many UDP workers: knot's forwarder blocks the worker that reads a silent
/// query for the whole hold, with every query read in the same batch; the
/// more workers, the rarer a fast query shares one.
fn write_files(dir: &Path, port: u16, silent_port: u16, zones: &Zones) {
    let d = dir.display();
    let mut conf = format!(
        "server:\n  rundir: \"{d}\"\n  listen: 127.0.0.1@{port}\n  udp-workers: 64\n  tcp-workers: 8\n  background-workers: 1\n\
         control:\n  listen: \"{d}/knot.sock\"\n\
         database:\n  storage: \"{d}\"\n\
         log:\n  - target: stderr\n    any: warning\n\
         remote:\n  - id: silent\n    address: 127.0.0.1@{silent_port}\n  - id: closed\n    address: 127.0.0.1@{}\n\
         mod-dnsproxy:\n  - id: silent\n    remote: silent\n    timeout: {SILENT_HOLD_MS}\n    fallback: off\n\
         \x20 - id: closed\n    remote: closed\n    timeout: 1000\n    fallback: off\n\
         zone:\n  - domain: .\n    file: \"{d}/root.zone\"\n",
        closed_port()
    );
    let own = zones.own_zones();
    let mut root = zone_head(".");
    let mut files: Vec<(String, String, Option<&str>)> = own
        .iter()
        .map(|owner| (owner.clone(), zone_head(owner), None))
        .collect();
    for (owner, line) in &zones.records {
        let text = match files.iter_mut().find(|(apex, _, _)| apex == owner) {
            Some((_, text, _)) => text,
            None => &mut root,
        };
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(dir.join("root.zone"), root).unwrap();
    let proxied = zones.silent.iter().map(|n| (n, "silent"));
    let proxied = proxied.chain(zones.servfail.iter().map(|n| (n, "closed")));
    for (name, module) in proxied {
        files.push((name.clone(), zone_head(name), Some(module)));
    }
    for (i, (apex, text, module)) in files.iter().enumerate() {
        let file = dir.join(format!("zone{i}.zone"));
        std::fs::write(&file, text).unwrap();
        let file = file.display();
        writeln!(conf, "  - domain: \"{apex}\"\n    file: \"{file}\"").unwrap();
        if let Some(module) = module {
            writeln!(conf, "    module: mod-dnsproxy/{module}").unwrap();
        }
    }
    std::fs::write(dir.join("knot.conf"), conf).unwrap();
}

fn zone_head(apex: &str) -> String {
    format!("{apex} 60 IN SOA ns. hostmaster. 1 3600 600 86400 60\n{apex} 60 IN NS ns.\n")
}

fn spawn_knotd(dir: &Path) -> Child {
    let log = std::fs::File::create(dir.join("knotd.log")).unwrap();
    Command::new("knotd")
        .arg("-c")
        .arg(dir.join("knot.conf"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("knotd (Debian package knot) must be installed")
}

/// Polls with a TXT query for the instance's id until this knot (not
/// another one sharing the port) answers with it, knot exits or the
/// deadline passes.
fn wait_ready(port: u16, id: &str, child: &mut Child) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let query = id_query();
    let deadline = Instant::now() + START_DEADLINE;
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        let _ = socket.send_to(&query, ("127.0.0.1", port));
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            if n >= 12 && buf[..2] == query[..2] {
                return contains(&buf[..n], id.as_bytes());
            }
        }
    }
    false
}

/// A DNS query (id 0x5347, recursion not desired) for TXT at [`ID_NAME`].
fn id_query() -> Vec<u8> {
    let mut query = vec![0x53, 0x47, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    query.push(ID_NAME.len() as u8);
    query.extend_from_slice(ID_NAME.as_bytes());
    query.extend_from_slice(&[0, 0, 16, 0, 1]);
    query
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
