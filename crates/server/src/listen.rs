//! HTTP routes and listeners: TCP and a UNIX socket whose peer credentials become the
//! connection origin.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::{IncomingStream, Listener};
use gatehouse_core::origin::{AUID_UNSET, Origin};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::StartError;
use crate::app::App;

/// API versions served, as `/api/versions` lists them; each is an alias of the current one.
pub const API_VERSIONS: &[&str] = &["v25.10.0", "v25.10.1", "v25.10.2"];

/// Bytes tungstenite reads (and zeroes) per read call; it keeps that much allocated per
/// connection. Its default, 128 KiB, costs 128 KiB of resident memory per idle session and a
/// 128 KiB memset per message; requests are small, and a larger frame reserves its own length.
pub const WS_READ_BUFFER: usize = 4 * 1024;

/// Who is on the other end, captured when the connection is accepted, and the handle that
/// stops the connection's handshake timer once its upgrade request has arrived.
#[derive(Debug, Clone)]
pub struct Peer(pub Option<Origin>, pub Handshake);

impl axum::extract::connect_info::Connected<IncomingStream<'_, Limited<TcpListener>>> for Peer {
    fn connect_info(stream: IncomingStream<'_, Limited<TcpListener>>) -> Self {
        let addr: SocketAddr = *stream.remote_addr();
        let origin = Origin::Tcp {
            addr: addr.ip(),
            port: addr.port(),
            ssl: false,
        };
        Peer(Some(origin), stream.io().handshake.clone())
    }
}

impl axum::extract::connect_info::Connected<IncomingStream<'_, Limited<UnixListener>>> for Peer {
    fn connect_info(stream: IncomingStream<'_, Limited<UnixListener>>) -> Self {
        let handshake = stream.io().handshake.clone();
        let Ok(cred) = stream.io().inner.peer_cred() else {
            return Peer(None, handshake);
        };
        let pid = cred.pid().unwrap_or(0);
        let loginuid = std::fs::read_to_string(format!("/proc/{pid}/loginuid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .filter(|u| *u != AUID_UNSET);
        Peer(
            Some(Origin::Unix {
                pid,
                uid: cred.uid(),
                gid: cred.gid(),
                loginuid,
            }),
            handshake,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Accept-side limits: connection counts (global and per IP) and the handshake timeout.

/// Open-connection accounting shared by both listeners.
#[derive(Debug)]
pub struct ConnCounter {
    max_total: usize,
    max_per_ip: usize,
    handshake_timeout: Option<Duration>,
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

impl ConnCounter {
    pub fn new(limits: &crate::config::Limits) -> Arc<Self> {
        Arc::new(Self {
            max_total: limits.max_connections,
            max_per_ip: limits.max_connections_per_ip,
            handshake_timeout: (limits.handshake_timeout_ms > 0)
                .then(|| Duration::from_millis(limits.handshake_timeout_ms)),
            total: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
        })
    }

    /// Open connections right now (both listeners).
    pub fn open(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    /// Takes a slot for a new connection, or says why there is none.
    fn acquire(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Slot, &'static str> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let total = self.total.load(Ordering::SeqCst);
        if self.max_total > 0 && total >= self.max_total {
            return Err("too many connections");
        }
        if let Some(ip) = ip {
            let n = per_ip.entry(ip).or_insert(0);
            if self.max_per_ip > 0 && *n >= self.max_per_ip {
                if *n == 0 {
                    per_ip.remove(&ip);
                }
                return Err("too many connections from this address");
            }
            *n += 1;
        }
        self.total.fetch_add(1, Ordering::SeqCst);
        Ok(Slot {
            counter: self.clone(),
            ip,
        })
    }
}

/// One counted connection; dropping it (when the socket is dropped) frees the slot.
#[derive(Debug)]
struct Slot {
    counter: Arc<ConnCounter>,
    ip: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_ip = self
            .counter
            .per_ip
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(ip) = self.ip
            && let Some(n) = per_ip.get_mut(&ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_ip.remove(&ip);
            }
        }
        self.counter.total.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Set when a connection's WebSocket upgrade request has been received; until then the
/// connection is closed when its handshake timer runs out.
#[derive(Debug, Clone, Default)]
pub struct Handshake(Arc<AtomicBool>);

impl Handshake {
    pub fn done(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn is_done(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What [`Limited`] needs from a raw stream.
pub trait RawStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    fn peer_ip(&self) -> Option<IpAddr>;
    fn try_write_now(&self, buf: &[u8]);
    fn try_read_now(&self, buf: &mut [u8]) -> usize;
}

impl RawStream for TcpStream {
    fn peer_ip(&self) -> Option<IpAddr> {
        self.peer_addr().ok().map(|a| a.ip())
    }
    fn try_write_now(&self, buf: &[u8]) {
        let _ = self.try_write(buf);
    }
    fn try_read_now(&self, buf: &mut [u8]) -> usize {
        self.try_read(buf).unwrap_or(0)
    }
}

impl RawStream for UnixStream {
    fn peer_ip(&self) -> Option<IpAddr> {
        None
    }
    fn try_write_now(&self, buf: &[u8]) {
        let _ = self.try_write(buf);
    }
    fn try_read_now(&self, buf: &mut [u8]) -> usize {
        self.try_read(buf).unwrap_or(0)
    }
}

/// The answer to a connection refused at accept.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 20\r\nConnection: close\r\n\r\nToo many connections";

/// A listener that counts connections, refuses those over the limits at accept, and arms
/// each accepted connection's handshake timer.
pub struct Limited<L> {
    inner: L,
    counter: Arc<ConnCounter>,
}

impl<L> Limited<L> {
    pub fn new(inner: L, counter: Arc<ConnCounter>) -> Self {
        Self { inner, counter }
    }
}

impl<L> Listener for Limited<L>
where
    L: Listener,
    L::Io: RawStream,
{
    type Io = Guarded<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (io, addr) = self.inner.accept().await;
            let ip = io.peer_ip();
            match self.counter.acquire(ip) {
                Ok(slot) => {
                    let deadline = self
                        .counter
                        .handshake_timeout
                        .map(|t| Box::pin(tokio::time::sleep(t)));
                    return (
                        Guarded {
                            inner: io,
                            _slot: slot,
                            handshake: Handshake::default(),
                            deadline,
                        },
                        addr,
                    );
                }
                Err(why) => {
                    tracing::warn!(peer = ?ip, "connection refused: {why}");
                    // Read what already arrived so that closing sends FIN, not RST, and the
                    // client gets to read the 503.
                    let mut scratch = [0u8; 4096];
                    let _ = io.try_read_now(&mut scratch);
                    io.try_write_now(REFUSED);
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// An accepted stream holding its connection slot; reads fail with `TimedOut` once the
/// handshake timer runs out before the upgrade request arrived.
pub struct Guarded<S> {
    inner: S,
    _slot: Slot,
    handshake: Handshake,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Guarded<S> {
    fn check_deadline(&mut self, cx: &mut Context<'_>) -> Result<(), std::io::Error> {
        if let Some(d) = &mut self.deadline {
            if self.handshake.is_done() {
                self.deadline = None;
            } else if d.as_mut().poll(cx).is_ready() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "WebSocket handshake timeout",
                ));
            }
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if let Err(e) = this.check_deadline(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/api/current", get(rpc))
        .route("/api/versions", get(versions))
        .route("/api/{version}", get(rpc_version))
        .route("/websocket", get(legacy))
        .with_state(app)
}

fn upgrade(app: Arc<App>, ws: WebSocketUpgrade, peer: Peer, legacy: bool) -> Response {
    // The upgrade request is complete: from here the connection's own timers apply.
    peer.1.done();
    // Extra headroom over the largest message we accept so that we, not the library, decide
    // how an oversize message is answered (close 1007/1009 with TrueNAS' text).
    let ws = ws
        .max_message_size(4 * 1024 * 1024)
        .max_frame_size(4 * 1024 * 1024)
        .read_buffer_size(WS_READ_BUFFER);
    ws.on_upgrade(move |socket| async move {
        match peer.0 {
            Some(origin) => crate::conn::serve(app, socket, origin, legacy).await,
            // No origin: closed right after the upgrade, as TrueNAS does.
            None => drop(socket),
        }
    })
}

async fn rpc(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    ws: WebSocketUpgrade,
) -> Response {
    upgrade(app, ws, peer, false)
}

async fn rpc_version(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path(version): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    if !API_VERSIONS.contains(&version.as_str()) {
        return (axum::http::StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    upgrade(app, ws, peer, false)
}

async fn legacy(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    ws: WebSocketUpgrade,
) -> Response {
    upgrade(app, ws, peer, true)
}

async fn versions() -> Response {
    axum::Json(API_VERSIONS).into_response()
}

type Bound = (
    Option<SocketAddr>,
    PathBuf,
    Vec<tokio::task::JoinHandle<()>>,
);

/// Binds TCP (unless disabled) and the UNIX socket, and spawns their accept loops.
pub async fn bind_all(
    app: Arc<App>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<Bound, StartError> {
    let mut tasks = Vec::new();
    let mut tcp_addr = None;
    let listen = app.config.listen.trim().to_string();
    if !listen.is_empty() {
        let listener = TcpListener::bind(&listen)
            .await
            .map_err(|e| StartError::Listen {
                addr: listen.clone(),
                reason: e.to_string(),
            })?;
        tcp_addr = listener.local_addr().ok();
        let listener = Limited::new(listener, app.connections.clone());
        let svc = router(app.clone()).into_make_service_with_connect_info::<Peer>();
        let mut rx = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            let stop = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, svc)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!("TCP listener failed: {e}");
            }
        }));
    }
    let socket_path = app.config.socket_path();
    // A socket file left by a crashed server is stale: the data-dir lock proves nobody owns it.
    if socket_path.exists() {
        let _ = std::fs::remove_file(&socket_path);
    }
    let listener = UnixListener::bind(&socket_path).map_err(|e| StartError::Listen {
        addr: socket_path.display().to_string(),
        reason: e.to_string(),
    })?;
    // Anyone local may connect, as TrueNAS' middlewared.sock (0666); peer credentials decide
    // what they get.
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o666));
    }
    let listener = Limited::new(listener, app.connections.clone());
    let svc = router(app.clone()).into_make_service_with_connect_info::<Peer>();
    let mut rx = shutdown;
    tasks.push(tokio::spawn(async move {
        let stop = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, svc)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!("UNIX listener failed: {e}");
        }
    }));
    Ok((tcp_addr, socket_path, tasks))
}
