//! The load generator: raw tokio-tungstenite connections, one call in flight per connection,
//! and the same code path for gatehoused and for the echo baseline.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// One client connection.
pub type Ws = WebSocketStream<TcpStream>;

/// Opens a WebSocket over TCP (`ws://HOST:PORT/PATH`) with TCP_NODELAY, as any latency-minded
/// client would.
pub async fn connect(url: &str) -> anyhow::Result<Ws> {
    let rest = url
        .strip_prefix("ws://")
        .context("only ws:// URLs are supported")?;
    let host = rest.split('/').next().unwrap_or(rest);
    let fut = async {
        let tcp = TcpStream::connect(host)
            .await
            .with_context(|| format!("connect {host}"))?;
        tcp.set_nodelay(true)?;
        let (ws, _) = tokio_tungstenite::client_async(url, tcp)
            .await
            .with_context(|| format!("WebSocket handshake with {url}"))?;
        anyhow::Ok(ws)
    };
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .context("connect timed out")?
}

/// Opens `n` connections, `parallel` at a time.
pub async fn connect_many(url: &str, n: usize, parallel: usize) -> anyhow::Result<Vec<Ws>> {
    let mut out = Vec::with_capacity(n);
    let mut pending =
        futures_util::stream::iter((0..n).map(|_| connect(url))).buffer_unordered(parallel.max(1));
    while let Some(ws) = pending.next().await {
        out.push(ws?);
    }
    Ok(out)
}

/// Sends one text frame and waits for the next text frame (one call in flight).
pub async fn round_trip(ws: &mut Ws, text: String) -> anyhow::Result<String> {
    ws.send(Message::Text(text.into())).await?;
    next_text(ws).await
}

/// The next text frame, skipping control frames; bounded by a generous timeout.
pub async fn next_text(ws: &mut Ws) -> anyhow::Result<String> {
    let fut = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return Ok(t.as_str().to_owned()),
                Some(Ok(Message::Close(c))) => bail!("connection closed: {c:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => bail!("connection closed"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .context("no reply within 60 s")?
}

/// A JSON-RPC request frame.
pub fn request(id: u64, method: &str, params: &Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

/// Calls a method and returns its `result` (an `error` becomes `Err`). Skips notifications.
pub async fn call(ws: &mut Ws, method: &str, params: Value) -> anyhow::Result<Value> {
    ws.send(Message::Text(request(1, method, &params).into()))
        .await?;
    loop {
        let text = next_text(ws).await?;
        let mut v: Value = serde_json::from_str(&text)?;
        if v.get("id").is_none() {
            continue; // a notification
        }
        if let Some(e) = v.get("error") {
            bail!("{method}: {e}");
        }
        return Ok(v.get_mut("result").map(Value::take).unwrap_or(Value::Null));
    }
}

/// `auth.login_ex` and a check that it succeeded.
pub async fn login(ws: &mut Ws, data: Value) -> anyhow::Result<Value> {
    let r = call(ws, "auth.login_ex", json!([data])).await?;
    match r.get("response_type").and_then(Value::as_str) {
        Some("SUCCESS") => Ok(r),
        _ => bail!("login failed: {r}"),
    }
}

pub fn api_key_login(username: &str, key: &str) -> Value {
    json!({"mechanism": "API_KEY_PLAIN", "username": username, "api_key": key,
           "login_options": {"user_info": false}})
}

/// Result of a closed-loop run.
pub struct Run {
    pub latencies_ns: Vec<u64>,
    pub wall: Duration,
    pub errors: usize,
}

/// Every connection sends `calls` frames built by `frame(i)` one at a time, until done or until
/// `limit` elapses. Connections start together; the wall time is from start to the last reply.
pub async fn closed_loop(
    conns: Vec<Ws>,
    calls: usize,
    limit: Duration,
    frame: impl Fn(u64) -> String + Clone + Send + 'static,
) -> anyhow::Result<(Run, Vec<Ws>)> {
    let start_gate = std::sync::Arc::new(tokio::sync::Barrier::new(conns.len() + 1));
    let mut tasks = Vec::with_capacity(conns.len());
    for mut ws in conns {
        let gate = start_gate.clone();
        let frame = frame.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(calls);
            let mut errors = 0usize;
            gate.wait().await;
            let deadline = Instant::now() + limit;
            for i in 0..calls as u64 {
                if Instant::now() >= deadline {
                    break;
                }
                let text = frame(i);
                let t0 = Instant::now();
                let reply = round_trip(&mut ws, text).await?;
                lat.push(t0.elapsed().as_nanos() as u64);
                if reply.contains("\"error\":") {
                    errors += 1;
                }
            }
            anyhow::Ok((lat, errors, ws))
        }));
    }
    start_gate.wait().await;
    let t0 = Instant::now();
    gather(tasks, t0).await
}

/// What one connection's task returns: its latencies (ns), its error replies, the connection.
type ConnResult = anyhow::Result<(Vec<u64>, usize, Ws)>;

/// Waits for every connection's task and merges them into one [`Run`] whose wall time runs
/// from `t0` to the last reply; hands the connections back for the next scenario.
async fn gather(
    tasks: Vec<tokio::task::JoinHandle<ConnResult>>,
    t0: Instant,
) -> anyhow::Result<(Run, Vec<Ws>)> {
    let mut run = Run {
        latencies_ns: Vec::new(),
        wall: Duration::ZERO,
        errors: 0,
    };
    let mut back = Vec::new();
    for t in tasks {
        let (lat, errors, ws) = t.await??;
        run.latencies_ns.extend(lat);
        run.errors += errors;
        back.push(ws);
    }
    run.wall = t0.elapsed();
    Ok((run, back))
}

/// Every connection sends one frame per `period` (open loop, fixed rate) until `calls` per
/// connection or `limit`; measures latency only.
pub async fn paced(
    conns: Vec<Ws>,
    calls: usize,
    period: Duration,
    limit: Duration,
    frame: impl Fn(u64) -> String + Clone + Send + 'static,
) -> anyhow::Result<(Run, Vec<Ws>)> {
    let mut tasks = Vec::with_capacity(conns.len());
    let n = conns.len().max(1) as u32;
    for (k, mut ws) in conns.into_iter().enumerate() {
        let frame = frame.clone();
        // Spread the connections over the period so they do not fire in lockstep.
        let offset = period / n * k as u32;
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            let mut lat = Vec::with_capacity(calls);
            let mut errors = 0usize;
            let deadline = Instant::now() + limit;
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for i in 0..calls as u64 {
                tick.tick().await;
                if Instant::now() >= deadline {
                    break;
                }
                let t0 = Instant::now();
                let reply = round_trip(&mut ws, frame(i)).await?;
                lat.push(t0.elapsed().as_nanos() as u64);
                if reply.contains("\"error\":") {
                    errors += 1;
                }
            }
            anyhow::Ok((lat, errors, ws))
        }));
    }
    let t0 = Instant::now();
    gather(tasks, t0).await
}

/// Closes connections politely (best effort, bounded).
pub async fn close_all(conns: Vec<Ws>) {
    let closing = futures_util::stream::iter(conns.into_iter().map(|mut ws| async move {
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    }))
    .buffer_unordered(256)
    .collect::<Vec<()>>();
    let _ = tokio::time::timeout(Duration::from_secs(30), closing).await;
}
