//! The servers under test run in child processes (this binary re-executed as `serve` or
//! `echo`), so that client and server do not share an allocator or a runtime, and so that
//! `/proc/<pid>/status` measures the server alone.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A server child; dropping it closes its stdin (the child shuts down) and reaps it.
pub struct ServerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    pub tcp_addr: String,
    pub socket_path: PathBuf,
}

impl ServerProcess {
    /// Starts `<this binary> <args>` and waits for its `READY <tcp> <socket>` line.
    pub fn spawn(args: &[&str]) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find the bench binary")?;
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the server process")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let mut r = BufReader::new(stdout);
            let _ = r.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the child never blocks on a full pipe.
            let mut sink = Vec::new();
            let _ = r.read_to_end(&mut sink);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let mut parts = line.split_whitespace();
        let (Some("READY"), Some(tcp), Some(sock)) = (parts.next(), parts.next(), parts.next())
        else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("server process did not start (said {line:?})");
        };
        Ok(Self {
            tcp_addr: tcp.to_string(),
            socket_path: PathBuf::from(sock),
            child,
            stdin,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident set size of a process, in bytes, from `/proc/<pid>/status` (`VmRSS`).
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS line")?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib * 1024)
}

/// Raises the soft open-file limit as far as the hard limit allows.
pub fn raise_nofile() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0)
}

/// Blocks until stdin reaches end of file (the parent went away or dropped us).
async fn wait_for_parent() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
    })
    .await;
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // The same runtime gatehoused builds: multi-threaded, one worker per core.
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// `serve`: gatehoused in this process, configured for benchmarking (no failure delay, a rate
/// limit high enough for thousands of logins from 127.0.0.1).
pub fn serve(
    data_dir: &Path,
    password: &str,
    api_key_iterations: Option<u32>,
) -> anyhow::Result<()> {
    raise_nofile();
    let rt = runtime()?;
    rt.block_on(async {
        let mut config = gatehouse_server::Config {
            data_dir: data_dir.to_path_buf(),
            listen: "127.0.0.1:0".into(),
            log_level: "warn".into(),
            login_failure_delay_ms: [0, 0],
            initial_admin_password: Some(password.to_string()),
            ..Default::default()
        };
        config.rate_limit.max_calls = 100_000_000;
        config.rate_limit.penalty_ms = [0, 0];
        // The scale scenario opens 10,000 sessions from 127.0.0.1.
        config.limits.max_connections = 0;
        config.limits.max_connections_per_ip = 0;
        if let Some(n) = api_key_iterations {
            config.api_key_iterations = n;
        }
        let server = gatehouse_server::Server::start(config).await?;
        let tcp = server.tcp_addr.context("no TCP address")?;
        println!("READY {tcp} {}", server.socket_path.display());
        wait_for_parent().await;
        server.shutdown().await;
        anyhow::Ok(())
    })
}

/// `echo`: the baseline. A bare WebSocket server on the same stack (axum 0.8 `ws`, hyper,
/// tokio-tungstenite) that answers each text frame with a reply of `?size=N` bytes (the size of
/// the real server's reply), or with the frame itself when N is 0.
pub fn echo() -> anyhow::Result<()> {
    use axum::extract::ws::{Message, WebSocketUpgrade};
    use axum::http::Uri;
    use axum::routing::get;

    raise_nofile();
    let rt = runtime()?;
    rt.block_on(async {
        let app = axum::Router::new().route(
            "/echo",
            get(|uri: Uri, ws: WebSocketUpgrade| async move {
                let size: usize = uri
                    .query()
                    .and_then(|q| q.strip_prefix("size="))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let canned = canned_reply(size);
                // The same WebSocket settings as gatehoused's listener.
                let ws = ws.read_buffer_size(gatehouse_server::listen::WS_READ_BUFFER);
                ws.on_upgrade(move |mut socket| async move {
                    while let Some(Ok(msg)) = socket.recv().await {
                        let reply = match msg {
                            Message::Text(t) if size == 0 => Message::Text(t),
                            Message::Text(_) => Message::Text(canned.clone().into()),
                            Message::Close(_) => break,
                            _ => continue,
                        };
                        if socket.send(reply).await.is_err() {
                            break;
                        }
                    }
                })
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        println!("READY {addr} -");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            wait_for_parent().await;
            let _ = stop_tx.send(());
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .await?;
        anyhow::Ok(())
    })
}

/// A JSON-RPC result frame of exactly `size` bytes (at least the frame's skeleton).
pub fn canned_reply(size: usize) -> String {
    let head = "{\"jsonrpc\":\"2.0\",\"result\":\"";
    let tail = "\",\"id\":1}";
    let pad = size.saturating_sub(head.len() + tail.len());
    format!("{head}{}{tail}", "x".repeat(pad))
}
