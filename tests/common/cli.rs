//! The `spamgate` binary as operators run it: offline commands whose
//! output the tests read, and a running process stopped by signal.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary cargo built for this test run.
pub fn spamgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_spamgate"))
}

/// Runs `command` and insists it succeeded, showing its stderr if not.
pub fn succeed(command: &mut Command) -> Output {
    let out = command.output().expect("spamgate runs");
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command that prints one JSON document (`spamgate test`).
pub fn json(command: &mut Command) -> serde_json::Value {
    let out = succeed(command);
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

/// Writes `text` to `dir/name`: a config, rule file or message.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Writes `rules` (a rule file's text) to `dir/name` and a config
/// `dir/c.yaml` that loads it and nothing else: (rule file, config).
pub fn rule_file_config(dir: &Path, name: &str, rules: &str) -> (PathBuf, PathBuf) {
    let file = write_file(dir, name, rules);
    let yaml = format!("rules: {{files: ['{}']}}\n", file.display());
    (file, write_file(dir, "c.yaml", &yaml))
}

/// A free loopback port: bound, then released for one child to take.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `spamgate run` as a child process listening on `port`; killed on drop
/// so a failing test leaves nothing behind.
pub struct Running {
    child: Child,
    pub addr: SocketAddr,
}

impl Running {
    /// Starts `spamgate run --config config` and waits until `port` listens.
    /// `stderr` is piped when the test reads the log, null otherwise.
    pub fn start(config: &Path, port: u16, stderr: Stdio) -> Running {
        let child = spamgate()
            .args(["run", "--config"])
            .arg(config)
            .stderr(stderr)
            .spawn()
            .expect("spamgate starts");
        let running = Running {
            child,
            addr: ([127, 0, 0, 1], port).into(),
        };
        running.wait_listening();
        running
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(self.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "spamgate did not listen on {}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal by name (`TERM`, `HUP`) the way an operator would.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} {}", self.child.id());
    }

    /// SIGTERM, then the exit status and everything written to a piped stderr.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        self.signal("TERM");
        let mut log = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            stderr.read_to_string(&mut log).unwrap();
        }
        (self.child.wait().unwrap(), log)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
