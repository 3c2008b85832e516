//! Wire protocols over real sockets: JSON-RPC and legacy frames, error shapes, limits, both
//! transports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ADMIN_PASSWORD, TestServer, Ws};
use serde_json::{Value, json};

/// (request frame, expected reply or None for silence) on an unauthenticated TCP connection.
#[tokio::test]
async fn jsonrpc_request_validation_table() {
    let srv = TestServer::start().await;
    let mut ws = srv.tcp().await;
    let table: Vec<(&str, Option<Value>)> = vec![
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"core.ping"}"#,
            Some(json!({"jsonrpc":"2.0","result":"pong","id":1})),
        ),
        (
            r#"{"jsonrpc":"2.0","id":"s","method":"core.ping","params":[]}"#,
            Some(json!({"jsonrpc":"2.0","result":"pong","id":"s"})),
        ),
        (
            r#"{"jsonrpc":"2.0","id":2,"method":"no.such"}"#,
            Some(
                json!({"jsonrpc":"2.0","error":{"code":-32601,"message":"Method does not exist"},"id":2}),
            ),
        ),
        (r#"{"jsonrpc":"2.0","method":"no.such"}"#, None),
        (r#"{"jsonrpc":"2.0","method":"core.ping"}"#, None),
        (
            r#"{"id":3,"method":"core.ping"}"#,
            Some(
                json!({"jsonrpc":"2.0","error":{"code":-32600,"message":"Missing 'jsonrpc' member"},"id":3}),
            ),
        ),
        (
            r#"{"jsonrpc":"2.0","id":4,"method":"core.ping","params":{}}"#,
            Some(
                json!({"jsonrpc":"2.0","error":{"code":-32600,"message":"'params' member must be of type array"},"id":4}),
            ),
        ),
        (
            r#"[]"#,
            Some(
                json!({"jsonrpc":"2.0","error":{"code":-32600,"message":"Batch messages are not supported at this time"},"id":null}),
            ),
        ),
    ];
    for (frame, expected) in table {
        ws.send(frame).await;
        match expected {
            Some(e) => assert_eq!(ws.recv().await, e, "frame {frame}"),
            None => ws.expect_silence(150).await,
        }
    }
    // A parse error keeps the connection open.
    ws.send("{oops").await;
    let r = ws.recv().await;
    assert_eq!(r["error"]["code"], -32700);
    assert_eq!(r["id"], Value::Null);
    assert_eq!(ws.ok("core.ping", json!([])).await, "pong");
}

#[tokio::test]
async fn error_objects_are_exact() {
    let srv = TestServer::start().await;
    let mut anon = srv.tcp().await;
    let r = anon.call("auth.me", json!([])).await;
    let d = &r["error"]["data"];
    assert_eq!(r["error"]["code"], -32001);
    assert_eq!(r["error"]["message"], "Method call error");
    assert_eq!(d["error"], 207);
    assert_eq!(d["errname"], "ENOTAUTHENTICATED");
    assert_eq!(d["reason"], "[ENOTAUTHENTICATED] Not authenticated");
    assert_eq!(d["extra"], Value::Null);
    for key in ["class", "formatted", "repr"] {
        assert!(d["trace"].get(key).is_some(), "trace.{key}");
    }

    let mut admin = srv.admin().await;
    let r = admin.call("user.get_instance", json!([999])).await;
    assert_eq!(r["error"]["code"], -32602);
    assert_eq!(r["error"]["data"]["error"], 22);
    assert_eq!(
        r["error"]["data"]["reason"],
        "[ENOENT] None: User 999 does not exist"
    );
    assert_eq!(
        r["error"]["data"]["extra"],
        json!([[null, "User 999 does not exist", 2]])
    );

    let r = admin
        .call("user.query", json!([[], {"get": true, "limit": 1}]))
        .await;
    assert!(r.get("result").is_some(), "{r}");
    let r = admin
        .call(
            "user.query",
            json!([[["username", "=", "nobody"]], {"get": true}]),
        )
        .await;
    assert_eq!(r["error"]["code"], -32001);
    assert_eq!(r["error"]["data"]["reason"], "MatchNotFound()");

    // Strict argument validation with attribute paths.
    let r = admin
        .call("user.create", json!([{"username": "x", "bogus": 1}]))
        .await;
    assert_eq!(r["error"]["code"], -32602);
    let extra = r["error"]["data"]["extra"].as_array().unwrap().clone();
    assert!(
        extra.contains(&json!([
            "user_create.bogus",
            "Extra inputs are not permitted",
            22
        ])),
        "{extra:?}"
    );
    assert!(
        extra.contains(&json!(["user_create.full_name", "Field required", 22])),
        "{extra:?}"
    );
    let r = admin.call("core.ping", json!([1])).await;
    assert_eq!(
        r["error"]["data"]["extra"],
        json!([["", "Too many arguments (expected 0, found 1)", 22]])
    );
}

#[tokio::test]
async fn limits_close_with_truenas_codes() {
    let srv = TestServer::start().await;
    let mut ws = srv.tcp().await;
    ws.send(&"x".repeat(8193)).await;
    assert_eq!(
        ws.closed().await,
        (
            1007,
            "Anonymous connection max message length is 8 kB".into()
        )
    );

    let mut ws = srv.tcp().await;
    ws.send_binary(b"\x00\x01").await;
    assert_eq!(ws.closed().await.0, 1003);

    let mut ws = srv.admin().await;
    // Authenticated: 64 KiB is fine as a (bad) frame, more closes with 1009.
    ws.send(&format!("\"{}\"", "y".repeat(60_000))).await;
    assert_eq!(ws.recv().await["error"]["code"], -32600);
    ws.send(&"y".repeat(65_537)).await;
    assert_eq!(
        ws.closed().await,
        (1009, "Max message length is 64 kB".into())
    );

    // The server still serves everyone else.
    let mut other = srv.tcp().await;
    assert_eq!(other.ok("core.ping", json!([])).await, "pong");
}

#[tokio::test]
async fn too_many_calls_in_flight() {
    let srv = TestServer::start_with(|c| {
        c.limits.max_inflight = 2;
        c.login_failure_delay_ms = [1000, 1000];
    })
    .await;
    let mut ws = srv.tcp().await;
    // Failed password logins are slow (a hash and the failure delay), so they stay in flight.
    for id in 1..=3 {
        let f = json!({"jsonrpc":"2.0","id":id,"method":"auth.login_ex","params":[{"mechanism":"PASSWORD_PLAIN","username":"nobody","password":"x"}]});
        ws.send(&f.to_string()).await;
    }
    let first = ws.recv().await;
    assert_eq!(first["id"], 3);
    assert_eq!(first["error"]["code"], -32000);
    assert_eq!(
        first["error"]["message"],
        "Maximum number of concurrent calls (2) has exceeded"
    );
}

#[tokio::test]
async fn versions_and_aliases() {
    let srv = TestServer::start().await;
    for path in ["/api/v25.10.0", "/api/v25.10.2", "/api/current"] {
        let mut ws = Ws::connect(&srv.url(path)).await;
        assert_eq!(ws.ok("core.ping", json!([])).await, "pong", "{path}");
    }
    let addr = srv.server.as_ref().unwrap().tcp_addr.unwrap();
    let body = http_get(addr, "/api/versions").await;
    assert!(
        body.ends_with("[\"v25.10.0\",\"v25.10.1\",\"v25.10.2\"]"),
        "{body}"
    );
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn legacy_protocol() {
    let srv = TestServer::start().await;
    let mut ws = Ws::connect(&srv.url("/websocket")).await;
    ws.send(r#"{"msg":"method","id":"early","method":"core.ping"}"#)
        .await;
    assert_eq!(ws.recv().await, json!({"msg": "failed", "version": "1"}));
    ws.send(r#"{"msg":"connect","version":"2"}"#).await;
    assert_eq!(ws.recv().await, json!({"msg": "failed", "version": "1"}));
    ws.send(r#"{"msg":"connect","version":"1","support":["1"]}"#)
        .await;
    let r = ws.recv().await;
    assert_eq!(r["msg"], "connected");
    assert!(r["session"].as_str().is_some_and(|s| s.len() == 36));

    ws.send(r#"{"msg":"method","id":"a","method":"core.ping","params":[]}"#)
        .await;
    assert_eq!(
        ws.recv().await,
        json!({"msg": "result", "id": "a", "result": "pong"})
    );
    // 25.04+: ping messages are ignored.
    ws.send(r#"{"msg":"ping","id":"p"}"#).await;
    ws.expect_silence(150).await;
    ws.send(r#"{"msg":"method","id":"b","method":"auth.me"}"#)
        .await;
    let r = ws.recv().await;
    assert_eq!(r["error"]["error"], 207);
    assert_eq!(r["error"]["type"], Value::Null);
    ws.send(&json!({"msg":"method","id":"c","method":"auth.login","params":["truenas_admin", ADMIN_PASSWORD]}).to_string()).await;
    assert_eq!(
        ws.recv().await,
        json!({"msg": "result", "id": "c", "result": true})
    );
    ws.send(r#"{"msg":"method","id":"d","method":"user.create","params":[{}]}"#)
        .await;
    let r = ws.recv().await;
    assert_eq!(r["error"]["error"], 11);
    assert_eq!(r["error"]["errname"], "EAGAIN");
    assert_eq!(r["error"]["type"], "VALIDATION");
    ws.send(r#"{"msg":"method","id":"e","method":"user.get_instance","params":[12345]}"#)
        .await;
    let r = ws.recv().await;
    assert_eq!(r["error"]["error"], 2);
    assert_eq!(r["error"]["type"], "VALIDATION");
    ws.send(r#"{"msg":"method","id":"f","method":"core.ping","params":{}}"#)
        .await;
    assert_eq!(
        ws.recv().await["error"]["reason"],
        "[EINVAL] `params` must be a list."
    );
    ws.send(r#"{"msg":"method","id":"g","method":"nope.nope"}"#)
        .await;
    assert_eq!(ws.recv().await["error"]["error"], 201);
    ws.send(r#"{"msg":"sub","id":"s1","name":"auth.sessions"}"#)
        .await;
    assert_eq!(ws.recv().await, json!({"msg": "ready", "subs": ["s1"]}));
}

#[tokio::test]
async fn unix_socket_root_is_internal_and_both_paths_work() {
    let srv = TestServer::start().await;
    let mut ws = srv.unix("/api/current").await;
    let me = ws.ok("auth.me", json!([])).await;
    assert_eq!(me["pw_name"], "root");
    assert!(
        me["privilege"]["roles"]["$set"]
            .as_array()
            .unwrap()
            .contains(&json!("FULL_ADMIN"))
    );
    let sessions = ws
        .ok("auth.sessions", json!([[["current", "=", true]]]))
        .await;
    let s = &sessions[0];
    assert_eq!(s["credentials"], "UNIX_SOCKET");
    assert_eq!(s["internal"], true);
    assert_eq!(s["secure_transport"], true);
    assert!(
        s["origin"]
            .as_str()
            .unwrap()
            .starts_with("UNIX socket (pid="),
        "{s}"
    );

    let mut legacy = srv.unix("/websocket").await;
    legacy.send(r#"{"msg":"connect","version":"1"}"#).await;
    assert_eq!(legacy.recv().await["msg"], "connected");
    legacy
        .send(r#"{"msg":"method","id":1,"method":"auth.me"}"#)
        .await;
    assert_eq!(legacy.recv().await["result"]["pw_name"], "root");
}
