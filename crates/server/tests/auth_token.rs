//! Tokens over real sockets (§3.1, §2.6), one-time passwords (§2.11), and audit records.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{TestServer, Ws};
use serde_json::{Value, json};

async fn token_login(srv: &TestServer, token: &Value) -> (Ws, Value) {
    let mut ws = srv.tcp().await;
    let r = ws
        .ok(
            "auth.login_ex",
            json!([{"mechanism": "TOKEN_PLAIN", "token": token}]),
        )
        .await;
    (ws, r)
}

#[tokio::test]
async fn token_semantics() {
    let srv = TestServer::start().await;
    let mut admin = srv.admin().await;

    let mut anon = srv.tcp().await;
    let r = anon.call("auth.generate_token", json!([])).await;
    assert_eq!(r["error"]["data"]["error"], 207);

    // Defaults: 64 URL-safe characters, multi-use until the consuming session ends.
    let t = admin.ok("auth.generate_token", json!([])).await;
    let s = t.as_str().unwrap();
    assert_eq!(s.len(), 64);
    assert!(
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let (mut a, r) = token_login(&srv, &t).await;
    assert_eq!(r["response_type"], "SUCCESS", "{r}");
    assert_eq!(r["user_info"]["pw_name"], "truenas_admin");
    let cur = a
        .ok(
            "auth.sessions",
            json!([[["current", "=", true]], {"get": true}]),
        )
        .await;
    assert_eq!(cur["credentials"], "TOKEN");
    assert_eq!(
        cur["credentials_data"]["parent"]["credentials"],
        "LOGIN_PASSWORD"
    );
    // Still usable while the first consumer is alive (multi-use) ...
    let (mut b, r) = token_login(&srv, &t).await;
    assert_eq!(r["response_type"], "SUCCESS");
    // ... and consumed when a consuming session logs out.
    assert_eq!(b.ok("auth.logout", json!([])).await, true);
    let (_, r) = token_login(&srv, &t).await;
    assert_eq!(r, json!({"response_type": "AUTH_ERR"}));
    // Other sessions on the destroyed token end with it (stricter than TrueNAS).
    assert_eq!(
        a.call("auth.me", json!([])).await["error"]["data"]["error"],
        207
    );

    // Single use.
    let t = admin
        .ok("auth.generate_token", json!([600, {}, true, true]))
        .await;
    let (mut b, r) = token_login(&srv, &t).await;
    assert_eq!(r["response_type"], "SUCCESS");
    let (_, r) = token_login(&srv, &t).await;
    assert_eq!(r["response_type"], "AUTH_ERR");
    // Regression: the session that spent a single-use token stayed logged in for one message
    // only. It must live on like any token session.
    for _ in 0..3 {
        assert_eq!(b.ok("auth.me", json!([])).await["pw_name"], "truenas_admin");
    }

    // Tokens with attrs cannot log in; job attrs are checked.
    let t = admin
        .ok("auth.generate_token", json!([600, {"filename": "x"}]))
        .await;
    let (_, r) = token_login(&srv, &t).await;
    assert_eq!(r["response_type"], "AUTH_ERR");
    let r = admin
        .call("auth.generate_token", json!([600, {"job": 5}]))
        .await;
    assert_eq!(
        r["error"]["data"]["reason"],
        "[EFAULT] 5: job does not exist."
    );

    // Sliding TTL: a 1 s token expires when idle.
    let t = admin.ok("auth.generate_token", json!([1])).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, r) = token_login(&srv, &t).await;
    assert_eq!(r["response_type"], "AUTH_ERR");
    // A 2 s token kept alive by its session's messages, then the session is logged out when idle.
    let t = admin.ok("auth.generate_token", json!([2])).await;
    let (mut c, r) = token_login(&srv, &t).await;
    assert_eq!(r["response_type"], "SUCCESS");
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(c.ok("auth.me", json!([])).await["pw_name"], "truenas_admin");
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = c.call("auth.me", json!([])).await;
    assert_eq!(r["error"]["data"]["error"], 207);

    // Terminating the creating session destroys its tokens.
    let mut creator = srv.admin().await;
    let t = creator.ok("auth.generate_token", json!([])).await;
    let id = creator
        .ok(
            "auth.sessions",
            json!([[["current", "=", true]], {"get": true}]),
        )
        .await["id"]
        .clone();
    assert_eq!(admin.ok("auth.terminate_session", json!([id])).await, true);
    let (_, r) = token_login(&srv, &t).await;
    assert_eq!(r["response_type"], "AUTH_ERR");

    // The legacy wrapper returns a bool.
    let t = admin.ok("auth.generate_token", json!([])).await;
    let mut w = srv.tcp().await;
    assert_eq!(w.ok("auth.login_with_token", json!([t])).await, true);
    let mut w = srv.tcp().await;
    assert_eq!(w.ok("auth.login_with_token", json!(["nope"])).await, false);
}

#[tokio::test]
async fn onetime_password_and_audit() {
    let srv = TestServer::start().await;
    let mut admin = srv.admin().await;
    admin
        .ok("user.create", json!([{"username": "otpw", "full_name": "o", "password": "pw-otpw", "group_create": true, "groups": [3]}]))
        .await;
    let r = admin
        .call(
            "auth.generate_onetime_password",
            json!([{"username": "ghost"}]),
        )
        .await;
    assert_eq!(
        r["error"]["data"]["extra"],
        json!([[
            "auth.generate_onetime_password.username",
            "ghost: user does not exist.",
            22
        ]])
    );
    let pw = admin
        .ok(
            "auth.generate_onetime_password",
            json!([{"username": "otpw"}]),
        )
        .await;
    let pw = pw.as_str().unwrap().to_string();
    let (n, rest) = pw.split_once('_').unwrap();
    assert!(n.parse::<u64>().is_ok());
    assert_eq!(rest.len(), 27);
    let login = json!([{"mechanism": "PASSWORD_PLAIN", "username": "otpw", "password": pw}]);
    let mut ws = srv.tcp().await;
    let r = ws.ok("auth.login_ex", login.clone()).await;
    assert_eq!(r["response_type"], "SUCCESS", "{r}");
    let attrs = r["user_info"]["account_attributes"].clone();
    assert!(
        attrs.as_array().unwrap().contains(&json!("OTPW")),
        "{attrs}"
    );
    let cur = ws
        .ok(
            "auth.sessions",
            json!([[["current", "=", true]], {"get": true}]),
        )
        .await;
    assert_eq!(cur["credentials"], "LOGIN_ONETIME_PASSWORD");
    let r = ws.call("auth.generate_token", json!([])).await;
    assert_eq!(r["error"]["data"]["error"], 95);
    assert!(
        !ws.ok("auth.mechanism_choices", json!([]))
            .await
            .as_array()
            .unwrap()
            .contains(&json!("TOKEN_PLAIN"))
    );
    // Once only.
    let mut ws2 = srv.tcp().await;
    assert_eq!(
        ws2.ok("auth.login_ex", login).await["response_type"],
        "AUTH_ERR"
    );

    // Audit: authentication successes and failures, and METHOD_CALL with secrets redacted.
    let mut bad = srv.tcp().await;
    bad.ok(
        "auth.login_ex",
        json!([{"mechanism": "PASSWORD_PLAIN", "username": "truenas_admin", "password": "wrong"}]),
    )
    .await;
    admin.ok("auth.generate_token", json!([])).await;
    let mut found = Value::Null;
    for _ in 0..50 {
        found = admin
            .ok(
                "audit.query",
                json!([{"query-filters": [["event", "in", ["AUTHENTICATION", "METHOD_CALL"]]], "query-options": {"order_by": ["message_timestamp"]}}]),
            )
            .await;
        let n = found.as_array().map_or(0, Vec::len);
        if n >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recs = found.as_array().unwrap();
    let failure = recs
        .iter()
        .find(|r| {
            r["event"] == "AUTHENTICATION"
                && r["success"] == false
                && r["event_data"]["error"] == "Bad username or password"
        })
        .unwrap_or_else(|| panic!("no failure record in {found}"));
    assert_eq!(
        failure["event_data"]["credentials"]["credentials"],
        "LOGIN_PASSWORD"
    );
    assert_eq!(failure["service"], "MIDDLEWARE");
    let call = recs
        .iter()
        .find(|r| {
            r["event"] == "METHOD_CALL"
                && r["event_data"]["method"] == "auth.generate_onetime_password"
                && r["success"] == true
        })
        .unwrap_or_else(|| panic!("no METHOD_CALL in {found}"));
    assert_eq!(
        call["event_data"]["description"],
        "Generate onetime password for user"
    );
    assert!(
        recs.iter()
            .any(|r| r["event_data"]["method"] == "auth.generate_token")
    );
    let text = found.to_string();
    assert!(!text.contains(&pw), "one-time password leaked into audit");
    assert!(!text.contains("wrong"), "password leaked into audit");
}
