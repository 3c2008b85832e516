//! SCRAM-SHA-512: a Python-computed golden exchange, round trips, and hostile input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_core::apikey;
use gatehouse_core::scram::{
    ChannelBinding, ClientCredential, ScramClient, ScramError, ScramKeys, ServerFirst,
    parse_client_first, verify_client_final,
};
use proptest::prelude::*;
use zeroize::Zeroizing;

const KEY: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ab";
const SALT: &[u8] = b"saltSALTsalt./12";
const ITERS: u32 = 1000;

fn client_nonce() -> [u8; 32] {
    std::array::from_fn(|i| i as u8)
}
fn server_nonce() -> [u8; 32] {
    std::array::from_fn(|i| (i + 32) as u8)
}

// Computed once with Python (hashlib.pbkdf2_hmac + hmac), see crypto_apikey.rs.
const GOLDEN_CLIENT_FIRST: &str = "n,,n=alice:7,r=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const GOLDEN_SERVER_FIRST: &str = "r=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=,s=c2FsdFNBTFRzYWx0Li8xMg==,i=1000";
const GOLDEN_CLIENT_FINAL: &str = "c=biws,r=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=,p=bZV7jECvGmdgIq7zcaWGgzvAphyOMJEZekOzP66iHkZ5Y4VNy3UhXKMoqnHoayCDhG5g8H9TQQoMzV+duKPcAg==";
const GOLDEN_SERVER_FINAL: &str =
    "v=s4bkVUsxG3U2U0y1nhWhPl9bmQxueWYhsOXbro6iq6CJQ2RW02mkTAOR/lLORr+y14x3s4X+8GLN9IpwQ1qc7w==";

/// PBKDF2 is slow in debug builds; derive once.
fn keys() -> ScramKeys {
    static KEYS: std::sync::LazyLock<ScramKeys> =
        std::sync::LazyLock::new(|| apikey::derive(KEY, SALT, ITERS));
    KEYS.clone()
}

fn client(credential: ClientCredential) -> ScramClient {
    ScramClient::new("alice", 7, credential, &client_nonce()).with_iteration_bounds(1, 10_000)
}

/// Server-first for a client-first message that is known to be valid.
fn server_first_for(msg: &str) -> ServerFirst {
    match parse_client_first(msg, false) {
        Ok(cf) => ServerFirst::new(cf, &server_nonce(), &apikey::salt_field(SALT), ITERS),
        Err(e) => unreachable!("test fixture {msg:?} does not parse: {e}"),
    }
}

#[test]
fn golden_exchange_matches_python() {
    let c = client(ClientCredential::RawKey(Zeroizing::new(KEY.to_owned())));
    assert_eq!(c.client_first(), GOLDEN_CLIENT_FIRST);

    let cf = parse_client_first(GOLDEN_CLIENT_FIRST, false).unwrap();
    assert_eq!(cf.username, "alice");
    assert_eq!(cf.api_key_id, 7);
    assert_eq!(cf.binding, ChannelBinding::None);
    assert_eq!(cf.gs2_header, "n,,");
    let sf = ServerFirst::new(cf, &server_nonce(), "c2FsdFNBTFRzYWx0Li8xMg==", ITERS);
    assert_eq!(sf.rfc_str, GOLDEN_SERVER_FIRST);

    let state = c.handle_server_first(&sf.rfc_str).unwrap();
    assert_eq!(state.message, GOLDEN_CLIENT_FINAL);

    let k = keys();
    let v = verify_client_final(sf.pending, &state.message, &k.stored_key, &k.server_key).unwrap();
    assert_eq!(v, GOLDEN_SERVER_FINAL);
    state.verify_server_final(&v).unwrap();
}

#[test]
fn precomputed_credentials_give_the_same_proof() {
    let k = keys();
    let from_keys = client(ClientCredential::Keys(k.clone()));
    assert_eq!(
        from_keys
            .handle_server_first(GOLDEN_SERVER_FIRST)
            .unwrap()
            .message,
        GOLDEN_CLIENT_FINAL
    );

    let mut salted = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(KEY.as_bytes(), SALT, ITERS, &mut salted);
    let from_salted = client(ClientCredential::SaltedPassword(Zeroizing::new(salted)));
    assert_eq!(
        from_salted
            .handle_server_first(GOLDEN_SERVER_FIRST)
            .unwrap()
            .message,
        GOLDEN_CLIENT_FINAL
    );
}

#[test]
fn round_trip_with_escaped_username() {
    let c = ScramClient::new("we,ird=name", 42, ClientCredential::Keys(keys()), &[9; 32])
        .with_iteration_bounds(1, 10_000);
    let first = c.client_first();
    assert!(first.starts_with("n,,n=we=2Cird=3Dname:42,r="));
    let cf = parse_client_first(&first, false).unwrap();
    assert_eq!(cf.username, "we,ird=name");
    assert_eq!(cf.api_key_id, 42);
    let sf = ServerFirst::new(cf, &[3; 32], &apikey::salt_field(SALT), ITERS);
    let state = c.handle_server_first(&sf.rfc_str).unwrap();
    let k = keys();
    let v = verify_client_final(sf.pending, &state.message, &k.stored_key, &k.server_key).unwrap();
    state.verify_server_final(&v).unwrap();
}

#[test]
fn username_with_colon_splits_on_last_colon() {
    let cf = parse_client_first("n,,n=dom:user:12,r=abc", false).unwrap();
    assert_eq!(cf.username, "dom:user");
    assert_eq!(cf.api_key_id, 12);
}

#[test]
fn wrong_key_is_refused() {
    let other = apikey::derive(&KEY.replace('a', "b"), SALT, ITERS);
    let sf = server_first_for(GOLDEN_CLIENT_FIRST);
    let k = keys();
    let err = verify_client_final(
        sf.pending,
        GOLDEN_CLIENT_FINAL,
        &other.stored_key,
        &k.server_key,
    );
    assert_eq!(err, Err(ScramError::InvalidProof));
}

#[test]
fn tampered_proof_is_refused() {
    let k = keys();
    // Flip one base64 character of the proof.
    let (head, proof) = GOLDEN_CLIENT_FINAL.rsplit_once(",p=").unwrap();
    let mut p: Vec<u8> = proof.bytes().collect();
    p[10] = if p[10] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{head},p={}", String::from_utf8(p).unwrap());
    let sf = server_first_for(GOLDEN_CLIENT_FIRST);
    assert_eq!(
        verify_client_final(sf.pending, &tampered, &k.stored_key, &k.server_key),
        Err(ScramError::InvalidProof)
    );
    // A proof of the wrong length is malformed.
    let sf = server_first_for(GOLDEN_CLIENT_FIRST);
    let short = format!("{head},p=AAAA");
    assert!(matches!(
        verify_client_final(sf.pending, &short, &k.stored_key, &k.server_key),
        Err(ScramError::Malformed(_))
    ));
}

#[test]
fn wrong_nonce_is_refused() {
    let k = keys();
    let sf = server_first_for(GOLDEN_CLIENT_FIRST);
    let bad = GOLDEN_CLIENT_FINAL.replace("Pj8=,p=", "Pj9=,p=");
    assert_eq!(
        verify_client_final(sf.pending, &bad, &k.stored_key, &k.server_key),
        Err(ScramError::NonceMismatch)
    );
    // A client refuses a server nonce that does not extend its own.
    let c = client(ClientCredential::Keys(keys()));
    let sf = GOLDEN_SERVER_FIRST.replacen("r=AAEC", "r=AAED", 1);
    assert_eq!(
        c.handle_server_first(&sf).err(),
        Some(ScramError::NonceMismatch)
    );
    let sf = "r=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=,s=c2FsdA==,i=1000";
    assert_eq!(
        c.handle_server_first(sf).err(),
        Some(ScramError::NonceMismatch)
    );
}

#[test]
fn wrong_channel_binding_echo_is_refused() {
    let k = keys();
    for c in ["eSws", "cCx0bHMtc2VydmVyLWVuZC1wb2ludCws", "", "!!"] {
        let sf = server_first_for(GOLDEN_CLIENT_FIRST);
        let bad = GOLDEN_CLIENT_FINAL.replacen("c=biws", &format!("c={c}"), 1);
        assert_eq!(
            verify_client_final(sf.pending, &bad, &k.stored_key, &k.server_key),
            Err(ScramError::ChannelBindingMismatch),
            "c={c}"
        );
    }
}

#[test]
fn y_flag_is_no_binding() {
    let cf = parse_client_first("y,,n=alice:7,r=abc", false).unwrap();
    assert_eq!(cf.binding, ChannelBinding::ClientOnly);
    assert_eq!(cf.gs2_header, "y,,");
}

#[test]
fn channel_binding_needs_tls_and_the_right_data() {
    let first = "p=tls-server-end-point,,n=alice:7,r=abc";
    assert_eq!(
        parse_client_first(first, false).err(),
        Some(ScramError::ChannelBindingNotPermitted)
    );
    assert_eq!(
        parse_client_first("p=tls-unique,,n=alice:7,r=abc", true).err(),
        Some(ScramError::UnsupportedChannelBinding)
    );

    let cert_hash = vec![0xAB; 32];
    let c = client(ClientCredential::Keys(keys())).with_tls_server_end_point(cert_hash.clone());
    let cf = parse_client_first(&c.client_first(), true).unwrap();
    assert_eq!(cf.binding, ChannelBinding::TlsServerEndPoint);
    let k = keys();

    // Right binding data: accepted.
    let mut sf = ServerFirst::new(
        cf.clone(),
        &server_nonce(),
        &apikey::salt_field(SALT),
        ITERS,
    );
    sf.pending.set_channel_binding_data(cert_hash.clone());
    let state = c.handle_server_first(&sf.rfc_str).unwrap();
    let v = verify_client_final(sf.pending, &state.message, &k.stored_key, &k.server_key).unwrap();
    state.verify_server_final(&v).unwrap();

    // Different certificate (a man in the middle): refused.
    let mut sf = ServerFirst::new(
        cf.clone(),
        &server_nonce(),
        &apikey::salt_field(SALT),
        ITERS,
    );
    sf.pending.set_channel_binding_data(vec![0xCD; 32]);
    let state = c.handle_server_first(&sf.rfc_str).unwrap();
    assert_eq!(
        verify_client_final(sf.pending, &state.message, &k.stored_key, &k.server_key),
        Err(ScramError::ChannelBindingMismatch)
    );

    // Server forgot to supply binding data: refused.
    let sf = ServerFirst::new(cf, &server_nonce(), &apikey::salt_field(SALT), ITERS);
    let state = c.handle_server_first(&sf.rfc_str).unwrap();
    assert_eq!(
        verify_client_final(sf.pending, &state.message, &k.stored_key, &k.server_key),
        Err(ScramError::ChannelBindingMismatch)
    );
}

#[test]
fn malformed_client_first_table() {
    use ScramError as E;
    let long = format!("n,,n=alice:7,r={}", "a".repeat(3000));
    let long_nonce = format!("n,,n=alice:7,r={}", "a".repeat(300));
    let cases: &[(&str, ScramError)] = &[
        ("", E::Malformed("empty message")),
        (&long, E::TooLong),
        ("n", E::Malformed("missing gs2 header")),
        ("n,", E::Malformed("missing gs2 header")),
        (
            "x,,n=alice:7,r=abc",
            E::Malformed("bad channel binding flag"),
        ),
        (
            "N,,n=alice:7,r=abc",
            E::Malformed("bad channel binding flag"),
        ),
        ("n,a=bob,n=alice:7,r=abc", E::AuthzidNotSupported),
        ("n,,m=ext,n=alice:7,r=abc", E::ExtensionNotSupported),
        ("n,,n=alice:7,r=abc,x=ext", E::ExtensionNotSupported),
        ("n,,r=abc,n=alice:7", E::Malformed("unexpected attribute")),
        ("n,,n=alice:7", E::Malformed("missing nonce")),
        ("n,,n=alice:7,", E::Malformed("unexpected attribute")),
        (
            "n,,n=alice,r=abc",
            E::Malformed("user name lacks :<api key id>"),
        ),
        ("n,,n=:7,r=abc", E::Malformed("bad user name")),
        (
            "n,,n=al=2ice:7,r=abc",
            E::Malformed("bad escape in user name"),
        ),
        (
            "n,,n=al=ice:7,r=abc",
            E::Malformed("bad escape in user name"),
        ),
        ("n,,n=alice:0,r=abc", E::Malformed("bad api key id")),
        ("n,,n=alice:-3,r=abc", E::Malformed("bad api key id")),
        ("n,,n=alice:+3,r=abc", E::Malformed("bad api key id")),
        ("n,,n=alice:,r=abc", E::Malformed("bad api key id")),
        (
            "n,,n=alice:99999999999999999999,r=abc",
            E::Malformed("bad api key id"),
        ),
        ("n,,n=alice:7,r=", E::Malformed("bad nonce")),
        ("n,,n=alice:7,r=a b", E::Malformed("bad nonce")),
        ("n,,n=alice:7,r=é", E::Malformed("bad nonce")),
        (&long_nonce, E::Malformed("bad nonce")),
        ("n,,n=a\u{1}b:7,r=abc", E::Malformed("bad user name")),
    ];
    for (msg, want) in cases {
        assert_eq!(
            parse_client_first(msg, true).as_ref().err(),
            Some(want),
            "{msg:?}"
        );
    }
}

#[test]
fn malformed_client_final_table() {
    let k = keys();
    let nonce =
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
    let proof = GOLDEN_CLIENT_FINAL.rsplit_once(",p=").unwrap().1;
    let cases = [
        String::new(),
        "c=biws".to_owned(),
        format!("c=biws,r={nonce}"),
        format!("r={nonce},c=biws,p={proof}"),
        format!("c=biws,r={nonce},x=1,p={proof}"),
        format!("c=biws,r={nonce},m=1,p={proof}"),
        format!("c=biws,r={nonce},p=!!!"),
        format!("c=biws,p={proof}"),
        format!("c=biws,r={nonce},p={proof},e=1"),
        format!("c=biws,r={nonce},p={proof}{}", "A".repeat(3000)),
    ];
    for msg in cases {
        let sf = server_first_for(GOLDEN_CLIENT_FIRST);
        assert!(
            verify_client_final(sf.pending, &msg, &k.stored_key, &k.server_key).is_err(),
            "{msg:?}"
        );
    }
}

#[test]
fn client_refuses_bad_server_messages() {
    let c = client(ClientCredential::Keys(keys()));
    assert_eq!(
        c.handle_server_first("e=other-error").err(),
        Some(ScramError::ServerError("other-error".into()))
    );
    let too_many = GOLDEN_SERVER_FIRST.replace("i=1000", "i=20000");
    assert_eq!(
        c.handle_server_first(&too_many).err(),
        Some(ScramError::IterationCount(20_000))
    );
    let default_bounds =
        ScramClient::new("alice", 7, ClientCredential::Keys(keys()), &client_nonce());
    assert_eq!(
        default_bounds
            .handle_server_first(GOLDEN_SERVER_FIRST)
            .err(),
        Some(ScramError::IterationCount(1000))
    );
    assert!(
        c.handle_server_first(&GOLDEN_SERVER_FIRST.replace("i=1000", "i=x"))
            .is_err()
    );
    assert!(
        c.handle_server_first(&GOLDEN_SERVER_FIRST.replace(",s=", ",t="))
            .is_err()
    );

    let state = c.handle_server_first(GOLDEN_SERVER_FIRST).unwrap();
    let forged = GOLDEN_SERVER_FINAL.replacen("v=s4", "v=s5", 1);
    assert_eq!(
        state.verify_server_final(&forged),
        Err(ScramError::ServerSignatureMismatch)
    );
    assert!(state.verify_server_final("v=").is_err());
    assert!(state.verify_server_final("x=abc").is_err());
    assert_eq!(
        state.verify_server_final("e=invalid-proof"),
        Err(ScramError::ServerError("invalid-proof".into()))
    );
    state.verify_server_final(GOLDEN_SERVER_FINAL).unwrap();
}

#[test]
fn debug_output_hides_secrets() {
    let k = keys();
    assert_eq!(format!("{k:?}"), "ScramKeys { .. }");
    let c = client(ClientCredential::RawKey(Zeroizing::new(KEY.to_owned())));
    assert!(!format!("{c:?}").contains(KEY));
}

proptest! {
    #[test]
    fn client_first_parser_never_panics(s in "\\PC{0,120}", tls in any::<bool>()) {
        let _ = parse_client_first(&s, tls);
    }

    #[test]
    fn client_first_parser_never_panics_near_valid(
        flag in "(n|y|p=[a-z-]{0,24}|[a-z=]{0,3})",
        authz in "(a=[a-z]{0,4})?",
        body in "[a-zA-Z0-9=,:+/ ]{0,60}",
        tls in any::<bool>(),
    ) {
        let _ = parse_client_first(&format!("{flag},{authz},{body}"), tls);
    }

    #[test]
    fn client_final_parser_never_panics(s in "\\PC{0,200}") {
        let sf = server_first_for(GOLDEN_CLIENT_FIRST);
        let k = keys();
        let _ = verify_client_final(sf.pending, &s, &k.stored_key, &k.server_key);
    }

    #[test]
    fn client_never_panics_on_server_messages(s in "\\PC{0,200}") {
        let c = client(ClientCredential::Keys(keys()));
        let _ = c.handle_server_first(&s);
    }
}
