//! Resource limits (issue 6): each test drives the server into one limit, checks how it
//! answers, and then shows that everyone else is still served.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::{TestServer, Ws};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const IP_A: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const IP_B: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

fn addr(srv: &TestServer) -> SocketAddr {
    srv.server.as_ref().unwrap().tcp_addr.unwrap()
}

fn open_connections(srv: &TestServer) -> usize {
    srv.server.as_ref().unwrap().app.connections.open()
}

/// Waits (bounded) until the server counts `n` open connections.
async fn wait_open(srv: &TestServer, n: usize) {
    for _ in 0..200 {
        if open_connections(srv) == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "expected {n} open connections, server counts {}",
        open_connections(srv)
    );
}

fn assert_refused(r: Result<Ws, tokio_tungstenite::tungstenite::Error>) {
    match r {
        Ok(_) => panic!("connection over the limit was accepted"),
        // The 503 from the accept-side refusal, or a reset if the client lost the race.
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 503),
        Err(_) => {}
    }
}

#[tokio::test]
async fn connections_per_ip_are_capped_and_other_addresses_still_served() {
    let srv = TestServer::start_with(|c| c.limits.max_connections_per_ip = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            Ws::try_connect_from(IP_A, addr(&srv), "/api/current")
                .await
                .unwrap(),
        );
    }
    assert_refused(Ws::try_connect_from(IP_A, addr(&srv), "/api/current").await);
    // Another address is not affected, and neither are the held connections.
    let mut other = Ws::try_connect_from(IP_B, addr(&srv), "/api/current")
        .await
        .unwrap();
    assert_eq!(other.ok("core.ping", json!([])).await, "pong");
    for ws in &mut held {
        assert_eq!(ws.ok("core.ping", json!([])).await, "pong");
    }
    // The UNIX socket has no IP and is not counted per address.
    let mut local = srv.unix("/api/current").await;
    assert_eq!(local.ok("core.ping", json!([])).await, "pong");
    // Closing one frees its slot.
    drop(held.pop());
    wait_open(&srv, 4).await;
    let mut again = Ws::try_connect_from(IP_A, addr(&srv), "/api/current")
        .await
        .unwrap();
    assert_eq!(again.ok("core.ping", json!([])).await, "pong");
}

#[tokio::test]
async fn connections_are_capped_globally() {
    let srv = TestServer::start_with(|c| {
        c.limits.max_connections = 3;
        c.limits.max_connections_per_ip = 0;
    })
    .await;
    let mut held = vec![
        Ws::try_connect_from(IP_A, addr(&srv), "/api/current")
            .await
            .unwrap(),
        Ws::try_connect_from(IP_B, addr(&srv), "/api/current")
            .await
            .unwrap(),
        srv.unix("/api/current").await,
    ];
    assert_eq!(open_connections(&srv), 3);
    assert_refused(Ws::try_connect_from(IP_B, addr(&srv), "/api/current").await);
    assert_refused(Ws::try_connect_from(IP_A, addr(&srv), "/websocket").await);
    // Refused connections hold no slot, and the held ones are served.
    wait_open(&srv, 3).await;
    for ws in &mut held {
        assert_eq!(ws.ok("core.ping", json!([])).await, "pong");
    }
    drop(held.remove(0));
    wait_open(&srv, 2).await;
    let mut ws = Ws::try_connect_from(IP_B, addr(&srv), "/api/current")
        .await
        .unwrap();
    assert_eq!(ws.ok("core.ping", json!([])).await, "pong");
}

/// Reads until EOF or error; returns how long it took (bounded by 5 s).
async fn time_to_drop(stream: &mut tokio::net::TcpStream) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("connection was not dropped within 5 s"),
        }
    }
}

#[tokio::test]
async fn handshake_timeout_drops_silent_and_partial_clients() {
    let srv = TestServer::start_with(|c| c.limits.handshake_timeout_ms = 300).await;
    // A proper client upgrades in time and is not affected by the timer afterwards.
    let mut good = srv.tcp().await;

    let mut silent = tokio::net::TcpStream::connect(addr(&srv)).await.unwrap();
    let mut partial = tokio::net::TcpStream::connect(addr(&srv)).await.unwrap();
    partial
        .write_all(b"GET /api/current HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n")
        .await
        .unwrap();
    let mut unix_silent = tokio::net::UnixStream::connect(srv.socket()).await.unwrap();
    wait_open(&srv, 4).await;

    let t = time_to_drop(&mut silent).await;
    assert!(
        t < Duration::from_secs(3),
        "silent client dropped after {t:?}"
    );
    let t = time_to_drop(&mut partial).await;
    assert!(
        t < Duration::from_secs(3),
        "partial client dropped after {t:?}"
    );
    let start = Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), unix_silent.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert!(start.elapsed() < Duration::from_secs(3));

    wait_open(&srv, 1).await;
    assert_eq!(good.ok("core.ping", json!([])).await, "pong");
    let mut late = srv.tcp().await;
    assert_eq!(late.ok("core.ping", json!([])).await, "pong");
}

#[tokio::test]
async fn unauthenticated_connections_are_closed_after_the_idle_limit() {
    let srv = TestServer::start_with(|c| c.limits.unauthenticated_idle_ms = 400).await;
    let mut admin = srv.admin().await;
    let mut anon = srv.tcp().await;
    // Talking without logging in does not extend the limit.
    assert_eq!(anon.ok("core.ping", json!([])).await, "pong");
    let start = Instant::now();
    assert_eq!(anon.closed().await, (1008, "Authentication timeout".into()));
    assert!(start.elapsed() < Duration::from_secs(3));

    // A logged-in connection outlives the limit.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(admin.ok("core.ping", json!([])).await, "pong");
    assert_eq!(
        admin.ok("auth.me", json!([])).await["pw_name"],
        "truenas_admin"
    );
    // After logout the clock starts again.
    assert_eq!(admin.ok("auth.logout", json!([])).await, true);
    assert_eq!(
        admin.closed().await,
        (1008, "Authentication timeout".into())
    );

    // New connections are served as before.
    let mut fresh = srv.admin().await;
    assert_eq!(fresh.ok("core.ping", json!([])).await, "pong");
}

#[tokio::test]
async fn calls_in_flight_are_capped_per_connection_only() {
    let srv = TestServer::start_with(|c| {
        c.limits.max_inflight = 2;
        c.login_failure_delay_ms = [1000, 1000];
    })
    .await;
    let mut busy = srv.tcp().await;
    // Failed password logins are slow (a hash and the failure delay), so they stay in flight.
    for id in 1..=3 {
        let f = json!({"jsonrpc":"2.0","id":id,"method":"auth.login_ex","params":[{"mechanism":"PASSWORD_PLAIN","username":"nobody","password":"x"}]});
        busy.send(&f.to_string()).await;
    }
    let first = busy.recv().await;
    assert_eq!(first["id"], 3);
    assert_eq!(first["error"]["code"], -32000);
    // Another connection is not limited by this one.
    let mut other = srv.tcp().await;
    assert_eq!(other.ok("core.ping", json!([])).await, "pong");
    // The busy connection recovers once its calls finish.
    for _ in 0..2 {
        assert_eq!(busy.recv().await["result"]["response_type"], "AUTH_ERR");
    }
    assert_eq!(busy.ok("core.ping", json!([])).await, "pong");
}

#[tokio::test]
async fn oversize_messages_close_only_the_offender() {
    let srv = TestServer::start().await;
    let mut bystander = srv.admin().await;
    let mut anon = srv.tcp().await;
    anon.send(&"x".repeat(8193)).await;
    assert_eq!(
        anon.closed().await,
        (
            1007,
            "Anonymous connection max message length is 8 kB".into()
        )
    );
    let mut authed = srv.admin().await;
    authed.send(&"y".repeat(65_537)).await;
    assert_eq!(
        authed.closed().await,
        (1009, "Max message length is 64 kB".into())
    );
    assert_eq!(bystander.ok("core.ping", json!([])).await, "pong");
}

#[tokio::test]
async fn deeply_nested_json_is_a_parse_error_not_a_crash() {
    let srv = TestServer::start().await;
    let mut admin = srv.admin().await;
    let depth = 10_000;
    let frame = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"core.ping","params":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    assert!(frame.len() < 65_536);
    admin.send(&frame).await;
    let r = admin.recv().await;
    assert_eq!(r["error"]["code"], -32700, "{r}");
    assert_eq!(r["id"], serde_json::Value::Null);
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("recursion limit"),
        "{r}"
    );
    // Objects too, and before login (within the 8 kB limit).
    let mut anon = srv.tcp().await;
    let frame = format!("{}{}", r#"{"a":"#.repeat(1000), "}".repeat(1000));
    anon.send(&frame).await;
    assert_eq!(anon.recv().await["error"]["code"], -32700);
    // Legacy: bad JSON closes with 1007, as any invalid JSON does.
    let mut legacy = Ws::connect(&srv.url("/websocket")).await;
    legacy
        .send(&format!("{}{}", "[".repeat(4000), "]".repeat(4000)))
        .await;
    assert_eq!(legacy.closed().await.0, 1007);
    // The same connections and the server keep working.
    assert_eq!(admin.ok("core.ping", json!([])).await, "pong");
    assert_eq!(anon.ok("core.ping", json!([])).await, "pong");
    let mut other = srv.tcp().await;
    assert_eq!(other.ok("core.ping", json!([])).await, "pong");
}

#[tokio::test]
async fn a_subscriber_that_never_reads_is_bounded_and_blocks_no_one() {
    let queue = 32;
    let srv = TestServer::start_with(|c| c.limits.outbound_queue = queue).await;
    let mut stuck = srv.admin().await;
    stuck.ok("core.subscribe", json!(["user.query"])).await;
    let mut watcher = srv.admin().await;
    watcher.ok("core.subscribe", json!(["user.query"])).await;
    let me = stuck
        .ok(
            "auth.sessions",
            json!([[["current", "=", true]], {"get": true}]),
        )
        .await;
    let stuck_id = me["id"].as_str().unwrap().to_string();
    let mut admin = srv.admin().await;
    let user = admin
        .ok(
            "user.query",
            json!([[["username", "=", "truenas_admin"]], {"get": true}]),
        )
        .await;
    let id = user["id"].as_i64().unwrap();
    // ~40 kB events: enough of them overflow the socket buffers and then the queue.
    let big: Vec<String> = (0..40)
        .map(|i| format!("/usr/bin/{i}{}", "n".repeat(990)))
        .collect();
    let mut slowest = Duration::ZERO;
    let mut max_queued = 0;
    for i in 0..300 {
        let t = Instant::now();
        admin
            .ok(
                "user.update",
                json!([id, {"full_name": format!("admin {i}"), "sudo_commands": big}]),
            )
            .await;
        slowest = slowest.max(t.elapsed());
        // The watcher reads its events, so it keeps up.
        let ev = watcher.event().await;
        assert_eq!(ev["params"]["id"], id);
        let app = &srv.server.as_ref().unwrap().app;
        for (sid, s) in app.sessions.all() {
            let q = s.conn.queued();
            if sid == stuck_id || q > 0 {
                max_queued = max_queued.max(q);
            }
        }
    }
    // The queue filled up to its bound and no further: events past it were dropped.
    assert!(max_queued <= queue, "queue grew to {max_queued}");
    assert_eq!(
        max_queued, queue,
        "the stuck subscriber never filled its queue"
    );
    // Nobody waited on the stuck reader.
    assert!(slowest < Duration::from_secs(2), "a write took {slowest:?}");
    let mut other = srv.tcp().await;
    assert_eq!(other.ok("core.ping", json!([])).await, "pong");
    // The stuck client can still catch up and talk.
    assert_eq!(stuck.ok("core.ping", json!([])).await, "pong");
}
