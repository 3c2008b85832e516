//! Token generation and the in-memory token manager (spec §3.1).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Barrier};

use gatehouse_core::clock::SeqEntropy;
use gatehouse_core::token::{
    self, NewToken, OriginMatch, TOKEN_LEN, TokenError, TokenManager, digest, generate_token,
};
use serde_json::json;

/// A TCP-like origin: matches on IP only, like TrueNAS.
#[derive(Debug, Clone, PartialEq)]
struct Origin {
    ip: &'static str,
    port: u16,
}

impl OriginMatch for Origin {
    fn matches(&self, other: &Self) -> bool {
        self.ip == other.ip
    }
}

const HERE: Origin = Origin {
    ip: "10.0.0.1",
    port: 1000,
};
const HERE_OTHER_PORT: Origin = Origin {
    ip: "10.0.0.1",
    port: 2000,
};
const ELSEWHERE: Origin = Origin {
    ip: "10.0.0.2",
    port: 1000,
};

fn spec(ttl: i64) -> NewToken<Origin, String> {
    NewToken {
        ttl_secs: ttl,
        attrs: json!({}),
        match_origin: true,
        single_use: false,
        origin: HERE,
        parent: "root".to_owned(),
        session_id: "session-1".to_owned(),
    }
}

#[test]
fn generated_tokens_are_64_url_safe_chars() {
    let e = SeqEntropy::default();
    let a = generate_token(&e);
    assert_eq!(a.len(), TOKEN_LEN);
    assert!(
        a.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    );
    assert_ne!(a, generate_token(&e));
}

#[test]
fn digest_is_sha256() {
    let d = digest("abc");
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn lookup_returns_view_and_preserves_attrs() {
    let m = TokenManager::new();
    let e = SeqEntropy::default();
    let mut s = spec(600);
    s.attrs = json!({"job": 42, "nested": {"a": [1, 2]}});
    let t = m.create(&e, s, 0).unwrap();
    let v = m.lookup(&t, &HERE, 1_000).unwrap();
    assert_eq!(v.attrs, json!({"job": 42, "nested": {"a": [1, 2]}}));
    assert_eq!(v.parent, "root");
    assert_eq!(v.session_id, "session-1");
    assert_eq!(v.digest, digest(&t));
    assert_eq!(v.ttl_secs, 600);
    assert!(v.match_origin && !v.single_use);
    assert!(m.lookup("not-a-token", &HERE, 1_000).is_none());
    assert_eq!(m.len(), 1);
}

#[test]
fn ttl_expires_without_use_and_slides_with_touch() {
    let m = TokenManager::new();
    let e = SeqEntropy::default();
    let t = m.create(&e, spec(10), 0).unwrap();
    let d = digest(&t);
    assert!(m.lookup(&t, &HERE, 9_999).is_some());
    // Lookup does not slide the TTL...
    assert!(m.lookup(&t, &HERE, 10_000).is_none());
    // ...and the expired entry is gone.
    assert_eq!(m.len(), 0);

    let t = m.create(&e, spec(10), 0).unwrap();
    let d2 = digest(&t);
    assert_ne!(d, d2);
    // Touch every 9 s keeps it alive well past the original TTL.
    for now in (9_000..=90_000).step_by(9_000) {
        assert!(m.touch(&d2, now), "at {now}");
    }
    assert!(m.lookup(&t, &HERE, 99_999).is_some());
    assert!(m.is_valid(&d2, 99_999));
    assert!(!m.is_valid(&d2, 100_000));
    assert!(!m.touch(&d2, 100_000));
    assert_eq!(m.len(), 0);
    assert!(!m.touch(&d2, 0));
}

#[test]
fn negative_or_zero_ttl_is_already_expired() {
    let m = TokenManager::new();
    let e = SeqEntropy::default();
    let t = m.create(&e, spec(-5), 1_000).unwrap();
    assert!(m.lookup(&t, &HERE, 1_000).is_none());
    let t = m.create(&e, spec(0), 1_000).unwrap();
    assert!(m.lookup(&t, &HERE, 1_000).is_none());
}

#[test]
fn origin_mismatch_is_refused_but_not_destroyed() {
    let m = TokenManager::new();
    let e = SeqEntropy::default();
    let t = m.create(&e, spec(600), 0).unwrap();
    assert!(m.lookup(&t, &ELSEWHERE, 1).is_none());
    assert!(m.consume(&t, &ELSEWHERE, 1).is_none());
    assert!(m.lookup(&t, &HERE_OTHER_PORT, 1).is_some());

    let mut s = spec(600);
    s.match_origin = false;
    let t = m.create(&e, s, 0).unwrap();
    assert!(m.lookup(&t, &ELSEWHERE, 1).is_some());
}

#[test]
fn single_use_token_is_consumed_once() {
    let m = TokenManager::new();
    let e = SeqEntropy::default();
    let mut s = spec(600);
    s.single_use = true;
    let t = m.create(&e, s, 0).unwrap();
    // Lookup alone does not consume.
    assert!(m.lookup(&t, &HERE, 1).is_some());
    let v = m.consume(&t, &HERE, 2).unwrap();
    assert!(v.single_use);
    assert!(m.consume(&t, &HERE, 3).is_none());
    assert!(m.lookup(&t, &HERE, 3).is_none());
    // Regression (single-use token session logged out on its next message): the spent token
    // still slides for the session that used it, until that session destroys it.
    assert!(m.touch(&v.digest, 500_000));
    assert!(m.touch(&v.digest, 1_000_000));
    assert!(m.lookup(&t, &HERE, 1_000_001).is_none());
    assert!(m.destroy(&v.digest));
    assert!(!m.touch(&v.digest, 1_000_002));

    // Multi-use tokens survive consume.
    let t = m.create(&e, spec(600), 0).unwrap();
    assert!(m.consume(&t, &HERE, 1).is_some());
    assert!(m.consume(&t, &HERE, 2).is_some());
}

#[test]
fn concurrent_consumers_only_one_wins() {
    for _ in 0..50 {
        let m = Arc::new(TokenManager::new());
        let e = SeqEntropy::default();
        let mut s = spec(600);
        s.single_use = true;
        let t = Arc::new(m.create(&e, s, 0).unwrap());
        let threads = 8;
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (m, t, b) = (Arc::clone(&m), Arc::clone(&t), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    b.wait();
                    m.consume(&t, &HERE, 1).is_some()
                })
            })
            .collect();
        let wins = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|w| *w)
            .count();
        assert_eq!(wins, 1);
    }
}

#[test]
fn destroy_and_destroy_for_session() {
    let m = TokenManager::new();
    let e = SeqEntropy::default();
    let a = m.create(&e, spec(600), 0).unwrap();
    let b = m.create(&e, spec(600), 0).unwrap();
    let mut other = spec(600);
    other.session_id = "session-2".to_owned();
    let c = m.create(&e, other, 0).unwrap();
    assert_eq!(m.len(), 3);

    assert!(m.destroy(&digest(&a)));
    assert!(!m.destroy(&digest(&a)));
    assert_eq!(m.destroy_for_session("session-1"), 1);
    assert!(m.lookup(&b, &HERE, 1).is_none());
    assert!(m.lookup(&c, &HERE, 1).is_some());
    assert_eq!(m.destroy_for_session("nope"), 0);
    assert_eq!(m.len(), 1);
    assert!(!m.is_empty());
}

#[test]
fn purge_drops_only_expired() {
    let m = TokenManager::new();
    let e = SeqEntropy::default();
    m.create(&e, spec(1), 0).unwrap();
    m.create(&e, spec(100), 0).unwrap();
    assert_eq!(m.purge_expired(5_000), 1);
    assert_eq!(m.len(), 1);
}

#[test]
fn raw_token_is_not_stored() {
    let m = TokenManager::new();
    let e = SeqEntropy::default();
    let t = m.create(&e, spec(600), 0).unwrap();
    let debug = format!("{m:?}");
    assert!(!debug.contains(&t));
    assert_eq!(token::DEFAULT_TTL_SECS, 600);
}

#[test]
fn repeating_entropy_is_an_error_not_a_hang() {
    struct Constant;
    impl gatehouse_core::Entropy for Constant {
        fn fill(&self, buf: &mut [u8]) {
            buf.fill(7);
        }
    }
    let m: TokenManager<Origin, String> = TokenManager::new();
    let t = m.create(&Constant, spec(600), 0).unwrap();
    assert_eq!(t.len(), TOKEN_LEN);
    assert_eq!(
        m.create(&Constant, spec(600), 0),
        Err(TokenError::EntropyRepeated)
    );
    assert_eq!(m.len(), 1);
}
