//! `gatehouse-bench [SCENARIO...] [--smoke] [--url URL ...]`: runs the scenarios and prints one
//! table. Scenarios: all (default), me, login, isolation, scale, writes, shell.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use gatehouse_bench::report;
use gatehouse_bench::scenarios::{Bench, Options, SCENARIOS};

const USAGE: &str = "usage: gatehouse-bench [all|me|login|isolation|scale|writes|shell]... [--smoke]
       [--sessions N] [--cli PATH] [--api-key-iterations N]
       [--url ws://HOST:PORT/api/current --username U --password P [--server-pid PID] [--socket PATH]]

Starts gatehoused on a temporary data directory and a free loopback port (unless --url), and a
bare WebSocket echo server on the same stack as the baseline, then prints a Markdown table.
Micro-benchmarks: cargo bench -p gatehouse-bench";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Internal subcommands: the child processes.
    match args.first().map(String::as_str) {
        Some("cli") => {
            let code = gatehouse_cli::app::main_with_args(args.into_iter().skip(1));
            return ExitCode::from(u8::try_from(code).unwrap_or(1));
        }
        Some("serve") | Some("echo") => {
            return match child_main(&args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("gatehouse-bench {}: {e:#}", args[0]);
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatehouse-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn child_main(args: &[String]) -> anyhow::Result<()> {
    if args[0] == "echo" {
        return gatehouse_bench::child::echo();
    }
    let mut data_dir = None;
    let mut password = None;
    let mut iterations = None;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--data-dir" => data_dir = it.next().map(PathBuf::from),
            "--password" => password = it.next().cloned(),
            "--api-key-iterations" => iterations = it.next().map(|n| n.parse()).transpose()?,
            other => bail!("unknown argument {other}"),
        }
    }
    let data_dir = data_dir.context("--data-dir is required")?;
    let password = password.context("--password is required")?;
    gatehouse_bench::child::serve(&data_dir, &password, iterations)
}

fn run(args: Vec<String>) -> anyhow::Result<()> {
    let mut opts = Options {
        username: "truenas_admin".into(),
        password: "bench-Passw0rd".into(),
        ..Default::default()
    };
    let mut chosen: Vec<String> = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "--smoke" => opts.smoke = true,
            "--url" => opts.url = Some(value("--url")?),
            "--username" => opts.username = value("--username")?,
            "--password" => opts.password = value("--password")?,
            "--server-pid" => opts.server_pid = Some(value("--server-pid")?.parse()?),
            "--socket" => opts.socket = Some(PathBuf::from(value("--socket")?)),
            "--cli" => opts.cli = Some(PathBuf::from(value("--cli")?)),
            "--sessions" => opts.sessions = Some(value("--sessions")?.parse()?),
            "--api-key-iterations" => {
                opts.api_key_iterations = Some(value("--api-key-iterations")?.parse()?);
            }
            "all" => chosen.extend(SCENARIOS.iter().map(|s| s.to_string())),
            s if SCENARIOS.contains(&s) => chosen.push(s.to_string()),
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if chosen.is_empty() {
        chosen.extend(SCENARIOS.iter().map(|s| s.to_string()));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let rows = runtime.block_on(async move {
        let started = std::time::Instant::now();
        let mut bench = Bench::start(opts).await?;
        for s in &chosen {
            let r = match s.as_str() {
                "me" => bench.me().await,
                "login" => bench.login().await,
                "isolation" => bench.isolation().await,
                "scale" => bench.scale().await,
                "writes" => bench.writes().await,
                "shell" => bench.shell().await,
                _ => Ok(()),
            };
            r.with_context(|| format!("scenario {s}"))?;
        }
        eprintln!("[bench] done in {:.1} s", started.elapsed().as_secs_f64());
        bench.finish().await
    })?;
    print!("{}", report::table(&rows));
    Ok(())
}
