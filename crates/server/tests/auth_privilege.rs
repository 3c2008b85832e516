//! Privileges (§5.2) and the properties that a key or token session never exceeds its owner's
//! composed privilege and that no query result leaks a secret.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ADMIN_PASSWORD, TestServer, Ws};
use serde_json::{Value, json};

fn extra(r: &Value) -> Value {
    r["error"]["data"]["extra"].clone()
}

#[tokio::test]
async fn privilege_validation_and_builtins() {
    let srv = TestServer::start().await;
    let mut admin = srv.admin().await;
    let g = admin.ok("group.create", json!([{"name": "ops"}])).await;
    let gid = g["gid"].as_i64().unwrap();
    let p = admin
        .ok("privilege.create", json!([{"name": "Ops", "local_groups": [gid], "roles": ["API_KEY_READ"], "web_shell": false}]))
        .await;
    assert_eq!(p["builtin_name"], Value::Null);
    assert_eq!(p["local_groups"][0]["name"], "ops");
    assert_eq!(p["ds_groups"], json!([]));
    let id = p["id"].clone();

    let table: Vec<(&str, Value, Value)> = vec![
        (
            "privilege.create",
            json!([{"name": "Ops", "web_shell": false}]),
            json!([[
                "privilege_create.name",
                "Object with this name already exists",
                22
            ]]),
        ),
        (
            "privilege.create",
            json!([{"name": "x"}]),
            json!([["privilege_create.web_shell", "Field required", 22]]),
        ),
        (
            "privilege.create",
            json!([{"name": "x", "roles": ["NOPE"], "web_shell": false}]),
            json!([["privilege_create.roles.0", "Invalid role", 22]]),
        ),
        (
            "privilege.create",
            json!([{"name": "x", "local_groups": [424242], "web_shell": false}]),
            json!([[
                "privilege_create.local_groups.0",
                "424242: local group does not exist. This error may be addressed by either re-creating the missing group with the specified group id or removing this entry from the privilege.",
                22
            ]]),
        ),
        (
            "privilege.create",
            json!([{"name": "x", "ds_groups": [5000], "web_shell": false}]),
            json!([[
                "privilege_create.ds_groups.0",
                "5000: directory service group does not exist. If the directory service state is healthy, then this error may be addressed by removing this entry from the privilege.",
                22
            ]]),
        ),
        (
            "privilege.update",
            json!([1, {"name": "Renamed"}]),
            json!([[
                "privilege_update.name",
                "This field is read-only for built-in privileges",
                22
            ]]),
        ),
        (
            "privilege.update",
            json!([1, {"roles": ["READONLY_ADMIN"]}]),
            json!([[
                "privilege_update.roles",
                "This field is read-only for built-in privileges",
                22
            ]]),
        ),
        (
            "privilege.update",
            json!([1, {"local_groups": []}]),
            json!([[
                "privilege_update.local_groups",
                "The group builtin_administrators must be among grantees of the \"Local Administrator\" privilege.",
                22
            ]]),
        ),
        (
            "privilege.update",
            json!([2, {"web_shell": true}]),
            json!([[
                "privilege_update.web_shell",
                "Web shell access may not be enabled for the built-in group for read-only administrators.",
                22
            ]]),
        ),
        (
            "privilege.update",
            json!([id, {"name": "Local Administrator"}]),
            json!([[
                "privilege_update.name",
                "Object with this name already exists",
                22
            ]]),
        ),
        (
            "privilege.get_instance",
            json!([99]),
            json!([[null, "Privilege 99 does not exist", 2]]),
        ),
    ];
    for (method, params, expected) in table {
        let r = admin.call(method, params.clone()).await;
        assert_eq!(extra(&r), expected, "{method} {params}");
    }
    let r = admin.call("privilege.delete", json!([1])).await;
    assert_eq!(
        r["error"]["data"]["reason"],
        "[EPERM] Unable to delete built-in privilege"
    );
    let upd = admin
        .ok(
            "privilege.update",
            json!([id, {"roles": ["READONLY_ADMIN"], "web_shell": true}]),
        )
        .await;
    assert_eq!(upd["roles"], json!(["READONLY_ADMIN"]));
    assert_eq!(admin.ok("privilege.delete", json!([id])).await, true);

    let roles = admin
        .ok(
            "privilege.roles",
            json!([[["name", "=", "READONLY_ADMIN"]], {"get": true}]),
        )
        .await;
    assert_eq!(roles["builtin"], false);
    assert!(
        roles["includes"]
            .as_array()
            .unwrap()
            .contains(&json!("API_KEY_READ"))
    );
    let n = admin
        .ok("privilege.roles", json!([[], {"count": true}]))
        .await;
    assert!(n.as_i64().unwrap() > 100);
}

async fn login(srv: &TestServer, data: Value) -> Ws {
    let mut ws = srv.tcp().await;
    let r = ws.ok("auth.login_ex", json!([data])).await;
    assert_eq!(r["response_type"], "SUCCESS", "{r}");
    ws
}

fn role_set(me: &Value) -> Vec<String> {
    let mut v: Vec<String> = me["privilege"]["roles"]["$set"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// For owners with different privileges: the key session's and token session's roles are
/// exactly (never more than) the owner's, calls beyond them are refused, and nothing that
/// any query returns contains a raw key, token, password or TOTP secret.
#[tokio::test]
async fn key_and_token_sessions_never_exceed_owner_and_queries_leak_nothing() {
    let srv = TestServer::start_with(|c| c.api_key_iterations = 1000).await;
    let mut admin = srv.admin().await;
    let ops = admin
        .ok("group.create", json!([{"name": "keyreaders"}]))
        .await;
    admin
        .ok("privilege.create", json!([{"name": "Key readers", "local_groups": [ops["gid"]], "roles": ["API_KEY_WRITE"], "web_shell": false}]))
        .await;
    let owners = [
        ("ro", json!([3])),
        ("sharer", json!([4])),
        ("keyer", json!([ops["id"]])),
        ("full", json!([2])),
    ];
    let mut secrets: Vec<String> = vec![ADMIN_PASSWORD.to_string()];
    for (name, groups) in &owners {
        let pw = format!("pw-{name}-secret");
        secrets.push(pw.clone());
        admin
            .ok("user.create", json!([{"username": name, "full_name": name, "password": pw, "group_create": true, "groups": groups}]))
            .await;
        let mut pw_session = login(
            &srv,
            json!({"mechanism": "PASSWORD_PLAIN", "username": name, "password": pw}),
        )
        .await;
        let owner_roles = role_set(&pw_session.ok("auth.me", json!([])).await);
        let key = admin
            .ok(
                "api_key.create",
                json!([{"name": format!("{name}-key"), "username": name}]),
            )
            .await;
        let raw = key["key"].as_str().unwrap().to_string();
        secrets.push(raw.split_once('-').unwrap().1.to_string());
        let mut key_session = login(
            &srv,
            json!({"mechanism": "API_KEY_PLAIN", "username": name, "api_key": raw}),
        )
        .await;
        assert_eq!(
            role_set(&key_session.ok("auth.me", json!([])).await),
            owner_roles,
            "{name} key"
        );
        let token = key_session.ok("auth.generate_token", json!([])).await;
        secrets.push(token.as_str().unwrap().to_string());
        let mut token_session =
            login(&srv, json!({"mechanism": "TOKEN_PLAIN", "token": token})).await;
        assert_eq!(
            role_set(&token_session.ok("auth.me", json!([])).await),
            owner_roles,
            "{name} token"
        );
        let full = owner_roles.iter().any(|r| r == "FULL_ADMIN");
        for (method, params, role) in [
            (
                "privilege.create",
                json!([{"name": format!("p-{name}"), "web_shell": false}]),
                "PRIVILEGE_WRITE",
            ),
            (
                "auth.terminate_session",
                json!(["none"]),
                "AUTH_SESSIONS_WRITE",
            ),
            ("user.query", json!([]), "ACCOUNT_READ"),
        ] {
            let allowed = full || owner_roles.iter().any(|r| r == role);
            for ws in [&mut key_session, &mut token_session] {
                let r = ws.call(method, params.clone()).await;
                let refused = r["error"]["data"]["error"] == 13;
                assert_eq!(!refused, allowed, "{name} {method}: {r}");
            }
        }
    }
    // A 2FA secret, too.
    let renewed = admin
        .ok("user.renew_2fa_secret", json!(["truenas_admin", {}]))
        .await;
    let uri = renewed["twofactor_config"]["provisioning_uri"]
        .as_str()
        .unwrap()
        .to_string();
    let secret = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    secrets.push(secret);

    let queries = [
        ("api_key.query", json!([])),
        ("user.query", json!([])),
        ("group.query", json!([])),
        ("privilege.query", json!([])),
        ("auth.sessions", json!([])),
        ("audit.query", json!([{}])),
        ("auth.twofactor.config", json!([])),
    ];
    for (method, params) in queries {
        let text = admin.ok(method, params).await.to_string();
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "{method} leaks a secret");
        }
    }
}
