//! UNIX-socket peer credentials (§1.8): another uid is logged in as the local user with that
//! uid and its composed privilege, or stays unauthenticated. The test binary re-runs itself
//! under another uid with `setpriv` to be that peer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::TestServer;
use serde_json::{Value, json};

const CHILD_ENV: &str = "GATEHOUSE_PEER_CHILD_SOCKET";

/// In the child: connect as this uid and print `auth.me`'s whole response frame.
async fn child(socket: &str) {
    let mut ws = common::Ws::connect_unix(std::path::Path::new(socket), "/api/current").await;
    let r = ws.call("auth.me", json!([])).await;
    println!("PEER-RESULT {r}");
}

fn run_as(uid: u32, socket: &std::path::Path) -> Value {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("setpriv")
        .args([
            format!("--reuid={uid}"),
            format!("--regid={uid}"),
            "--clear-groups".into(),
        ])
        .arg(&exe)
        .args([
            "--exact",
            "unix_peer_uid_maps_to_its_user",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, socket)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("PEER-RESULT ").map(|(_, rest)| rest))
        .unwrap_or_else(|| {
            panic!(
                "child printed no result: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    serde_json::from_str(line).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_peer_uid_maps_to_its_user() {
    if let Ok(socket) = std::env::var(CHILD_ENV) {
        child(&socket).await;
        return;
    }
    let running_as_root = gatehouse_proto::defaults::is_root();
    let has_setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    if !running_as_root || !has_setpriv {
        eprintln!("skipped: needs root and setpriv to act as another uid");
        return;
    }
    let srv = TestServer::start().await;
    // The test's temp dir is private; let other uids reach the data dir (it is 0711 itself).
    {
        use std::os::unix::fs::PermissionsExt;
        let parent = srv.dir.path();
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    let mut root = srv.unix("/api/current").await;
    let ro = root
        .ok("group.query", json!([[["gid", "=", 951]], {"get": true}]))
        .await;
    root.ok(
        "user.create",
        json!([{"uid": 4242, "username": "peer", "full_name": "Peer", "group_create": true, "password_disabled": true, "groups": [ro["id"]]}]),
    )
    .await;
    root.ok(
        "user.create",
        json!([{"uid": 4243, "username": "noprivpeer", "full_name": "No", "group_create": true, "password_disabled": true}]),
    )
    .await;

    // The server runs in this process: wait for the child off the runtime's threads.
    let socket = srv.socket();
    let run = move |uid: u32| {
        let socket = socket.clone();
        tokio::task::spawn_blocking(move || run_as(uid, &socket))
    };
    let known = run(4242).await.unwrap();
    assert_eq!(known["result"]["pw_name"], "peer", "{known}");
    let roles = known["result"]["privilege"]["roles"]["$set"]
        .as_array()
        .unwrap()
        .clone();
    assert!(roles.contains(&json!("READONLY_ADMIN")) && !roles.contains(&json!("FULL_ADMIN")));

    for uid in [4243, 4244] {
        let anon = run(uid).await.unwrap();
        assert_eq!(anon["error"]["data"]["error"], 207, "uid {uid}: {anon}");
    }

    // The non-internal peer session is listed with its UNIX origin.
    let s = root
        .ok(
            "auth.sessions",
            json!([[
                ["credentials", "=", "UNIX_SOCKET"],
                ["internal", "=", false]
            ]]),
        )
        .await;
    assert!(
        s.as_array().unwrap().is_empty(),
        "the child disconnected, so its session ended: {s}"
    );
}
