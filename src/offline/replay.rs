//! `spamgate replay`: every stored message through the configured checks,
//! offline, with a table of verdicts and rule hits; with messages labelled
//! spam and ham, recall and false positives per rule and overall. This is
//! how an operator measures a rule before enforcing it.
//!
//! Messages are read from single files, mbox files (a file whose first
//! line starts with `From `), Maildirs (a directory with `cur` or `new`)
//! and directories of any of these, recursively. Each message runs through
//! [`super::judge`], as `spamgate test` runs it: client
//! 192.0.2.1 (a documentation address on no list), envelope taken from the
//! message's headers. Without `network`, only the rules run (no DNS).

use std::collections::BTreeMap;
use std::io::{BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mail_parser::mailbox::mbox::MessageIterator;
use mail_parser::MessageParser;

use super::{judge, TestInput, TestReport};
use crate::checks::{Pipeline, SetupError};
use crate::config::Config;
use crate::metrics::Metrics;

/// Where the messages of a replay come from, and what they are known to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    Unlabelled,
    Spam,
    Ham,
}

#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    pub paths: Vec<PathBuf>,
    pub spam: Vec<PathBuf>,
    pub ham: Vec<PathBuf>,
    /// Run every configured check (DNS included), not only the rules.
    pub network: bool,
    /// Show a progress line on stderr (`None`: when stderr is a terminal).
    pub progress: Option<bool>,
    /// Print every message that was tagged or refused, with its rules.
    pub list: bool,
    /// Write each message's label, score, verdict and path to this file:
    /// a benchmark sweeps the threshold over these scores (a ROC curve)
    /// without replaying once per threshold.
    pub scores: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("no rule files are configured (rules.files), bayes is off, and --network is off: nothing would run")]
    NothingToRun,
    #[error("{0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("writing the scores to {0}: {1}")]
    Scores(PathBuf, std::io::Error),
}

/// Hits of one rule, split by label.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleCounts {
    pub hits: usize,
    pub spam: usize,
    pub ham: usize,
    pub monitor: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub messages: usize,
    pub spam: usize,
    pub ham: usize,
    /// verdict → (all, spam, ham)
    pub verdicts: BTreeMap<&'static str, [usize; 3]>,
    pub rules: BTreeMap<String, RuleCounts>,
    /// Spam flagged (tagged or refused), and ham flagged.
    pub spam_flagged: usize,
    pub ham_flagged: usize,
}

impl Report {
    fn add(&mut self, label: Label, report: &TestReport) {
        self.messages += 1;
        let column = match label {
            Label::Unlabelled => None,
            Label::Spam => Some(1),
            Label::Ham => Some(2),
        };
        let flagged = report.verdict != "accept";
        let counts = self.verdicts.entry(report.verdict).or_default();
        counts[0] += 1;
        if let Some(c) = column {
            counts[c] += 1;
        }
        self.spam += usize::from(label == Label::Spam);
        self.ham += usize::from(label == Label::Ham);
        self.spam_flagged += usize::from(label == Label::Spam && flagged);
        self.ham_flagged += usize::from(label == Label::Ham && flagged);
        let mut seen: Vec<&str> = Vec::new();
        // The classifier's band is a row of the table too (BAYES_99...).
        let bands = report
            .reasons
            .iter()
            .filter(|r| r.check == crate::judgement::BAYES_CHECK && r.score != 0.0);
        for band in bands {
            let counts = self.rules.entry(band.text.clone()).or_default();
            counts.hits += 1;
            counts.spam += usize::from(label == Label::Spam);
            counts.ham += usize::from(label == Label::Ham);
        }
        for hit in &report.rules {
            if seen.contains(&hit.name.as_str()) {
                continue;
            }
            seen.push(&hit.name);
            let counts = self.rules.entry(hit.name.clone()).or_default();
            counts.hits += 1;
            counts.spam += usize::from(label == Label::Spam);
            counts.ham += usize::from(label == Label::Ham);
            counts.monitor = hit.mode == "monitor";
        }
    }
}

/// Runs the replay; messages that cannot be read are reported on stderr
/// and skipped.
pub async fn replay(config: &Config, options: &ReplayOptions) -> Result<Report, ReplayError> {
    let pipeline = pipeline(config, options.network)?;
    let mut progress = Progress::new(options.progress);
    let mut scores = ScoresFile::create(options.scores.as_deref())?;
    let mut report = Report::default();
    let sets = [
        (&options.paths, Label::Unlabelled),
        (&options.spam, Label::Spam),
        (&options.ham, Label::Ham),
    ];
    for (paths, label) in sets {
        for path in paths {
            for file in message_files(path).map_err(|e| ReplayError::Read(path.clone(), e))? {
                for message in
                    read_messages(&file).map_err(|e| ReplayError::Read(file.clone(), e))?
                {
                    let input = test_input(message);
                    let judged = judge(&pipeline, config, &input).await;
                    if options.list && judged.verdict != "accept" {
                        println!("{}", flagged_line(&file, label, &judged));
                    }
                    scores.write(&file, label, &judged)?;
                    report.add(label, &judged);
                    progress.tick(report.messages);
                }
            }
        }
    }
    scores.finish()?;
    progress.done(report.messages);
    Ok(report)
}

/// The `--scores` file, when one was asked for: one line a message,
/// `LABEL  SCORE  VERDICT  PATH`, tab-separated. The score is written in
/// full (shortest round-trip form), so that a threshold swept over the
/// file splits messages exactly where the verdict's comparison does.
struct ScoresFile {
    path: PathBuf,
    out: Option<std::io::BufWriter<std::fs::File>>,
}

impl ScoresFile {
    fn create(path: Option<&Path>) -> Result<Self, ReplayError> {
        let Some(path) = path else {
            return Ok(ScoresFile {
                path: PathBuf::new(),
                out: None,
            });
        };
        let file =
            std::fs::File::create(path).map_err(|e| ReplayError::Scores(path.to_path_buf(), e))?;
        Ok(ScoresFile {
            path: path.to_path_buf(),
            out: Some(std::io::BufWriter::new(file)),
        })
    }

    fn write(&mut self, file: &Path, label: Label, judged: &TestReport) -> Result<(), ReplayError> {
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        let label = match label {
            Label::Unlabelled => "unlabelled",
            Label::Spam => "spam",
            Label::Ham => "ham",
        };
        writeln!(
            out,
            "{label}\t{}\t{}\t{}",
            judged.score,
            judged.verdict,
            file.display()
        )
        .map_err(|e| ReplayError::Scores(self.path.clone(), e))
    }

    /// Flushes the buffer: a write error at the end is an error too, not
    /// a silently short file.
    fn finish(self) -> Result<(), ReplayError> {
        match self.out {
            Some(mut out) => out.flush().map_err(|e| ReplayError::Scores(self.path, e)),
            None => Ok(()),
        }
    }
}

/// `FILE  LABEL  VERDICT  SCORE  BAYES_99,RULE,RULE,...` for `--list`:
/// the classifier's band, when it scored, before the rules.
fn flagged_line(file: &Path, label: Label, judged: &TestReport) -> String {
    let label = match label {
        Label::Unlabelled => "-",
        Label::Spam => "spam",
        Label::Ham => "ham",
    };
    let bands = judged
        .reasons
        .iter()
        .filter(|r| r.check == crate::judgement::BAYES_CHECK && r.score != 0.0)
        .map(|r| r.text.as_str());
    let rules: Vec<&str> = bands
        .chain(judged.rules.iter().map(|r| r.name.as_str()))
        .collect();
    format!(
        "{}\t{label}\t{}\t{:.1}\t{}",
        file.display(),
        judged.verdict,
        judged.score,
        rules.join(",")
    )
}

fn pipeline(config: &Config, network: bool) -> Result<Pipeline, ReplayError> {
    let metrics = Metrics::new();
    if network {
        return Ok(Pipeline::from_config(config, &metrics)?);
    }
    let bayes = crate::checks::bayes_check(config, &metrics)?;
    if !config.rules.is_on() && bayes.is_none() {
        return Err(ReplayError::NothingToRun);
    }
    let mut checks: Vec<Arc<dyn crate::checks::Check>> = Vec::new();
    if config.rules.is_on() {
        let handle =
            crate::rules::RulesHandle::load(&config.rules, &metrics).map_err(SetupError::from)?;
        checks.push(Arc::new(crate::checks::rules::RulesCheck::new(handle)));
    }
    let pipeline = Pipeline::new(checks);
    // The classifier runs before the rules, as in the proxy.
    Ok(match bayes {
        Some(check) => pipeline.with_bayes(check),
        None => pipeline,
    })
}

/// The files under `path`: itself, or a directory's files (sorted,
/// recursively; a Maildir's `tmp` and hidden files skipped).
pub fn message_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        std::fs::metadata(path)?;
        return Ok(vec![path.to_path_buf()]);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    entries.sort();
    let maildir = path.join("cur").is_dir() || path.join("new").is_dir();
    let mut files = Vec::new();
    for entry in entries {
        if maildir && entry.file_name().is_some_and(|n| n == "tmp") {
            continue;
        }
        files.extend(message_files(&entry)?);
    }
    Ok(files)
}

/// The messages of one file: several for an mbox, else the file itself.
pub fn read_messages(file: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(file)?;
    if !bytes.starts_with(b"From ") {
        return Ok(vec![bytes]);
    }
    let mbox = MessageIterator::new(BufReader::new(bytes.as_slice()));
    Ok(mbox
        .filter_map(Result::ok)
        .map(|m| m.unwrap_contents())
        .collect())
}

/// The envelope a stored message most likely had: the sender from
/// Return-Path (else From), the recipients from Delivered-To (else To
/// and Cc).
fn test_input(message: Vec<u8>) -> TestInput {
    let (mail_from, rcpts) = envelope_of(&message);
    TestInput {
        ip: std::net::IpAddr::from([192, 0, 2, 1]),
        helo: "replay.invalid".to_string(),
        mail_from,
        rcpts,
        message,
    }
}

fn envelope_of(message: &[u8]) -> (String, Vec<String>) {
    let Some(parsed) = MessageParser::new().parse_headers(message) else {
        return (String::new(), vec!["postmaster@replay.invalid".into()]);
    };
    let headers = parsed.root().headers();
    let first = |list: Option<mail_parser::AddressList<'_>>| -> Vec<String> {
        list.map(|l| {
            l.mailboxes()
                .filter_map(|m| m.address())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
    };
    let sender = headers
        .return_address()
        .map(|s| s.trim_matches(['<', '>']).to_string())
        .or_else(|| first(headers.from()).into_iter().next())
        .unwrap_or_default();
    let delivered: Vec<String> = headers
        .all("Delivered-To")
        .filter_map(|h| {
            h.parse_as(mail_parser::HeaderForm::Text)
                .value()
                .as_text()
                .map(|t| t.trim().to_string())
        })
        .filter(|t| t.contains('@'))
        .collect();
    let mut rcpts = match delivered.is_empty() {
        true => [first(headers.to()), first(headers.cc())].concat(),
        false => delivered,
    };
    if rcpts.is_empty() {
        rcpts.push("postmaster@replay.invalid".into());
    }
    (sender, rcpts)
}

/// A progress line on a terminal; nothing when piped (also `spamgate learn`'s).
pub(crate) struct Progress {
    on: bool,
    started: Instant,
    last: Instant,
}

impl Progress {
    pub(crate) fn new(on: Option<bool>) -> Self {
        let now = Instant::now();
        Progress {
            on: on.unwrap_or_else(|| std::io::stderr().is_terminal()),
            started: now,
            last: now,
        }
    }

    pub(crate) fn tick(&mut self, done: usize) {
        if self.on && self.last.elapsed() >= Duration::from_millis(200) {
            self.last = Instant::now();
            self.show(done);
        }
    }

    fn show(&self, done: usize) {
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{done} messages, {rate:.0}/s");
        let _ = err.flush();
    }

    pub(crate) fn done(&self, done: usize) {
        if self.on {
            self.show(done);
            let _ = writeln!(std::io::stderr());
        }
    }
}

fn percent(part: usize, whole: usize) -> String {
    match whole {
        0 => "-".to_string(),
        _ => format!("{:.2}%", 100.0 * part as f64 / whole as f64),
    }
}

/// The report as aligned text tables.
pub fn format_report(r: &Report) -> String {
    let labelled = r.spam + r.ham > 0;
    let mut out = format!(
        "messages: {} (spam {}, ham {}, unlabelled {})\n\n",
        r.messages,
        r.spam,
        r.ham,
        r.messages - r.spam - r.ham
    );
    out.push_str(&format!(
        "{:<10} {:>9} {:>9} {:>9}\n",
        "verdict", "messages", "spam", "ham"
    ));
    for (verdict, [all, spam, ham]) in &r.verdicts {
        out.push_str(&format!("{verdict:<10} {all:>9} {spam:>9} {ham:>9}\n"));
    }
    out.push('\n');
    out.push_str(&format!(
        "{:<36} {:>7} {:>8} {:>7} {:>9} {:>6} {:>9}\n",
        "rule", "hits", "of all", "spam", "recall", "ham", "false pos"
    ));
    let mut rules: Vec<(&String, &RuleCounts)> = r.rules.iter().collect();
    rules.sort_by(|a, b| b.1.hits.cmp(&a.1.hits).then(a.0.cmp(b.0)));
    for (name, c) in rules {
        let name = match c.monitor {
            true => format!("{name} (monitor)"),
            false => name.clone(),
        };
        out.push_str(&format!(
            "{name:<36} {:>7} {:>8} {:>7} {:>9} {:>6} {:>9}\n",
            c.hits,
            percent(c.hits, r.messages),
            c.spam,
            percent(c.spam, r.spam),
            c.ham,
            percent(c.ham, r.ham)
        ));
    }
    if labelled {
        out.push_str(&format!(
            "\noverall (tagged or refused): spam {}/{} recall {}, ham {}/{} false positives {}\n",
            r.spam_flagged,
            r.spam,
            percent(r.spam_flagged, r.spam),
            r.ham_flagged,
            r.ham,
            percent(r.ham_flagged, r.ham)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_from_headers() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("Return-Path: <bounce@a.example>\r\nFrom: x@b.example\r\nTo: t@c.example\r\n\r\nhi", "bounce@a.example", &["t@c.example"]),
            ("From: X <x@b.example>\r\nTo: t@c.example, u@c.example\r\nCc: v@c.example\r\n\r\nhi", "x@b.example", &["t@c.example", "u@c.example", "v@c.example"]),
            ("Delivered-To: me@d.example\r\nTo: list@c.example\r\n\r\nhi", "", &["me@d.example"]),
            ("Subject: none\r\n\r\nhi", "", &["postmaster@replay.invalid"]),
        ];
        for (message, sender, rcpts) in cases {
            let (s, r) = envelope_of(message.as_bytes());
            assert_eq!(
                (s.as_str(), r),
                (
                    *sender,
                    rcpts.iter().map(|r| r.to_string()).collect::<Vec<_>>()
                ),
                "{message}"
            );
        }
    }

    #[test]
    fn sources_files_mbox_maildir() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("one.eml"), "Subject: a\r\n\r\nx\r\n").unwrap();
        std::fs::write(root.join("box.mbox"), "From a@b Sat Jan  3 01:05:34 1996\nSubject: b\n\nx\n>From here\n\nFrom c@d Sat Jan  3 01:05:34 1996\nSubject: c\n\ny\n").unwrap();
        for sub in ["md/cur", "md/new", "md/tmp"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        std::fs::write(root.join("md/cur/1:2,S"), "Subject: d\n\nz\n").unwrap();
        std::fs::write(root.join("md/new/2"), "Subject: e\n\nz\n").unwrap();
        std::fs::write(root.join("md/tmp/3"), "Subject: partial").unwrap();
        let files = message_files(root).unwrap();
        let messages: Vec<Vec<u8>> = files
            .iter()
            .flat_map(|f| read_messages(f).unwrap())
            .collect();
        let subjects: Vec<String> = messages
            .iter()
            .map(|m| {
                String::from_utf8_lossy(m)
                    .lines()
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(
            subjects,
            vec![
                "Subject: b",
                "Subject: c",
                "Subject: d",
                "Subject: e",
                "Subject: a"
            ]
        );
        assert!(String::from_utf8_lossy(&messages[0]).contains("\nFrom here"));
    }
}
