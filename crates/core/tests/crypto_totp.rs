//! TOTP, base32 and otpauth:// URIs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_core::clock::SeqEntropy;
use gatehouse_core::totp::{
    self, Base32Error, OtpAlgorithm, OtpAuthError, base32_decode, base32_encode, code_at,
    generate_secret, parse_otpauth_uri, provisioning_uri, verify,
};
use proptest::prelude::*;

const RFC_SECRET: &[u8] = b"12345678901234567890";

#[test]
fn rfc6238_appendix_b_sha1_vectors() {
    let vectors = [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];
    for (t, want) in vectors {
        assert_eq!(code_at(RFC_SECRET, t, 30, 8), want, "T={t}");
        let step = (t / 30) as u64;
        assert_eq!(
            verify(RFC_SECRET, want, t, 30, 8, 0, None),
            Some(step),
            "T={t}"
        );
    }
}

#[test]
fn six_digit_codes_are_the_low_digits() {
    assert_eq!(code_at(RFC_SECRET, 59, 30, 6), "287082");
    assert_eq!(code_at(RFC_SECRET, 59, 30, 7), "4287082");
}

#[test]
fn pyotp_golden_codes() {
    // pyotp.TOTP(s).at(1700000000) and pyotp.TOTP(s, digits=8, interval=60).at(1700000000)
    let secret = base32_decode("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").unwrap();
    assert_eq!(code_at(&secret, 1_700_000_000, 30, 6), "406058");
    assert_eq!(code_at(&secret, 1_700_000_000, 60, 8), "46398554");
}

#[test]
fn window_accepts_neighbouring_steps_only() {
    let now = 1_700_000_000;
    let step = (now / 30) as u64;
    let prev = code_at(RFC_SECRET, now - 30, 30, 6);
    let next = code_at(RFC_SECRET, now + 30, 30, 6);
    let two_back = code_at(RFC_SECRET, now - 60, 30, 6);

    assert_eq!(verify(RFC_SECRET, &prev, now, 30, 6, 0, None), None);
    assert_eq!(
        verify(RFC_SECRET, &prev, now, 30, 6, 1, None),
        Some(step - 1)
    );
    assert_eq!(
        verify(RFC_SECRET, &next, now, 30, 6, 1, None),
        Some(step + 1)
    );
    assert_eq!(verify(RFC_SECRET, &two_back, now, 30, 6, 1, None), None);
    assert_eq!(
        verify(RFC_SECRET, &two_back, now, 30, 6, 2, None),
        Some(step - 2)
    );
}

#[test]
fn replay_of_used_or_earlier_step_is_refused() {
    let now = 1_700_000_000;
    let code = code_at(RFC_SECRET, now, 30, 6);
    let step = verify(RFC_SECRET, &code, now, 30, 6, 1, None).unwrap();
    // The same code again, even a second later in the same step: refused.
    assert_eq!(
        verify(RFC_SECRET, &code, now + 1, 30, 6, 1, Some(step)),
        None
    );
    // An earlier step's code, still inside the window: refused.
    let prev = code_at(RFC_SECRET, now - 30, 30, 6);
    assert_eq!(verify(RFC_SECRET, &prev, now, 30, 6, 1, Some(step)), None);
    // The next step's code is fresh.
    let next = code_at(RFC_SECRET, now + 30, 30, 6);
    assert_eq!(
        verify(RFC_SECRET, &next, now + 30, 30, 6, 1, Some(step)),
        Some(step + 1)
    );
}

#[test]
fn malformed_codes_and_parameters_are_refused() {
    let now = 1_700_000_000;
    let code = code_at(RFC_SECRET, now, 30, 6);
    assert!(verify(RFC_SECRET, &code, now, 30, 6, 0, None).is_some());
    assert_eq!(verify(RFC_SECRET, &code[..5], now, 30, 6, 0, None), None);
    assert_eq!(
        verify(RFC_SECRET, &format!("{code}0"), now, 30, 6, 0, None),
        None
    );
    assert_eq!(
        verify(RFC_SECRET, &format!(" {}", &code[1..]), now, 30, 6, 0, None),
        None
    );
    assert_eq!(verify(RFC_SECRET, "12345a", now, 30, 6, 0, None), None);
    assert_eq!(verify(RFC_SECRET, "١٢٣٤٥٦", now, 30, 6, 0, None), None);
    assert_eq!(verify(RFC_SECRET, "", now, 30, 6, 0, None), None);
    // Invalid configuration never verifies.
    assert_eq!(verify(RFC_SECRET, &code, now, 0, 6, 0, None), None);
    assert_eq!(verify(RFC_SECRET, "12345", now, 30, 5, 0, None), None);
    assert_eq!(verify(RFC_SECRET, "123456789", now, 30, 9, 0, None), None);
    // Before the epoch there is no step.
    assert_eq!(verify(RFC_SECRET, &code, -1, 30, 6, 0, None), None);
}

#[test]
fn huge_window_is_capped_not_a_dos() {
    let now = 1_700_000_000;
    let code = code_at(RFC_SECRET, now, 30, 6);
    assert!(verify(RFC_SECRET, &code, now, 30, 6, u32::MAX, None).is_some());
}

#[test]
fn other_intervals() {
    let code = code_at(RFC_SECRET, 1_000, 5, 6);
    assert_eq!(verify(RFC_SECRET, &code, 1_004, 5, 6, 0, None), Some(200));
    assert_eq!(verify(RFC_SECRET, &code, 1_005, 5, 6, 0, None), None);
    assert_eq!(
        code_at(RFC_SECRET, 119, 60, 8),
        code_at(RFC_SECRET, 60, 60, 8)
    );
}

#[test]
fn base32_rfc4648_vectors() {
    let vectors = [
        ("", ""),
        ("f", "MY"),
        ("fo", "MZXQ"),
        ("foo", "MZXW6"),
        ("foob", "MZXW6YQ"),
        ("fooba", "MZXW6YTB"),
        ("foobar", "MZXW6YTBOI"),
    ];
    for (plain, enc) in vectors {
        assert_eq!(base32_encode(plain.as_bytes()), enc);
        assert_eq!(base32_decode(enc).unwrap(), plain.as_bytes());
        assert_eq!(
            base32_decode(&enc.to_lowercase()).unwrap(),
            plain.as_bytes()
        );
    }
    assert_eq!(base32_decode("MZXW6===").unwrap(), b"foo");
    assert_eq!(base32_decode("MZXW6YQ=").unwrap(), b"foob");
    assert_eq!(base32_decode("MY======").unwrap(), b"f");
    assert_eq!(base32_decode("MZXW6YTBOI======").unwrap(), b"foobar");
}

#[test]
fn base32_rejects_garbage() {
    assert_eq!(base32_decode("MZXW1"), Err(Base32Error::InvalidChar(4)));
    assert_eq!(base32_decode("MZ XW"), Err(Base32Error::InvalidChar(2)));
    assert_eq!(base32_decode("MZ=W6YQ"), Err(Base32Error::InvalidChar(2)));
    assert_eq!(base32_decode("M"), Err(Base32Error::InvalidLength));
    assert_eq!(base32_decode("MZX"), Err(Base32Error::InvalidLength));
    assert_eq!(base32_decode("MZXW6Y"), Err(Base32Error::InvalidLength));
}

#[test]
fn generated_secret_is_32_base32_chars_of_20_bytes() {
    let e = SeqEntropy::default();
    let a = generate_secret(&e);
    let b = generate_secret(&e);
    assert_eq!(a.len(), 32);
    assert_ne!(a, b);
    assert!(
        a.bytes()
            .all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c))
    );
    assert_eq!(base32_decode(&a).unwrap().len(), totp::SECRET_BYTES);
}

#[test]
fn provisioning_uri_goldens_from_pyotp() {
    let s = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    assert_eq!(
        provisioning_uri(s, "root", "truenas", 30, 6),
        "otpauth://totp/iXsystems:root-truenas%40TrueNAS?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=iXsystems"
    );
    assert_eq!(
        provisioning_uri(s, "alice smith", "nas.local", 60, 8),
        "otpauth://totp/iXsystems:alice%20smith-nas.local%40TrueNAS?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=iXsystems&digits=8&period=60"
    );
    assert_eq!(
        provisioning_uri(s, "bob@x", "h", 45, 7),
        "otpauth://totp/iXsystems:bob%40x-h%40TrueNAS?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=iXsystems&digits=7&period=45"
    );
    assert_eq!(
        provisioning_uri(s, "ü/ß", "host", 30, 6),
        "otpauth://totp/iXsystems:%C3%BC/%C3%9F-host%40TrueNAS?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=iXsystems"
    );
}

#[test]
fn parser_reads_what_provisioning_writes() {
    let s = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let uri = provisioning_uri(s, "alice smith", "nas.local", 60, 8);
    let p = parse_otpauth_uri(&uri).unwrap();
    assert_eq!(p.label, "alice smith-nas.local@TrueNAS");
    assert_eq!(p.secret.as_str(), s);
    assert_eq!(p.issuer.as_deref(), Some("iXsystems"));
    assert_eq!(
        (p.digits, p.period, p.algorithm),
        (8, 60, OtpAlgorithm::Sha1)
    );

    let p = parse_otpauth_uri(&provisioning_uri(s, "root", "nas", 30, 6)).unwrap();
    assert_eq!((p.digits, p.period), (6, 30));
    // Debug never shows the secret.
    assert!(!format!("{p:?}").contains(s));
}

#[test]
fn parser_accepts_reasonable_variants() {
    let p = parse_otpauth_uri(
        "OTPAUTH://TOTP/ACME%3A%20alice?secret=jbswy3dpehpk3pxp===&algorithm=sha256&image=https%3A%2F%2Fx",
    )
    .unwrap();
    assert_eq!(p.label, "alice");
    assert_eq!(p.issuer.as_deref(), Some("ACME"));
    assert_eq!(p.secret.as_str(), "JBSWY3DPEHPK3PXP");
    assert_eq!(p.algorithm, OtpAlgorithm::Sha256);
    let p = parse_otpauth_uri("otpauth://totp/alice?secret=JBSWY3DP&issuer=My+Co").unwrap();
    assert_eq!(p.issuer.as_deref(), Some("My Co"));
}

#[test]
fn parser_rejects_malformed_uris() {
    use OtpAuthError as E;
    let cases: &[(&str, E)] = &[
        ("", E::Scheme),
        ("http://totp/a?secret=JBSWY3DP", E::Scheme),
        ("otpauth:/totp/a?secret=JBSWY3DP", E::Scheme),
        (
            "otpauth://hotp/a?secret=JBSWY3DP&counter=1",
            E::UnsupportedType,
        ),
        ("otpauth://totp", E::Label),
        ("otpauth://totp/a", E::MissingSecret),
        ("otpauth://totp/?secret=JBSWY3DP", E::Label),
        ("otpauth://totp/iss:?secret=JBSWY3DP", E::Label),
        ("otpauth://totp/:a?secret=JBSWY3DP", E::Label),
        ("otpauth://totp/a%2?secret=JBSWY3DP", E::PercentEncoding),
        ("otpauth://totp/a%zz?secret=JBSWY3DP", E::PercentEncoding),
        ("otpauth://totp/a%FF?secret=JBSWY3DP", E::Text),
        ("otpauth://totp/a%0A?secret=JBSWY3DP", E::Text),
        ("otpauth://totp/a?secret=JBSWY3DP#frag", E::Fragment),
        ("otpauth://totp/a?secret", E::Parameter),
        ("otpauth://totp/a?secret=JBSWY3DP&&digits=6", E::Parameter),
        ("otpauth://totp/a?=x&secret=JBSWY3DP", E::Parameter),
        ("otpauth://totp/a?issuer=x", E::MissingSecret),
        ("otpauth://totp/a?secret=", E::Secret),
        ("otpauth://totp/a?secret=JBSWY3D1", E::Secret),
        ("otpauth://totp/a?secret=J", E::Secret),
        (
            "otpauth://totp/a?secret=JBSWY3DP&secret=JBSWY3DP",
            E::Duplicate("secret".into()),
        ),
        (
            "otpauth://totp/A:a?secret=JBSWY3DP&issuer=B",
            E::IssuerMismatch,
        ),
        ("otpauth://totp/a?secret=JBSWY3DP&issuer=", E::Parameter),
        ("otpauth://totp/a?secret=JBSWY3DP&digits=5", E::Digits),
        ("otpauth://totp/a?secret=JBSWY3DP&digits=9", E::Digits),
        ("otpauth://totp/a?secret=JBSWY3DP&digits=+6", E::Digits),
        ("otpauth://totp/a?secret=JBSWY3DP&digits=", E::Digits),
        ("otpauth://totp/a?secret=JBSWY3DP&period=0", E::Period),
        ("otpauth://totp/a?secret=JBSWY3DP&period=-30", E::Period),
        (
            "otpauth://totp/a?secret=JBSWY3DP&period=99999999999",
            E::Period,
        ),
        (
            "otpauth://totp/a?secret=JBSWY3DP&algorithm=MD5",
            E::Algorithm,
        ),
    ];
    for (uri, want) in cases {
        assert_eq!(parse_otpauth_uri(uri).as_ref().err(), Some(want), "{uri}");
    }
    let long = format!("otpauth://totp/a?secret=JBSWY3DP&x={}", "a".repeat(5000));
    assert_eq!(parse_otpauth_uri(&long).err(), Some(E::TooLong));
}

proptest! {
    #[test]
    fn base32_round_trips(data in proptest::collection::vec(any::<u8>(), 0..64)) {
        let enc = base32_encode(&data);
        prop_assert!(!enc.contains('='));
        prop_assert_eq!(base32_decode(&enc).unwrap(), data.clone());
        prop_assert_eq!(base32_decode(&enc.to_lowercase()).unwrap(), data.clone());
        let padded = format!("{enc}{}", "=".repeat((8 - enc.len() % 8) % 8));
        prop_assert_eq!(base32_decode(&padded).unwrap(), data);
    }

    #[test]
    fn base32_decode_never_panics(s in "\\PC{0,64}") {
        let _ = base32_decode(&s);
    }

    #[test]
    fn otpauth_parser_never_panics(s in "\\PC{0,200}") {
        let _ = parse_otpauth_uri(&s);
    }

    #[test]
    fn otpauth_parser_never_panics_near_valid(
        label in "[a-zA-Z0-9%:@. +-]{0,20}",
        query in "[a-zA-Z0-9=&%+#.-]{0,60}",
    ) {
        let _ = parse_otpauth_uri(&format!("otpauth://totp/{label}?{query}"));
    }

    #[test]
    fn provisioning_uri_always_parses(
        user in "\\PC{1,16}",
        host in "[a-z0-9.-]{1,16}",
        interval in 1u32..=3600,
        digits in 6u32..=8,
    ) {
        let secret = generate_secret(&SeqEntropy::default());
        let uri = provisioning_uri(&secret, &user, &host, interval, digits);
        let p = parse_otpauth_uri(&uri).unwrap();
        prop_assert_eq!(p.digits, digits);
        prop_assert_eq!(p.period, interval);
        prop_assert_eq!(p.secret.as_str(), secret.as_str());
    }

    #[test]
    fn a_code_verifies_at_its_own_time(t in 0i64..=4_000_000_000, interval in 1u32..=120, digits in 6u32..=8) {
        let code = code_at(RFC_SECRET, t, interval, digits);
        prop_assert_eq!(code.len(), digits as usize);
        prop_assert_eq!(verify(RFC_SECRET, &code, t, interval, digits, 0, None), Some((t / i64::from(interval)) as u64));
    }
}
