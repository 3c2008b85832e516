//! Test harness: a real server on a temp data dir and a free loopback port, and a raw
//! WebSocket client that asserts exact frames.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gatehouse_server::{Config, Server};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

pub const ADMIN_PASSWORD: &str = "admin-pass-for-tests";

pub struct TestServer {
    pub server: Option<Server>,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".into(),
            login_failure_delay_ms: [0, 0],
            hostname: Some("gatehouse-test".into()),
            initial_admin_password: Some(ADMIN_PASSWORD.into()),
            ..Config::default()
        };
        config.rate_limit.penalty_ms = [0, 0];
        config.lockout.delay_step_ms = 0;
        tweak(&mut config);
        let server = Server::start(config).await.unwrap();
        Self {
            server: Some(server),
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        let addr = self.server.as_ref().unwrap().tcp_addr.unwrap();
        format!("ws://{addr}{path}")
    }

    pub fn socket(&self) -> PathBuf {
        self.server.as_ref().unwrap().socket_path.clone()
    }

    pub async fn tcp(&self) -> Ws {
        Ws::connect(&self.url("/api/current")).await
    }

    pub async fn unix(&self, path: &str) -> Ws {
        Ws::connect_unix(&self.socket(), path).await
    }

    /// A TCP connection logged in as truenas_admin.
    pub async fn admin(&self) -> Ws {
        let mut ws = self.tcp().await;
        let r = ws
            .call("auth.login_ex", json!([{"mechanism": "PASSWORD_PLAIN", "username": "truenas_admin", "password": ADMIN_PASSWORD}]))
            .await;
        assert_eq!(r["result"]["response_type"], "SUCCESS", "{r}");
        ws
    }
}

type Stream = Box<
    dyn futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + Unpin
        + Send,
>;
type Sink = Box<
    dyn futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin + Send,
>;

pub struct Ws {
    sink: Sink,
    stream: Stream,
    next_id: i64,
    /// Frames that arrived while `call` waited for its response (events, mostly).
    stash: std::collections::VecDeque<Value>,
}

impl Ws {
    pub async fn connect(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let (sink, stream) = ws.split();
        Self {
            sink: Box::new(sink),
            stream: Box::new(stream),
            next_id: 1,
            stash: Default::default(),
        }
    }

    pub async fn connect_unix(path: &std::path::Path, req_path: &str) -> Self {
        let stream = tokio::net::UnixStream::connect(path).await.unwrap();
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://localhost{req_path}"), stream)
            .await
            .unwrap();
        let (sink, stream) = ws.split();
        Self {
            sink: Box::new(sink),
            stream: Box::new(stream),
            next_id: 1,
            stash: Default::default(),
        }
    }

    /// A WebSocket over TCP from a chosen local source address (all of 127.0.0.0/8 is
    /// loopback, so tests can play several client IPs); `Err` when the server refuses.
    pub async fn try_connect_from(
        src: std::net::IpAddr,
        addr: std::net::SocketAddr,
        path: &str,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let sock = tokio::net::TcpSocket::new_v4()?;
        sock.bind(std::net::SocketAddr::new(src, 0))?;
        let stream = sock.connect(addr).await?;
        let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}{path}"), stream).await?;
        let (sink, stream) = ws.split();
        Ok(Self {
            sink: Box::new(sink),
            stream: Box::new(stream),
            next_id: 1,
            stash: Default::default(),
        })
    }

    pub async fn send(&mut self, text: &str) {
        self.sink
            .send(Message::Text(text.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_binary(&mut self, data: &[u8]) {
        self.sink
            .send(Message::Binary(data.to_vec().into()))
            .await
            .unwrap();
    }

    /// Next text frame as JSON; panics after 5 s.
    pub async fn recv(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(5), self.stream.next())
                .await
                .expect("timed out waiting for a frame")
                .expect("connection ended")
                .expect("websocket error");
            if let Message::Text(t) = msg {
                return serde_json::from_str(t.as_str()).unwrap();
            }
        }
    }

    /// The next `collection_update` notification, including ones stashed by `call`.
    pub async fn event(&mut self) -> Value {
        loop {
            let v = match self.stash.pop_front() {
                Some(v) => v,
                None => self.recv().await,
            };
            if v["method"] == "collection_update" {
                return v;
            }
        }
    }

    /// Waits for nothing to arrive for `ms`.
    pub async fn expect_silence(&mut self, ms: u64) {
        if let Ok(Some(Ok(Message::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(ms), self.stream.next()).await
        {
            panic!("unexpected frame: {t}");
        }
    }

    /// Waits for the server to close; returns (code, reason).
    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(5), self.stream.next())
                .await
                .expect("no close");
            match msg {
                Some(Ok(Message::Close(Some(f)))) => return (f.code.into(), f.reason.to_string()),
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return (0, String::new()),
                _ => continue,
            }
        }
    }

    /// Sends a JSON-RPC call and returns the whole response frame (skipping notifications).
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
        )
        .await;
        loop {
            let v = self.recv().await;
            if v.get("id") == Some(&json!(id)) {
                return v;
            }
            self.stash.push_back(v);
        }
    }

    /// A call that must succeed; returns `result`.
    pub async fn ok(&mut self, method: &str, params: Value) -> Value {
        let r = self.call(method, params).await;
        assert!(r.get("error").is_none(), "{method} failed: {r}");
        r["result"].clone()
    }
}
