//! Password login, `auth.me`, sessions and their termination, over real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ADMIN_PASSWORD, TestServer};
use serde_json::{Value, json};

fn password(username: &str, password: &str) -> Value {
    json!([{"mechanism": "PASSWORD_PLAIN", "username": username, "password": password}])
}

#[tokio::test]
async fn login_responses_table() {
    let srv = TestServer::start().await;
    let mut root = srv.unix("/api/current").await;
    // A user with no privilege (only its own group).
    root.ok("user.create", json!([{"username": "nopriv", "full_name": "No Priv", "group_create": true, "password": "pw-nopriv"}])).await;
    // A locked administrator.
    let grp = root
        .ok("group.query", json!([[["gid", "=", 544]], {"get": true}]))
        .await;
    root.ok("user.create", json!([{"username": "locked", "full_name": "Locked", "group_create": true, "password": "pw-locked", "locked": true, "groups": [grp["id"]]}])).await;

    let table = [
        (password("truenas_admin", ADMIN_PASSWORD), "SUCCESS"),
        (password("truenas_admin", "wrong"), "AUTH_ERR"),
        (password("nobody", "whatever"), "AUTH_ERR"),
        (password("locked", "pw-locked"), "AUTH_ERR"),
        (password("root", "anything"), "AUTH_ERR"),
        (password("nopriv", "pw-nopriv"), "DENIED"),
    ];
    for (params, expected) in table {
        let mut ws = srv.tcp().await;
        let r = ws.ok("auth.login_ex", params.clone()).await;
        assert_eq!(r["response_type"], expected, "{params}");
        let me = ws.call("auth.me", json!([])).await;
        if expected == "SUCCESS" {
            assert_eq!(r["authenticator"], "LEVEL_1");
            assert_eq!(r["user_info"]["pw_name"], "truenas_admin");
            assert_eq!(me["result"]["pw_name"], "truenas_admin");
        } else {
            assert_eq!(
                r.as_object().unwrap().len(),
                1,
                "failure responses carry only response_type: {r}"
            );
            assert_eq!(
                me["error"]["data"]["error"], 207,
                "failed login must not authenticate"
            );
        }
    }

    // Validation of the discriminated union.
    let mut ws = srv.tcp().await;
    let r = ws
        .call("auth.login_ex", json!([{"mechanism": "FOO"}]))
        .await;
    assert_eq!(r["error"]["code"], -32602);
    assert_eq!(r["error"]["data"]["extra"][0][0], "login_data");
    let r = ws
        .call(
            "auth.login_ex",
            json!([{"mechanism": "PASSWORD_PLAIN", "username": "a"}]),
        )
        .await;
    assert_eq!(
        r["error"]["data"]["extra"],
        json!([["login_data.PASSWORD_PLAIN.password", "Field required", 22]])
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

    // user_info=false and the legacy auth.login wrapper.
    let r = ws
        .ok("auth.login_ex", json!([{"mechanism": "PASSWORD_PLAIN", "username": "truenas_admin", "password": ADMIN_PASSWORD, "login_options": {"user_info": false}}]))
        .await;
    assert_eq!(
        r,
        json!({"response_type": "SUCCESS", "user_info": null, "authenticator": "LEVEL_1"})
    );
    let mut ws = srv.tcp().await;
    assert_eq!(
        ws.ok("auth.login", json!(["truenas_admin", "bad"])).await,
        false
    );
    assert_eq!(
        ws.ok("auth.login", json!(["truenas_admin", ADMIN_PASSWORD]))
            .await,
        true
    );
}

#[tokio::test]
async fn me_has_every_field() {
    let srv = TestServer::start().await;
    let mut ws = srv.admin().await;
    ws.ok(
        "auth.set_attribute",
        json!(["preferences", {"lifetime": 300}]),
    )
    .await;
    let me = ws.ok("auth.me", json!([])).await;
    // 25.10's AuthUserInfo field order (the shell's vertical table shows it as is).
    let keys: Vec<&str> = me.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "pw_name",
            "pw_gecos",
            "pw_dir",
            "pw_shell",
            "pw_uid",
            "pw_gid",
            "grouplist",
            "sid",
            "source",
            "local",
            "attributes",
            "two_factor_config",
            "privilege",
            "account_attributes"
        ]
    );
    assert_eq!(me["pw_name"], "truenas_admin");
    assert_eq!(me["pw_uid"], 950);
    assert_eq!(me["pw_gid"], 950);
    assert_eq!(me["pw_dir"], "/home/truenas_admin");
    assert_eq!(me["pw_shell"], "/usr/bin/bash");
    assert_eq!(me["grouplist"], Value::Null);
    assert_eq!(me["source"], "LOCAL");
    assert_eq!(me["account_attributes"], json!(["LOCAL", "SYS_ADMIN"]));
    assert_eq!(me["attributes"], json!({"preferences": {"lifetime": 300}}));
    assert_eq!(
        me["privilege"]["allowlist"],
        json!([{"method": "*", "resource": "*"}])
    );
    assert_eq!(me["privilege"]["web_shell"], true);
    assert_eq!(me["privilege"]["webui_access"], true);
    let roles = me["privilege"]["roles"]["$set"].as_array().unwrap();
    assert!(roles.contains(&json!("FULL_ADMIN")) && roles.contains(&json!("AUTH_SESSIONS_READ")));
    for key in [
        "provisioning_uri",
        "secret_configured",
        "interval",
        "otp_digits",
    ] {
        assert!(
            me["two_factor_config"].get(key).is_some(),
            "two_factor_config.{key}"
        );
    }
    // Attributes persist across sessions.
    let mut again = srv.admin().await;
    assert_eq!(
        again.ok("auth.me", json!([])).await["attributes"]["preferences"]["lifetime"],
        300
    );
}

#[tokio::test]
async fn sessions_listing_and_termination() {
    let srv = TestServer::start().await;
    let mut a = srv.admin().await;
    let mut b = srv.admin().await;
    let mut root = srv.unix("/api/current").await;

    let sub = a.ok("core.subscribe", json!(["auth.sessions"])).await;
    assert!(sub.as_str().is_some());

    let all = a
        .ok("auth.sessions", json!([[["internal", "=", false]]]))
        .await;
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    for s in all {
        for key in [
            "id",
            "current",
            "internal",
            "origin",
            "credentials",
            "credentials_data",
            "created_at",
            "secure_transport",
        ] {
            assert!(s.get(key).is_some(), "session field {key}");
        }
        assert_eq!(s["credentials"], "LOGIN_PASSWORD");
        assert_eq!(s["credentials_data"]["username"], "truenas_admin");
        assert!(
            s["credentials_data"]["login_at"]["$date"]
                .as_i64()
                .is_some()
        );
        assert!(s["origin"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert_eq!(s["secure_transport"], true);
    }
    assert_eq!(all.iter().filter(|s| s["current"] == true).count(), 1);
    let count = a.ok("auth.sessions", json!([[], {"count": true}])).await;
    assert_eq!(count, 3, "two password sessions and the internal root one");

    let b_id = b
        .ok(
            "auth.sessions",
            json!([[["current", "=", true]], {"get": true, "select": ["id"]}]),
        )
        .await["id"]
        .clone();
    assert_eq!(a.ok("auth.terminate_session", json!([b_id])).await, true);
    assert_eq!(b.closed().await.0, 1000);
    assert_eq!(
        a.ok("auth.terminate_session", json!(["no-such-session"]))
            .await,
        false
    );
    // The subscriber hears about the removal.
    let event = loop {
        let v = a.event().await;
        if v["params"]["msg"] == "removed" {
            break v;
        }
    };
    assert_eq!(event["params"]["collection"], "auth.sessions");
    assert_eq!(event["params"]["id"], b_id);

    let mut c = srv.admin().await;
    assert_eq!(a.ok("auth.terminate_other_sessions", json!([])).await, true);
    assert_eq!(c.closed().await.0, 1000);
    // The caller and the internal root session survive.
    assert_eq!(a.ok("core.ping", json!([])).await, "pong");
    assert_eq!(root.ok("auth.me", json!([])).await["pw_name"], "root");

    // Logout keeps the socket, drops the session.
    assert_eq!(a.ok("auth.logout", json!([])).await, true);
    assert_eq!(
        a.call("auth.me", json!([])).await["error"]["data"]["error"],
        207
    );
    let left = root
        .ok(
            "auth.sessions",
            json!([[["internal", "=", false]], {"count": true}]),
        )
        .await;
    assert_eq!(left, 0);
}

#[tokio::test]
async fn authorization_follows_privileges() {
    let srv = TestServer::start().await;
    let mut root = srv.unix("/api/current").await;
    let ro = root
        .ok("group.query", json!([[["gid", "=", 951]], {"get": true}]))
        .await;
    root.ok("user.create", json!([{"username": "auditor", "full_name": "Auditor", "group_create": true, "password": "pw-auditor", "groups": [ro["id"]]}])).await;
    let mut ws = srv.tcp().await;
    assert_eq!(
        ws.ok("auth.login_ex", password("auditor", "pw-auditor"))
            .await["response_type"],
        "SUCCESS"
    );
    // READONLY_ADMIN reads but does not write.
    assert!(
        ws.ok("user.query", json!([]))
            .await
            .as_array()
            .unwrap()
            .len()
            >= 3
    );
    assert!(ws.ok("auth.sessions", json!([])).await.is_array());
    let r = ws.call("user.create", json!([{"username": "x", "full_name": "x", "group_create": true, "password_disabled": true}])).await;
    assert_eq!(r["error"]["data"]["reason"], "[EACCES] Not authorized");
    let r = ws.call("auth.terminate_other_sessions", json!([])).await;
    assert_eq!(r["error"]["data"]["error"], 13);
    let me = ws.ok("auth.me", json!([])).await;
    let roles = me["privilege"]["roles"]["$set"].as_array().unwrap().clone();
    assert!(roles.contains(&json!("READONLY_ADMIN")));
    assert!(!roles.contains(&json!("FULL_ADMIN")));
    assert_eq!(me["privilege"]["webui_access"], true);
    let allow = me["privilege"]["allowlist"].as_array().unwrap();
    assert!(allow.contains(&json!({"method": "CALL", "resource": "user.query"})));
    assert!(!allow.contains(&json!({"method": "CALL", "resource": "user.create"})));
    // The CLI metadata only shows what the caller may call.
    let methods = ws.ok("core.get_methods", json!([null, "CLI"])).await;
    assert!(methods.get("user.query").is_some());
    assert!(methods.get("user.create").is_none());
    assert!(
        methods.get("auth.login_ex").is_none(),
        "cli_private methods are hidden from the CLI"
    );
}

#[tokio::test]
async fn rate_limit_for_unauthenticated_calls() {
    let srv = TestServer::start_with(|c| c.rate_limit.max_calls = 3).await;
    let mut ws = srv.tcp().await;
    for _ in 0..3 {
        assert_eq!(ws.ok("core.ping", json!([])).await, "pong");
    }
    let r = ws.call("core.ping", json!([])).await;
    assert_eq!(r["error"]["data"]["reason"], "[EBUSY] Rate Limit Exceeded");
    // Authenticated callers are not rate limited; set_options never is.
    assert!(
        ws.ok("core.set_options", json!([{"py_exceptions": false}]))
            .await
            .is_object()
    );
    let mut admin = srv.admin().await;
    for _ in 0..5 {
        assert_eq!(admin.ok("core.ping", json!([])).await, "pong");
    }
    // UNIX sockets are exempt.
    let mut root = srv.unix("/api/current").await;
    root.ok("auth.logout", json!([])).await;
    for _ in 0..5 {
        assert_eq!(root.ok("core.ping", json!([])).await, "pong");
    }
}
