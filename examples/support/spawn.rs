//! Runs the real `spamgate` binary as a child process with a configuration
//! written here, and reads its memory figures from /proc.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Spamgate {
    pub addr: SocketAddr,
    pub pid: u32,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Spamgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The benches measure the relay and the protocol handling, not DNS: with
/// loopback only, every SPF/DKIM/DMARC lookup would just wait for its
/// timeout. Appended by the drivers to their configuration.
pub const NO_DNS_CHECKS: &str =
    "auth: {spf: {mode: off}, dkim: {mode: off}, arc: {mode: off}, dmarc: {mode: off}, from_header: off}";

/// A port that was free a moment ago (the child binds it right after).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

impl Spamgate {
    /// Starts `binary` relaying to `upstream`; `extra` is YAML appended at
    /// the top level. Logs go to `spamgate.log` in the temporary directory.
    pub fn start(binary: &Path, upstream: SocketAddr, extra: &str) -> Spamgate {
        let dir = tempfile::tempdir().expect("temporary directory");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = format!(
            "hostname: spamgate.bench\nlisten: ['{addr}']\nupstream: {{address: '{upstream}', xclient: true}}\nrelay_domains: [example.net]\nlog: {{level: warn}}\n{extra}\n"
        );
        let path = dir.path().join("spamgate.yaml");
        std::fs::write(&path, config).expect("write config");
        let log = std::fs::File::create(dir.path().join("spamgate.log")).expect("log file");
        let child = Command::new(binary)
            .args(["run", "--config"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let pid = child.id();
        let mut spamgate = Spamgate {
            addr,
            pid,
            child,
            _dir: dir,
        };
        spamgate.wait_listening();
        spamgate
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(self.addr).is_err() {
            assert!(self.alive(), "spamgate exited at startup: {}", self.log());
            assert!(
                Instant::now() < deadline,
                "spamgate does not listen on {}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("spamgate.log")).unwrap_or_default()
    }

    /// A `/proc/PID/status` figure in kB, e.g. `VmRSS` or `VmHWM`.
    pub fn status_kb(&self, key: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// Open file descriptors (sockets mostly).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid)).map_or(0, |d| d.count())
    }
}
