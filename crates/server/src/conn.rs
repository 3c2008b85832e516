//! One WebSocket connection: framing limits, the JSON-RPC and legacy protocols, in-flight
//! accounting, session expiry on each message, and the outbound queue shared with events.
//! Only this module and `listen` know about WebSocket.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use gatehouse_core::origin::Origin;
use gatehouse_proto::frame::{self, Legacy};
use gatehouse_proto::{ApiError, errno};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::app::App;
use crate::registry::Reply;
use crate::session::Credentials;

/// Messages for the connection's writer task.
#[derive(Debug)]
pub enum Outbound {
    Text(String),
    Close(u16, String),
}

/// Any message above this size closes the connection, authenticated or not (§1.3).
const HARD_MAX_MESSAGE: usize = 2 * 1024 * 1024;

pub struct Conn {
    pub session_id: String,
    pub origin: Origin,
    pub legacy: bool,
    creds: RwLock<Option<Arc<Credentials>>>,
    out: mpsc::Sender<Outbound>,
    /// `ident → event name` for `core.subscribe`.
    pub subscriptions: Mutex<HashMap<String, String>>,
    inflight: AtomicUsize,
    closed: AtomicBool,
    /// Per-connection options set by `core.set_options`.
    pub options: Mutex<Value>,
    /// A pending multi-step login (OTP, SCRAM), owned by the auth service.
    pub pending_login: Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

impl Conn {
    pub fn credentials(&self) -> Option<Arc<Credentials>> {
        self.creds.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_credentials(&self, c: Option<Arc<Credentials>>) {
        *self.creds.write().unwrap_or_else(|p| p.into_inner()) = c;
    }

    /// Queues a frame; waits when the queue is full (responses are never dropped).
    pub async fn send(&self, text: String) {
        let _ = self.out.send(Outbound::Text(text)).await;
    }

    /// Closes the socket (used by `auth.terminate_session` and shutdown).
    pub fn close(&self, code: u16, reason: &str) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            let _ = self.out.try_send(Outbound::Close(code, reason.to_string()));
        }
    }

    /// Frames waiting in the outbound queue (never more than `limits.outbound_queue`).
    pub fn queued(&self) -> usize {
        self.out.max_capacity() - self.out.capacity()
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Delivers a collection event to this connection if it subscribed to it. A full queue
    /// drops the event rather than letting one slow reader stall everyone.
    pub fn deliver_event(&self, collection: &str, params: &Map<String, Value>) {
        let subscribed = {
            let subs = self.subscriptions.lock().unwrap_or_else(|p| p.into_inner());
            subs.values().any(|e| e == collection || e == "*")
        };
        if !subscribed {
            return;
        }
        let text = if self.legacy {
            let msg = params
                .get("msg")
                .and_then(Value::as_str)
                .unwrap_or("changed");
            frame::legacy_event(msg, params)
        } else {
            frame::notification("collection_update", Value::Object(params.clone()))
        };
        if self.out.try_send(Outbound::Text(text)).is_err() {
            tracing::warn!(session = %self.session_id, "event dropped: outbound queue full");
        }
    }
}

/// Serves one upgraded WebSocket until it closes.
pub async fn serve(app: Arc<App>, ws: WebSocket, origin: Origin, legacy: bool) {
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Outbound>(app.config.limits.outbound_queue.max(32));
    let conn = Arc::new(Conn {
        session_id: app.new_uuid(),
        origin,
        legacy,
        creds: RwLock::new(None),
        out: tx,
        subscriptions: Mutex::new(HashMap::new()),
        inflight: AtomicUsize::new(0),
        closed: AtomicBool::new(false),
        options: Mutex::new(
            json!({"legacy_jobs": true, "private_methods": false, "py_exceptions": false}),
        ),
        pending_login: Mutex::new(None),
    });

    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            match out {
                Outbound::Text(t) => {
                    if sink.send(Message::Text(t.into())).await.is_err() {
                        break;
                    }
                }
                Outbound::Close(code, reason) => {
                    let frame = CloseFrame {
                        code,
                        reason: reason.into(),
                    };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    break;
                }
            }
        }
        let _ = sink.close().await;
    });

    // JSON-RPC: the UNIX-socket auto-login happens at connect, no handshake message.
    if !legacy {
        crate::services::auth::on_connect(&app, &conn).await;
    }
    let mut connected = !legacy;

    // An upgraded connection without a session is closed after `unauthenticated_idle_ms`,
    // counted from the upgrade or from the moment it lost its session.
    let idle_limit = app.config.limits.unauthenticated_idle_ms;
    let mut unauth_deadline: Option<tokio::time::Instant> = None;
    loop {
        let next = if idle_limit == 0 {
            stream.next().await
        } else {
            loop {
                if conn.credentials().is_some() {
                    unauth_deadline = None;
                    // Look again now and then: a logout (a call on its own task, or a session
                    // expiry) starts the clock again.
                    match tokio::time::timeout(
                        std::time::Duration::from_millis(idle_limit),
                        stream.next(),
                    )
                    .await
                    {
                        Ok(m) => break m,
                        Err(_) => continue,
                    }
                }
                let deadline = *unauth_deadline.get_or_insert_with(|| {
                    tokio::time::Instant::now() + std::time::Duration::from_millis(idle_limit)
                });
                match tokio::time::timeout_at(deadline, stream.next()).await {
                    Ok(m) => break m,
                    // A login may have completed meanwhile (calls run on their own tasks).
                    Err(_) if conn.credentials().is_some() => continue,
                    // A call (a login hashing its password, say) is still running: look
                    // again shortly rather than cut it off.
                    Err(_) if conn.inflight.load(Ordering::SeqCst) > 0 => {
                        unauth_deadline = Some(deadline + std::time::Duration::from_millis(100));
                        continue;
                    }
                    Err(_) => {
                        tracing::debug!(session = %conn.session_id, "closing unauthenticated idle connection");
                        conn.close(1008, "Authentication timeout");
                        break None;
                    }
                }
            }
        };
        let Some(msg) = next else { break };
        if conn.is_closed() {
            break;
        }
        let text = match msg {
            Ok(Message::Text(t)) => t,
            Ok(Message::Binary(_)) => {
                conn.close(1003, "Invalid websocket message type: 2");
                break;
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        let text = text.as_str();
        let authenticated = conn.credentials().is_some();
        if let Some((code, reason)) = oversize(&app, text, authenticated) {
            conn.close(code, reason);
            break;
        }
        crate::services::auth::on_message(&app, &conn);
        if legacy {
            if !handle_legacy(&app, &conn, text, &mut connected).await {
                break;
            }
        } else {
            handle_jsonrpc(&app, &conn, text).await;
        }
    }

    conn.closed.store(true, Ordering::SeqCst);
    crate::services::auth::on_close(&app, &conn).await;
    drop(conn);
    let _ = writer.await;
}

/// Checks the size limits; the character count is only computed when the byte length could
/// exceed the limit.
fn oversize(app: &App, text: &str, authenticated: bool) -> Option<(u16, &'static str)> {
    let limit = if authenticated {
        app.config.limits.authenticated_message
    } else {
        app.config.limits.unauthenticated_message
    };
    if text.len() <= limit {
        return None;
    }
    let chars = text.chars().count();
    if chars > HARD_MAX_MESSAGE {
        return Some((1009, "Max message length is 64 kB"));
    }
    if chars <= limit {
        return None;
    }
    if authenticated {
        Some((1009, "Max message length is 64 kB"))
    } else {
        Some((1007, "Anonymous connection max message length is 8 kB"))
    }
}

/// Tracks calls in flight; dropping it frees the slot.
struct InflightGuard(Arc<Conn>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn try_enter(app: &App, conn: &Arc<Conn>) -> Option<InflightGuard> {
    let max = app.config.limits.max_inflight;
    let prev = conn.inflight.fetch_add(1, Ordering::SeqCst);
    let guard = InflightGuard(conn.clone());
    if prev >= max { None } else { Some(guard) }
}

async fn handle_jsonrpc(app: &Arc<App>, conn: &Arc<Conn>, text: &str) {
    let req = match frame::parse_request(text) {
        Ok(r) => r,
        Err(rejected) => {
            if let Some(reply) = rejected.reply {
                conn.send(reply).await;
            }
            return;
        }
    };
    if app.registry.get(&req.method).is_none() {
        if let Some(id) = &req.id {
            let err = ApiError::MethodNotFound(req.method.clone()).to_jsonrpc();
            conn.send(frame::error_response(id, err)).await;
        }
        return;
    }
    let Some(guard) = try_enter(app, conn) else {
        if let Some(id) = &req.id {
            let max = app.config.limits.max_inflight;
            let err = json!({
                "code": -32000,
                "message": format!("Maximum number of concurrent calls ({max}) has exceeded"),
            });
            conn.send(frame::error_response(id, err)).await;
        }
        return;
    };
    let app = app.clone();
    let conn = conn.clone();
    tokio::spawn(async move {
        let _guard = guard;
        let result = app.call(&conn, &req.method, req.params).await;
        let Some(id) = req.id else { return };
        let text = match result {
            Ok(Reply::Value(v)) => frame::result_frame(&id, &v),
            Ok(Reply::Json(j)) => frame::result_frame_json(&id, j),
            Err(e) => frame::error_response(&id, e.to_jsonrpc()),
        };
        conn.send(text).await;
    });
}

/// Returns false when the connection must be closed.
async fn handle_legacy(app: &Arc<App>, conn: &Arc<Conn>, text: &str, connected: &mut bool) -> bool {
    let msg = match frame::parse_legacy(text) {
        Ok(m) => m,
        Err(_) => {
            conn.close(1007, "Invalid JSON");
            return false;
        }
    };
    if !*connected {
        match msg {
            Legacy::Connect { version, .. } if version == json!("1") => {
                *connected = true;
                crate::services::auth::on_connect(app, conn).await;
                conn.send(json!({"msg": "connected", "session": conn.session_id}).to_string())
                    .await;
            }
            _ => {
                conn.send(json!({"msg": "failed", "version": "1"}).to_string())
                    .await
            }
        }
        return true;
    }
    match msg {
        Legacy::Connect { .. } => {
            conn.send(json!({"msg": "failed", "version": "1"}).to_string())
                .await;
            true
        }
        Legacy::Ping { .. } | Legacy::Other => true,
        Legacy::Unsub { id } => {
            if let Some(id) = id.as_str() {
                conn.subscriptions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(id);
            }
            true
        }
        Legacy::Sub { id, name } => {
            let name = name.as_str().unwrap_or_default().to_string();
            match crate::services::core_svc::authorize_subscribe(app, conn, &name) {
                Ok(()) => {
                    let ident = match &id {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    conn.subscriptions
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(ident, name);
                    app.sessions.watch(conn);
                    conn.send(json!({"msg": "ready", "subs": [id]}).to_string())
                        .await;
                }
                Err(e) => conn.send(frame::legacy_error(&id, e.to_legacy())).await,
            }
            true
        }
        Legacy::Method { id, method, params } => {
            let reply_id = id.clone().unwrap_or(Value::Null);
            let method = match method {
                Some(Value::String(m)) => m,
                _ => {
                    let err =
                        ApiError::call(errno::EINVAL, "Message is malformed: 'method' is absent.");
                    if id.is_none() {
                        conn.close(1011, "Message is malformed: 'method' is absent.");
                        return false;
                    }
                    conn.send(frame::legacy_error(&reply_id, err.to_legacy()))
                        .await;
                    return true;
                }
            };
            let params = match params {
                None => Vec::new(),
                Some(Value::Array(a)) => a,
                Some(_) => {
                    let err = ApiError::call(errno::EINVAL, "`params` must be a list.");
                    conn.send(frame::legacy_error(&reply_id, err.to_legacy()))
                        .await;
                    return true;
                }
            };
            let Some(guard) = try_enter(app, conn) else {
                let max = app.config.limits.max_inflight;
                let err = ApiError::call(
                    errno::ETOOMANYREFS,
                    format!("Maximum number of concurrent calls ({max}) has exceeded."),
                );
                conn.send(frame::legacy_error(&reply_id, err.to_legacy()))
                    .await;
                return true;
            };
            let app = app.clone();
            let conn = conn.clone();
            tokio::spawn(async move {
                let _guard = guard;
                let result = app.call(&conn, &method, params).await;
                // TrueNAS cannot reply to a call without id either; it just runs it.
                let Some(id) = id else { return };
                let text = match result {
                    Ok(Reply::Value(v)) => frame::legacy_result(&id, &v),
                    Ok(Reply::Json(j)) => frame::legacy_result_json(&id, j),
                    Err(e) => frame::legacy_error(&id, e.to_legacy()),
                };
                conn.send(text).await;
            });
            true
        }
    }
}
