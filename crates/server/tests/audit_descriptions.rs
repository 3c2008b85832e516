//! METHOD_CALL audit records name what a call acted on, as TrueNAS' `audit` plus
//! `audit_extended`/`audit_callback` do: one row per audited method.

mod common;

use common::TestServer;
use serde_json::{Value, json};

#[tokio::test]
async fn method_call_descriptions_name_the_object() {
    // Debug builds: a 500,000-round PBKDF2 per key would dominate the test.
    let srv = TestServer::start_with(|c| c.api_key_iterations = 1000).await;
    let mut admin = srv.admin().await;

    let key = admin
        .ok(
            "api_key.create",
            json!([{"name": "backup", "username": "truenas_admin"}]),
        )
        .await;
    let key_id = key["id"].clone();
    let p = admin
        .ok(
            "privilege.create",
            json!([{"name": "ops", "web_shell": false, "roles": ["READONLY_ADMIN"]}]),
        )
        .await;
    let priv_id = p["id"].clone();
    let admin_id = admin
        .ok(
            "user.query",
            json!([[["username", "=", "truenas_admin"]], {"get": true}]),
        )
        .await["id"]
        .clone();

    // (method, params, expected description), in call order.
    let table: Vec<(&str, Value, &str)> = vec![
        (
            "api_key.update",
            json!([key_id, {"name": "backup2"}]),
            "Update API key backup",
        ),
        ("api_key.delete", json!([key_id]), "Delete API key backup2"),
        (
            "privilege.update",
            json!([priv_id, {"name": "ops2"}]),
            "Update privilege ops",
        ),
        (
            "privilege.delete",
            json!([priv_id]),
            "Delete privilege ops2",
        ),
        (
            "user.renew_2fa_secret",
            json!(["truenas_admin", {}]),
            "Renew two-factor authentication secret: truenas_admin",
        ),
        (
            "user.unset_2fa_secret",
            json!(["truenas_admin"]),
            "Unset two-factor authentication secret: truenas_admin",
        ),
        (
            "auth.generate_token",
            json!([60]),
            "Generate authentication token for session",
        ),
        (
            "user.clear_auth_lock",
            json!([admin_id]),
            "Clear login lockout truenas_admin",
        ),
    ];
    for (method, params, _) in &table {
        admin.ok(method, params.clone()).await;
    }

    let recs = admin
        .ok(
            "audit.query",
            json!([{"query-filters": [["event", "=", "METHOD_CALL"]], "query-options": {"order_by": ["message_timestamp"]}}]),
        )
        .await;
    let recs = recs.as_array().unwrap();
    let description = |method: &str| -> Vec<String> {
        recs.iter()
            .filter(|r| r["event_data"]["method"] == method)
            .map(|r| {
                r["event_data"]["description"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    };
    assert_eq!(description("api_key.create"), ["Create API key backup"]);
    assert_eq!(description("privilege.create"), ["Create privilege ops"]);
    for (method, _, expected) in &table {
        assert_eq!(description(method), [*expected], "{method}");
    }
}
