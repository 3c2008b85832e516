//! The hardening property "a READONLY_ADMIN can never change state it does not own".
//!
//! Root (UNIX socket) builds state owned by others: a second administrator with a password,
//! a custom group and privilege, a TOTP secret, API keys for both administrators, the global
//! 2FA configuration and live sessions. A user whose only privilege is the built-in
//! READONLY_ADMINISTRATOR one (group `truenas_readonly_administrators`, gid 951) logs in over
//! TCP. proptest then generates sequences of calls to every state-changing method of the
//! registry (taken from `core.get_methods`, not hard-coded), with arguments generated from each
//! method's `accepts` schema and biased towards the ids and names of other principals' objects.
//! Every call must be refused, by authorization (EACCES/EPERM) or validation, and after every
//! case root's snapshot of other principals' state must be unchanged.
//!
//! What the read-only admin *owns*, and may therefore change (checked once, outside the
//! generated sequences, to succeed and leave the others' snapshot alone):
//! - its own connection: `auth.logout`, `auth.set_attribute` (its own user's attributes),
//!   `auth.generate_token` (a token bound to its own credential), the `core.*` protocol
//!   utilities (`core.subscribe`, `core.set_options`, ...);
//! - its own API keys and TOTP secret: `api_key.create`/`update`/`delete` with itself as the
//!   key's owner and `user.renew_2fa_secret` with its own username. The generated calls use
//!   these methods too, but never target the caller, so there they must be refused.
//!
//! Not generated: read-only methods (`*.query`, `*.get_instance`, `*.config`, `*.my_keys`,
//! `auth.me`, `auth.sessions`, `auth.mechanism_choices`, `privilege.roles`, `system.hostname`,
//! `api_key.convert_raw_key`) and the public login methods (`auth.login*`,
//! `auth.two_factor_auth`), which authenticate the caller's own connection with credentials
//! rather than privilege. Any method not named in these lists counts as state-changing, so a
//! new method is exercised automatically (and fails the test if a read-only admin may call
//! it successfully, until it is classified here).
//!
//! Private methods (`user.twofactor_config`, `user.provisioning_uri`) are not in
//! `core.get_methods`; both are read-only and are part of the snapshot instead.
//! The audit log is not part of the snapshot: refused calls are audited, by design.
//!
//! `readonly_admin_reset_cannot_land_on_a_reused_key_id` is a race the sequential property
//! cannot reach (a bug it found while exploring): see its doc comment.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use common::{ADMIN_PASSWORD, TestServer, Ws};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRng, TestRunner};
use serde_json::{Value, json};

const RO: &str = "ro_auditor";
const RO_PASSWORD: &str = "pw-ro-auditor";
const VICTIM: &str = "victim";
const VICTIM_PASSWORD: &str = "pw-victim";
const EACCES: i64 = 13;
const EPERM: i64 = 1;
const ENOENT: i64 = 2;
const EINVAL: i64 = 22;

/// Methods that only read.
fn is_read_only(name: &str) -> bool {
    [".query", ".get_instance", ".config", ".my_keys"]
        .iter()
        .any(|s| name.ends_with(s))
        || [
            "auth.me",
            "auth.sessions",
            "auth.mechanism_choices",
            "privilege.roles",
            "system.hostname",
            "api_key.convert_raw_key",
        ]
        .contains(&name)
}

/// Public methods that authenticate the caller's own connection.
fn is_login(name: &str) -> bool {
    name.starts_with("auth.login") || name == "auth.two_factor_auth"
}

/// Methods that act only on the caller's own connection, session or user.
fn is_owned(name: &str) -> bool {
    name.starts_with("core.")
        || ["auth.logout", "auth.set_attribute", "auth.generate_token"].contains(&name)
}

/// Methods that must be in the generated set, so that a registry or classification change
/// cannot make the property vacuous.
const MUST_EXERCISE: &[&str] = &[
    "user.create",
    "user.update",
    "user.delete",
    "user.clear_auth_lock",
    "user.renew_2fa_secret",
    "user.unset_2fa_secret",
    "group.create",
    "group.update",
    "group.delete",
    "privilege.create",
    "privilege.update",
    "privilege.delete",
    "api_key.create",
    "api_key.update",
    "api_key.delete",
    "auth.generate_onetime_password",
    "auth.twofactor.update",
    "auth.terminate_session",
    "auth.terminate_other_sessions",
];

// ---------------------------------------------------------------------------------------------
// Snapshot of the state the read-only admin does not own

fn sorted_by_id(mut v: Value) -> Value {
    if let Value::Array(items) = &mut v {
        items.sort_by_key(|i| i["id"].to_string());
    }
    v
}

/// Everything root can observe about principals other than the read-only admin, and the
/// global configuration. The read-only admin's own user row, keys and sessions are left out.
async fn snapshot(root: &mut Ws) -> Value {
    let users = sorted_by_id(
        root.ok("user.query", json!([[["username", "!=", RO]]]))
            .await,
    );
    let groups = sorted_by_id(root.ok("group.query", json!([])).await);
    let privileges = sorted_by_id(root.ok("privilege.query", json!([])).await);
    let keys = sorted_by_id(
        root.ok("api_key.query", json!([[["username", "!=", RO]]]))
            .await,
    );
    let mut sessions: Vec<Value> = root
        .ok("auth.sessions", json!([]))
        .await
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["credentials_data"]["username"] != RO)
        .cloned()
        .collect();
    sessions.sort_by_key(|s| s["id"].to_string());
    let twofactor = root.ok("auth.twofactor.config", json!([])).await;
    let mut per_user = BTreeMap::new();
    for u in users.as_array().unwrap() {
        let name = u["username"].as_str().unwrap().to_string();
        let config = root.ok("user.twofactor_config", json!([name])).await;
        // The URI carries the secret, so a renewed secret shows; unconfigured users get an
        // error, which is stable too.
        let uri = root.call("user.provisioning_uri", json!([name])).await;
        let uri = uri.get("result").cloned().unwrap_or(uri["error"].clone());
        per_user.insert(
            name,
            json!({"twofactor_config": config, "provisioning_uri": uri}),
        );
    }
    json!({
        "users": users,
        "groups": groups,
        "privileges": privileges,
        "api_keys": keys,
        "sessions": sessions,
        "twofactor": twofactor,
        "per_user": per_user,
    })
}

/// The paths at which two snapshots differ (for failure messages).
fn diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                let p = format!("{path}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => diff(u, v, &p, out),
                    (u, v) => out.push(format!("{p}: {u:?} -> {v:?}")),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                diff(u, v, &format!("{path}[{i}]"), out);
            }
        }
        _ if a != b => out.push(format!("{path}: {a} -> {b}")),
        _ => {}
    }
}

fn describe_diff(a: &Value, b: &Value) -> String {
    let mut out = Vec::new();
    diff(a, b, "", &mut out);
    out.join("\n")
}

// ---------------------------------------------------------------------------------------------
// Argument generation

/// Values that point at other principals' objects, plus edge cases.
struct Pools {
    ints: Vec<Value>,
    strings: Vec<Value>,
    /// Ids of others' objects by service (`user`, `group`, `privilege`, `api_key`, `auth` for
    /// session ids), for a top-level `id` param.
    ids: BTreeMap<&'static str, Vec<Value>>,
    /// Other principals' usernames, for `username` fields.
    usernames: Vec<Value>,
}

impl Pools {
    fn new(snap: &Value) -> Self {
        let mut ints: Vec<i64> = vec![0, -1, 1, 2, 3, 4, 5, 999, 424_242, 1 << 31, i64::MAX];
        let mut ids: BTreeMap<&'static str, Vec<Value>> = BTreeMap::new();
        let mut usernames = Vec::new();
        let mut strings: Vec<String> = vec![
            String::new(),
            "root".into(),
            "truenas_admin".into(),
            "TRUENAS_ADMIN".into(),
            " truenas_admin".into(),
            "truenas_admin ".into(),
            "truenas_admin\u{0}".into(),
            VICTIM.into(),
            "Victim".into(),
            "FULL_ADMIN".into(),
            "READONLY_ADMIN".into(),
            "API_KEY_WRITE".into(),
            "ACCOUNT_WRITE".into(),
            "Local Administrator".into(),
            "builtin_administrators".into(),
            "1-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
            "x".repeat(300),
        ];
        for u in snap["users"].as_array().unwrap() {
            ints.extend([&u["id"], &u["uid"]].iter().filter_map(|v| v.as_i64()));
            strings.push(u["username"].as_str().unwrap().into());
            usernames.push(u["username"].clone());
            ids.entry("user").or_default().push(u["id"].clone());
        }
        for g in snap["groups"].as_array().unwrap() {
            ints.extend([&g["id"], &g["gid"]].iter().filter_map(|v| v.as_i64()));
            strings.push(g["name"].as_str().unwrap().into());
            ids.entry("group").or_default().push(g["id"].clone());
        }
        for p in snap["privileges"].as_array().unwrap() {
            ints.push(p["id"].as_i64().unwrap());
            strings.push(p["name"].as_str().unwrap().into());
            ids.entry("privilege").or_default().push(p["id"].clone());
        }
        for k in snap["api_keys"].as_array().unwrap() {
            ints.push(k["id"].as_i64().unwrap());
            strings.push(k["name"].as_str().unwrap().into());
            ids.entry("api_key").or_default().push(k["id"].clone());
        }
        for s in snap["sessions"].as_array().unwrap() {
            strings.push(s["id"].as_str().unwrap().into());
            ids.entry("auth").or_default().push(s["id"].clone());
        }
        ints.sort_unstable();
        ints.dedup();
        // The caller's own name (its personal group has it) would make api_key.create and
        // user.renew_2fa_secret legitimately succeed: those are checked separately.
        strings.retain(|s| s != RO);
        strings.sort();
        strings.dedup();
        Self {
            ints: ints.into_iter().map(Value::from).collect(),
            strings: strings.into_iter().map(Value::from).collect(),
            ids,
            usernames,
        }
    }
}

/// Interprets a proptest-generated choice sequence (Hypothesis style): every decision takes
/// the next number, and an exhausted sequence always takes the first option.
struct Choices<'a> {
    c: &'a [u32],
    i: usize,
    pools: &'a Pools,
    /// The service of the method being called (`api_key` for `api_key.update`).
    service: &'a str,
}

impl Choices<'_> {
    fn next(&mut self, n: usize) -> usize {
        let v = self.c.get(self.i).copied().unwrap_or(0);
        self.i += 1;
        v as usize % n.max(1)
    }

    /// True with probability `pct`%, false for an exhausted sequence.
    fn rare(&mut self, pct: usize) -> bool {
        self.next(100) >= 100 - pct
    }

    fn int(&mut self) -> Value {
        let i = self.next(self.pools.ints.len());
        self.pools.ints[i].clone()
    }

    fn string(&mut self) -> Value {
        if self.rare(20) {
            const ALPHABET: &[char] = &['a', 'Z', '_', '-', ' ', '.', '0', '\u{e9}', '\u{1F600}'];
            let len = self.next(12);
            let s: String = (0..len)
                .map(|_| ALPHABET[self.next(ALPHABET.len())])
                .collect();
            // The prefix keeps a random name from ever being the caller's.
            return json!(format!("g{s}"));
        }
        let i = self.next(self.pools.strings.len());
        self.pools.strings[i].clone()
    }

    /// Any JSON value, drawn from the pools.
    fn wild(&mut self, depth: usize) -> Value {
        let kinds = if depth == 0 { 5 } else { 7 };
        match self.next(kinds) {
            0 => Value::Null,
            1 => json!(self.next(2) == 0),
            2 => self.int(),
            3 => self.string(),
            4 => json!(-0.5),
            5 => Value::Array((0..self.next(3)).map(|_| self.wild(depth - 1)).collect()),
            _ => {
                let mut m = serde_json::Map::new();
                for _ in 0..self.next(3) {
                    let k = self.string().as_str().unwrap().to_string();
                    m.insert(k, self.wild(depth - 1));
                }
                Value::Object(m)
            }
        }
    }

    /// A value for a JSON schema from `core.get_methods`, usually valid, sometimes not.
    fn value(&mut self, schema: &Value, depth: usize) -> Value {
        if self.rare(8) {
            return self.wild(depth.min(2));
        }
        // Mostly aim at an existing object of someone else, so calls get past validation to
        // the owner checks.
        let hint = match schema.get("_name_").and_then(Value::as_str) {
            Some("id") => self.pools.ids.get(self.service),
            Some("username") => Some(&self.pools.usernames),
            _ => None,
        };
        if let Some(h) = hint
            && self.next(10) < 7
        {
            let i = self.next(h.len());
            return h[i].clone();
        }
        if let Some(e) = schema.get("enum").and_then(Value::as_array) {
            return e[self.next(e.len())].clone();
        }
        for union in ["anyOf", "oneOf"] {
            if let Some(branches) = schema.get(union).and_then(Value::as_array) {
                let b = &branches[self.next(branches.len())];
                return self.value(b, depth);
            }
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("integer") => {
                let (min, max) = (schema["minimum"].as_i64(), schema["maximum"].as_i64());
                if (min.is_some() || max.is_some()) && self.next(2) == 0 {
                    let lo = min.unwrap_or(max.unwrap_or(0) - 3);
                    let hi = max.unwrap_or(lo + 3);
                    json!(lo + self.next((hi - lo + 1) as usize) as i64)
                } else {
                    self.int()
                }
            }
            Some("string") => self.string(),
            Some("boolean") => json!(self.next(2) == 0),
            Some("null") => Value::Null,
            Some("array") if depth > 0 => {
                let items = schema.get("items").cloned().unwrap_or(json!({}));
                Value::Array(
                    (0..self.next(4))
                        .map(|_| self.value(&items, depth - 1))
                        .collect(),
                )
            }
            Some("object") if depth > 0 => {
                let mut m = serde_json::Map::new();
                if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                    let required: Vec<&str> = schema["required"]
                        .as_array()
                        .map(|r| r.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    for (k, s) in props {
                        let include = if required.contains(&k.as_str()) {
                            !self.rare(5)
                        } else {
                            self.next(2) == 0
                        };
                        if include {
                            m.insert(k.clone(), self.value(s, depth - 1));
                        }
                    }
                    if self.rare(5) {
                        m.insert("unexpected".into(), self.wild(1));
                    }
                } else {
                    for _ in 0..self.next(3) {
                        let k = self.string().as_str().unwrap().to_string();
                        m.insert(k, self.wild(depth - 1));
                    }
                }
                Value::Object(m)
            }
            _ => self.wild(depth.min(2)),
        }
    }

    /// The positional params for a method's `accepts` list.
    fn params(&mut self, accepts: &[Value]) -> Value {
        let mut out = Vec::new();
        for a in accepts {
            let required = a["_required_"] == true;
            if !required && self.next(3) == 0 {
                break;
            }
            out.push(self.value(a, 4));
        }
        if self.rare(5) {
            out.pop();
        }
        if self.rare(5) {
            out.push(self.wild(1));
        }
        Value::Array(out)
    }
}

// ---------------------------------------------------------------------------------------------
// The test

struct Target {
    name: String,
    accepts: Vec<Value>,
    /// The read-only admin lacks every role the method requires: the refusal must be exactly
    /// "[EACCES] Not authorized", whatever the arguments.
    unreachable: bool,
}

struct State {
    /// An administrator's live TCP session, part of the others' state.
    _admin: Ws,
    root: Ws,
    ro: Ws,
    baseline: Value,
    /// (method, errno or JSON-RPC code) → count, for the non-vacuity checks and the report.
    outcomes: BTreeMap<(String, i64), u32>,
    calls: u32,
}

fn errno_of(r: &Value) -> Option<i64> {
    r["error"]["data"]["error"].as_i64()
}

async fn login(srv: &TestServer, username: &str, password: &str) -> Ws {
    let mut ws = srv.tcp().await;
    let r = ws
        .ok(
            "auth.login_ex",
            json!([{"mechanism": "PASSWORD_PLAIN", "username": username, "password": password}]),
        )
        .await;
    assert_eq!(r["response_type"], "SUCCESS", "{username}: {r}");
    ws
}

fn user_count(v: &Value) -> usize {
    v.as_array().unwrap().len()
}

#[test]
fn readonly_admin_never_changes_state_it_does_not_own() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    // --- Fixture: state owned by others, and the read-only admin.
    let (srv, state, targets) = rt.block_on(async {
        let srv = TestServer::start_with(|c| c.api_key_iterations = 1000).await;
        let mut root = srv.unix("/api/current").await;
        let ro_group = root
            .ok("group.query", json!([[["gid", "=", 951]], {"get": true}]))
            .await;
        let ro_privilege = root
            .ok(
                "privilege.query",
                json!([[["builtin_name", "=", "READONLY_ADMINISTRATOR"]], {"get": true}]),
            )
            .await;
        assert_eq!(ro_privilege["roles"], json!(["READONLY_ADMIN"]));
        assert_eq!(ro_privilege["local_groups"][0]["gid"], 951);

        let ops = root.ok("group.create", json!([{"name": "ops"}])).await;
        root.ok(
            "privilege.create",
            json!([{"name": "Ops", "local_groups": [ops["gid"]], "roles": ["API_KEY_WRITE", "ACCOUNT_WRITE"], "web_shell": false}]),
        )
        .await;
        root.ok(
            "user.create",
            json!([{"username": VICTIM, "full_name": "Victim", "password": VICTIM_PASSWORD, "group_create": true, "groups": [ops["id"]]}]),
        )
        .await;
        root.ok(
            "user.create",
            json!([{"username": RO, "full_name": "Read-only auditor", "password": RO_PASSWORD, "group_create": true, "groups": [ro_group["id"]]}]),
        )
        .await;
        root.ok("user.renew_2fa_secret", json!([VICTIM, {}])).await;
        root.ok(
            "auth.twofactor.update",
            json!([{"enabled": true, "window": 1}]),
        )
        .await;
        root.ok(
            "api_key.create",
            json!([{"name": "admin-key", "username": "truenas_admin"}]),
        )
        .await;
        root.ok(
            "api_key.create",
            json!([{"name": "victim-key", "username": VICTIM}]),
        )
        .await;
        // Live sessions of others (kept open for the whole test).
        let admin = srv.admin().await;

        let mut ro = login(&srv, RO, RO_PASSWORD).await;
        let me = ro.ok("auth.me", json!([])).await;
        let ro_roles: Vec<String> = me["privilege"]["roles"]["$set"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        assert!(ro_roles.iter().any(|r| r == "READONLY_ADMIN"), "{me}");
        assert!(!ro_roles.iter().any(|r| r == "FULL_ADMIN"), "{me}");
        assert!(!ro_roles.iter().any(|r| r.ends_with("_WRITE")), "{me}");

        // It can read: the property is not vacuous because of a dead or empty session.
        let all_users = root.ok("user.query", json!([])).await;
        assert_eq!(
            user_count(&ro.ok("user.query", json!([])).await),
            user_count(&all_users)
        );
        assert!(user_count(&all_users) >= 4);
        assert_eq!(
            user_count(&ro.ok("api_key.query", json!([])).await),
            2,
            "it sees the others' keys"
        );

        // The state-changing methods, from the registry.
        let methods = root.ok("core.get_methods", json!([])).await;
        let mut targets = Vec::new();
        for (name, meta) in methods.as_object().unwrap() {
            if is_read_only(name) || is_login(name) || is_owned(name) {
                continue;
            }
            let roles: Vec<&str> = meta["roles"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap())
                .collect();
            let any_user = meta["no_authz_required"] == true || meta["no_auth_required"] == true;
            targets.push(Target {
                name: name.clone(),
                accepts: meta["accepts"].as_array().unwrap().clone(),
                unreachable: !any_user && !roles.iter().any(|r| ro_roles.iter().any(|o| o == r)),
            });
        }
        for m in MUST_EXERCISE {
            assert!(
                targets.iter().any(|t| t.name == *m),
                "{m} is not exercised"
            );
        }
        let baseline = snapshot(&mut root).await;
        let state = State {
            _admin: admin,
            root,
            ro,
            baseline,
            outcomes: BTreeMap::new(),
            calls: 0,
        };
        (srv, state, targets)
    });
    let pools = Pools::new(&state.baseline);

    // Methods the read-only admin passes authorization for (owner checks in the handler)
    // are drawn three times as often as the rest.
    let mut weighted: Vec<usize> = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let w = if t.unreachable { 1 } else { 3 };
        weighted.extend(std::iter::repeat_n(i, w));
    }

    // --- The property.
    let mut config = Config {
        failure_persistence: None,
        // A failing case has changed the server's state, so shrinking against it would be
        // meaningless: the failure message carries the whole case instead.
        max_shrink_iters: 0,
        ..Config::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 64;
    }
    let rng = TestRng::deterministic_rng(config.rng_algorithm);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let case_strategy = prop::collection::vec(
        (
            any::<prop::sample::Index>(),
            prop::collection::vec(any::<u32>(), 0..64),
        ),
        1..=6,
    );
    let cell = RefCell::new(state);
    let result = runner.run(&case_strategy, |case| {
        let mut st = cell.borrow_mut();
        rt.block_on(async {
            let mut log = String::new();
            for (pick, choices) in &case {
                let target = &targets[weighted[pick.index(weighted.len())]];
                let params = Choices {
                    c: choices,
                    i: 0,
                    pools: &pools,
                    service: target.name.rsplit_once('.').map_or("", |(s, _)| s),
                }
                .params(&target.accepts);
                let r = st.ro.call(&target.name, params.clone()).await;
                st.calls += 1;
                writeln!(log, "  {} {} -> {}", target.name, params, r).unwrap();
                let Some(err) = r.get("error") else {
                    return Err(TestCaseError::fail(format!(
                        "AUTHORIZATION BUG: a READONLY_ADMIN call succeeded:\n{log}"
                    )));
                };
                let errno = errno_of(&r);
                let code = err["code"].as_i64().unwrap_or_default();
                if target.unreachable {
                    if err["data"]["reason"] != "[EACCES] Not authorized" {
                        return Err(TestCaseError::fail(format!(
                            "{} must be refused before validation:\n{log}",
                            target.name
                        )));
                    }
                } else {
                    let authz = matches!(errno, Some(EACCES | EPERM));
                    let validation = code == -32602 || matches!(errno, Some(EINVAL | ENOENT));
                    if !(authz || validation) {
                        return Err(TestCaseError::fail(format!(
                            "neither an authorization nor a validation error:\n{log}"
                        )));
                    }
                }
                *st.outcomes
                    .entry((target.name.clone(), errno.unwrap_or(code)))
                    .or_default() += 1;
            }
            let now = snapshot(&mut st.root).await;
            if now != st.baseline {
                return Err(TestCaseError::fail(format!(
                    "AUTHORIZATION BUG: state of others changed:\n{}\nafter:\n{log}",
                    describe_diff(&st.baseline, &now)
                )));
            }
            // Still logged in as the read-only admin, so the refusals were not "not
            // authenticated".
            let me = st.ro.ok("auth.me", json!([])).await;
            if me["pw_name"] != RO {
                return Err(TestCaseError::fail(format!("session changed: {me}")));
            }
            Ok(())
        })
    });
    let state = cell.into_inner();
    if let Err(e) = result {
        panic!("{e}");
    }

    let mut report = String::new();
    for ((m, e), n) in &state.outcomes {
        writeln!(report, "{m:40} {e:>7} x{n}").unwrap();
    }
    println!(
        "{} calls; (method, errno or code) counts:\n{report}",
        state.calls
    );
    // The generator reached the owner checks of the methods a read-only admin may call.
    for (m, errno) in [
        ("api_key.create", EACCES),
        ("api_key.update", EACCES),
        ("api_key.delete", EACCES),
        ("user.renew_2fa_secret", EPERM),
    ] {
        assert!(
            state.outcomes.contains_key(&(m.to_string(), errno)),
            "{m} never reached its owner check:\n{report}"
        );
    }
    for t in &targets {
        assert!(
            state.outcomes.keys().any(|(m, _)| *m == t.name),
            "{} never called:\n{report}",
            t.name
        );
    }

    rt.block_on(async {
        let State {
            mut root,
            mut ro,
            baseline,
            ..
        } = state;

        // Secrets the snapshot cannot show: the others' passwords still work.
        login(&srv, "truenas_admin", ADMIN_PASSWORD).await;
        let mut anon = srv.tcp().await;
        assert_eq!(
            anon.ok("auth.two_factor_auth", json!([VICTIM, VICTIM_PASSWORD]))
                .await,
            true,
            "the victim's password and TOTP secret are intact"
        );

        // --- What the read-only admin owns: allowed, and the others' state stays unchanged.
        ro.ok("auth.set_attribute", json!(["theme", {"dark": true}]))
            .await;
        assert!(ro.ok("auth.generate_token", json!([])).await.is_string());
        let key = ro
            .ok("api_key.create", json!([{"name": "mine", "username": RO}]))
            .await;
        assert!(key["key"].is_string());
        let reset = ro
            .ok("api_key.update", json!([key["id"], {"reset": true}]))
            .await;
        assert!(reset["key"].is_string());
        assert_eq!(user_count(&ro.ok("api_key.my_keys", json!([])).await), 1);
        ro.ok("user.renew_2fa_secret", json!([RO, {}])).await;
        assert_eq!(ro.ok("api_key.delete", json!([key["id"]])).await, true);
        assert_eq!(
            snapshot(&mut root).await,
            baseline,
            "owned changes touched others' state"
        );
        ro.ok("auth.logout", json!([])).await;
        let r = ro.call("user.query", json!([])).await;
        assert!(r.get("error").is_some(), "{r}");

        // --- Sanity: the snapshot does see each kind of change when root makes it.
        let mut prev = snapshot(&mut root).await;
        let admin_key = baseline["api_keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["username"] == "truenas_admin")
            .unwrap()["id"]
            .clone();
        let victim = baseline["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == VICTIM)
            .unwrap()
            .clone();
        let ops_privilege = baseline["privileges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "Ops")
            .unwrap()["id"]
            .clone();
        let admin_session = baseline["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["credentials_data"]["username"] == "truenas_admin")
            .unwrap()["id"]
            .clone();
        // A password change is not in this list: the snapshot shows a password only through
        // `last_password_change`, at one-second resolution, so a change within the same second
        // is invisible to it (this flaked). Passwords are checked by logging in instead, after
        // the property.
        let mutations = [
            (
                "user.update",
                json!([victim["id"], {"full_name": "Changed"}]),
            ),
            (
                "group.update",
                json!([victim["group"]["id"], {"name": "renamed"}]),
            ),
            (
                "privilege.update",
                json!([ops_privilege, {"roles": ["READONLY_ADMIN"]}]),
            ),
            ("api_key.update", json!([admin_key, {"reset": true}])),
            ("user.renew_2fa_secret", json!([VICTIM, {}])),
            ("auth.twofactor.update", json!([{"window": 2}])),
            ("auth.terminate_session", json!([admin_session])),
            ("api_key.delete", json!([admin_key])),
        ];
        for (method, params) in mutations {
            root.ok(method, params.clone()).await;
            let now = snapshot(&mut root).await;
            assert_ne!(now, prev, "the snapshot misses root's {method} {params}");
            prev = now;
        }
        // And the password check above notices a changed password.
        root.ok(
            "user.update",
            json!([victim["id"], {"password": "pw-changed"}]),
        )
        .await;
        let mut anon = srv.tcp().await;
        assert_eq!(
            anon.ok("auth.two_factor_auth", json!([VICTIM, VICTIM_PASSWORD]))
                .await,
            false,
            "the password check misses root's password change"
        );
    });
}

/// Regression (found by the property test above): `api_key.update` checked the owner only
/// before the slow KDF of `reset: true`, and wrote by id afterwards. Key ids were reused
/// (max + 1), so when the read-only admin deleted its own key while its reset was hashing and
/// an administrator's `api_key.create` committed in that window, the reset replaced the
/// administrator's new key and returned its raw secret. The owner and the key's identity are
/// now checked again under the write lock. If the timing here does not produce the race, the
/// test still passes; it can only fail if the reset lands on another principal's key.
#[tokio::test(flavor = "multi_thread")]
async fn readonly_admin_reset_cannot_land_on_a_reused_key_id() {
    // Slow enough KDF (a few hundred ms) to order the calls with short sleeps.
    let srv = TestServer::start_with(|c| {
        c.api_key_iterations = 30_000;
        c.kdf_threads = 2;
    })
    .await;
    let mut root = srv.unix("/api/current").await;
    let ro_group = root
        .ok("group.query", json!([[["gid", "=", 951]], {"get": true}]))
        .await;
    root.ok(
        "user.create",
        json!([{"username": RO, "full_name": "Read-only auditor", "password": RO_PASSWORD, "group_create": true, "groups": [ro_group["id"]]}]),
    )
    .await;
    root.ok(
        "api_key.create",
        json!([{"name": "admin-key", "username": "truenas_admin"}]),
    )
    .await;
    let mut ro = login(&srv, RO, RO_PASSWORD).await;
    let mut ro2 = login(&srv, RO, RO_PASSWORD).await;
    let mine = ro
        .ok("api_key.create", json!([{"name": "mine", "username": RO}]))
        .await;
    let id = mine["id"].clone();

    // An administrator starts creating a key (its KDF runs first)...
    let mut admin = srv.unix("/api/current").await;
    admin
        .send(&json!({"jsonrpc": "2.0", "id": 1, "method": "api_key.create", "params": [{"name": "late", "username": "truenas_admin"}]}).to_string())
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    // ...the read-only admin resets its own key (owner check passes, KDF starts)...
    ro.send(&json!({"jsonrpc": "2.0", "id": 1000, "method": "api_key.update", "params": [id, {"reset": true}]}).to_string())
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    // ...and deletes it, so the administrator's key gets its id.
    assert_eq!(ro2.ok("api_key.delete", json!([id])).await, true);
    let created = admin.recv().await;
    let admin_raw = created["result"]["key"].as_str().unwrap().to_string();
    let reset = ro.recv().await;

    let owner = &reset["result"]["username"];
    assert!(
        reset.get("error").is_some() || *owner == RO,
        "a READONLY_ADMIN reset another principal's key (admin's new key id {}): {reset}",
        created["result"]["id"]
    );
    // The administrator's key still works with the secret it was given.
    let mut ws = srv.tcp().await;
    let r = ws
        .ok(
            "auth.login_ex",
            json!([{"mechanism": "API_KEY_PLAIN", "username": "truenas_admin", "api_key": admin_raw}]),
        )
        .await;
    assert_eq!(r["response_type"], "SUCCESS", "{r}");
}
