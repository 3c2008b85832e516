//! `auth.sessions` serializes its entries directly when it can (no `select`, no `order_by`,
//! filters on top-level fields). Every answer must be the one the generic query engine gives
//! on the full entry list: same entries, same order, same errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{TestServer, Ws};
use gatehouse_core::query;
use serde_json::{Value, json};

const KEYS: [&str; 8] = [
    "id",
    "current",
    "internal",
    "origin",
    "credentials",
    "credentials_data",
    "created_at",
    "secure_transport",
];

/// The server's answer: the result, or the error's `reason`/`extra` as the engine's error
/// would render them.
async fn answer(ws: &mut Ws, params: Value) -> Result<Value, Value> {
    let r = ws.call("auth.sessions", params).await;
    match r.get("result") {
        Some(v) => Ok(v.clone()),
        None => Err(r["error"]["data"]["reason"].clone()),
    }
}

fn expected(full: &[Value], filters: &Value, options: &Value) -> Result<Value, Value> {
    query::query(full.to_vec(), filters, options).map_err(|e| {
        let v = e.to_jsonrpc();
        v["data"]["reason"].clone()
    })
}

#[tokio::test]
async fn fast_path_answers_like_the_query_engine() {
    let srv = TestServer::start_with(|c| c.api_key_iterations = 1000).await;
    let mut admin = srv.admin().await;
    // Sessions of every kind: password, API key, token, the internal root socket session.
    let key = admin
        .ok(
            "api_key.create",
            json!([{"name": "q", "username": "truenas_admin"}]),
        )
        .await;
    let mut keyed = srv.tcp().await;
    let r = keyed
        .ok(
            "auth.login_ex",
            json!([{"mechanism": "API_KEY_PLAIN", "username": "truenas_admin", "api_key": key["key"]}]),
        )
        .await;
    assert_eq!(r["response_type"], "SUCCESS");
    let token = keyed.ok("auth.generate_token", json!([])).await;
    let mut tokened = srv.tcp().await;
    let r = tokened
        .ok(
            "auth.login_ex",
            json!([{"mechanism": "TOKEN_PLAIN", "token": token}]),
        )
        .await;
    assert_eq!(r["response_type"], "SUCCESS");
    let _root = srv.unix("/api/current").await;
    let _more = [srv.admin().await, srv.admin().await];

    // The full list, and the same through the generic path (`select` of every key).
    let full = admin.ok("auth.sessions", json!([])).await;
    let generic = admin
        .ok("auth.sessions", json!([[], {"select": KEYS}]))
        .await;
    assert_eq!(full.to_string(), generic.to_string());
    let full = full.as_array().unwrap().clone();
    assert_eq!(full.len(), 6);
    assert_eq!(
        full.iter().filter(|e| e["current"] == true).count(),
        1,
        "{full:?}"
    );

    let filters = [
        json!([]),
        json!([["current", "=", true]]),
        json!([["internal", "=", false]]),
        json!([["credentials", "in", ["TOKEN", "API_KEY"]]]),
        json!([["credentials_data.username", "=", "truenas_admin"]]),
        json!([["credentials_data.parent.credentials", "=", "API_KEY"]]),
        json!([["origin", "^", "127."], ["secure_transport", "=", true]]),
        json!([[
            "OR",
            [["credentials", "=", "TOKEN"], ["internal", "=", true]]
        ]]),
        json!([["created_at", ">", {"$date": 0}]]),
        json!([["created_at.$date", ">", "2000-01-01T00:00:00"]]),
        json!([["nonexistent", "=", null]]),
        json!([["id", "!=", full[0]["id"]]]),
        // Raises TypeError on the first record: the error, not an empty list.
        json!([["credentials_data", ">", 1]]),
        json!([["current", "~", "x"]]),
        // Whole-record conditions and nested paths take the generic path.
        json!([[null, "=", 1]]),
        json!([["credentials_data.api_key.id", ">=", 0]]),
    ];
    let options = [
        json!({}),
        json!({"count": true}),
        json!({"get": true}),
        json!({"get": true, "count": true}),
        json!({"offset": 1}),
        json!({"limit": 2}),
        json!({"offset": 2, "limit": 1}),
        json!({"offset": 10}),
        json!({"limit": 1, "get": true}),
        json!({"offset": 1, "get": true}),
        json!({"order_by": ["-credentials"]}),
        json!({"select": ["id", ["credentials", "c"]]}),
        json!({"limit": 100000}),
        json!({"bogus": 1}),
    ];
    for f in &filters {
        for o in &options {
            let got = answer(&mut admin, json!([f, o])).await;
            let want = expected(&full, f, o);
            match (&got, &want) {
                (Ok(g), Ok(w)) => assert_eq!(g.to_string(), w.to_string(), "{f} {o}"),
                _ => assert_eq!(got, want, "{f} {o}"),
            }
        }
    }
    // Parameters left out.
    assert_eq!(
        answer(&mut admin, json!([])).await.unwrap().to_string(),
        Value::Array(full.clone()).to_string()
    );
}
