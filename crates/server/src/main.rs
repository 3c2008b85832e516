//! `gatehoused`: the binary edge. Flags and config file → [`Config`], logging, signals.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use gatehouse_server::{Config, Server};

/// The gatehouse authentication server (TrueNAS SCALE middleware compatible).
#[derive(Debug, Parser)]
#[command(name = "gatehoused", version)]
struct Args {
    /// Data directory: database, lock file, key files and the default UNIX socket.
    /// Default: $GATEHOUSE_DATA_DIR, /var/lib/gatehouse for root, else ~/.local/share/gatehouse.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// TCP address to serve on (default 127.0.0.1:6000); an empty string disables TCP.
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// UNIX socket path (default DIR/gatehoused.sock).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Optional TOML file; its keys have the names of these flags (data_dir, listen, ...) plus
    /// [limits] and [rate_limit] tables. Flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log level: error, warn, info, debug, trace (or a tracing filter expression).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
}

fn load_config(args: Args) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            Config::from_toml(&text)
                .with_context(|| format!("invalid config file {}", path.display()))?
        }
        None => Config::default(),
    };
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(s) = args.socket {
        config.socket = Some(s);
    }
    if let Some(l) = args.log_level {
        config.log_level = l;
    }
    config.initial_admin_password = std::env::var("GATEHOUSE_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    Ok(config)
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One clear line, no backtrace: the operator needs the cause, not our stack.
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("gatehoused: {}", chain.join(": "));
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let config = load_config(args)?;
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .with_context(|| format!("invalid log level {:?}", config.log_level))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let server = Server::start(config).await?;
        tracing::info!(
            tcp = ?server.tcp_addr,
            socket = %server.socket_path.display(),
            "gatehoused is serving"
        );
        wait_for_signal().await?;
        tracing::info!("shutting down");
        server.shutdown().await;
        Ok(())
    })
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
