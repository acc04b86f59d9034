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
const SILENT_HOLD_MS: u64 = 10_000;

/// The records to serve, in zone-file syntax.
#[derive(Debug, Clone, Default)]
pub struct Zones {
    records: Vec<String>,
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
        self.records
            .push(format!("{} 60 IN {rtype} {rdata}", absolute(name)));
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

    /// Queries for `name` and every name below it are never answered.
    pub fn silent(mut self, name: &str) -> Zones {
        self.silent.push(absolute(name));
        self
    }

    /// Queries for `name` and every name below it get SERVFAIL.
    pub fn servfail(mut self, name: &str) -> Zones {
        self.servfail.push(absolute(name));
        self
    }
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

fn absolute(name: &str) -> String {
    match name.ends_with('.') {
        true => name.to_string(),
        false => format!("{name}."),
    }
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
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            write_files(dir.path(), port, silent_port, zones);
            let mut child = spawn_knotd(dir.path());
            if wait_ready(port, &mut child) {
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

fn write_files(dir: &Path, port: u16, silent_port: u16, zones: &Zones) {
    let d = dir.display();
    let mut conf = format!(
        "server:\n  rundir: \"{d}\"\n  listen: 127.0.0.1@{port}\n  udp-workers: 4\n  tcp-workers: 2\n  background-workers: 1\n\
         control:\n  listen: \"{d}/knot.sock\"\n\
         database:\n  storage: \"{d}\"\n\
         log:\n  - target: stderr\n    any: warning\n\
         remote:\n  - id: silent\n    address: 127.0.0.1@{silent_port}\n  - id: closed\n    address: 127.0.0.1@{}\n\
         mod-dnsproxy:\n  - id: silent\n    remote: silent\n    timeout: {SILENT_HOLD_MS}\n    fallback: off\n\
         \x20 - id: closed\n    remote: closed\n    timeout: 1000\n    fallback: off\n\
         zone:\n  - domain: .\n    file: \"{d}/root.zone\"\n",
        closed_port()
    );
    let mut root =
        String::from(". 60 IN SOA ns. hostmaster. 1 3600 600 86400 60\n. 60 IN NS ns.\n");
    for record in &zones.records {
        root.push_str(record);
        root.push('\n');
    }
    std::fs::write(dir.join("root.zone"), root).unwrap();
    let proxied = zones.silent.iter().map(|n| (n, "silent"));
    let proxied = proxied.chain(zones.servfail.iter().map(|n| (n, "closed")));
    for (i, (name, module)) in proxied.enumerate() {
        let file = dir.join(format!("proxied{i}.zone"));
        let zone =
            format!("{name} 60 IN SOA ns. hostmaster. 1 3600 600 86400 60\n{name} 60 IN NS ns.\n");
        std::fs::write(&file, zone).unwrap();
        write!(
            conf,
            "  - domain: \"{name}\"\n    file: \"{}\"\n    module: mod-dnsproxy/{module}\n",
            file.display()
        )
        .unwrap();
    }
    std::fs::write(dir.join("knot.conf"), conf).unwrap();
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

/// Polls with an SOA query for the root until knot answers, knot exits or
/// the deadline passes.
fn wait_ready(port: u16, child: &mut Child) -> bool {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    // id 0x5347, flags 0, one question: root, type SOA (6), class IN (1).
    let query = [0x53, 0x47, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 1];
    let deadline = Instant::now() + START_DEADLINE;
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        let _ = socket.send_to(&query, ("127.0.0.1", port));
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            if n >= 12 && buf[..2] == query[..2] {
                return true;
            }
        }
    }
    false
}
