//! Micro-benchmarks of the per-call building blocks (`cargo bench -p gatehouse-bench`):
//! query-filter evaluation over 10k records, TOTP verification, token lookup among 10k
//! tokens, and JSON-RPC decode/encode.

use gatehouse_core::Entropy;
use gatehouse_core::query::{self, Filters, QueryOptions};
use gatehouse_core::token::{NewToken, OriginMatch, TokenManager};
use serde_json::{Value, json};

fn main() {
    divan::main();
}

/// 10,000 `auth.sessions`-like records.
fn records() -> Vec<Value> {
    (0..10_000)
        .map(|i| {
            json!({
                "id": format!("{i:08x}-0000-4000-8000-000000000000"),
                "current": i == 42,
                "internal": i % 100 == 0,
                "origin": format!("127.0.0.1:{}", 30_000 + i),
                "credentials": if i % 3 == 0 { "TOKEN" } else { "API_KEY" },
                "credentials_data": {"username": format!("user{}", i % 50), "login_id": "x"},
                "created_at": {"$date": 1_700_000_000_000i64 + i},
                "secure_transport": true,
            })
        })
        .collect()
}

#[divan::bench]
fn query_filter_eval_10k(bencher: divan::Bencher) {
    let recs = records();
    let filters = Filters::parse(&json!([
        ["credentials", "=", "TOKEN"],
        ["internal", "=", false]
    ]))
    .unwrap_or_default();
    bencher.bench(|| recs.iter().filter(|r| filters.matches(r)).count());
}

#[divan::bench]
fn query_nested_and_or_10k(bencher: divan::Bencher) {
    let recs = records();
    let filters = Filters::parse(&json!([
        [
            "OR",
            [
                ["credentials_data.username", "^", "user1"],
                ["origin", "$", "9"]
            ]
        ],
        ["current", "!=", true]
    ]))
    .unwrap_or_default();
    bencher.bench(|| recs.iter().filter(|r| filters.matches(r)).count());
}

#[divan::bench]
fn query_full_pipeline_10k(bencher: divan::Bencher) {
    let recs = records();
    let filters = Filters::parse(&json!([["credentials", "=", "TOKEN"]])).unwrap_or_default();
    let options = QueryOptions::from_value(&json!({"order_by": ["-created_at"], "limit": 50}))
        .unwrap_or_default();
    bencher
        .with_inputs(|| recs.clone())
        .bench_values(|r| query::query_with(r, &filters, &options));
}

#[divan::bench]
fn totp_verify_window_1(bencher: divan::Bencher) {
    let secret = b"12345678901234567890";
    let now = 1_700_000_000i64;
    let code = gatehouse_core::totp::code_at(secret, now, 30, 6);
    bencher.bench(|| {
        gatehouse_core::totp::verify(
            divan::black_box(secret),
            divan::black_box(&code),
            now,
            30,
            6,
            1,
            None,
        )
    });
}

#[derive(Debug, Clone)]
struct Anywhere;

impl OriginMatch for Anywhere {
    fn matches(&self, _: &Self) -> bool {
        true
    }
}

struct Counter(std::sync::atomic::AtomicU64);

impl Entropy for Counter {
    fn fill(&self, buf: &mut [u8]) {
        for b in buf.iter_mut() {
            let n = self
                .0
                .fetch_add(0x9E37_79B9_7F4A_7C15, std::sync::atomic::Ordering::Relaxed);
            *b = (n >> 29) as u8 ^ (n >> 7) as u8;
        }
    }
}

#[divan::bench]
fn token_lookup_among_10k(bencher: divan::Bencher) {
    let tokens: TokenManager<Anywhere, u32> = TokenManager::new();
    let entropy = Counter(std::sync::atomic::AtomicU64::new(1));
    let mut last = String::new();
    for i in 0..10_000u32 {
        let spec = NewToken {
            ttl_secs: 600,
            attrs: json!({}),
            match_origin: false,
            single_use: false,
            origin: Anywhere,
            parent: i,
            session_id: format!("s{i}"),
        };
        if let Ok(t) = tokens.create(&entropy, spec, 0) {
            last = t;
        }
    }
    bencher.bench(|| {
        tokens
            .lookup(divan::black_box(&last), &Anywhere, 1000)
            .is_some()
    });
}

const REQUEST: &str = r#"{"jsonrpc":"2.0","id":17,"method":"auth.login_ex","params":[{"mechanism":"API_KEY_PLAIN","username":"truenas_admin","api_key":"1-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcd"}]}"#;

#[divan::bench]
fn jsonrpc_decode_request(bencher: divan::Bencher) {
    bencher.bench(|| gatehouse_proto::frame::parse_request(divan::black_box(REQUEST)).is_ok());
}

#[divan::bench]
fn jsonrpc_encode_result_3k(bencher: divan::Bencher) {
    // About the size of an `auth.me` answer.
    let roles: Vec<String> = (0..120).map(|i| format!("ROLE_NUMBER_{i}_READ")).collect();
    let result = json!({"pw_name": "truenas_admin", "privilege": {"roles": {"$set": roles}}});
    let id = json!(17);
    bencher.bench(|| gatehouse_proto::frame::result_frame(&id, divan::black_box(&result)).len());
}
