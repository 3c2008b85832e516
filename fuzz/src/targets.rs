//! The fuzzed entry points, one function per target. Shared verbatim by the cargo-fuzz
//! targets (`fuzz_targets/*.rs`) and by the CI smoke test in the main workspace
//! (`crates/server/tests/fuzz_smoke.rs` includes this file), so both exercise the same code.
//!
//! Each function must never panic, whatever the bytes; errors are fine.
#![allow(dead_code)]

use serde_json::{Value, json};

/// One fuzz entry point.
pub type Target = fn(&[u8]);

/// Every target, by the name of its directory under `fuzz/corpus/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("jsonrpc_frame", jsonrpc_frame),
    ("legacy_frame", legacy_frame),
    ("ejson", ejson),
    ("schema_validate", schema_validate),
    ("query", query),
    ("cli_line", cli_line),
    ("scram", scram),
    ("otpauth", otpauth),
    ("api_key", api_key),
];

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// `frame::parse_request`: every rejection carries a reply only when TrueNAS sends one, and an
/// accepted request re-serialises.
pub fn jsonrpc_frame(data: &[u8]) {
    let Some(s) = text(data) else { return };
    match gatehouse_proto::frame::parse_request(s) {
        Ok(req) => {
            assert!(!req.method.is_empty());
            let id = req.id.clone().unwrap_or(Value::Null);
            let _ = gatehouse_proto::frame::result_frame(&id, &json!(req.params));
        }
        Err(rejected) => {
            if let Some(reply) = rejected.reply {
                // Replies are always valid JSON.
                assert!(serde_json::from_str::<Value>(&reply).is_ok(), "{reply}");
            }
        }
    }
}

/// `frame::parse_legacy`.
pub fn legacy_frame(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let _ = gatehouse_proto::frame::parse_legacy(s);
}

/// Extended JSON (`$date`, `$set`) readers and the ISO-8601 parser used by query filters.
pub fn ejson(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let _ = gatehouse_core::query::parse_iso8601(s);
    if let Ok(v) = serde_json::from_str::<Value>(s) {
        if let Some(t) = gatehouse_proto::ejson::as_date(&v) {
            // Round trip of what was accepted.
            assert_eq!(
                gatehouse_proto::ejson::as_date(&gatehouse_proto::ejson::date(t)),
                Some(t)
            );
        }
        let _ = gatehouse_proto::ejson::as_set(&v);
    }
}

/// Methods whose argument schemas are fuzzed: the login union, nested objects, lists, ranges,
/// query arguments.
const SPECS: &[&str] = &[
    "auth.login_ex",
    "user.create",
    "user.update",
    "privilege.create",
    "api_key.create",
    "user.renew_2fa_secret",
    "user.query",
    "auth.set_attribute",
];

fn registry() -> &'static gatehouse_server::registry::Registry {
    static R: std::sync::OnceLock<gatehouse_server::registry::Registry> =
        std::sync::OnceLock::new();
    R.get_or_init(gatehouse_server::services::registry)
}

/// `MethodSpec::validate` of real specs. Input: one byte picks the method, the rest is the
/// JSON params array.
pub fn schema_validate(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Some(s) = text(rest) else { return };
    let Ok(Value::Array(params)) = serde_json::from_str::<Value>(s) else {
        return;
    };
    let name = SPECS[pick as usize % SPECS.len()];
    let Some(m) = registry().get(name) else {
        return;
    };
    if let Ok(valid) = m.spec.validate(params) {
        // Validation is idempotent: what passed once passes again.
        assert!(
            m.spec.validate(valid).is_ok(),
            "{name}: validated params fail validation"
        );
    }
}

fn sample_records() -> Vec<Value> {
    vec![
        json!({"id": 1, "username": "root", "uid": 0, "locked": false, "groups": [1, 2], "attr": {"a": {"b": 1}}, "created": {"$date": 1_700_000_000_000_i64}, "name": null}),
        json!({"id": 2, "username": "alice", "uid": 1000, "locked": true, "groups": [], "attr": {}, "name": "Alice", "score": 1.5}),
        json!({"id": 3, "username": "bob", "uid": 1001, "locked": false, "groups": [2], "roles": ["FULL_ADMIN"], "name": "Bob"}),
    ]
}

/// `query::query`: input is `[filters, options]` as JSON.
pub fn query(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let Ok(v) = serde_json::from_str::<Value>(s) else {
        return;
    };
    let (filters, options) = match &v {
        Value::Array(a) => (
            a.first().cloned().unwrap_or(Value::Null),
            a.get(1).cloned().unwrap_or(Value::Null),
        ),
        other => (other.clone(), Value::Null),
    };
    let _ = gatehouse_core::query::query(sample_records(), &filters, &options);
}

/// The shell: argument parsing, `select WHERE` translation (fed on to the query engine, as the
/// server would receive it), filter parsing and completion.
pub fn cli_line(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let _ = gatehouse_cli::syntax::parse_arguments(Some(s));
    let _ = gatehouse_cli::syntax::autocomplete(s);
    if let Ok(q) = gatehouse_cli::query::parse(s) {
        let _ = gatehouse_core::query::query(sample_records(), &json!(q.filters), &Value::Null);
    }
    if let Ok(f) = gatehouse_cli::query::parse_filters(s) {
        let _ = gatehouse_core::query::query(sample_records(), &f, &Value::Null);
    }
}

/// SCRAM: input is `client-first \n client-final`; without a newline, the whole input is tried
/// as both. The final message is checked against fixed key material.
pub fn scram(data: &[u8]) {
    use gatehouse_core::scram;
    let Some(s) = text(data) else { return };
    let (first, fin) = s.split_once('\n').unwrap_or((s, s));
    let _ = scram::parse_client_first(first, true);
    let cf = scram::parse_client_first(first, false)
        .or_else(|_| scram::parse_client_first("n,,n=root:1,r=fyko+d2lbbFgONRv9qkxdawL", false));
    let Ok(cf) = cf else { return };
    let keys = scram::ScramKeys::from_salted_password(&[7u8; 64]);
    let sf = scram::ServerFirst::new(cf, &[9u8; scram::NONCE_LEN], "c2FsdA==", 4096);
    let _ = scram::verify_client_final(sf.pending, fin, &keys.stored_key, &keys.server_key);
}

/// `totp::parse_otpauth_uri`, plus the base32 decoder it uses.
pub fn otpauth(data: &[u8]) {
    use gatehouse_core::totp;
    let Some(s) = text(data) else { return };
    let _ = totp::parse_otpauth_uri(s);
    if let Ok(bytes) = totp::base32_decode(s) {
        // What decodes re-encodes to something that decodes to the same bytes.
        assert_eq!(
            totp::base32_decode(&totp::base32_encode(&bytes)).ok(),
            Some(bytes)
        );
    }
}

/// `apikey::parse_raw_key`: anything accepted is exactly `<positive id>-<64 alphanumerics>`.
pub fn api_key(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok((id, key)) = gatehouse_core::apikey::parse_raw_key(s) {
        assert!(id > 0);
        assert_eq!(key.len(), 64);
        assert!(format!("{id}-{key}").len() <= s.len());
    }
    let _ = gatehouse_core::apikey::legacy_hash_to_scram(s);
}
