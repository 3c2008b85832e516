//! Crash safety (issue 6): SIGKILL `gatehoused` in the middle of a burst of writes over several
//! connections, restart it on the same data directory, and check that every acknowledged write
//! is there, that nothing half-written is visible, and that SQLite's integrity check passes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use gatehouse_store::Store;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type WsStream = tokio_tungstenite::WebSocketStream<tokio::net::UnixStream>;

/// A running `gatehoused` child process.
struct Daemon {
    child: Child,
    socket: PathBuf,
}

/// A failed assertion must not leave the daemon running.
impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Daemon {
    fn start(dir: &Path) -> Self {
        let config = dir.join("gatehoused.toml");
        std::fs::write(
            &config,
            "listen = \"127.0.0.1:0\"\nlogin_failure_delay_ms = [0, 0]\napi_key_iterations = 1000\nhostname = \"crash-test\"\n",
        )
        .unwrap();
        let data = dir.join("data");
        let mut child = Command::new(env!("CARGO_BIN_EXE_gatehoused"))
            .arg("--data-dir")
            .arg(&data)
            .arg("--config")
            .arg(&config)
            .arg("--log-level")
            .arg("info")
            .env("GATEHOUSE_ADMIN_PASSWORD", "crash-admin-password")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait (bounded) for the "serving" line, then keep draining stderr in the background.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("gatehoused is serving")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("gatehoused did not start");
        Self {
            child,
            socket: data.join("gatehoused.sock"),
        }
    }

    fn sigkill(mut self) {
        // `Child::kill` is SIGKILL on Unix: no shutdown code runs.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UNIX-socket client: the server's own uid connects as root without a password.
struct Client {
    ws: WsStream,
    next: i64,
}

impl Client {
    async fn connect(socket: &Path) -> Option<Self> {
        let stream = tokio::net::UnixStream::connect(socket).await.ok()?;
        let (ws, _) = tokio_tungstenite::client_async("ws://localhost/api/current", stream)
            .await
            .ok()?;
        Some(Self { ws, next: 1 })
    }

    /// `Some(result)` when the call was acknowledged with a result; `None` when it failed or
    /// the server went away (never panics: the server is killed under it).
    async fn call(&mut self, method: &str, params: Value) -> Option<Value> {
        let id = self.next;
        self.next += 1;
        let frame = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.ws
            .send(Message::Text(frame.to_string().into()))
            .await
            .ok()?;
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(20), self.ws.next())
                .await
                .ok()??
                .ok()?;
            let Message::Text(t) = msg else { continue };
            let v: Value = serde_json::from_str(t.as_str()).ok()?;
            if v["id"] == json!(id) {
                return v.get("result").cloned();
            }
        }
    }

    async fn ok(&mut self, method: &str, params: Value) -> Value {
        match self.call(method, params.clone()).await {
            Some(v) => v,
            None => panic!("{method} {params} failed"),
        }
    }
}

/// What the burst saw acknowledged, per kind of write.
#[derive(Default)]
struct Acked {
    users: Vec<String>,
    full_names: Vec<String>,
    privileges: Vec<String>,
    privilege_roles: Vec<(i64, String)>,
    attributes: Vec<(String, i64)>,
    secrets: Vec<String>,
    api_keys: Vec<(i64, String)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_burst_loses_no_acknowledged_write() {
    let tmp = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(tmp.path());
    let socket = daemon.socket.clone();

    let mut setup = Client::connect(&socket).await.unwrap();
    let admin = setup
        .ok(
            "user.query",
            json!([[["username", "=", "truenas_admin"]], {"get": true}]),
        )
        .await;
    let admin_id = admin["id"].as_i64().unwrap();
    let priv_id = setup
        .ok(
            "privilege.create",
            json!([{"name": "crash-priv", "web_shell": false, "roles": ["READONLY_ADMIN"]}]),
        )
        .await["id"]
        .as_i64()
        .unwrap();

    let acked = Arc::new(Mutex::new(Acked::default()));
    let stop_at = Instant::now() + Duration::from_secs(30);
    let mut tasks = Vec::new();
    // Writer 1: user.create (user + its group in one transaction).
    {
        let (acked, socket) = (acked.clone(), socket.clone());
        tasks.push(tokio::spawn(async move {
            let Some(mut c) = Client::connect(&socket).await else { return };
            for i in 0..10_000 {
                let name = format!("crash{i}");
                let p = json!([{"username": name, "full_name": format!("Crash {i}"), "group_create": true, "password_disabled": true}]);
                if c.call("user.create", p).await.is_none() || Instant::now() > stop_at {
                    return;
                }
                acked.lock().unwrap().users.push(name);
            }
        }));
    }
    // Writer 2: user.update of one user, and auth.set_attribute.
    {
        let (acked, socket) = (acked.clone(), socket.clone());
        tasks.push(tokio::spawn(async move {
            let Some(mut c) = Client::connect(&socket).await else {
                return;
            };
            for i in 0..10_000 {
                let full = format!("Admin rev {i}");
                if c.call("user.update", json!([admin_id, {"full_name": full}]))
                    .await
                    .is_none()
                {
                    return;
                }
                acked.lock().unwrap().full_names.push(full);
                let key = format!("k{i}");
                if c.call("auth.set_attribute", json!([key, i]))
                    .await
                    .is_none()
                    || Instant::now() > stop_at
                {
                    return;
                }
                acked.lock().unwrap().attributes.push((key, i));
            }
        }));
    }
    // Writer 3: privilege.create and privilege.update.
    {
        let (acked, socket) = (acked.clone(), socket.clone());
        tasks.push(tokio::spawn(async move {
            let Some(mut c) = Client::connect(&socket).await else {
                return;
            };
            let roles = ["READONLY_ADMIN", "SHARING_ADMIN", "ACCOUNT_READ"];
            for i in 0..10_000 {
                let name = format!("crash-priv-{i}");
                let p = json!([{"name": name, "web_shell": false, "roles": ["READONLY_ADMIN"]}]);
                if c.call("privilege.create", p).await.is_none() {
                    return;
                }
                acked.lock().unwrap().privileges.push(name);
                let role = roles[i % roles.len()].to_string();
                if c.call("privilege.update", json!([priv_id, {"roles": [role]}]))
                    .await
                    .is_none()
                    || Instant::now() > stop_at
                {
                    return;
                }
                acked.lock().unwrap().privilege_roles.push((i as i64, role));
            }
        }));
    }
    // Writer 4: user.renew_2fa_secret, and a handful of api_key.create.
    {
        let (acked, socket) = (acked.clone(), socket.clone());
        tasks.push(tokio::spawn(async move {
            let Some(mut c) = Client::connect(&socket).await else {
                return;
            };
            for i in 0..10_000 {
                let Some(entry) = c
                    .call("user.renew_2fa_secret", json!(["truenas_admin", {}]))
                    .await
                else {
                    return;
                };
                let uri = entry["twofactor_config"]["provisioning_uri"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                acked.lock().unwrap().secrets.push(uri);
                if i < 4 {
                    let p =
                        json!([{"name": format!("crash-key-{i}"), "username": "truenas_admin"}]);
                    let Some(k) = c.call("api_key.create", p).await else {
                        return;
                    };
                    let raw = k["key"].as_str().unwrap_or_default().to_string();
                    acked
                        .lock()
                        .unwrap()
                        .api_keys
                        .push((k["id"].as_i64().unwrap_or(0), raw));
                }
                if Instant::now() > stop_at {
                    return;
                }
            }
        }));
    }

    // Let the burst run until enough of everything has been acknowledged, then kill -9.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let a = acked.lock().unwrap();
        let enough = a.users.len() >= 20
            && a.full_names.len() >= 20
            && a.privileges.len() >= 10
            && a.secrets.len() >= 6
            && a.api_keys.len() >= 3;
        if enough || Instant::now() > deadline {
            break;
        }
    }
    daemon.sigkill();
    for t in tasks {
        let _ = t.await;
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        acked.users.len() >= 5 && !acked.api_keys.is_empty(),
        "the burst barely ran"
    );

    // The database as the killed server left it: SQLite recovers the WAL and is intact.
    let db = tmp.path().join("data").join("gatehouse.db");
    let store = gatehouse_store::SqliteStore::open(&db).unwrap();
    store.integrity_check().unwrap();
    drop(store);

    // Restart on the same data directory.
    let daemon = Daemon::start(tmp.path());
    let mut c = Client::connect(&daemon.socket).await.unwrap();

    // Users: every acknowledged create is there, each with its own group (one transaction),
    // and no user exists without its group or the other way round.
    let users = c
        .ok("user.query", json!([[["username", "^", "crash"]]]))
        .await;
    let users: HashMap<String, Value> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["username"].as_str().unwrap().to_string(), u.clone()))
        .collect();
    for name in &acked.users {
        assert!(
            users.contains_key(name),
            "acknowledged user {name} is missing"
        );
    }
    assert!(
        users.len() <= acked.users.len() + 1,
        "more users than writes sent"
    );
    let groups = c.ok("group.query", json!([[["name", "^", "crash"]]])).await;
    let group_names: Vec<&str> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for (name, u) in &users {
        assert!(
            group_names.contains(&name.as_str()),
            "user {name} without its group (half-written)"
        );
        let i: usize = name.trim_start_matches("crash").parse().unwrap();
        assert_eq!(
            u["full_name"],
            format!("Crash {i}"),
            "user {name} has a torn record"
        );
    }
    assert_eq!(
        group_names.len(),
        users.len(),
        "a group without its user (half-written)"
    );

    // user.update: the last acknowledged name or the one after it (sent, not yet answered).
    let admin = c.ok("user.get_instance", json!([admin_id])).await;
    if let Some(last) = acked.full_names.last() {
        let n: usize = last.trim_start_matches("Admin rev ").parse().unwrap();
        let now = admin["full_name"].as_str().unwrap();
        assert!(
            now == last || now == format!("Admin rev {}", n + 1),
            "full_name {now}, last acked {last}"
        );
    }

    // auth.set_attribute: every acknowledged key, with its value (root's attributes).
    let me = c.ok("auth.me", json!([])).await;
    for (k, v) in &acked.attributes {
        assert_eq!(me["attributes"][k], json!(v), "attribute {k}");
    }

    // privilege.create / update.
    let privs = c.ok("privilege.query", json!([])).await;
    let names: Vec<&str> = privs
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in &acked.privileges {
        assert!(
            names.contains(&p.as_str()),
            "acknowledged privilege {p} missing"
        );
    }
    if let Some((i, role)) = acked.privilege_roles.last() {
        let p = c.ok("privilege.get_instance", json!([priv_id])).await;
        let roles = p["roles"].as_array().unwrap();
        let next = ["READONLY_ADMIN", "SHARING_ADMIN", "ACCOUNT_READ"][(*i as usize + 1) % 3];
        assert!(
            roles == &vec![json!(role)] || roles == &vec![json!(next)],
            "roles {roles:?}, last acked {role}"
        );
    }

    // renew_2fa_secret: the secret in force is the last acknowledged one or a newer one, never
    // an older one.
    let cfg = c
        .ok("user.twofactor_config", json!(["truenas_admin"]))
        .await;
    let uri = cfg["provisioning_uri"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if let Some((last, older)) = acked.secrets.split_last() {
        assert!(
            uri == *last || !older.contains(&uri),
            "an older 2FA secret came back"
        );
        assert!(!uri.is_empty());
    }

    // api_key.create: each acknowledged key exists and still logs in.
    let keys = c.ok("api_key.query", json!([])).await;
    let ids: Vec<i64> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_i64().unwrap())
        .collect();
    for (id, raw) in &acked.api_keys {
        assert!(ids.contains(id), "acknowledged api key {id} missing");
        let stream = tokio::net::UnixStream::connect(&daemon.socket)
            .await
            .unwrap();
        // Log in over a fresh connection (TCP semantics are not needed: UNIX works for keys).
        let (ws, _) = tokio_tungstenite::client_async("ws://localhost/api/current", stream)
            .await
            .unwrap();
        let mut k = Client { ws, next: 1 };
        let r = k
            .ok("auth.login_ex", json!([{"mechanism": "API_KEY_PLAIN", "username": "truenas_admin", "api_key": raw}]))
            .await;
        assert_eq!(r["response_type"], "SUCCESS", "key {id}: {r}");
    }

    daemon.stop();
    let store = gatehouse_store::SqliteStore::open(&db).unwrap();
    store.integrity_check().unwrap();
}
