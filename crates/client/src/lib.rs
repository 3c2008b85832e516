//! A small async client for the TrueNAS-compatible JSON-RPC 2.0 WebSocket API of `gatehoused`.
//!
//! * one connection, concurrent calls multiplexed by id (a reader task routes each response to
//!   the waiting caller);
//! * TCP (`ws://host:port/api/current`, or any path) and UNIX sockets (WebSocket handshake over
//!   a `UnixStream`, request path `/api/current`);
//! * a URL whose path ends in `/websocket` speaks the legacy DDP-like protocol instead
//!   (`connect` handshake, `{"msg": "method"}` calls) behind the same API;
//! * a raw mode for tests: [`Client::send_text`] / [`Client::recv_text`] see exact frames, and
//!   [`Client::close_info`] / [`Client::closed`] report the close code and reason.
//!
//! ```no_run
//! # async fn demo() -> Result<(), gatehouse_client::ClientError> {
//! let client = gatehouse_client::Client::connect("ws://127.0.0.1:6000/api/current").await?;
//! let resp = client.login_password("root", "secret").await?;
//! assert_eq!(resp["response_type"], "SUCCESS");
//! let me = client.call("auth.me", vec![]).await?;
//! # let _ = me; Ok(()) }
//! ```

mod error;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{SplitStream, StreamExt};
use futures_util::{Sink, SinkExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Mutex as AsyncMutex, mpsc, oneshot, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

pub use error::{ClientError, CloseInfo, RpcError};
/// Raw WebSocket message type accepted by [`Client::send_message`].
pub use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Request path used on UNIX sockets.
pub const UNIX_REQUEST_PATH: &str = "/api/current";

/// Which wire protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// JSON-RPC 2.0 (`/api/current`, `/api/vX`).
    JsonRpc,
    /// Legacy DDP-like protocol (`/websocket`).
    Legacy,
}

impl Protocol {
    /// `Legacy` when the request path ends with `/websocket`, else `JsonRpc`.
    pub fn for_path(path: &str) -> Self {
        let path = path.split('?').next().unwrap_or(path);
        if path.trim_end_matches('/').ends_with("/websocket") {
            Self::Legacy
        } else {
            Self::JsonRpc
        }
    }
}

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `ws://host:port/path` (also accepts `ws+unix:///socket/path` and `unix:///socket/path`).
    Url(String),
    /// A UNIX socket; the WebSocket request path is `request_path`.
    Unix { path: PathBuf, request_path: String },
}

impl Target {
    /// A UNIX socket with the default request path `/api/current`.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Self::Unix {
            path: path.into(),
            request_path: UNIX_REQUEST_PATH.to_string(),
        }
    }

    /// Human-readable form, used in error messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Url(u) => u.clone(),
            Self::Unix { path, .. } => path.display().to_string(),
        }
    }
}

/// Connection options.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Default timeout of [`Client::call`] (`None`: wait forever).
    pub call_timeout: Option<Duration>,
    /// Timeout of the TCP/UNIX connect plus the WebSocket handshake.
    pub connect_timeout: Duration,
    /// Force a protocol; `None` picks it from the request path.
    pub protocol: Option<Protocol>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            call_timeout: None,
            connect_timeout: Duration::from_secs(10),
            protocol: None,
        }
    }
}

type BoxSink = Pin<Box<dyn Sink<Message, Error = tungstenite::Error> + Send>>;
type Reply = Result<Value, ClientError>;

#[derive(Default)]
struct Pending {
    waiters: HashMap<u64, oneshot::Sender<Reply>>,
    /// Set by the reader when the connection is gone; no new waiter may be added after that.
    dead: Option<CloseInfo>,
}

struct Inner {
    protocol: Protocol,
    sink: AsyncMutex<BoxSink>,
    pending: Mutex<Pending>,
    next_id: AtomicU64,
    call_timeout: Option<Duration>,
    raw_rx: AsyncMutex<mpsc::UnboundedReceiver<String>>,
    notify_rx: Mutex<Option<mpsc::UnboundedReceiver<Value>>>,
    closed_rx: watch::Receiver<Option<CloseInfo>>,
}

/// A connected client. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("protocol", &self.inner.protocol)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn classify_io(target: &str, e: std::io::Error) -> ClientError {
    match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            ClientError::NotRunning {
                target: target.to_string(),
                source: e,
            }
        }
        std::io::ErrorKind::TimedOut => ClientError::ConnectTimeout(target.to_string()),
        _ => ClientError::Connect(format!("{target}: {e}")),
    }
}

fn classify_ws(target: &str, e: tungstenite::Error) -> ClientError {
    match e {
        tungstenite::Error::Io(io) => classify_io(target, io),
        tungstenite::Error::Url(u) => ClientError::Connect(format!("{target}: {u}")),
        tungstenite::Error::Http(resp) => {
            ClientError::Handshake(format!("{target}: HTTP {}", resp.status()))
        }
        other => ClientError::Handshake(format!("{target}: {other}")),
    }
}

/// Splits `ws+unix:///path/to.sock` or `unix:///path/to.sock` into a socket path.
fn unix_url_path(url: &str) -> Option<&str> {
    url.strip_prefix("ws+unix://")
        .or_else(|| url.strip_prefix("unix://"))
}

impl Client {
    /// Connects to a `ws://` URL (or `ws+unix:///socket`) with default options.
    pub async fn connect(url: &str) -> Result<Self, ClientError> {
        Self::connect_with(Target::Url(url.to_string()), ConnectOptions::default()).await
    }

    /// Connects to a UNIX socket, request path `/api/current`.
    pub async fn connect_unix(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        Self::connect_with(Target::unix(path.as_ref()), ConnectOptions::default()).await
    }

    /// Connects to `target` with `options`.
    pub async fn connect_with(
        target: Target,
        options: ConnectOptions,
    ) -> Result<Self, ClientError> {
        let target = match target {
            Target::Url(url) => match unix_url_path(&url) {
                Some(path) => Target::unix(path),
                None => Target::Url(url),
            },
            unix => unix,
        };
        let described = target.describe();
        let connect = async {
            match target {
                Target::Url(url) => {
                    let path = url
                        .split_once("://")
                        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
                        .unwrap_or_default();
                    let protocol = options.protocol.unwrap_or(Protocol::for_path(&path));
                    let (ws, _resp) = tokio_tungstenite::connect_async(url.as_str())
                        .await
                        .map_err(|e| classify_ws(&described, e))?;
                    Self::start(ws, protocol, &options).await
                }
                Target::Unix { path, request_path } => {
                    let stream = tokio::net::UnixStream::connect(&path)
                        .await
                        .map_err(|e| classify_io(&described, e))?;
                    let protocol = options
                        .protocol
                        .unwrap_or(Protocol::for_path(&request_path));
                    let request = format!("ws://localhost{request_path}")
                        .into_client_request()
                        .map_err(|e| ClientError::Connect(format!("{described}: {e}")))?;
                    let (ws, _resp) = tokio_tungstenite::client_async(request, stream)
                        .await
                        .map_err(|e| classify_ws(&described, e))?;
                    Self::start(ws, protocol, &options).await
                }
            }
        };
        match tokio::time::timeout(options.connect_timeout, connect).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::ConnectTimeout(described)),
        }
    }

    async fn start<S>(
        ws: WebSocketStream<S>,
        protocol: Protocol,
        options: &ConnectOptions,
    ) -> Result<Self, ClientError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sink, mut stream) = ws.split();
        let mut sink: BoxSink = Box::pin(sink);
        if protocol == Protocol::Legacy {
            let hello = json!({"msg": "connect", "version": "1", "support": ["1"]});
            sink.send(Message::Text(hello.to_string().into()))
                .await
                .map_err(|e| ClientError::Handshake(e.to_string()))?;
            loop {
                match stream.next().await {
                    Some(Ok(Message::Text(t))) => {
                        let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                        match v.get("msg").and_then(Value::as_str) {
                            Some("connected") => break,
                            _ => return Err(ClientError::Handshake(t.to_string())),
                        }
                    }
                    Some(Ok(Message::Close(_))) | None => {
                        return Err(ClientError::Handshake("connection closed".into()));
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(ClientError::Handshake(e.to_string())),
                }
            }
        }
        let (raw_tx, raw_rx) = mpsc::unbounded_channel();
        let (notify_tx, notify_rx) = mpsc::unbounded_channel();
        let (closed_tx, closed_rx) = watch::channel(None);
        let inner = Arc::new(Inner {
            protocol,
            sink: AsyncMutex::new(sink),
            pending: Mutex::new(Pending::default()),
            next_id: AtomicU64::new(1),
            call_timeout: options.call_timeout,
            raw_rx: AsyncMutex::new(raw_rx),
            notify_rx: Mutex::new(Some(notify_rx)),
            closed_rx,
        });
        let reader = Reader {
            inner: Arc::downgrade(&inner),
            raw_tx,
            notify_tx,
            closed_tx,
            protocol,
        };
        tokio::spawn(reader.run(stream));
        Ok(Self { inner })
    }

    /// The protocol this connection speaks.
    pub fn protocol(&self) -> Protocol {
        self.inner.protocol
    }

    /// Calls `method(*params)` with the default call timeout.
    pub async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, ClientError> {
        self.call_timeout(method, params, self.inner.call_timeout)
            .await
    }

    /// Calls `method(*params)`, giving up after `timeout` (`None`: wait forever).
    pub async fn call_timeout(
        &self,
        method: &str,
        params: Vec<Value>,
        timeout: Option<Duration>,
    ) -> Result<Value, ClientError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = lock(&self.inner.pending);
            if let Some(info) = &pending.dead {
                return Err(ClientError::Closed(info.clone()));
            }
            pending.waiters.insert(id, tx);
        }
        let frame = match self.inner.protocol {
            Protocol::JsonRpc => {
                json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
            }
            Protocol::Legacy => {
                json!({"msg": "method", "id": id.to_string(), "method": method, "params": params})
            }
        };
        if let Err(e) = self
            .send_message(Message::Text(frame.to_string().into()))
            .await
        {
            lock(&self.inner.pending).waiters.remove(&id);
            return Err(e);
        }
        let reply = match timeout {
            Some(d) => match tokio::time::timeout(d, rx).await {
                Ok(r) => r,
                Err(_) => {
                    lock(&self.inner.pending).waiters.remove(&id);
                    return Err(ClientError::Timeout {
                        method: method.to_string(),
                    });
                }
            },
            None => rx.await,
        };
        reply.unwrap_or_else(|_| {
            Err(ClientError::Closed(
                self.close_info().unwrap_or_else(dropped),
            ))
        })
    }

    /// Sends a notification (a request without id: the server answers nothing, not even errors).
    pub async fn notify(&self, method: &str, params: Vec<Value>) -> Result<(), ClientError> {
        let frame = match self.inner.protocol {
            Protocol::JsonRpc => json!({"jsonrpc": "2.0", "method": method, "params": params}),
            Protocol::Legacy => json!({"msg": "method", "method": method, "params": params}),
        };
        self.send_message(Message::Text(frame.to_string().into()))
            .await
    }

    /// Sends one raw text frame.
    pub async fn send_text(&self, text: impl Into<String>) -> Result<(), ClientError> {
        self.send_message(Message::Text(text.into().into())).await
    }

    /// Sends one raw frame of any type (binary, ping, ...), for protocol tests.
    pub async fn send_message(&self, msg: Message) -> Result<(), ClientError> {
        let mut sink = self.inner.sink.lock().await;
        match sink.send(msg).await {
            Ok(()) => Ok(()),
            Err(e) => Err(match self.close_info() {
                Some(info) => ClientError::Closed(info),
                None => ClientError::Closed(CloseInfo {
                    code: None,
                    reason: e.to_string(),
                }),
            }),
        }
    }

    /// The next text frame that was not the answer to a pending [`Client::call`] nor a server
    /// notification (those go to [`Client::take_notifications`] once taken, here before).
    /// `None` once the connection is closed and every frame was read.
    pub async fn recv_text(&self) -> Option<String> {
        self.inner.raw_rx.lock().await.recv().await
    }

    /// [`Client::recv_text`] with a timeout; `None` on timeout or close.
    pub async fn recv_text_timeout(&self, timeout: Duration) -> Option<String> {
        tokio::time::timeout(timeout, self.recv_text())
            .await
            .ok()
            .flatten()
    }

    /// The channel of server notifications (`collection_update`, `notify_unsubscribed`, legacy
    /// `added`/`changed`/`removed`/`nosub`). Can be taken once; before it is taken,
    /// notifications are delivered to [`Client::recv_text`].
    pub fn take_notifications(&self) -> Option<mpsc::UnboundedReceiver<Value>> {
        lock(&self.inner.notify_rx).take()
    }

    /// How the connection ended, if it has.
    pub fn close_info(&self) -> Option<CloseInfo> {
        self.inner.closed_rx.borrow().clone()
    }

    /// Waits until the connection is closed and reports how.
    pub async fn closed(&self) -> CloseInfo {
        let mut rx = self.inner.closed_rx.clone();
        loop {
            if let Some(info) = rx.borrow_and_update().clone() {
                return info;
            }
            if rx.changed().await.is_err() {
                return rx.borrow().clone().unwrap_or_else(dropped);
            }
        }
    }

    /// Sends a normal close frame (1000).
    pub async fn close(&self) -> Result<(), ClientError> {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        self.send_message(Message::Close(Some(frame))).await
    }

    /// `auth.login_ex` with `PASSWORD_PLAIN`. Returns the response object (`response_type` is
    /// `SUCCESS`, `OTP_REQUIRED`, `AUTH_ERR`, `EXPIRED`, ...).
    pub async fn login_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Value, ClientError> {
        let data =
            json!({"mechanism": "PASSWORD_PLAIN", "username": username, "password": password});
        self.call("auth.login_ex", vec![data]).await
    }

    /// `auth.login_ex_continue` with `OTP_TOKEN`, after an `OTP_REQUIRED` answer.
    pub async fn login_otp(&self, otp_token: &str) -> Result<Value, ClientError> {
        let data = json!({"mechanism": "OTP_TOKEN", "otp_token": otp_token});
        self.call("auth.login_ex_continue", vec![data]).await
    }

    /// `auth.login_ex` with `API_KEY_PLAIN` (`key` is `<id>-<secret>`).
    pub async fn login_api_key(&self, username: &str, key: &str) -> Result<Value, ClientError> {
        let data = json!({"mechanism": "API_KEY_PLAIN", "username": username, "api_key": key});
        self.call("auth.login_ex", vec![data]).await
    }

    /// `auth.login_ex` with `TOKEN_PLAIN`.
    pub async fn login_token(&self, token: &str) -> Result<Value, ClientError> {
        let data = json!({"mechanism": "TOKEN_PLAIN", "token": token});
        self.call("auth.login_ex", vec![data]).await
    }
}

fn dropped() -> CloseInfo {
    CloseInfo {
        code: None,
        reason: "connection dropped".to_string(),
    }
}

struct Reader {
    inner: std::sync::Weak<Inner>,
    raw_tx: mpsc::UnboundedSender<String>,
    notify_tx: mpsc::UnboundedSender<Value>,
    closed_tx: watch::Sender<Option<CloseInfo>>,
    protocol: Protocol,
}

impl Reader {
    async fn run<S>(self, mut stream: SplitStream<WebSocketStream<S>>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let info = loop {
            match stream.next().await {
                Some(Ok(Message::Text(t))) => self.route(t.as_str()),
                Some(Ok(Message::Close(frame))) => {
                    break match frame {
                        Some(f) => CloseInfo {
                            code: Some(f.code.into()),
                            reason: f.reason.to_string(),
                        },
                        None => CloseInfo {
                            code: None,
                            reason: String::new(),
                        },
                    };
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    break CloseInfo {
                        code: None,
                        reason: e.to_string(),
                    };
                }
                None => break dropped(),
            }
        };
        self.closed_tx.send_replace(Some(info.clone()));
        if let Some(inner) = self.inner.upgrade() {
            let waiters = {
                let mut pending = lock(&inner.pending);
                pending.dead = Some(info.clone());
                std::mem::take(&mut pending.waiters)
            };
            for (_, tx) in waiters {
                let _ = tx.send(Err(ClientError::Closed(info.clone())));
            }
        }
    }

    fn route(&self, text: &str) {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            let _ = self.raw_tx.send(text.to_string());
            return;
        };
        match self.protocol {
            Protocol::JsonRpc => {
                let id = v.get("id").and_then(Value::as_u64);
                let is_response = v.get("result").is_some() || v.get("error").is_some();
                if let (Some(id), true) = (id, is_response) {
                    let reply = match v.get("error").filter(|e| !e.is_null()) {
                        Some(err) => Err(ClientError::Server(RpcError::from_jsonrpc(err))),
                        None => Ok(v.get("result").cloned().unwrap_or(Value::Null)),
                    };
                    if self.deliver(id, reply) {
                        return;
                    }
                } else if v.get("id").is_none() && v.get("method").is_some() && self.notify(&v) {
                    return;
                }
            }
            Protocol::Legacy => match v.get("msg").and_then(Value::as_str) {
                Some("result") => {
                    let id = v.get("id").and_then(|i| {
                        i.as_u64()
                            .or_else(|| i.as_str().and_then(|s| s.parse().ok()))
                    });
                    if let Some(id) = id {
                        let reply = match v.get("error").filter(|e| !e.is_null()) {
                            Some(err) => Err(ClientError::Server(RpcError::from_legacy(err))),
                            None => Ok(v.get("result").cloned().unwrap_or(Value::Null)),
                        };
                        if self.deliver(id, reply) {
                            return;
                        }
                    }
                }
                Some("added" | "changed" | "removed" | "nosub") if self.notify(&v) => return,
                _ => {}
            },
        }
        let _ = self.raw_tx.send(text.to_string());
    }

    /// Hands `reply` to the waiter of `id`; false when nobody waits for it.
    fn deliver(&self, id: u64, reply: Reply) -> bool {
        let Some(inner) = self.inner.upgrade() else {
            return false;
        };
        let waiter = lock(&inner.pending).waiters.remove(&id);
        match waiter {
            Some(tx) => {
                let _ = tx.send(reply);
                true
            }
            None => false,
        }
    }

    /// Sends a notification to the notification channel once it has been taken.
    fn notify(&self, v: &Value) -> bool {
        let Some(inner) = self.inner.upgrade() else {
            return false;
        };
        let taken = lock(&inner.notify_rx).is_none();
        taken && self.notify_tx.send(v.clone()).is_ok()
    }
}
