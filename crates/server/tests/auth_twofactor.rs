//! Two-factor login over real sockets (§2.4, §3.6, §3.7).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{TestServer, Ws};
use gatehouse_core::totp;
use serde_json::{Value, json};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn password_step(srv: &TestServer, user: &str) -> (Ws, Value) {
    let mut ws = srv.tcp().await;
    let r = ws
        .ok("auth.login_ex", json!([{"mechanism": "PASSWORD_PLAIN", "username": user, "password": format!("pw-{user}")}]))
        .await;
    (ws, r)
}

async fn otp(ws: &mut Ws, method: &str, code: &str) -> Value {
    ws.ok(
        method,
        json!([{"mechanism": "OTP_TOKEN", "otp_token": code}]),
    )
    .await
}

#[tokio::test]
async fn otp_login_flow_replay_and_limits() {
    let srv = TestServer::start().await;
    let mut admin = srv.admin().await;
    admin
        .ok("user.create", json!([{"username": "bob", "full_name": "b", "password": "pw-bob", "group_create": true, "groups": [2]}]))
        .await;
    assert_eq!(
        admin.ok("auth.twofactor.config", json!([])).await,
        json!({"enabled": false, "services": {"ssh": false}, "window": 0, "id": 1})
    );

    // bob renews his own secret; the URI carries it.
    let mut bob = common_login(&srv, "bob").await;
    let renewed = bob.ok("user.renew_2fa_secret", json!(["bob", {}])).await;
    assert_eq!(renewed["username"], "bob");
    assert_eq!(renewed["twofactor_auth_configured"], true);
    let cfg = &renewed["twofactor_config"];
    assert_eq!(cfg["secret_configured"], true);
    assert_eq!(
        (cfg["interval"].clone(), cfg["otp_digits"].clone()),
        (json!(30), json!(6))
    );
    let uri = cfg["provisioning_uri"].as_str().unwrap().to_string();
    assert!(
        uri.starts_with("otpauth://totp/iXsystems:bob-gatehouse-test%40TrueNAS?secret="),
        "{uri}"
    );
    let parsed = totp::parse_otpauth_uri(&uri).unwrap();
    let secret = totp::decode_secret(&parsed.secret).unwrap();
    let me = bob.ok("auth.me", json!([])).await;
    assert_eq!(me["two_factor_config"]["provisioning_uri"], uri);
    // Secrets are encrypted at rest with an owner-only key file.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(srv.dir.path().join("twofactor.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Someone else may not renew bob's secret unless FULL_ADMIN.
    admin
        .ok("user.create", json!([{"username": "eve", "full_name": "e", "password": "pw-eve", "group_create": true, "groups": [3]}]))
        .await;
    let mut eve = common_login(&srv, "eve").await;
    let r = eve.call("user.renew_2fa_secret", json!(["bob", {}])).await;
    assert_eq!(
        r["error"]["data"]["reason"],
        "[EPERM] bob: currently authenticated credential may not renew two-factor authentication for this user."
    );

    // Not enabled globally: password alone suffices; two_factor_auth says false.
    let (_, r) = password_step(&srv, "bob").await;
    assert_eq!(r["response_type"], "SUCCESS");
    let mut anon = srv.tcp().await;
    assert_eq!(
        anon.ok("auth.two_factor_auth", json!(["bob", "pw-bob"]))
            .await,
        false
    );

    let updated = admin
        .ok("auth.twofactor.update", json!([{"enabled": true}]))
        .await;
    assert_eq!(updated["enabled"], true);
    assert_eq!(
        anon.ok("auth.two_factor_auth", json!(["bob", "pw-bob"]))
            .await,
        true
    );
    assert_eq!(
        anon.ok("auth.two_factor_auth", json!(["bob", "wrong"]))
            .await,
        false
    );
    assert_eq!(
        anon.ok("auth.two_factor_auth", json!(["eve", "pw-eve"]))
            .await,
        false
    );

    // OTP without a pending login.
    let r = anon
        .call(
            "auth.login_ex_continue",
            json!([{"mechanism": "OTP_TOKEN", "otp_token": "123456"}]),
        )
        .await;
    assert_eq!(r["error"]["code"], -32001);
    assert_eq!(
        r["error"]["data"]["reason"],
        "[EINVAL] OTP_TOKEN: no authentication in progress"
    );
    // login_ex_continue takes only OTP_TOKEN.
    let r = anon
        .call(
            "auth.login_ex_continue",
            json!([{"mechanism": "PASSWORD_PLAIN", "username": "a", "password": "b"}]),
        )
        .await;
    assert_eq!(r["error"]["code"], -32602);

    // Wrong, wrong, right.
    let (mut ws, r) = password_step(&srv, "bob").await;
    assert_eq!(
        r,
        json!({"response_type": "OTP_REQUIRED", "username": "bob"})
    );
    let code = totp::code_at(&secret, now(), 30, 6);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(
        otp(&mut ws, "auth.login_ex", wrong).await["response_type"],
        "OTP_REQUIRED"
    );
    assert_eq!(
        otp(&mut ws, "auth.login_ex_continue", wrong).await["response_type"],
        "OTP_REQUIRED"
    );
    let code = totp::code_at(&secret, now(), 30, 6);
    let r = otp(&mut ws, "auth.login_ex_continue", &code).await;
    assert_eq!(r["response_type"], "SUCCESS", "{r}");
    let cur = ws
        .ok(
            "auth.sessions",
            json!([[["current", "=", true]], {"get": true}]),
        )
        .await;
    assert_eq!(cur["credentials"], "LOGIN_TWOFACTOR");
    assert!(
        ws.ok("auth.me", json!([])).await["account_attributes"]
            .as_array()
            .unwrap()
            .contains(&json!("2FA"))
    );

    // The same code is refused a second time (replay within its step).
    let (mut ws, _) = password_step(&srv, "bob").await;
    assert_eq!(
        otp(&mut ws, "auth.login_ex", &code).await["response_type"],
        "OTP_REQUIRED"
    );
    // Third wrong code ends the attempt.
    assert_eq!(
        otp(&mut ws, "auth.login_ex", wrong).await["response_type"],
        "OTP_REQUIRED"
    );
    assert_eq!(
        otp(&mut ws, "auth.login_ex", wrong).await,
        json!({"response_type": "AUTH_ERR"})
    );
    let r = ws
        .call(
            "auth.login_ex",
            json!([{"mechanism": "OTP_TOKEN", "otp_token": "123456"}]),
        )
        .await;
    assert_eq!(
        r["error"]["data"]["reason"],
        "[EINVAL] OTP_TOKEN: no authentication in progress"
    );

    // Another mechanism abandons a pending OTP step.
    let (mut ws, _) = password_step(&srv, "bob").await;
    let r = ws
        .ok(
            "auth.login_ex",
            json!([{"mechanism": "PASSWORD_PLAIN", "username": "eve", "password": "pw-eve"}]),
        )
        .await;
    assert_eq!(r["response_type"], "SUCCESS");

    // auth.login with the otp_token parameter: the used step is refused, so expect false.
    let mut legacy = srv.tcp().await;
    assert_eq!(
        legacy
            .ok("auth.login", json!(["bob", "pw-bob", code]))
            .await,
        false
    );

    // Unset: password alone works again.
    assert_eq!(
        admin.ok("user.unset_2fa_secret", json!(["bob"])).await,
        Value::Null
    );
    let (_, r) = password_step(&srv, "bob").await;
    assert_eq!(r["response_type"], "SUCCESS");
    let r = admin.call("user.provisioning_uri", json!(["bob"])).await;
    assert_eq!(
        r["error"]["data"]["reason"],
        "[EFAULT] 'bob' user does not have two factor authentication configured"
    );
}

async fn common_login(srv: &TestServer, user: &str) -> Ws {
    let (ws, r) = password_step(srv, user).await;
    assert_eq!(r["response_type"], "SUCCESS", "{r}");
    ws
}
