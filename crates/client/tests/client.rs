//! Client tests against a tiny in-test WebSocket server on 127.0.0.1 / a UNIX socket.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::type_complexity
)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gatehouse_client::{Client, ClientError, ConnectOptions, Protocol, Target};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Serves one connection: JSON-RPC requests are answered by `answer`; `sleep` delays the
/// answer (to test out-of-order replies), `close` closes with 1008, `notify` sends a
/// notification first, `bad` errors.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: S) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Message>();
    loop {
        tokio::select! {
            Some(out) = rx.recv() => { if ws.send(out).await.is_err() { return; } }
            msg = ws.next() => {
                let Some(Ok(msg)) = msg else { return };
                let Message::Text(text) = msg else { continue };
                let Ok(req) = serde_json::from_str::<Value>(text.as_str()) else {
                    let _ = ws.send(Message::Text(json!({"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null}).to_string().into())).await;
                    continue;
                };
                if req.get("msg").and_then(Value::as_str) == Some("connect") {
                    let _ = ws.send(Message::Text(json!({"msg": "connected", "session": "s"}).to_string().into())).await;
                    continue;
                }
                if req.get("msg").and_then(Value::as_str) == Some("method") {
                    let id = req["id"].clone();
                    let reply = if req["method"] == "bad" {
                        json!({"msg": "result", "id": id, "error": {"error": 11, "errname": "EAGAIN", "type": "VALIDATION", "reason": "[EINVAL] x: bad\n", "trace": null, "extra": [["x", "bad", 22]]}})
                    } else {
                        json!({"msg": "result", "id": id, "result": req["params"].clone()})
                    };
                    let _ = ws.send(Message::Text(reply.to_string().into())).await;
                    continue;
                }
                let Some(id) = req.get("id").cloned() else { continue };
                let method = req["method"].as_str().unwrap_or_default().to_string();
                let params = req["params"].clone();
                match method.as_str() {
                    "close" => {
                        let _ = ws.close(Some(CloseFrame { code: CloseCode::Policy, reason: "You are not allowed to access this resource".into() })).await;
                        return;
                    }
                    "notify" => {
                        let n = json!({"jsonrpc": "2.0", "method": "collection_update", "params": {"msg": "added", "collection": "x"}});
                        let _ = ws.send(Message::Text(n.to_string().into())).await;
                        let _ = ws.send(Message::Text(json!({"jsonrpc": "2.0", "id": id, "result": true}).to_string().into())).await;
                    }
                    "bad" => {
                        let e = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32602, "message": "Invalid params", "data": {"error": 22, "errname": "EINVAL", "reason": "[EINVAL] api_key_create.name: Field required\n", "trace": {"class": "ValidationErrors", "formatted": "tb", "repr": "r"}, "extra": [["api_key_create.name", "Field required", 22]]}}});
                        let _ = ws.send(Message::Text(e.to_string().into())).await;
                    }
                    "sleep" => {
                        let ms = params[0].as_u64().unwrap_or(0);
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                            let _ = tx.send(Message::Text(json!({"jsonrpc": "2.0", "id": id, "result": ms}).to_string().into()));
                        });
                    }
                    _ => {
                        let r = json!({"jsonrpc": "2.0", "id": id, "result": {"method": method, "params": params}});
                        let _ = ws.send(Message::Text(r.to_string().into())).await;
                    }
                }
            }
        }
    }
}

async fn tcp_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(serve(s));
        }
    });
    format!("ws://{addr}/api/current")
}

async fn connect() -> Client {
    Client::connect(&tcp_server().await)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn call_and_result() {
    let c = connect().await;
    let r = c
        .call("auth.me", vec![json!(1), json!("x")])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r, json!({"method": "auth.me", "params": [1, "x"]}));
}

#[tokio::test]
async fn concurrent_calls_are_multiplexed_out_of_order() {
    let c = connect().await;
    let (a, b, d) = tokio::join!(
        c.call("sleep", vec![json!(150)]),
        c.call("sleep", vec![json!(10)]),
        c.call("other", vec![]),
    );
    assert_eq!(a.ok(), Some(json!(150)));
    assert_eq!(b.ok(), Some(json!(10)));
    assert_eq!(d.ok().map(|v| v["method"].clone()), Some(json!("other")));
}

#[tokio::test]
async fn server_error_accessors() {
    let c = connect().await;
    let err = c.call("bad", vec![]).await.err();
    let Some(ClientError::Server(e)) = err else {
        panic!("expected a server error, got {err:?}")
    };
    assert!(e.is_validation());
    assert_eq!(e.code, -32602);
    assert_eq!(e.errno(), Some(22));
    assert_eq!(e.errname(), Some("EINVAL"));
    assert_eq!(
        e.reason(),
        Some("[EINVAL] api_key_create.name: Field required\n")
    );
    assert_eq!(e.trace_class(), Some("ValidationErrors"));
    assert_eq!(
        e.validation_errors(),
        vec![(
            Some("api_key_create.name".to_string()),
            "Field required".to_string(),
            22
        )]
    );
}

#[tokio::test]
async fn timeout() {
    let c = connect().await;
    let r = c
        .call_timeout("sleep", vec![json!(500)], Some(Duration::from_millis(50)))
        .await;
    assert!(matches!(r, Err(ClientError::Timeout { .. })), "{r:?}");
    // The connection is still usable and the late answer is dropped.
    assert!(c.call("ping", vec![]).await.is_ok());
}

#[tokio::test]
async fn raw_frames_and_notifications() {
    let c = connect().await;
    c.send_text("not json")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let frame = c
        .recv_text_timeout(Duration::from_secs(5))
        .await
        .unwrap_or_default();
    assert_eq!(
        serde_json::from_str::<Value>(&frame).ok(),
        Some(
            json!({"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null})
        )
    );
    c.send_text(r#"{"jsonrpc":"2.0","id":"abc","method":"x","params":[]}"#)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let frame = c
        .recv_text_timeout(Duration::from_secs(5))
        .await
        .unwrap_or_default();
    assert!(frame.contains("\"id\":\"abc\""), "{frame}");
    let mut notes = c
        .take_notifications()
        .unwrap_or_else(|| panic!("taken twice"));
    assert_eq!(c.call("notify", vec![]).await.ok(), Some(json!(true)));
    let n = tokio::time::timeout(Duration::from_secs(5), notes.recv())
        .await
        .ok()
        .flatten();
    assert_eq!(
        n.map(|n| n["params"]["collection"].clone()),
        Some(json!("x"))
    );
    // A notification (no id) gets no answer.
    c.notify("auth.me", vec![])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.recv_text_timeout(Duration::from_millis(100)).await, None);
}

#[tokio::test]
async fn close_code_and_reason() {
    let c = connect().await;
    let r = c.call("close", vec![]).await;
    let info = c.closed().await;
    assert_eq!(info.code, Some(1008));
    assert_eq!(info.reason, "You are not allowed to access this resource");
    assert!(matches!(r, Err(ClientError::Closed(_))), "{r:?}");
    assert!(matches!(
        c.call("x", vec![]).await,
        Err(ClientError::Closed(_))
    ));
    assert_eq!(c.close_info(), Some(info));
}

#[tokio::test]
async fn unix_socket_and_legacy() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("s.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(serve(s));
        }
    });
    let c = Client::connect_unix(&path)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.protocol(), Protocol::JsonRpc);
    assert!(c.call("auth.me", vec![]).await.is_ok());
    let url = format!("ws+unix://{}", path.display());
    assert!(Client::connect(&url).await.is_ok());

    let legacy = Client::connect_with(
        Target::Unix {
            path: path.clone(),
            request_path: "/websocket".into(),
        },
        ConnectOptions::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(legacy.protocol(), Protocol::Legacy);
    assert_eq!(
        legacy.call("echo", vec![json!(5)]).await.ok(),
        Some(json!([5]))
    );
    let Err(ClientError::Server(e)) = legacy.call("bad", vec![]).await else {
        panic!("expected error")
    };
    assert!(e.is_validation());
    assert_eq!(e.errno(), Some(11));
    assert_eq!(e.validation_errors().len(), 1);
}

#[tokio::test]
async fn connection_failures_are_classified() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let r = Client::connect_unix(dir.path().join("missing.sock")).await;
    assert!(matches!(r, Err(ClientError::NotRunning { .. })), "{r:?}");
    // A port nobody listens on.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = l.local_addr().map(|a| a.port()).unwrap_or(1);
    drop(l);
    let r = Client::connect(&format!("ws://127.0.0.1:{port}/api/current")).await;
    assert!(matches!(r, Err(ClientError::NotRunning { .. })), "{r:?}");
    assert_eq!(Protocol::for_path("/websocket"), Protocol::Legacy);
    assert_eq!(Protocol::for_path("/api/current"), Protocol::JsonRpc);
}
