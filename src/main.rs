//! The `spamgate` command: thin wrapper over the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use spamgate::config::{Config, ConfigErrors, DEFAULT_CONFIG_FILE};

/// Exit status for an invalid configuration (EX_USAGE... EX_DATAERR is 65;
/// sysexits' EX_USAGE, 64, is what operators' scripts expect here).
const EXIT_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(name = "spamgate", version, about = "Anti-spam SMTP filtering proxy")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the proxy.
    Run {
        /// Configuration file (default: ./spamgate.yaml if present, else built-in defaults).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate the configuration and print every error.
    Check {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Also connect to the upstream and print what it offers and
        /// whether it would relay for outsiders (nothing is sent).
        #[arg(long)]
        probe: bool,
    },
    /// Run every check on one message offline and print the verdict as JSON.
    Test(TestArgs),
    /// Run stored mail (files, directories, Maildirs, mbox files) through
    /// the rules offline and print verdicts and hits per rule.
    Replay(ReplayArgs),
    /// Teach the statistical classifier (bayes) messages known to be spam
    /// or ham (files, directories, Maildirs, mbox files).
    Learn(LearnArgs),
}

#[derive(clap::Args)]
struct LearnArgs {
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Messages known to be spam (repeatable; several paths may follow).
    #[arg(long, num_args = 1..)]
    spam: Vec<PathBuf>,
    /// Messages known to be ham (repeatable; several paths may follow).
    #[arg(long, num_args = 1..)]
    ham: Vec<PathBuf>,
    /// Unlearn the messages (from the class they were learned as).
    #[arg(long)]
    forget: bool,
}

#[derive(clap::Args)]
struct ReplayArgs {
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Messages known to be spam (repeatable): recall per rule.
    #[arg(long)]
    spam: Vec<PathBuf>,
    /// Messages known to be ham (repeatable): false positives per rule.
    #[arg(long)]
    ham: Vec<PathBuf>,
    /// Run every configured check, DNS lookups included, not only the rules.
    #[arg(long)]
    network: bool,
    /// Also print each message tagged or refused, with its rules.
    #[arg(long)]
    list: bool,
    /// Write one tab-separated line per message to FILE: label
    /// (spam, ham or unlabelled), the final score the verdict was drawn
    /// from, the verdict (accept, tag, reject, tempfail) and the path.
    #[arg(long, value_name = "FILE")]
    scores: Option<PathBuf>,
    /// Unlabelled messages.
    paths: Vec<PathBuf>,
}

#[derive(clap::Args)]
struct TestArgs {
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The client's IP address.
    #[arg(long)]
    ip: std::net::IpAddr,
    /// The HELO/EHLO name the client gave.
    #[arg(long)]
    helo: String,
    /// The MAIL FROM address (empty for the null sender).
    #[arg(long, allow_hyphen_values = true)]
    from: String,
    /// A RCPT TO address; repeat for more.
    #[arg(long = "rcpt", required = true)]
    rcpts: Vec<String>,
    /// The message file (RFC 5322, LF or CRLF line ends).
    message: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Run { config } => load(config.as_deref()).and_then(check_rules).map(run),
        Cmd::Check { config, probe } => load(config.as_deref()).and_then(check_rules).map(|c| {
            println!("configuration ok");
            match probe {
                true => probe_upstream(&c),
                false => Ok(()),
            }
        }),
        Cmd::Replay(args) => load(args.config.as_deref()).map(|config| replay(config, args)),
        Cmd::Test(args) => load(args.config.as_deref()).map(|config| test(config, args)),
        Cmd::Learn(args) => load(args.config.as_deref()).map(|config| learn(config, args)),
    };
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(error)) => {
            eprintln!("spamgate: {error:#}");
            ExitCode::FAILURE
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn load(path: Option<&Path>) -> Result<Config, ConfigErrors> {
    match path {
        Some(path) => Config::load(path),
        None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
            Config::load(Path::new(DEFAULT_CONFIG_FILE))
        }
        None => Ok(Config::default()),
    }
}

/// The rule files must be valid too: every error, in the same format.
fn check_rules(config: Config) -> Result<Config, ConfigErrors> {
    if !config.rules.is_on() {
        return Ok(config);
    }
    match spamgate::rules::RuleSet::load(&config.rules) {
        Ok(_) => Ok(config),
        Err(errors) => Err(ConfigErrors(errors.0.into_iter().map(Into::into).collect())),
    }
}

fn run(config: Config) -> anyhow::Result<()> {
    let _log = spamgate::logging::init(&config.log);
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async {
        let reload = spamgate::shared::Reload::default();
        hangups(reload.clone())?;
        let listeners = spamgate::Listeners::bind(&config).await?;
        spamgate::server::try_run_reloadable(listeners, config, shutdown_signal(), reload).await?;
        Ok(())
    })
}

/// SIGHUP reloads the rule files (and anything else that subscribes).
fn hangups(reload: spamgate::shared::Reload) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading");
            reload.trigger();
        }
    });
    Ok(())
}

/// `spamgate check --probe`: the start-up probe on demand, in words.
fn probe_upstream(config: &Config) -> anyhow::Result<()> {
    use spamgate::server::probe::{findings, Level};
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let caps = spamgate::upstream::SharedCapabilities::default();
    let (upstream, timeouts) = (&config.upstream, &config.timeouts);
    let probe = spamgate::upstream::Upstream::probe(upstream, timeouts, &caps);
    let report = runtime
        .block_on(async { tokio::time::timeout(timeouts.upstream_connect, probe).await })
        .map_err(|_| {
            anyhow::anyhow!(
                "upstream {}: no answer within upstream_connect",
                upstream.address
            )
        })?
        .with_context(|| format!("upstream {}", upstream.address))?;
    println!("upstream {}: reachable", upstream.address);
    let found = findings(config, &report);
    for finding in &found {
        println!("  {finding}");
    }
    match found.iter().any(|f| f.level == Level::Error) {
        true => anyhow::bail!("the upstream probe found errors (above)"),
        false => Ok(()),
    }
}

fn replay(config: Config, args: ReplayArgs) -> anyhow::Result<()> {
    if args.paths.is_empty() && args.spam.is_empty() && args.ham.is_empty() {
        anyhow::bail!("give messages to replay: PATH..., --spam PATH or --ham PATH");
    }
    let options = spamgate::offline::replay::ReplayOptions {
        paths: args.paths,
        spam: args.spam,
        ham: args.ham,
        network: args.network,
        progress: None,
        list: args.list,
        scores: args.scores,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let report = runtime.block_on(spamgate::offline::replay::replay(&config, &options))?;
    print!("{}", spamgate::offline::replay::format_report(&report));
    Ok(())
}

fn learn(config: Config, args: LearnArgs) -> anyhow::Result<()> {
    if args.spam.is_empty() && args.ham.is_empty() {
        anyhow::bail!("give messages to learn: --spam PATH... and/or --ham PATH...");
    }
    if !config.bayes.enabled {
        anyhow::bail!("bayes is not enabled in the configuration (bayes.enabled: true)");
    }
    let redis = match &config.state {
        spamgate::config::state::StateConfig::Redis(r) => Some(r),
        spamgate::config::state::StateConfig::Memory => None,
    };
    let bayes = spamgate::bayes::Bayes::open(&config.bayes, redis)?;
    let options = spamgate::offline::learn::LearnOptions {
        spam: args.spam,
        ham: args.ham,
        forget: args.forget,
        progress: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let summary = runtime.block_on(spamgate::offline::learn::learn(&bayes, &options))?;
    println!("{}", summary.line());
    Ok(())
}

fn test(config: Config, args: TestArgs) -> anyhow::Result<()> {
    // A message saved from a mailbox may start with mbox's `From ` line,
    // which is not a header field: read it as replay does.
    let mut messages = spamgate::offline::replay::read_messages(&args.message)
        .with_context(|| format!("reading {}", args.message.display()))?;
    let message = match messages.len() {
        1 => messages.remove(0),
        0 => anyhow::bail!("{}: no message in this mbox", args.message.display()),
        n => anyhow::bail!(
            "{}: an mbox of {n} messages; `spamgate replay` judges each",
            args.message.display()
        ),
    };
    let input = spamgate::offline::TestInput {
        ip: args.ip,
        helo: args.helo,
        mail_from: args.from,
        rcpts: args.rcpts,
        message,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let report = runtime.block_on(spamgate::offline::run(&config, &input))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
