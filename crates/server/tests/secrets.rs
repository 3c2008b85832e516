//! Secret hygiene (issue 6): run `gatehoused --log-level trace`, log in with every mechanism
//! (and fail to), then check that no password, raw API key, token or TOTP secret shows up in
//! the captured log, in `audit.query`, or in any `*.query` result.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Ws;
use gatehouse_core::totp;
use serde_json::{Value, json};

const ADMIN_PW: &str = "Adm1n-Secret-Passw0rd-XYZZY";
const BOB_PW: &str = "B0b-Secret-Passw0rd-PLUGH";
const WRONG_PW: &str = "Wr0ng-Guess-Passw0rd-FROBOZZ";

struct Daemon {
    child: Child,
    log: Arc<Mutex<String>>,
    url: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &std::path::Path) -> Daemon {
    let config = dir.join("gatehoused.toml");
    std::fs::write(&config, "login_failure_delay_ms = [0, 0]\napi_key_iterations = 1000\n[rate_limit]\npenalty_ms = [0, 0]\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehoused"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            "trace",
            "--config",
        ])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("GATEHOUSE_ADMIN_PASSWORD", ADMIN_PW)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("gatehoused is serving") {
                    // tcp=Some(127.0.0.1:PORT)
                    let addr = line
                        .split("Some(")
                        .nth(1)
                        .and_then(|r| r.split(')').next())
                        .map(str::to_string);
                    if let (Some(tx), Some(addr)) = (tx.take(), addr) {
                        let _ = tx.send(addr);
                    }
                }
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
    }
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("gatehoused did not start");
    Daemon {
        child,
        log,
        url: format!("ws://{addr}/api/current"),
    }
}

async fn login(url: &str, data: Value) -> (Ws, Value) {
    let mut ws = Ws::connect(url).await;
    let r = ws.ok("auth.login_ex", json!([data])).await;
    (ws, r)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_audit_or_query_results() {
    let tmp = tempfile::tempdir().unwrap();
    let daemon = start(tmp.path());
    let url = daemon.url.clone();
    let pw =
        |u: &str, p: &str| json!({"mechanism": "PASSWORD_PLAIN", "username": u, "password": p});

    // Password: success, wrong password, unknown user.
    let (mut admin, r) = login(&url, pw("truenas_admin", ADMIN_PW)).await;
    assert_eq!(r["response_type"], "SUCCESS");
    assert_eq!(
        login(&url, pw("truenas_admin", WRONG_PW)).await.1["response_type"],
        "AUTH_ERR"
    );
    assert_eq!(
        login(&url, pw("nosuchuser", WRONG_PW)).await.1["response_type"],
        "AUTH_ERR"
    );

    // API key: create, log in, fail with a wrong key of the right shape.
    let key = admin
        .ok(
            "api_key.create",
            json!([{"name": "hygiene", "username": "truenas_admin"}]),
        )
        .await;
    let raw_key = key["key"].as_str().unwrap().to_string();
    let key_part = raw_key.split_once('-').unwrap().1.to_string();
    let (_k, r) = login(
        &url,
        json!({"mechanism": "API_KEY_PLAIN", "username": "truenas_admin", "api_key": raw_key}),
    )
    .await;
    assert_eq!(r["response_type"], "SUCCESS");
    let wrong_key = format!("{}-{}", key["id"], "Q".repeat(64));
    let r = login(
        &url,
        json!({"mechanism": "API_KEY_PLAIN", "username": "truenas_admin", "api_key": wrong_key}),
    )
    .await
    .1;
    assert_eq!(r["response_type"], "AUTH_ERR");

    // Token: generate, log in, fail with a made-up one.
    let token = admin
        .ok("auth.generate_token", json!([600, {}, false]))
        .await
        .as_str()
        .unwrap()
        .to_string();
    let (_t, r) = login(&url, json!({"mechanism": "TOKEN_PLAIN", "token": token})).await;
    assert_eq!(r["response_type"], "SUCCESS");
    let r = login(
        &url,
        json!({"mechanism": "TOKEN_PLAIN", "token": "Tok3n-Never-Issued-XYZZY"}),
    )
    .await
    .1;
    assert_eq!(r["response_type"], "AUTH_ERR");

    // OTP: bob with a TOTP secret under global 2FA; a wrong code, then the right one.
    admin
        .ok("user.create", json!([{"username": "bob", "full_name": "Bob", "password": BOB_PW, "group_create": true, "groups": [2]}]))
        .await;
    let renewed = admin.ok("user.renew_2fa_secret", json!(["bob", {}])).await;
    let uri = renewed["twofactor_config"]["provisioning_uri"]
        .as_str()
        .unwrap()
        .to_string();
    let totp_secret = totp::parse_otpauth_uri(&uri).unwrap().secret;
    admin
        .ok("auth.twofactor.update", json!([{"enabled": true}]))
        .await;
    let (mut bob, r) = login(&url, pw("bob", BOB_PW)).await;
    assert_eq!(r["response_type"], "OTP_REQUIRED");
    let code = totp::code_at(&totp::decode_secret(&totp_secret).unwrap(), now(), 30, 6);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = bob
        .ok(
            "auth.login_ex",
            json!([{"mechanism": "OTP_TOKEN", "otp_token": wrong}]),
        )
        .await;
    assert_eq!(r["response_type"], "OTP_REQUIRED");
    let r = bob
        .ok(
            "auth.login_ex",
            json!([{"mechanism": "OTP_TOKEN", "otp_token": code}]),
        )
        .await;
    assert_eq!(r["response_type"], "SUCCESS", "{r}");
    // The legacy one-call login with a wrong password too.
    let mut anon = Ws::connect(&url).await;
    assert_eq!(anon.ok("auth.login", json!(["bob", WRONG_PW])).await, false);
    // A password change carries the new password through user.update.
    admin
        .ok(
            "user.update",
            json!([renewed["id"], {"password": "N3w-B0b-Passw0rd-GRUE"}]),
        )
        .await;

    let secrets: Vec<(&str, String)> = vec![
        ("admin password", ADMIN_PW.into()),
        ("bob password", BOB_PW.into()),
        ("wrong password", WRONG_PW.into()),
        ("new password", "N3w-B0b-Passw0rd-GRUE".into()),
        ("raw api key", raw_key.clone()),
        ("api key secret part", key_part),
        ("wrong api key", "Q".repeat(64)),
        ("token", token.clone()),
        ("made-up token", "Tok3n-Never-Issued-XYZZY".into()),
        ("totp secret", totp_secret.to_string()),
    ];
    let check = |what: &str, text: &str| {
        for (name, s) in &secrets {
            assert!(!text.contains(s.as_str()), "{name} found in {what}");
        }
    };

    // Every *.query method, as FULL_ADMIN (who sees the most).
    let methods = admin.ok("core.get_methods", json!([])).await;
    let mut queried = 0;
    for name in methods
        .as_object()
        .unwrap()
        .keys()
        .filter(|m| m.ends_with(".query"))
    {
        let r = admin.call(name, json!([])).await;
        check(name, &r.to_string());
        queried += 1;
    }
    assert!(queried >= 5, "only {queried} query methods");
    // The audit trail, with the failures in it.
    let audit = admin
        .ok(
            "audit.query",
            json!([{"services": ["MIDDLEWARE"], "query-options": {"limit": 10000}}]),
        )
        .await;
    let audit_text = audit.to_string();
    assert!(
        audit_text.contains("AUTHENTICATION"),
        "no authentication records: {audit_text:.300}"
    );
    check("audit.query", &audit_text);

    // The trace log: make sure it is really at trace level and saw the logins.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = daemon.log.lock().unwrap().clone();
    assert!(
        log.contains("TRACE") && log.contains("auth.login_ex"),
        "the call log is missing: {log:.500}"
    );
    check("the trace log", &log);
}
