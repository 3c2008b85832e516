//! Imported accounts: a SHA-512-crypt (`$6$`) hash still logs in, and the first successful
//! login replaces it with Argon2id (so the account stops standing out by its timing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::TestServer;
use gatehouse_core::model::Write;
use gatehouse_server::{Config, Server};
use gatehouse_store::{SqliteStore, Store};
use serde_json::json;

// python3: crypt.crypt(pw, crypt.mksalt(crypt.METHOD_SHA512, rounds=5000))
const CRYPT: &str = "$6$rounds=5000$AyVWlKghntmCC/Zs$gG606g2ihc2xP9Cm3Tkt84WwRqc7LJZaxSNipWt/tqTrmNMO7/dSqyymhZmNwg/37//wo2R.zkCbE2xncLai/1";
const CRYPT_PW: &str = "correct horse battery staple";

fn stored_hash(srv: &TestServer, username: &str) -> Option<String> {
    let store = SqliteStore::open(&srv.dir.path().join("gatehouse.db")).unwrap();
    let snap = store.load().unwrap();
    snap.users
        .into_iter()
        .find(|u| u.username == username)
        .and_then(|u| u.password_hash)
}

async fn restart(srv: &mut TestServer) {
    let old = srv.server.take().unwrap();
    let mut config: Config = old.app.config.clone();
    config.listen = "127.0.0.1:0".into();
    old.shutdown().await;
    srv.server = Some(Server::start(config).await.unwrap());
}

async fn login(srv: &TestServer, password: &str) -> String {
    let mut ws = srv.tcp().await;
    let r = ws
        .ok(
            "auth.login_ex",
            json!([{"mechanism": "PASSWORD_PLAIN", "username": "imported", "password": password}]),
        )
        .await;
    r["response_type"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn imported_sha512_crypt_hash_is_upgraded_on_login() {
    let mut srv = TestServer::start().await;
    let mut admin = srv.admin().await;
    admin
        .ok(
            "user.create",
            json!([{"username": "imported", "full_name": "Imported", "password": "placeholder", "group_create": true, "groups": [2]}]),
        )
        .await;
    drop(admin);

    // Import: the stored hash becomes a TrueNAS SHA-512-crypt hash.
    let old = srv.server.take().unwrap();
    let config = old.app.config.clone();
    old.shutdown().await;
    {
        let store = SqliteStore::open(&config.data_dir.join("gatehouse.db")).unwrap();
        let mut u = store
            .load()
            .unwrap()
            .users
            .into_iter()
            .find(|u| u.username == "imported")
            .unwrap();
        u.password_hash = Some(CRYPT.into());
        store.apply(&[Write::PutUser(u)]).unwrap();
    }
    let mut config = config;
    config.listen = "127.0.0.1:0".into();
    srv.server = Some(Server::start(config).await.unwrap());

    assert_eq!(login(&srv, "wrong").await, "AUTH_ERR");
    restart(&mut srv).await;
    assert_eq!(
        stored_hash(&srv, "imported").as_deref(),
        Some(CRYPT),
        "a failed login must not touch the hash"
    );

    assert_eq!(login(&srv, CRYPT_PW).await, "SUCCESS");
    restart(&mut srv).await;
    let upgraded = stored_hash(&srv, "imported").unwrap();
    assert!(upgraded.starts_with("$argon2id$"), "{upgraded}");
    // Same password, new hash: it still logs in, and the wrong one still fails.
    assert_eq!(login(&srv, CRYPT_PW).await, "SUCCESS");
    assert_eq!(login(&srv, "wrong").await, "AUTH_ERR");
}
