//! TOTP (RFC 6238, HMAC-SHA1) as TrueNAS configures it per user (spec §3.7), plus base32 and
//! the `otpauth://` provisioning URI.
//!
//! [`verify`] returns the matched time step instead of a bool because a code is only
//! single-use if the caller remembers the last accepted step and passes it back (peers §0
//! item 3); it refuses any step at or before that one.

use hmac::digest::generic_array::GenericArray;
use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::Entropy;

/// Fewest digits a code may have (TrueNAS `otp_digits` 6..8).
pub const MIN_DIGITS: u32 = 6;
/// Most digits a code may have.
pub const MAX_DIGITS: u32 = 8;
/// TOTP step TrueNAS uses unless configured otherwise.
pub const DEFAULT_INTERVAL: u32 = 30;
/// Code length TrueNAS uses unless configured otherwise.
pub const DEFAULT_DIGITS: u32 = 6;
/// [`verify`] treats larger windows as this: (2w+1) HMACs per attempt must stay cheap even
/// if the stored configuration is absurd.
pub const MAX_WINDOW: u32 = 100;
/// Random bytes in a generated secret (pyotp `random_base32()`: 160 bits, 32 characters).
pub const SECRET_BYTES: usize = 20;
/// Longest `otpauth://` URI [`parse_otpauth_uri`] looks at.
pub const MAX_URI_LEN: usize = 4096;

const B32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Why a base32 string could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Base32Error {
    #[error("invalid base32 character at offset {0}")]
    InvalidChar(usize),
    #[error("invalid base32 length")]
    InvalidLength,
}

/// Why an `otpauth://` URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtpAuthError {
    #[error("URI is too long")]
    TooLong,
    #[error("not an otpauth:// URI")]
    Scheme,
    #[error("unsupported OTP type (only totp)")]
    UnsupportedType,
    #[error("missing or empty label")]
    Label,
    #[error("invalid percent-encoding")]
    PercentEncoding,
    #[error("label or parameter is not valid UTF-8 text")]
    Text,
    #[error("fragments are not allowed")]
    Fragment,
    #[error("malformed query parameter")]
    Parameter,
    #[error("duplicate parameter {0:?}")]
    Duplicate(String),
    #[error("missing secret")]
    MissingSecret,
    #[error("invalid secret")]
    Secret,
    #[error("issuer parameter does not match the label prefix")]
    IssuerMismatch,
    #[error("digits must be 6, 7 or 8")]
    Digits,
    #[error("period must be a positive integer")]
    Period,
    #[error("unsupported algorithm")]
    Algorithm,
}

/// HMAC algorithm named by an `otpauth://` URI. TrueNAS only issues SHA1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpAlgorithm {
    Sha1,
    Sha256,
    Sha512,
}

/// A parsed `otpauth://totp/...` URI.
#[derive(Clone, PartialEq, Eq)]
pub struct OtpAuth {
    /// The account name: the decoded label without its `issuer:` prefix.
    pub label: String,
    /// The secret, base32, upper case, without padding; verified to decode.
    pub secret: Zeroizing<String>,
    /// The `issuer` parameter, else the label prefix.
    pub issuer: Option<String>,
    pub digits: u32,
    pub period: u32,
    pub algorithm: OtpAlgorithm,
}

impl std::fmt::Debug for OtpAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtpAuth")
            .field("label", &self.label)
            .field("secret", &"<redacted>")
            .field("issuer", &self.issuer)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

/// HMAC-SHA1 with an infallible constructor: keys up to the 64-byte block are zero-padded,
/// longer ones hashed first, exactly as HMAC itself does.
fn hmac_sha1(key: &[u8], msg: &[u8]) -> [u8; 20] {
    let mut block = Zeroizing::new([0u8; 64]);
    if key.len() > block.len() {
        block[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut mac = <Hmac<Sha1> as hmac::digest::KeyInit>::new(&GenericArray::from(*block));
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// RFC 4226 HOTP value for `counter`, `digits` long (zero-padded).
fn hotp(secret: &[u8], counter: u64, digits: u32) -> String {
    let mac = hmac_sha1(secret, &counter.to_be_bytes());
    let offset = usize::from(mac[19] & 0x0f);
    let bin = (u32::from(mac[offset] & 0x7f) << 24)
        | (u32::from(mac[offset + 1]) << 16)
        | (u32::from(mac[offset + 2]) << 8)
        | u32::from(mac[offset + 3]);
    let code = bin % 10u32.pow(digits);
    format!("{code:0width$}", width = digits as usize)
}

/// The time step containing `unix`; `None` before the epoch.
pub fn time_step(unix: i64, interval: u32) -> Option<u64> {
    let step = unix.div_euclid(i64::from(interval.max(1)));
    u64::try_from(step).ok()
}

/// Whether `interval`/`digits` are a configuration TOTP can use.
pub fn params_valid(interval: u32, digits: u32) -> bool {
    interval >= 1 && (MIN_DIGITS..=MAX_DIGITS).contains(&digits)
}

/// The code for the step containing `unix`.
///
/// Infallible by clamping: `digits` outside 6..=8 is clamped into it, an interval of 0 acts as
/// 1 and times before the epoch as step 0. Check configurations with [`params_valid`];
/// [`verify`] refuses invalid ones outright.
pub fn code_at(secret: &[u8], unix: i64, interval: u32, digits: u32) -> String {
    let digits = digits.clamp(MIN_DIGITS, MAX_DIGITS);
    hotp(secret, time_step(unix, interval).unwrap_or(0), digits)
}

/// Checks `code` against steps `current ± window` and returns the matching step.
///
/// Refuses: invalid parameters, codes of the wrong length or with non-digits, and any step
/// `<= last_used_step` (replay). Every candidate step is computed and compared in constant
/// time, so timing does not reveal which step (if any) matched. If two steps collide on the
/// same code, the earliest acceptable one is returned.
pub fn verify(
    secret: &[u8],
    code: &str,
    unix: i64,
    interval: u32,
    digits: u32,
    window: u32,
    last_used_step: Option<u64>,
) -> Option<u64> {
    if !params_valid(interval, digits)
        || code.len() != digits as usize
        || !code.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let current = time_step(unix, interval)?;
    let window = u64::from(window.min(MAX_WINDOW));
    let mut found: Option<u64> = None;
    for step in current.saturating_sub(window)..=current.saturating_add(window) {
        let candidate = hotp(secret, step, digits);
        let matches: bool = candidate.as_bytes().ct_eq(code.as_bytes()).into();
        let fresh = last_used_step.is_none_or(|last| step > last);
        if matches && fresh && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// RFC 4648 base32, upper case, no padding (pyotp's form).
pub fn base32_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &byte in data {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(B32_ALPHABET[((buffer >> bits) & 31) as usize]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(
            B32_ALPHABET[((buffer << (5 - bits)) & 31) as usize],
        ));
    }
    out
}

/// RFC 4648 base32 decode: case-insensitive, trailing `=` optional. Like Python's
/// `b32decode` (which pyotp uses), leftover low bits are ignored.
pub fn base32_decode(s: &str) -> Result<Vec<u8>, Base32Error> {
    // pyotp pads short input itself, so any amount of trailing padding is tolerated.
    let data = s.trim_end_matches('=');
    if matches!(data.len() % 8, 1 | 3 | 6) {
        return Err(Base32Error::InvalidLength);
    }
    let mut out = Vec::with_capacity(data.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for (i, c) in data.bytes().enumerate() {
        let v = match c.to_ascii_uppercase() {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return Err(Base32Error::InvalidChar(i)),
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
        buffer &= (1 << bits) - 1;
    }
    Ok(out)
}

/// Decodes a stored base32 secret into bytes that are wiped on drop.
pub fn decode_secret(secret_b32: &str) -> Result<Zeroizing<Vec<u8>>, Base32Error> {
    base32_decode(secret_b32).map(Zeroizing::new)
}

/// A fresh 160-bit secret as 32 base32 characters (pyotp `random_base32()`).
pub fn generate_secret(entropy: &dyn Entropy) -> String {
    let mut bytes = Zeroizing::new([0u8; SECRET_BYTES]);
    entropy.fill(bytes.as_mut_slice());
    base32_encode(bytes.as_slice())
}

/// Python `urllib.parse.quote(s, safe)`: UTF-8, `%XX` upper case; letters, digits, `_.-~`
/// and the `safe` bytes pass through.
fn url_quote(s: &str, safe: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~".contains(&b) || safe.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The URI TrueNAS hands to authenticator apps (`user.provisioning_uri`): pyotp's
/// `provisioning_uri(name=f"{username}-{hostname}@TrueNAS", issuer_name="iXsystems")`.
pub fn provisioning_uri(
    secret_b32: &str,
    username: &str,
    hostname: &str,
    interval: u32,
    digits: u32,
) -> String {
    let name = format!("{username}-{hostname}@TrueNAS");
    let mut uri = format!(
        "otpauth://totp/iXsystems:{}?secret={}&issuer=iXsystems",
        url_quote(&name, b"/"),
        url_quote(secret_b32, b"")
    );
    if digits != DEFAULT_DIGITS {
        uri.push_str(&format!("&digits={digits}"));
    }
    if interval != DEFAULT_INTERVAL {
        uri.push_str(&format!("&period={interval}"));
    }
    uri
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Strict percent-decoding to UTF-8 text without control characters. `plus_is_space` applies
/// form encoding (query values); paths keep `+` literal.
fn percent_decode(s: &str, plus_is_space: bool) -> Result<String, OtpAuthError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_val);
                let lo = bytes.get(i + 2).copied().and_then(hex_val);
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push(h << 4 | l),
                    _ => return Err(OtpAuthError::PercentEncoding),
                }
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    let text = String::from_utf8(out).map_err(|_| OtpAuthError::Text)?;
    if text.chars().any(char::is_control) {
        return Err(OtpAuthError::Text);
    }
    Ok(text)
}

fn parse_small_uint(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses an `otpauth://totp/<label>?<params>` URI strictly (Google Key URI format).
///
/// Refused: other schemes or types, empty labels, bad percent-encoding, non-UTF-8 or control
/// characters, fragments, parameters without `=`, duplicated known parameters, a missing or
/// undecodable secret, an `issuer` that contradicts the label prefix, digits outside 6..=8,
/// a zero period, unknown algorithms. Unknown parameters (e.g. `image`) are ignored.
pub fn parse_otpauth_uri(uri: &str) -> Result<OtpAuth, OtpAuthError> {
    if uri.len() > MAX_URI_LEN {
        return Err(OtpAuthError::TooLong);
    }
    const SCHEME: &str = "otpauth://";
    let rest = match uri.get(..SCHEME.len()) {
        Some(p) if p.eq_ignore_ascii_case(SCHEME) => &uri[SCHEME.len()..],
        _ => return Err(OtpAuthError::Scheme),
    };
    if rest.contains('#') {
        return Err(OtpAuthError::Fragment);
    }
    let (otp_type, rest) = rest.split_once('/').ok_or(OtpAuthError::Label)?;
    if !otp_type.eq_ignore_ascii_case("totp") {
        return Err(OtpAuthError::UnsupportedType);
    }
    let (raw_label, query) = rest.split_once('?').ok_or(OtpAuthError::MissingSecret)?;
    let label = percent_decode(raw_label, false)?;
    let (prefix, account) = match label.split_once(':') {
        Some((issuer, account)) => (Some(issuer.to_owned()), account.trim_start_matches(' ')),
        None => (None, label.as_str()),
    };
    if account.is_empty() || prefix.as_deref() == Some("") {
        return Err(OtpAuthError::Label);
    }

    let mut secret = None;
    let mut issuer = None;
    let mut digits = None;
    let mut period = None;
    let mut algorithm = None;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').ok_or(OtpAuthError::Parameter)?;
        if key.is_empty() {
            return Err(OtpAuthError::Parameter);
        }
        let key = percent_decode(key, true)?;
        let value = percent_decode(value, true)?;
        let slot = match key.as_str() {
            "secret" => &mut secret,
            "issuer" => &mut issuer,
            "digits" => &mut digits,
            "period" => &mut period,
            "algorithm" => &mut algorithm,
            _ => continue,
        };
        if slot.is_some() {
            return Err(OtpAuthError::Duplicate(key));
        }
        *slot = Some(value);
    }

    let secret = Zeroizing::new(secret.ok_or(OtpAuthError::MissingSecret)?);
    let normalized = Zeroizing::new(secret.trim_end_matches('=').to_ascii_uppercase());
    match decode_secret(&secret) {
        Ok(bytes) if !bytes.is_empty() => {}
        _ => return Err(OtpAuthError::Secret),
    }
    if let (Some(p), Some(i)) = (&prefix, &issuer)
        && p != i
    {
        return Err(OtpAuthError::IssuerMismatch);
    }
    if issuer.as_deref() == Some("") {
        return Err(OtpAuthError::Parameter);
    }
    let digits = match digits {
        None => DEFAULT_DIGITS,
        Some(d) => parse_small_uint(&d)
            .filter(|d| (MIN_DIGITS..=MAX_DIGITS).contains(d))
            .ok_or(OtpAuthError::Digits)?,
    };
    let period = match period {
        None => DEFAULT_INTERVAL,
        Some(p) => parse_small_uint(&p)
            .filter(|p| *p >= 1)
            .ok_or(OtpAuthError::Period)?,
    };
    let algorithm = match algorithm.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None | Some("SHA1") => OtpAlgorithm::Sha1,
        Some("SHA256") => OtpAlgorithm::Sha256,
        Some("SHA512") => OtpAlgorithm::Sha512,
        Some(_) => return Err(OtpAuthError::Algorithm),
    };
    Ok(OtpAuth {
        label: account.to_owned(),
        secret: normalized,
        issuer: issuer.or(prefix),
        digits,
        period,
        algorithm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4226_hotp_vectors() {
        // RFC 4226 Appendix D, secret "12345678901234567890", 6 digits.
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, want) in expected.iter().enumerate() {
            assert_eq!(hotp(b"12345678901234567890", counter as u64, 6), *want);
        }
    }

    #[test]
    fn hmac_sha1_matches_library_for_long_keys() {
        for len in [0usize, 20, 64, 65, 200] {
            let key = vec![7u8; len];
            let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(&key).unwrap();
            mac.update(b"x");
            let want: [u8; 20] = mac.finalize().into_bytes().into();
            assert_eq!(hmac_sha1(&key, b"x"), want);
        }
    }

    #[test]
    fn url_quote_matches_python() {
        assert_eq!(url_quote("a b/c@d~e", b"/"), "a%20b/c%40d~e");
        assert_eq!(url_quote("a/b", b""), "a%2Fb");
        assert_eq!(url_quote("ü", b"/"), "%C3%BC");
    }
}
