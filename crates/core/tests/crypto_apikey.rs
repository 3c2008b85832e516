//! API key format, generation and stored material.
//!
//! Fixed vectors were computed once with Python:
//! `sp = hashlib.pbkdf2_hmac('sha512', KEY.encode(), SALT, 1000)`,
//! `ck = hmac.new(sp, b"Client Key", hashlib.sha512).digest()`, `sk = hashlib.sha512(ck)`,
//! `svk = hmac.new(sp, b"Server Key", hashlib.sha512).digest()`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_core::apikey::{
    self, DEFAULT_ITERATIONS, KeyParseError, LegacyHashError, cache_digest, derive,
    generate_key_part, generate_salt, legacy_hash_to_scram, legacy_pbkdf2_sha512_hash,
    parse_raw_key, salt_field, verify_legacy_hash, verify_plain,
};
use gatehouse_core::clock::SeqEntropy;
use proptest::prelude::*;
use sha2::{Digest, Sha512};

const KEY: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ab";
const SALT: &[u8] = b"saltSALTsalt./12";
const ITERS: u32 = 1000;

const CLIENT_KEY: &str = "fd47b78219ef93298f62bde8063b2f02f77be6812a26422d4c337c7904173988f0cad74570bbe2f860129d1c898699d76f1658e29c312c333489a3c052de9beb";
const STORED_KEY: &str = "7fbf3031de294b68a367b7f99ea7b3a69995c1a209b5ffd1661c99c0f470f2be154951f431c3b515c0c148815f5692f40cd4f52dba3f0993348afd52f3c4dddd";
const SERVER_KEY: &str = "65a0a2264a75b878e43dfff54f4b2a6c12e7af66e53380a39a676d1f2b1a1638c2c8916b725cf31340b483292f706372c8612fe5bdafa9d8dc6cf5ccd36e5033";
const LEGACY: &str = "$pbkdf2-sha512$1000$c2FsdFNBTFRzYWx0Li8xMg==$osdiSqzso4n95KHiopSwjZ3UGckrNPq14bwG50G7k1QhGiBHyjylZXtitF0P3vDQVD/JEvfktbcMCtAzVSlgBg==";
// passlib-style 24.10 hash: ab64, salt = bytes(range(16)), 29000 rounds.
const LEGACY_256: &str =
    "$pbkdf2-sha256$29000$AAECAwQFBgcICQoLDA0ODw$3mMg6zJjKNAYySanYqEzko7DqGMESVhN0ZgwYQo8LYM";
// hashlib.sha256(b"7-" + KEY).hexdigest()
const CACHE_DIGEST: &str = "028a56395039e93d6c9feffafb31769ddc544b82de7da8db47dd0950dea5e01b";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn derive_matches_python_vectors() {
    let k = derive(KEY, SALT, ITERS);
    assert_eq!(hex(&k.client_key), CLIENT_KEY);
    assert_eq!(hex(&k.stored_key), STORED_KEY);
    assert_eq!(hex(&k.server_key), SERVER_KEY);
}

#[test]
fn stored_key_is_sha512_of_client_key() {
    for salt in [&b"0123456789abcdef"[..], SALT] {
        let k = derive(KEY, salt, 50);
        let h: [u8; 64] = Sha512::digest(k.client_key).into();
        assert_eq!(h, k.stored_key);
        assert_ne!(k.client_key, k.server_key);
    }
}

#[test]
fn verify_plain_accepts_right_key_only() {
    let k = derive(KEY, SALT, ITERS);
    assert!(verify_plain(KEY, SALT, ITERS, &k.stored_key));
    assert!(!verify_plain(
        &KEY.replace('a', "A"),
        SALT,
        ITERS,
        &k.stored_key
    ));
    assert!(!verify_plain(
        KEY,
        b"saltSALTsalt./13",
        ITERS,
        &k.stored_key
    ));
    assert!(!verify_plain(KEY, SALT, ITERS + 1, &k.stored_key));
    assert!(!verify_plain(KEY, SALT, ITERS, &k.stored_key[..63]));
    assert!(!verify_plain(KEY, SALT, 0, &k.stored_key));
    assert!(!verify_plain(
        KEY,
        SALT,
        apikey::MAX_ITERATIONS + 1,
        &k.stored_key
    ));
}

#[test]
fn stored_fields_are_base64() {
    let k = derive(KEY, SALT, ITERS);
    assert_eq!(salt_field(SALT), "c2FsdFNBTFRzYWx0Li8xMg==");
    assert_eq!(k.stored_key_b64().len(), 88);
    assert_eq!(k.server_key_b64().len(), 88);
    assert_eq!(k.client_key_b64().len(), 88);
}

#[test]
fn legacy_hash_format_and_verification() {
    assert_eq!(legacy_pbkdf2_sha512_hash(KEY, SALT, ITERS), LEGACY);
    assert!(verify_legacy_hash(KEY, LEGACY));
    assert!(!verify_legacy_hash(&KEY.replace('b', "c"), LEGACY));
    // Missing padding is tolerated.
    assert!(verify_legacy_hash(KEY, &LEGACY.replace("==", "")));
    assert!(verify_legacy_hash(KEY, LEGACY_256));
    assert!(!verify_legacy_hash(&KEY.replace('b', "c"), LEGACY_256));
    let h = legacy_pbkdf2_sha512_hash(KEY, SALT, 2);
    assert!(h.starts_with("$pbkdf2-sha512$2$c2FsdFNBTFRzYWx0Li8xMg==$"));
    assert_eq!(DEFAULT_ITERATIONS, 500_000);
}

#[test]
fn legacy_malformed_strings_are_false() {
    let bad = [
        "",
        "$",
        "pbkdf2-sha512$1000$c2FsdA==$AAAA",
        "$pbkdf2-sha1$1000$c2FsdA==$AAAA",
        "$pbkdf2-sha512$1000$c2FsdA==",
        "$pbkdf2-sha512$$c2FsdA==$AAAA",
        "$pbkdf2-sha512$0$c2FsdFNBTFRzYWx0Li8xMg==$osdiSqzso4n95KHiopSwjZ3UGckrNPq14bwG50G7k1QhGiBHyjylZXtitF0P3vDQVD/JEvfktbcMCtAzVSlgBg==",
        "$pbkdf2-sha512$-1$c2FsdA==$AAAA",
        "$pbkdf2-sha512$99999999999$c2FsdA==$AAAA",
        "$pbkdf2-sha512$1000$!!!$AAAA",
        "$pbkdf2-sha512$1000$c2FsdA==$AAAA",
        "$pbkdf2-sha512$1000$$osdiSqzso4n95KHiopSwjZ3UGckrNPq14bwG50G7k1QhGiBHyjylZXtitF0P3vDQVD/JEvfktbcMCtAzVSlgBg==",
        "$pbkdf2-sha512$1000$c2FsdA==$AAAA$extra",
    ];
    for s in bad {
        assert!(!verify_legacy_hash(KEY, s), "{s:?}");
    }
    assert_eq!(
        legacy_hash_to_scram("$pbkdf2-sha512$0$c2FsdA==$AAAA").err(),
        Some(LegacyHashError::Iterations)
    );
    assert_eq!(
        legacy_hash_to_scram(LEGACY_256).err(),
        Some(LegacyHashError::Format)
    );
}

#[test]
fn legacy_hash_converts_to_the_same_scram_material() {
    let c = legacy_hash_to_scram(LEGACY).unwrap();
    assert_eq!(c.salt_ascii, SALT);
    assert_eq!(c.iterations, ITERS);
    assert_eq!(hex(&c.keys.stored_key), STORED_KEY);
    assert_eq!(hex(&c.keys.server_key), SERVER_KEY);
}

#[test]
fn parse_raw_key_cases() {
    let raw = format!("7-{KEY}");
    assert_eq!(parse_raw_key(&raw), Ok((7, KEY)));
    assert_eq!(parse_raw_key(&format!("007-{KEY}")), Ok((7, KEY)));

    let cases: Vec<(String, KeyParseError)> = vec![
        (String::new(), KeyParseError::NotRawKey),
        (KEY.to_owned(), KeyParseError::NotRawKey),
        (format!("-{KEY}"), KeyParseError::NotRawKey),
        (format!("abc-{KEY}"), KeyParseError::NotRawKey),
        (format!("-5-{KEY}"), KeyParseError::NotRawKey),
        (format!("+5-{KEY}"), KeyParseError::NotRawKey),
        (format!(" 5-{KEY}"), KeyParseError::NotRawKey),
        (format!("0-{KEY}"), KeyParseError::InvalidId),
        (format!("000-{KEY}"), KeyParseError::InvalidId),
        (
            format!("99999999999999999999-{KEY}"),
            KeyParseError::InvalidId,
        ),
        ("5-".to_owned(), KeyParseError::UnexpectedSize),
        (format!("5-{}", &KEY[1..]), KeyParseError::UnexpectedSize),
        (format!("5-{KEY}x"), KeyParseError::UnexpectedSize),
        (format!("5-{}-", &KEY[1..]), KeyParseError::NotRawKey),
        (format!("5-{}é", &KEY[2..]), KeyParseError::NotRawKey),
    ];
    for (raw, want) in cases {
        assert_eq!(parse_raw_key(&raw), Err(want), "{raw:?}");
    }
    assert_eq!(
        KeyParseError::NotRawKey.to_string(),
        "Not a valid raw API key"
    );
    assert_eq!(KeyParseError::InvalidId.to_string(), "Invalid key id");
    assert_eq!(
        KeyParseError::UnexpectedSize.to_string(),
        "Unexpected key size."
    );
}

#[test]
fn generated_keys_and_salts_have_the_right_shape() {
    let e = SeqEntropy::default();
    let a = generate_key_part(&e);
    let b = generate_key_part(&e);
    assert_eq!(a.len(), 64);
    assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
    assert_ne!(a, b);
    assert_eq!(parse_raw_key(&format!("1-{a}")), Ok((1, a.as_str())));

    let s = generate_salt(&e);
    assert_eq!(s.len(), 16);
    assert!(
        s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'/')
    );
}

#[test]
fn key_part_characters_are_unbiased() {
    // A plain `byte % 62` would give the first 8 alphabet symbols ('a'..='h') 5/256 instead
    // of 4/248 probability each: ~10 000 of 64 000 draws instead of ~8 260.
    let e = SeqEntropy::default();
    let mut counts = std::collections::HashMap::new();
    for _ in 0..1000 {
        for c in generate_key_part(&e).chars() {
            *counts.entry(c).or_insert(0u32) += 1;
        }
    }
    assert_eq!(counts.len(), 62);
    let first8: u32 = ('a'..='h').map(|c| counts[&c]).sum();
    assert!(
        (7_800..8_800).contains(&first8),
        "first 8 symbols drawn {first8} times"
    );
    let (min, max) = (
        counts.values().min().unwrap(),
        counts.values().max().unwrap(),
    );
    assert!(*min > 900 && *max < 1_170, "min {min} max {max}");
}

#[test]
fn cache_digest_is_sha256_of_raw_key() {
    assert_eq!(hex(&cache_digest(&format!("7-{KEY}"))), CACHE_DIGEST);
}

proptest! {
    #[test]
    fn parse_raw_key_never_panics(s in "\\PC{0,100}") {
        let _ = parse_raw_key(&s);
    }

    #[test]
    fn parse_raw_key_accepts_every_well_formed_key(id in 1i64..=i64::MAX, key in "[A-Za-z0-9]{64}") {
        let raw = format!("{id}-{key}");
        prop_assert_eq!(parse_raw_key(&raw), Ok((id, key.as_str())));
    }

    #[test]
    fn legacy_verifier_never_panics(s in "\\$pbkdf2-sha(256|512)\\$[0-9]{0,3}\\$[A-Za-z0-9+/=.]{0,30}\\$[A-Za-z0-9+/=.]{0,30}") {
        let _ = verify_legacy_hash(KEY, &s);
    }
}
