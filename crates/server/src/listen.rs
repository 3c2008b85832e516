//! HTTP routes and listeners: TCP and a UNIX socket whose peer credentials become the
//! connection origin.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::IncomingStream;
use gatehouse_core::origin::{AUID_UNSET, Origin};
use tokio::net::{TcpListener, UnixListener};

use crate::StartError;
use crate::app::App;

/// API versions served, as `/api/versions` lists them; each is an alias of the current one.
pub const API_VERSIONS: &[&str] = &["v25.10.0", "v25.10.1", "v25.10.2"];

/// Who is on the other end, captured when the connection is accepted.
#[derive(Debug, Clone)]
pub struct Peer(pub Option<Origin>);

impl axum::extract::connect_info::Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        let addr: SocketAddr = *stream.remote_addr();
        Peer(Some(Origin::Tcp { addr: addr.ip(), port: addr.port(), ssl: false }))
    }
}

impl axum::extract::connect_info::Connected<IncomingStream<'_, UnixListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> Self {
        let Ok(cred) = stream.io().peer_cred() else { return Peer(None) };
        let pid = cred.pid().unwrap_or(0);
        let loginuid = std::fs::read_to_string(format!("/proc/{pid}/loginuid"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .filter(|u| *u != AUID_UNSET);
        Peer(Some(Origin::Unix { pid, uid: cred.uid(), gid: cred.gid(), loginuid }))
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
    // Extra headroom over the largest message we accept so that we, not the library, decide
    // how an oversize message is answered (close 1007/1009 with TrueNAS' text).
    let ws = ws.max_message_size(4 * 1024 * 1024).max_frame_size(4 * 1024 * 1024);
    ws.on_upgrade(move |socket| async move {
        match peer.0 {
            Some(origin) => crate::conn::serve(app, socket, origin, legacy).await,
            // No origin: closed right after the upgrade, as TrueNAS does.
            None => drop(socket),
        }
    })
}

async fn rpc(State(app): State<Arc<App>>, ConnectInfo(peer): ConnectInfo<Peer>, ws: WebSocketUpgrade) -> Response {
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

async fn legacy(State(app): State<Arc<App>>, ConnectInfo(peer): ConnectInfo<Peer>, ws: WebSocketUpgrade) -> Response {
    upgrade(app, ws, peer, true)
}

async fn versions() -> Response {
    axum::Json(API_VERSIONS).into_response()
}

type Bound = (Option<SocketAddr>, PathBuf, Vec<tokio::task::JoinHandle<()>>);

/// Binds TCP (unless disabled) and the UNIX socket, and spawns their accept loops.
pub async fn bind_all(app: Arc<App>, shutdown: tokio::sync::watch::Receiver<bool>) -> Result<Bound, StartError> {
    let mut tasks = Vec::new();
    let mut tcp_addr = None;
    let listen = app.config.listen.trim().to_string();
    if !listen.is_empty() {
        let listener = TcpListener::bind(&listen)
            .await
            .map_err(|e| StartError::Listen { addr: listen.clone(), reason: e.to_string() })?;
        tcp_addr = listener.local_addr().ok();
        let svc = router(app.clone()).into_make_service_with_connect_info::<Peer>();
        let mut rx = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            let stop = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, svc).with_graceful_shutdown(stop).await {
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
    let svc = router(app.clone()).into_make_service_with_connect_info::<Peer>();
    let mut rx = shutdown;
    tasks.push(tokio::spawn(async move {
        let stop = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, svc).with_graceful_shutdown(stop).await {
            tracing::error!("UNIX listener failed: {e}");
        }
    }));
    Ok((tcp_addr, socket_path, tasks))
}
