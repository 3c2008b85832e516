//! End to end: a real `gatehoused` (in process) and the `gatehouse` binary with `-c` over the
//! UNIX socket, for every command of the seed `auth` reference
//! (`seed-auth-cli-reference.md`), compared with `tests/golden/e2e/*.txt` after masking
//! volatile values (ids of sessions, times, tokens, keys, pids, ports).
//!
//! `UPDATE_GOLDEN=1 cargo test -p gatehouse-cli --test e2e` rewrites the golden files.
//!
//! The goldens assume the automatic root login (FULL_ADMIN) of a uid-0 connection on the socket;
//! run as another user, the tests say so and skip.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod support;

use gatehouse_client::Client;
use serde_json::Value;
use support::{ADMIN_PASSWORD, Golden, Live};

/// The goldens are written for the automatic root login on the socket.
fn skip_unless_root() -> bool {
    if support::is_root() {
        return false;
    }
    eprintln!("skipped: the end-to-end goldens need the uid-0 automatic login on the UNIX socket");
    true
}

/// A logged-in extra session over loopback TCP (a password login as truenas_admin).
fn tcp_session(live: &Live) -> Client {
    live.rt.block_on(async {
        let c = Client::connect(&live.url).await.unwrap();
        let r = c
            .login_password("truenas_admin", ADMIN_PASSWORD)
            .await
            .unwrap();
        assert_eq!(r["response_type"], "SUCCESS", "{r}");
        c
    })
}

fn json_of(run: &support::Run) -> Value {
    serde_json::from_str(run.ok()).unwrap_or_else(|e| panic!("{e}: {run:?}"))
}

#[test]
fn socket_flag_parses() {
    let o = gatehouse_cli::opts::parse(["--socket", "/tmp/x.sock"].map(String::from)).unwrap();
    assert_eq!(o.socket.as_deref(), Some("/tmp/x.sock"));
    assert!(
        gatehouse_cli::opts::parse(
            ["--socket=/a", "--url", "ws://h/api/current"].map(String::from)
        )
        .is_err()
    );
}

#[test]
fn auth_api_key() {
    if skip_unless_root() {
        return;
    }
    let live = Live::start();
    let mut g = Golden::new();

    let create = live.c("auth api_key create name=k1 username=truenas_admin");
    g.check("api_key_create", &create);
    let key = create
        .ok()
        .trim()
        .strip_prefix("API Key: ")
        .unwrap()
        .to_string();
    g.check(
        "api_key_create_expiring",
        &live.c(r#"auth api_key create name=k2 username=truenas_admin expires_at={"$date": 4102444800000}"#),
    );
    g.check(
        "api_key_create_duplicate_name",
        &live.c("auth api_key create name=k1 username=truenas_admin"),
    );
    g.check(
        "api_key_create_missing_username",
        &live.c("auth api_key create name=k3"),
    );
    g.check(
        "api_key_create_expired",
        &live.c(r#"auth api_key create name=k3 username=truenas_admin expires_at={"$date": 946684800000}"#),
    );
    g.check(
        "api_key_create_positional",
        &live.c("auth api_key create 1"),
    );
    g.check("api_key_query", &live.c("auth api_key query"));
    g.check(
        "api_key_query_columns",
        &live.c("auth api_key query id,name,username,expires_at,revoked"),
    );
    g.check(
        "api_key_query_where",
        &live.c("auth api_key query id,name WHERE expires_at != None"),
    );
    g.check(
        "api_key_query_csv",
        &live.gatehouse(&["-m", "csv", "-c", "auth api_key query id,name,local"]),
    );
    g.check(
        "api_key_get_instance",
        &live.c("auth api_key get_instance 1"),
    );
    g.check(
        "api_key_get_instance_kwarg",
        &live.c("auth api_key get_instance id=2"),
    );
    g.check(
        "api_key_get_instance_missing",
        &live.c("auth api_key get_instance 99"),
    );

    // The new key logs in over loopback TCP, both ways the shell offers.
    g.check(
        "api_key_login_with_api_key",
        &live.gatehouse_raw(&["--url", &live.url, "--api-key", &key, "-c", "auth me"]),
    );
    live.wait_sessions(0);
    g.check(
        "api_key_login_ex_api_key_plain",
        &live.gatehouse_raw(&[
            "--url",
            &live.url,
            "--user",
            "truenas_admin",
            "--api-key",
            &key,
            "-c",
            "auth sessions credentials,secure_transport",
        ]),
    );

    g.check(
        "api_key_update",
        &live.c("auth api_key update 1 name=k1_renamed"),
    );
    g.check(
        "api_key_update_reset",
        &live.c("auth api_key update 1 reset=true"),
    );
    // The reset key no longer logs in.
    g.check(
        "api_key_login_after_reset",
        &live.gatehouse_raw(&["--url", &live.url, "--api-key", &key, "-c", "auth me"]),
    );
    g.check(
        "api_key_update_id_kwarg",
        &live.c("auth api_key update id=2 expires_at=null"),
    );
    g.check(
        "api_key_update_unknown_field",
        &live.c("auth api_key update 1 bogus=1"),
    );
    g.check(
        "api_key_update_missing_id",
        &live.c("auth api_key update name=x"),
    );
    g.check(
        "api_key_get_instance_updated",
        &live.c("auth api_key get_instance 1"),
    );
    g.check("api_key_delete", &live.c("auth api_key delete 2"));
    g.check("api_key_delete_kwarg", &live.c("auth api_key delete id=1"));
    g.check("api_key_delete_missing", &live.c("auth api_key delete 2"));
    g.check("api_key_query_empty", &live.c("auth api_key query"));
    g.finish();
}

#[test]
fn auth_privilege() {
    if skip_unless_root() {
        return;
    }
    let live = Live::start();
    let mut g = Golden::new();
    live.c("account group create name=operators gid=3100").ok();

    g.check("privilege_query", &live.c("auth privilege query"));
    g.check(
        "privilege_query_columns",
        &live.c("auth privilege query id,name,roles,web_shell"),
    );
    // cli.md §11's example: gid 5 does not exist here.
    g.check(
        "privilege_create_unknown_group",
        &live.c("auth privilege create name=x web_shell=false roles=READONLY_ADMIN local_groups=5"),
    );
    g.check(
        "privilege_create_missing_name",
        &live.c("auth privilege create web_shell=false"),
    );
    g.check(
        "privilege_create",
        &live.c("auth privilege create name=Operators web_shell=false roles=READONLY_ADMIN local_groups=3100"),
    );
    g.check(
        "privilege_get_instance",
        &live.c("auth privilege get_instance 4"),
    );
    g.check(
        "privilege_query_csv",
        &live.gatehouse(&[
            "-m",
            "csv",
            "-c",
            "auth privilege query id,name,roles,web_shell",
        ]),
    );
    g.check(
        "privilege_update",
        &live.c("auth privilege update 4 name=Operators2 roles=READONLY_ADMIN,SHARING_ADMIN web_shell=true"),
    );
    g.check(
        "privilege_get_instance_updated",
        &live.c("auth privilege get_instance id=4"),
    );
    g.check(
        "privilege_query_where",
        &live.c("auth privilege query id,name,roles WHERE builtin_name == None"),
    );
    g.check(
        "privilege_update_builtin",
        &live.c("auth privilege update 1 name=Hacked"),
    );
    g.check(
        "privilege_delete_builtin",
        &live.c("auth privilege delete 1"),
    );
    g.check("privilege_delete", &live.c("auth privilege delete 4"));
    g.check(
        "privilege_get_instance_missing",
        &live.c("auth privilege get_instance 4"),
    );
    g.finish();
}

#[test]
fn auth_sessions_and_tokens() {
    if skip_unless_root() {
        return;
    }
    let live = Live::start();
    let mut g = Golden::new();

    // `auth sessions` with each property flag of the seed reference (a column selection).
    for (name, line) in [
        ("sessions", "auth sessions"),
        ("sessions_id", "auth sessions id"),
        ("sessions_current", "auth sessions current"),
        ("sessions_internal", "auth sessions internal"),
        ("sessions_origin", "auth sessions origin"),
        ("sessions_credentials", "auth sessions credentials"),
        ("sessions_created_at", "auth sessions created_at"),
        // Server key order, not the typed order (cli.md §3.6).
        ("sessions_columns_order", "auth sessions created_at,id"),
        ("sessions_unknown_column", "auth sessions bogus"),
        (
            "sessions_where",
            "auth sessions id,credentials WHERE internal == true",
        ),
    ] {
        live.wait_sessions(0);
        g.check(name, &live.c(line));
    }

    // A second session (password over loopback TCP), listed and terminated by id.
    live.wait_sessions(0);
    let other = tcp_session(&live);
    g.check(
        "sessions_two",
        &live.c("auth sessions current,internal,origin,credentials"),
    );
    live.wait_sessions(1);
    let ids = json_of(&live.gatehouse(&[
        "-m",
        "json",
        "-c",
        "auth sessions id WHERE internal == false",
    ]));
    let id = ids[0]["id"].as_str().unwrap().to_string();
    g.check(
        "terminate_session",
        &live.c(&format!("auth terminate_session id=\"{id}\"")),
    );
    live.wait_sessions(0);
    drop(other);
    // The seed's example id does not exist here.
    g.check(
        "terminate_session_unknown",
        &live.c(r#"auth terminate_session id="aff38a64-6f72-4920-a99f-c384d13667a3""#),
    );
    g.check(
        "terminate_session_positional",
        &live.c(r#"auth terminate_session "aff38a64-6f72-4920-a99f-c384d13667a3""#),
    );

    let (a, b) = (tcp_session(&live), tcp_session(&live));
    g.check(
        "terminate_other_sessions",
        &live.c("auth terminate_other_sessions"),
    );
    live.wait_sessions(0);
    g.check(
        "sessions_after_terminate_other",
        &live.c("auth sessions current,credentials"),
    );
    drop((a, b));

    // generate_token: the seed example, defaults, and the doc typos of cli.md §11.
    g.check(
        "generate_token",
        &live.c("auth generate_token ttl=600 attrs={} match_origin=true"),
    );
    g.check("generate_token_defaults", &live.c("auth generate_token"));
    g.check(
        "generate_token_ttl_null",
        &live.c("auth generate_token ttl=null attrs= {} match_origin=false"),
    );
    g.check(
        "generate_token_missing_attrs",
        &live.c("auth generate_token ttl=600 match_origin=true"),
    );
    g.check(
        "generate_token_doc_typos",
        &live.c("auth generate_token ttl=600 atters={} mathc_origin=false"),
    );
    g.check(
        "generate_token_job_attr",
        &live.c(r#"auth generate_token 600 {"job": 1}"#),
    );
    // A token bound to its origin (uid 0 on the socket) does not log in from TCP; an unbound
    // one does.
    let bound = live.c("auth generate_token 600 {} true");
    let bound = bound.ok().trim().to_string();
    g.check(
        "token_login_wrong_origin",
        &live.gatehouse_raw(&["--url", &live.url, "--token", &bound, "-c", "auth me"]),
    );
    let free = live.c("auth generate_token 600 {} false");
    let free = free.ok().trim().to_string();
    live.wait_sessions(0);
    g.check(
        "token_login",
        &live.gatehouse_raw(&[
            "--url",
            &live.url,
            "--token",
            &free,
            "-c",
            "auth sessions current,origin,credentials",
        ]),
    );
    g.finish();
}

#[test]
fn auth_me_attributes_two_factor() {
    if skip_unless_root() {
        return;
    }
    let live = Live::start();
    let mut g = Golden::new();

    // The namespace itself: its banner and listing (cli.md §2.5, §2.6).
    g.check("auth_banner", &live.c("auth"));
    g.check("auth_ls", &live.c("auth ls"));
    g.check("auth_unknown_command", &live.c("auth two-factor_auth"));
    g.check("me", &live.c("auth me"));
    g.check("me_json", &live.gatehouse(&["-m", "json", "-c", "auth me"]));
    g.check("set_attribute", &live.c("auth set_attribute foo bar"));
    g.check(
        "set_attribute_kwargs",
        &live.c(r#"auth set_attribute key=prefs value={"theme": "dark", "rows": 25}"#),
    );
    g.check(
        "set_attribute_missing_value",
        &live.c("auth set_attribute key=foo"),
    );
    g.check(
        "me_csv_with_attributes",
        &live.gatehouse(&["-m", "csv", "-c", "auth me"]),
    );

    g.check("two_factor_config", &live.c("auth two_factor config"));
    g.check(
        "two_factor_config_csv",
        &live.gatehouse(&["-m", "csv", "-c", "auth two_factor config"]),
    );
    // cli.md §11's example; the docs' `enable=true` is a typo for `enabled`.
    g.check(
        "two_factor_update",
        &live.c(r#"auth two_factor update enabled=true window=1 services={"ssh": true}"#),
    );
    g.check(
        "two_factor_config_updated",
        &live.c("auth two_factor config"),
    );
    g.check(
        "two_factor_update_doc_typo",
        &live.c("auth two_factor update enable=false"),
    );
    g.check(
        "two_factor_update_doc_stray_word",
        &live.c("auth two_factor update enabled=true update interval=30"),
    );
    g.check(
        "two_factor_update_bad_window",
        &live.c("auth two_factor update window=-1"),
    );

    // two_factor_auth: the seed's example is a parse error in midcli (`$` is not allowed in an
    // unquoted string); quoted, it answers.
    live.c(r#"account user create username=bella full_name=Bella password="mypa$$w0rd" group_create=true"#)
        .ok();
    g.check(
        "two_factor_auth_doc_example",
        &live.c("auth two_factor_auth username=bella password=mypa$$w0rd"),
    );
    g.check(
        "two_factor_auth",
        &live.c(r#"auth two_factor_auth username=bella password="mypa$$w0rd""#),
    );
    g.check(
        "two_factor_auth_positional",
        &live.c(r#"auth two_factor_auth truenas_admin "admin-pass-for-e2e""#),
    );
    // With a secret (and 2FA enabled globally) the answer is true.
    live.c("account user renew_2fa_secret bella {}").ok();
    g.check(
        "two_factor_auth_configured",
        &live.c(r#"auth two_factor_auth username=bella password="mypa$$w0rd""#),
    );
    g.check(
        "two_factor_auth_wrong_password",
        &live.c("auth two_factor_auth bella wrong"),
    );
    g.check(
        "two_factor_update_disable",
        &live.c("auth two_factor update enabled=false services={}"),
    );
    g.check(
        "two_factor_config_disabled",
        &live.gatehouse(&["-m", "json", "-c", "auth two_factor config"]),
    );
    g.finish();
}
