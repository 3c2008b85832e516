//! `auth.me` is served from cached parts (the serialized privilege per composed privilege, one
//! composition shared per group set and directory revision). These tests pin that the reply is
//! never stale: what a session is authorized with and what the directory holds now.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{TestServer, Ws};
use serde_json::{Value, json};

fn roles(me: &Value) -> Vec<String> {
    let mut v: Vec<String> = me["privilege"]["roles"]["$set"]
        .as_array()
        .unwrap_or_else(|| panic!("no roles in {me}"))
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// Logs in with a password and returns the connection and the login's `user_info`.
async fn login(srv: &TestServer, username: &str, password: &str) -> (Ws, Value) {
    let mut ws = srv.tcp().await;
    let r = ws
        .ok(
            "auth.login_ex",
            json!([{"mechanism": "PASSWORD_PLAIN", "username": username, "password": password}]),
        )
        .await;
    assert_eq!(r["response_type"], "SUCCESS", "{r}");
    (ws, r["user_info"].clone())
}

#[tokio::test]
async fn auth_me_follows_privilege_group_and_user_changes() {
    let srv = TestServer::start().await;
    let mut admin = srv.admin().await;
    let grp = admin.ok("group.create", json!([{"name": "ops"}])).await;
    let other = admin
        .ok("group.create", json!([{"name": "auditors"}]))
        .await;
    let p = admin
        .ok(
            "privilege.create",
            json!([{"name": "Ops", "local_groups": [grp["gid"]], "roles": ["AUTH_SESSIONS_READ"], "web_shell": false}]),
        )
        .await;
    admin
        .ok(
            "privilege.create",
            json!([{"name": "Auditors", "local_groups": [other["gid"]], "roles": ["SYSTEM_AUDIT_READ"], "web_shell": false}]),
        )
        .await;
    let user = admin
        .ok(
            "user.create",
            json!([{"username": "olga", "full_name": "Olga", "password": "pw-olga", "group_create": true, "groups": [grp["id"]]}]),
        )
        .await;
    let uid = user["id"].clone();

    // The serialized reply and the login's user_info (built as a Value) are the same object,
    // key order included.
    let (mut first, info) = login(&srv, "olga", "pw-olga").await;
    let me = first.ok("auth.me", json!([])).await;
    assert_eq!(me.to_string(), info.to_string());
    assert_eq!(roles(&me), ["AUTH_SESSIONS_READ"]);
    assert_eq!(
        me["privilege"]["allowlist"],
        json!([{"method": "CALL", "resource": "auth.sessions"}])
    );
    // A second session of the same user shares the composition: same answer.
    let (mut second, _) = login(&srv, "olga", "pw-olga").await;
    assert_eq!(
        second.ok("auth.me", json!([])).await.to_string(),
        me.to_string()
    );

    // The privilege's roles change: the next login sees the new roles at once.
    admin
        .ok(
            "privilege.update",
            json!([p["id"], {"roles": ["AUTH_SESSIONS_WRITE"]}]),
        )
        .await;
    let (mut third, info) = login(&srv, "olga", "pw-olga").await;
    let me3 = third.ok("auth.me", json!([])).await;
    assert_eq!(roles(&me3), ["AUTH_SESSIONS_READ", "AUTH_SESSIONS_WRITE"]);
    assert_eq!(me3.to_string(), info.to_string());
    // It is authorized by them, too.
    assert_eq!(
        third.ok("auth.terminate_session", json!(["none"])).await,
        false
    );
    // A session keeps the privilege it was composed with at login (as TrueNAS does), and its
    // auth.me shows exactly that privilege, the one it is authorized with.
    assert_eq!(
        roles(&first.ok("auth.me", json!([])).await),
        ["AUTH_SESSIONS_READ"]
    );
    let r = first.call("auth.terminate_session", json!(["none"])).await;
    assert_eq!(r["error"]["data"]["error"], 13, "{r}");

    // Group membership changes: the next login composes from the new groups.
    admin
        .ok("user.update", json!([uid, {"groups": [other["id"]]}]))
        .await;
    let (mut fourth, _) = login(&srv, "olga", "pw-olga").await;
    assert_eq!(
        roles(&fourth.ok("auth.me", json!([])).await),
        ["SYSTEM_AUDIT_READ"]
    );

    // Directory parts are read on every call: attributes, user fields, two-factor config.
    fourth
        .ok("auth.set_attribute", json!(["theme", {"dark": true}]))
        .await;
    admin
        .ok("user.update", json!([uid, {"full_name": "Olga K"}]))
        .await;
    let me4 = fourth.ok("auth.me", json!([])).await;
    assert_eq!(me4["attributes"], json!({"theme": {"dark": true}}));
    assert_eq!(me4["pw_gecos"], "Olga K");
    assert_eq!(me4["two_factor_config"]["secret_configured"], false);
    admin.ok("user.renew_2fa_secret", json!(["olga", {}])).await;
    let me4 = fourth.ok("auth.me", json!([])).await;
    assert_eq!(me4["two_factor_config"]["secret_configured"], true);
    assert!(me4["two_factor_config"]["provisioning_uri"].is_string());
    // Other sessions of the user see the user's current attributes too.
    assert_eq!(
        second.ok("auth.me", json!([])).await["attributes"],
        json!({"theme": {"dark": true}})
    );

    // No privilege left: the next login is refused.
    admin.ok("user.update", json!([uid, {"groups": []}])).await;
    let mut ws = srv.tcp().await;
    let r = ws
        .ok(
            "auth.login_ex",
            json!([{"mechanism": "PASSWORD_PLAIN", "username": "olga", "password": "pw-olga"}]),
        )
        .await;
    assert_ne!(r["response_type"], "SUCCESS", "{r}");

    // A deleted user's sessions answer ENOENT rather than a cached reply.
    admin.ok("user.delete", json!([uid])).await;
    let r = fourth.call("auth.me", json!([])).await;
    assert!(r.get("error").is_some(), "{r}");
}

/// The legacy protocol frames the serialized reply like any other result.
#[tokio::test]
async fn auth_me_over_legacy_and_unix_socket() {
    let srv = TestServer::start().await;
    let mut root = srv.unix("/api/current").await;
    let me = root.ok("auth.me", json!([])).await;
    assert_eq!(me["pw_name"], "root");
    assert_eq!(me["privilege"]["roles"], json!({"$set": ["FULL_ADMIN"]}));
    assert_eq!(
        me["privilege"]["allowlist"],
        json!([{"method": "*", "resource": "*"}])
    );

    let mut legacy = srv.unix("/websocket").await;
    legacy
        .send(r#"{"msg":"connect","version":"1","support":["1"]}"#)
        .await;
    assert_eq!(legacy.recv().await["msg"], "connected");
    legacy
        .send(r#"{"msg":"method","id":"m1","method":"auth.me","params":[]}"#)
        .await;
    let r = legacy.recv().await;
    assert_eq!(r["msg"], "result");
    assert_eq!(r["id"], "m1");
    assert_eq!(r["result"].to_string(), me.to_string());
}
