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
    },
    /// Run every check on one message offline and print the verdict as JSON.
    Test(TestArgs),
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
        Cmd::Run { config } => load(config.as_deref()).map(run),
        Cmd::Check { config } => load(config.as_deref()).map(|_| {
            println!("configuration ok");
            Ok(())
        }),
        Cmd::Test(args) => load(args.config.as_deref()).map(|config| test(config, args)),
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

fn run(config: Config) -> anyhow::Result<()> {
    spamgate::logging::init(&config.log);
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async {
        let listeners = spamgate::Listeners::bind(&config).await?;
        spamgate::server::try_run(listeners, config, shutdown_signal()).await?;
        Ok(())
    })
}

fn test(config: Config, args: TestArgs) -> anyhow::Result<()> {
    let message = std::fs::read(&args.message)
        .with_context(|| format!("reading {}", args.message.display()))?;
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
