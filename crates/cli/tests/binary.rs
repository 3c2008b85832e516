//! The `gatehouse` binary against a mock middleware on a UNIX socket / loopback TCP: flags,
//! startup calls, `-c`, stdin scripts, exit codes and connection errors (cli.md §1, §7).
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Log = Arc<Mutex<Vec<Value>>>;

fn answer(method: &str, params: &Value, authed: bool) -> Value {
    match method {
        "auth.login_ex" => {
            let d = &params[0];
            match (d["mechanism"].as_str(), d["password"].as_str()) {
                (Some("PASSWORD_PLAIN"), Some("good")) => {
                    json!({"result": {"response_type": "SUCCESS", "user_info": null, "authenticator": "LEVEL_1"}})
                }
                (Some("PASSWORD_PLAIN"), Some("otp")) => {
                    json!({"result": {"response_type": "OTP_REQUIRED", "username": "root"}})
                }
                _ => json!({"result": {"response_type": "AUTH_ERR"}}),
            }
        }
        _ if !authed => {
            json!({"error": {"code": -32001, "message": "Method call error", "data": {"error": 207, "errname": "ENOTAUTHENTICATED", "reason": "[ENOTAUTHENTICATED] Not authenticated", "trace": null, "extra": null}}})
        }
        "system.hostname" => json!({"result": "truenas.example.com"}),
        "core.get_methods" => json!({"result": common::fixture("get_methods.json")}),
        "core.get_services" => json!({"result": common::fixture("get_services.json")}),
        "auth.me" => json!({"result": {"pw_name": "root", "pw_uid": 0}}),
        "api_key.create" => {
            json!({"error": {"code": -32602, "message": "Invalid params", "data": {"error": 22, "errname": "EINVAL", "reason": "[EINVAL] api_key_create.username: Field required\n", "trace": null, "extra": [["api_key_create.username", "Field required", 22]]}}})
        }
        _ => json!({"result": null}),
    }
}

/// Starts a mock middleware; `unix_authed`: the socket auto-authenticates.
fn start_server(dir: &Path, unix_authed: bool) -> (PathBuf, String, Log) {
    let sock = dir.join("gatehoused.sock");
    let log: Log = Arc::default();
    let (tx, rx) = std::sync::mpsc::channel();
    let (sock2, log2) = (sock.clone(), log.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let unix = tokio::net::UnixListener::bind(&sock2).unwrap();
            let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(tcp.local_addr().unwrap().port()).unwrap();
            loop {
                let log = log2.clone();
                tokio::select! {
                    Ok((s, _)) = unix.accept() => { tokio::spawn(serve(s, unix_authed, log)); }
                    Ok((s, _)) = tcp.accept() => { tokio::spawn(serve(s, false, log)); }
                }
            }
        });
    });
    let port = rx.recv().unwrap();
    (sock, format!("ws://127.0.0.1:{port}/api/current"), log)
}

async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: S,
    mut authed: bool,
    log: Log,
) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Text(t) = msg else { continue };
        let req: Value = serde_json::from_str(t.as_str()).unwrap();
        log.lock().unwrap().push(req.clone());
        let method = req["method"].as_str().unwrap_or_default();
        let mut reply = answer(method, &req["params"], authed);
        if reply["result"]["response_type"] == "SUCCESS" {
            authed = true;
        }
        if method == "auth.login_ex_continue" {
            let ok = req["params"][0]["otp_token"] == "123456";
            authed |= ok;
            reply = json!({"result": {"response_type": if ok { "SUCCESS" } else { "AUTH_ERR" }}});
        }
        reply["jsonrpc"] = json!("2.0");
        reply["id"] = req["id"].clone();
        if ws
            .send(Message::Text(reply.to_string().into()))
            .await
            .is_err()
        {
            return;
        }
    }
}

struct Run {
    stdout: String,
    stderr: String,
    code: i32,
}

fn run(args: &[&str], env_dir: &Path, stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .env("GATEHOUSE_DATA_DIR", env_dir)
        .env("HOME", env_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code().unwrap_or(-1),
    }
}

#[test]
fn default_socket_and_dash_c() {
    let dir = tempfile::tempdir().unwrap();
    let (_sock, _url, log) = start_server(dir.path(), true);
    let r = run(&["-c", "auth me"], dir.path(), "");
    assert_eq!(
        (r.stdout.as_str(), r.stderr.as_str(), r.code),
        (
            "+---------+------+\n| pw_name | root |\n|  pw_uid | 0    |\n+---------+------+\n",
            "",
            0
        )
    );
    let methods: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .map(|r| r["method"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut startup = methods[..3].to_vec();
    startup.sort();
    assert_eq!(
        startup,
        ["core.get_methods", "core.get_services", "system.hostname"]
    );
    assert_eq!(methods[3], "auth.me");
    assert_eq!(
        log.lock().unwrap()[..3]
            .iter()
            .find(|r| r["method"] == "core.get_methods")
            .map(|r| r["params"].clone()),
        Some(json!([null, "CLI"]))
    );

    // Exit codes: unknown word 0 (stdout), namespace banner 0, error 1 (stderr).
    let r = run(&["-c", "foo"], dir.path(), "");
    assert_eq!(
        (r.stdout.as_str(), r.code),
        ("Namespace foo not found\n", 0)
    );
    let r = run(&["-c", "auth api_key create name=k"], dir.path(), "");
    assert_eq!(
        (r.stdout.as_str(), r.stderr.as_str(), r.code),
        (
            "",
            "Validation errors:\n* api_key_create.username: Field required\n",
            1
        )
    );
    let r = run(&["-c", "auth generate_token ttl=1a"], dir.path(), "");
    assert_eq!(
        (r.stderr.as_str(), r.code),
        ("Expected end of text, found 't'\n ttl=1a\n ^\n", 1)
    );
    let r = run(&["-m", "csv", "-c", "auth me"], dir.path(), "");
    assert_eq!(r.stdout, "pw_name,pw_uid\r\nroot,0\r\n\n");
    let r = run(&["-c", "exit"], dir.path(), "");
    assert_eq!(r.code, 0);
}

#[test]
fn stdin_script() {
    let dir = tempfile::tempdir().unwrap();
    start_server(dir.path(), true);
    let r = run(&[], dir.path(), "auth\nme\n.mode csv\nme\nfoo\n");
    assert!(
        r.stdout.starts_with(
            "Type \"ls\" (followed by Enter) to list available auth configuration options\n"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .ends_with("pw_name,pw_uid\r\nroot,0\r\n\nNamespace foo not found\n"),
        "{}",
        r.stdout
    );
    assert_eq!(r.code, 0);
}

#[test]
fn tcp_login() {
    let dir = tempfile::tempdir().unwrap();
    let (_, url, log) = start_server(dir.path(), true);
    let r = run(&["--url", &url, "-c", "auth me"], dir.path(), "");
    assert_eq!(
        (r.stderr.as_str(), r.code),
        ("You are not authorized to use TrueNAS CLI.\n", 1)
    );
    let r = run(
        &[
            "--url",
            &url,
            "--user",
            "root",
            "--password",
            "bad",
            "-c",
            "auth me",
        ],
        dir.path(),
        "",
    );
    assert_eq!(
        (r.stderr.as_str(), r.code),
        (
            "Unknown middleware error: Exception('Invalid username or password').\n",
            1
        )
    );
    let r = run(
        &[
            "--url",
            &url,
            "--user",
            "root",
            "--password",
            "good",
            "-c",
            "auth me",
        ],
        dir.path(),
        "",
    );
    assert_eq!((r.stderr.as_str(), r.code), ("", 0));
    assert!(r.stdout.contains("| pw_name | root |"));
    let login = log
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|r| r["method"] == "auth.login_ex")
        .cloned()
        .unwrap();
    assert_eq!(
        login["params"],
        json!([{"mechanism": "PASSWORD_PLAIN", "username": "root", "password": "good"}])
    );
}

#[test]
fn connection_failures() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(&["-c", "auth me"], dir.path(), "");
    assert_eq!(
        (r.stdout.as_str(), r.stderr.as_str(), r.code),
        ("", "middleware is not running.\n", 1)
    );
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let r = run(
        &[
            "--url",
            &format!("ws://127.0.0.1:{port}/api/current"),
            "-c",
            "auth me",
        ],
        dir.path(),
        "",
    );
    assert_eq!(
        (r.stderr.as_str(), r.code),
        ("middleware is not running.\n", 1)
    );
    let r = run(&["-m", "yaml"], dir.path(), "");
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("invalid choice: 'yaml'"), "{}", r.stderr);
}

/// Manual testing aid: `GATEHOUSE_MOCK_DIR=/tmp/m cargo test -p gatehouse-cli --test binary --
/// --ignored mock_server` serves the mock middleware on `$GATEHOUSE_MOCK_DIR/gatehoused.sock`
/// for 10 minutes (then `GATEHOUSE_DATA_DIR=/tmp/m gatehouse`).
#[test]
#[ignore = "manual testing aid: serves a mock middleware for 10 minutes"]
fn mock_server() {
    let Some(dir) = std::env::var_os("GATEHOUSE_MOCK_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let _ = std::fs::remove_file(dir.join("gatehoused.sock"));
    let (_, url, _) = start_server(&dir, true);
    eprintln!(
        "mock middleware: {} and {url}",
        dir.join("gatehoused.sock").display()
    );
    std::thread::sleep(std::time::Duration::from_secs(600));
}
