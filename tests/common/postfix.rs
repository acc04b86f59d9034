//! Postfix's own programs as test fixtures: `smtp-sink` as an upstream that
//! dumps every message to a file, `smtp-source` and `swaks` as clients, and a
//! private, real Postfix instance (master, smtpd, cleanup, qmgr, virtual) in
//! a temporary directory with its own configuration, queue, log and mailbox.
//!
//! Every process started here is stopped on drop. The Postfix instance runs
//! in its own PID namespace when the machine allows it, because its daemons
//! outlive the master's death and, orphaned, would stay as zombies under an
//! init that does not reap them; killing the namespace's init (the master)
//! takes every one of them down with it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::io::AsyncBufReadExt;

/// The only mailbox of the test Postfix; any other address in
/// [`POSTFIX_DOMAIN`] is refused at RCPT with `550 5.1.1`.
pub const MAILBOX: &str = "user@example.test";
pub const POSTFIX_DOMAIN: &str = "example.test";
/// The name the test Postfix uses for itself (`by ...` in Received).
pub const POSTFIX_HOSTNAME: &str = "postfix.test";

const STARTUP: Duration = Duration::from_secs(60);
const COMMAND_LIMIT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(20);

/// What a client program (smtp-source, swaks) did.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// stdout and stderr together, for assertions and failure messages.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `smtp-source` against `addr` with `args` (everything but the target).
pub async fn smtp_source(addr: SocketAddr, args: &[&str]) -> Run {
    let target = format!("127.0.0.1:{}", addr.port());
    let mut all: Vec<&str> = args.to_vec();
    all.push(&target);
    run("/usr/sbin/smtp-source", &all).await
}

/// Runs `swaks` against `addr`; `args` add to `--server`.
pub async fn swaks(addr: SocketAddr, args: &[&str]) -> Run {
    let server = format!("127.0.0.1:{}", addr.port());
    let mut all = vec!["--server", server.as_str(), "--timeout", "60"];
    all.extend_from_slice(args);
    run("swaks", &all).await
}

async fn run(program: &str, args: &[&str]) -> Run {
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (is it installed?)"));
    let output = tokio::time::timeout(COMMAND_LIMIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} did not finish in {COMMAND_LIMIT:?}"))
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    Run {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Postfix's `smtp-sink` on a loopback port, writing each message it
/// accepts to its own file (`-d`), so tests can count and read them.
pub struct SmtpSink {
    pub addr: SocketAddr,
    dumps: TempDir,
    child: Option<Child>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.kill();
    }
}

impl SmtpSink {
    /// A sink that accepts everything and does not offer XCLIENT (its
    /// XCLIENT takes only NAME and HELO, and answers 250 where Postfix's
    /// smtpd answers 220).
    pub async fn start() -> SmtpSink {
        SmtpSink::start_with(&["-C"]).await
    }

    /// A sink with these `smtp-sink` options (`[]`: it offers XCLIENT).
    pub async fn start_with(options: &[&str]) -> SmtpSink {
        let dumps = tempfile::Builder::new()
            .prefix("spamgate-sink")
            .tempdir()
            .unwrap();
        let template = dumps.path().join("msg.");
        let (child, addr) = spawn_listening("smtp-sink", |port| {
            let mut command = Command::new("/usr/sbin/smtp-sink");
            if is_root() {
                command.args(["-u", "root"]);
            }
            command.args(options).arg("-d").arg(&template);
            command.arg(format!("127.0.0.1:{port}")).arg("256");
            command.stdout(Stdio::null()).stderr(Stdio::null());
            command
        })
        .await;
        SmtpSink {
            addr,
            dumps,
            child: Some(child),
        }
    }

    /// Every message dumped so far (smtp-sink's own `X-...` and `Received:`
    /// lines first, then the message as received, newline line ends).
    pub fn messages(&self) -> Vec<String> {
        files_in(self.dumps.path())
            .iter()
            .map(|path| std::fs::read_to_string(path).unwrap_or_default())
            .collect()
    }

    pub fn count(&self) -> usize {
        files_in(self.dumps.path()).len()
    }

    /// Waits until at least `n` messages were dumped.
    pub async fn wait_count(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.count() < n {
            assert!(
                Instant::now() < deadline,
                "smtp-sink has {} messages, expected {n}",
                self.count()
            );
            tokio::time::sleep(POLL).await;
        }
        self.messages()
    }

    /// Kills the sink at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A private Postfix: its own `main.cf`/`master.cf`, queue, data directory,
/// log file and a virtual mailbox for [`MAILBOX`], with `smtpd` on a
/// loopback port and `smtpd_authorized_xclient_hosts = 127.0.0.1`.
pub struct Postfix {
    pub addr: SocketAddr,
    dir: TempDir,
    child: Option<Child>,
    namespaced: bool,
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if !self.namespaced {
            let _ = Command::new("postfix")
                .arg("-c")
                .arg(self.dir.path().join("etc"))
                .arg("stop")
                .status();
        }
        // In a namespace the master is its init: killing it kills them all.
        kill_tree(&mut child);
    }
}

impl Postfix {
    /// Starts Postfix and waits for its smtpd's 220 banner. Needs root.
    pub async fn start() -> Postfix {
        Postfix::start_with("").await
    }

    /// Postfix whose smtpd offers STARTTLS with `cert` and records the TLS
    /// session in its Received header (`using TLSv1.3 with cipher ...`).
    pub async fn start_with_tls(cert: &super::tls::TestCert) -> Postfix {
        let settings = format!(
            "smtpd_tls_cert_file = {}\nsmtpd_tls_key_file = {}\n\
             smtpd_tls_security_level = may\nsmtpd_tls_received_header = yes\n\
             smtpd_tls_loglevel = 1\n",
            cert.cert.path().display(),
            cert.key.path().display()
        );
        Postfix::start_with(&settings).await
    }

    /// Postfix with `extra` lines appended to its `main.cf`.
    pub async fn start_with(extra: &str) -> Postfix {
        assert!(
            is_root(),
            "a private Postfix instance needs root (master runs as root)"
        );
        let dir = tempfile::Builder::new()
            .prefix("spamgate-postfix")
            .tempdir()
            .unwrap();
        prepare_dirs(dir.path());
        let namespaced = pid_namespaces_work();
        let etc = dir.path().join("etc");
        let (child, addr) = spawn_listening("postfix", |port| {
            std::fs::write(etc.join("main.cf"), main_cf(dir.path()) + extra).unwrap();
            std::fs::write(etc.join("master.cf"), master_cf(port)).unwrap();
            let _ = std::fs::remove_file(dir.path().join("queue/pid/master.pid"));
            postfix_command(&etc, dir.path(), namespaced)
        })
        .await;
        Postfix {
            addr,
            dir,
            child: Some(child),
            namespaced,
        }
    }

    /// Postfix's log so far (`maillog_file`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// Waits for a log line containing `needle` and returns that line.
    pub async fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(line) = self.log().lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?} in:\n{}",
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Messages delivered to [`MAILBOX`] (maildir files, oldest first).
    pub fn mailbox(&self) -> Vec<String> {
        let maildir = self.dir.path().join("vmail/user");
        let mut paths = files_in(&maildir.join("new"));
        paths.extend(files_in(&maildir.join("cur")));
        paths
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect()
    }

    /// Waits until [`MAILBOX`] holds at least `n` messages.
    pub async fn wait_mailbox(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.mailbox().len() < n {
            assert!(
                Instant::now() < deadline,
                "{} messages delivered, expected {n}; Postfix log:\n{}",
                self.mailbox().len(),
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
        self.mailbox()
    }
}

fn prepare_dirs(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    // The daemons drop to the postfix user and the virtual agent to
    // nobody: both must be able to reach their directories.
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    for sub in ["etc", "queue", "data", "vmail"] {
        std::fs::create_dir(root.join(sub)).unwrap();
    }
    std::os::unix::fs::chown(root.join("data"), Some(uid_of("postfix")), None).unwrap();
    let nobody = uid_of("nobody");
    std::os::unix::fs::chown(root.join("vmail"), Some(nobody), Some(nobody)).unwrap();
}

fn main_cf(root: &Path) -> String {
    let root = root.display();
    let nobody = uid_of("nobody");
    format!(
        "compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = {POSTFIX_HOSTNAME}
mydomain = {POSTFIX_HOSTNAME}
myorigin = $myhostname
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
alias_maps =
alias_database =
smtp_dns_support_level = disabled
maillog_file_prefixes = {root}
maillog_file = {root}/maillog
smtpd_authorized_xclient_hosts = 127.0.0.1
virtual_mailbox_domains = {POSTFIX_DOMAIN}
virtual_mailbox_base = {root}/vmail
virtual_mailbox_maps = inline:{{ {MAILBOX}=user/ }}
virtual_uid_maps = static:{nobody}
virtual_gid_maps = static:{nobody}
"
    )
}

/// Only what mail needs to go from smtpd to the mailbox; nothing chrooted
/// (a chroot would need copies of /etc files inside the queue directory).
fn master_cf(port: u16) -> String {
    let services = [
        "pickup unix n - n 60 1 pickup",
        "cleanup unix n - n - 0 cleanup",
        "qmgr unix n - n 300 1 qmgr",
        "rewrite unix - - n - - trivial-rewrite",
        "bounce unix - - n - 0 bounce",
        "defer unix - - n - 0 bounce",
        "trace unix - - n - 0 bounce",
        "verify unix - - n - 1 verify",
        "flush unix n - n 1000? 0 flush",
        "proxymap unix - - n - - proxymap",
        "showq unix n - n - - showq",
        "error unix - - n - - error",
        "retry unix - - n - - error",
        "discard unix - - n - - discard",
        "virtual unix - n n - - virtual",
        "anvil unix - - n - 1 anvil",
        "scache unix - - n - 1 scache",
        "postlog unix-dgram n - n - 1 postlogd",
        "tlsmgr unix - - n 1000? 1 tlsmgr",
    ];
    format!(
        "127.0.0.1:{port} inet n - n - - smtpd\n{}\n",
        services.join("\n")
    )
}

/// `postfix start-fg` keeps the master in the foreground; as the init of a
/// new PID namespace it runs as `master -i` and reaps its own daemons.
fn postfix_command(etc: &Path, root: &Path, namespaced: bool) -> Command {
    let mut command = if namespaced {
        let mut c = Command::new("unshare");
        c.args(["--pid", "--fork", "postfix"]);
        c
    } else {
        Command::new("postfix")
    };
    command
        .arg("-c")
        .arg(etc)
        .arg("start-fg")
        .stdin(Stdio::null());
    let out = std::fs::File::create(root.join("master.out")).unwrap();
    command.stdout(out.try_clone().unwrap()).stderr(out);
    command
}

fn pid_namespaces_work() -> bool {
    static WORKS: OnceLock<bool> = OnceLock::new();
    *WORKS.get_or_init(|| {
        Command::new("unshare")
            .args(["--pid", "--fork", "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Starts a server on a free port and waits for its 220 banner; picks
/// another port if the server died (the port may have been taken between
/// our probe and its bind).
async fn spawn_listening(
    what: &str,
    mut command: impl FnMut(u16) -> Command,
) -> (Child, SocketAddr) {
    let mut failures = Vec::new();
    for _ in 0..3 {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut child = command(addr.port())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        match wait_banner(addr, &mut child).await {
            Ok(()) => return (child, addr),
            Err(why) => {
                kill_tree(&mut child);
                failures.push(why);
            }
        }
    }
    panic!("{what} did not start: {failures:?}");
}

async fn wait_banner(addr: SocketAddr, child: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + STARTUP;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited with {status}"));
        }
        if let Some(banner) = read_banner(addr).await {
            return match banner.starts_with("220") {
                true => Ok(()),
                false => Err(format!("banner {banner:?}")),
            };
        }
        tokio::time::sleep(POLL).await;
    }
    Err(format!("no banner on {addr} within {STARTUP:?}"))
}

async fn read_banner(addr: SocketAddr) -> Option<String> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let mut reader = tokio::io::BufReader::new(stream);
    let mut line = String::new();
    let read = tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line));
    match read.await {
        Ok(Ok(n)) if n > 0 => Some(line),
        _ => None,
    }
}

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| {
            (
                e.metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH),
                e.path(),
            )
        })
        .collect();
    files.sort();
    files.into_iter().map(|(_, path)| path).collect()
}

fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap_or("");
    // Real, effective, saved, filesystem: the effective one is second.
    uid_line.split_whitespace().nth(2) == Some("0")
}

fn uid_of(user: &str) -> u32 {
    let output = Command::new("id").args(["-u", user]).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("no user {user:?} (is postfix installed?)"))
}

/// Kills a process and its direct children, and reaps the process.
fn kill_tree(child: &mut Child) {
    for pid in children_of(child.id()) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Direct children of `pid`, from `/proc/*/stat`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&candidate| parent_of(candidate) == Some(pid))
        .collect()
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces, so split after ')'.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
