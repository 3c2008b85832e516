//! API keys: the raw `<id>-<64 alnum>` format, generation, and the stored material (spec §4).
//!
//! TrueNAS 26 stores SCRAM-SHA-512 keys derived from PBKDF2-HMAC-SHA512 over the key part, so
//! the same record serves both `API_KEY_PLAIN` (derive and compare, [`verify_plain`]) and SCRAM
//! (see [`crate::scram`]). 25.x stored the PBKDF2 output itself as a `$pbkdf2-sha512$` string;
//! that form is kept for imports ([`verify_legacy_hash`], [`legacy_hash_to_scram`]).
//!
//! The 500 000 PBKDF2 iterations cost ~0.3 s of CPU per check by design, hence
//! [`cache_digest`]: the server may remember SHA-256 of a key it has already verified.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::Entropy;
pub use crate::scram::ScramKeys;

/// PBKDF2 iterations TrueNAS uses for API keys (25.x and 26+).
pub const DEFAULT_ITERATIONS: u32 = 500_000;
/// Verification refuses stored iteration counts above this (the TrueNAS client library's
/// ceiling): a tampered record must not be able to pin a CPU for minutes.
pub const MAX_ITERATIONS: u32 = 5_000_000;
/// Length of the random part of a raw key.
pub const KEY_PART_LEN: usize = 64;
/// Length of the ASCII salt.
pub const SALT_LEN: usize = 16;

const ALNUM: &[u8; 62] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// Python `string.ascii_letters + string.digits + "./"`, as TrueNAS `generate_string` uses.
const SALT_CHARS: &[u8; 64] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789./";

/// Why a raw key string was refused. The messages are the `api_key.convert_raw_key`
/// validation texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyParseError {
    #[error("Not a valid raw API key")]
    NotRawKey,
    #[error("Invalid key id")]
    InvalidId,
    #[error("Unexpected key size.")]
    UnexpectedSize,
}

/// Why a stored legacy hash could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LegacyHashError {
    #[error("not a $pbkdf2-sha512$ hash")]
    Format,
    #[error("iteration count out of range")]
    Iterations,
    #[error("invalid base64 in hash")]
    Base64,
}

/// 64 characters from `[A-Za-z0-9]`. Rejection sampling (bytes ≥ 248 are discarded) keeps
/// every character equally likely; a plain `% 62` would favour the first 8.
pub fn generate_key_part(entropy: &dyn Entropy) -> String {
    let mut out = String::with_capacity(KEY_PART_LEN);
    let mut buf = Zeroizing::new([0u8; 96]);
    while out.len() < KEY_PART_LEN {
        entropy.fill(buf.as_mut_slice());
        for &b in buf.iter() {
            if b < 248 && out.len() < KEY_PART_LEN {
                out.push(char::from(ALNUM[usize::from(b % 62)]));
            }
        }
    }
    out
}

/// 16 characters from `[A-Za-z0-9./]`. The alphabet has 64 symbols, so `b & 63` is unbiased.
pub fn generate_salt(entropy: &dyn Entropy) -> String {
    let mut buf = [0u8; SALT_LEN];
    entropy.fill(&mut buf);
    buf.iter()
        .map(|&b| char::from(SALT_CHARS[usize::from(b & 63)]))
        .collect()
}

/// Splits `"<id>-<key>"` on the first `-` (spec §4.4). The id must be a positive decimal
/// integer and the key part exactly 64 ASCII alphanumerics. The caller strips whitespace,
/// as `convert_raw_key` does.
pub fn parse_raw_key(raw: &str) -> Result<(i64, &str), KeyParseError> {
    let (id, key) = raw.split_once('-').ok_or(KeyParseError::NotRawKey)?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(KeyParseError::NotRawKey);
    }
    // All digits, so the only parse failure left is overflow: an id no database holds.
    let id: i64 = id.parse().map_err(|_| KeyParseError::InvalidId)?;
    if id <= 0 {
        return Err(KeyParseError::InvalidId);
    }
    if key.len() != KEY_PART_LEN {
        return Err(KeyParseError::UnexpectedSize);
    }
    if !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(KeyParseError::NotRawKey);
    }
    Ok((id, key))
}

/// PBKDF2-HMAC-SHA512(key part, salt, iterations): the SCRAM SaltedPassword.
fn salted_password(key_part: &str, salt_ascii: &[u8], iterations: u32) -> Zeroizing<[u8; 64]> {
    let mut out = Zeroizing::new([0u8; 64]);
    pbkdf2::pbkdf2_hmac::<Sha512>(
        key_part.as_bytes(),
        salt_ascii,
        iterations,
        out.as_mut_slice(),
    );
    out
}

/// The SCRAM material TrueNAS 26 stores for a key (`generate_scram_data`).
///
/// `iterations` is passed through unchecked (0 behaves as 1); [`verify_plain`] bounds it.
pub fn derive(key_part: &str, salt_ascii: &[u8], iterations: u32) -> ScramKeys {
    ScramKeys::from_salted_password(salted_password(key_part, salt_ascii, iterations).as_slice())
}

/// The stored `salt` field: base64 of the ASCII salt bytes.
pub fn salt_field(salt_ascii: &[u8]) -> String {
    B64.encode(salt_ascii)
}

/// `API_KEY_PLAIN` against 26+ material: H(ClientKey) == StoredKey, in constant time.
pub fn verify_plain(key_part: &str, salt_ascii: &[u8], iterations: u32, stored_key: &[u8]) -> bool {
    if !(1..=MAX_ITERATIONS).contains(&iterations) {
        return false;
    }
    let keys = derive(key_part, salt_ascii, iterations);
    keys.stored_key.as_slice().ct_eq(stored_key).into()
}

/// The 25.x stored form: `$pbkdf2-sha512$<iterations>$<b64(salt)>$<b64(hash)>` (standard,
/// padded base64, as Python's `b64encode`).
pub fn legacy_pbkdf2_sha512_hash(key_part: &str, salt_ascii: &[u8], iterations: u32) -> String {
    let hash = salted_password(key_part, salt_ascii, iterations);
    format!(
        "$pbkdf2-sha512${iterations}${}${}",
        B64.encode(salt_ascii),
        B64.encode(hash.as_slice())
    )
}

/// Accepts base64 with or without padding: the 24.10 passlib form drops it.
fn b64_lenient(s: &str) -> Result<Vec<u8>, LegacyHashError> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    LENIENT.decode(s).map_err(|_| LegacyHashError::Base64)
}

struct LegacyHash {
    sha256: bool,
    iterations: u32,
    salt: Vec<u8>,
    hash: Zeroizing<Vec<u8>>,
}

fn parse_legacy(stored: &str) -> Result<LegacyHash, LegacyHashError> {
    let mut parts = stored.split('$');
    if parts.next() != Some("") {
        return Err(LegacyHashError::Format);
    }
    let sha256 = match parts.next() {
        Some("pbkdf2-sha512") => false,
        Some("pbkdf2-sha256") => true,
        _ => return Err(LegacyHashError::Format),
    };
    let (Some(iter_s), Some(salt_s), Some(hash_s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(LegacyHashError::Format);
    };
    if iter_s.is_empty() || !iter_s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LegacyHashError::Format);
    }
    let iterations: u32 = iter_s.parse().map_err(|_| LegacyHashError::Iterations)?;
    if !(1..=MAX_ITERATIONS).contains(&iterations) {
        return Err(LegacyHashError::Iterations);
    }
    // passlib's "ab64" (24.10) writes '.' for '+'.
    let (salt, hash) = if sha256 {
        (
            b64_lenient(&salt_s.replace('.', "+"))?,
            b64_lenient(&hash_s.replace('.', "+"))?,
        )
    } else {
        (b64_lenient(salt_s)?, b64_lenient(hash_s)?)
    };
    let expected_len = if sha256 { 32 } else { 64 };
    if hash.len() != expected_len || salt.is_empty() {
        return Err(LegacyHashError::Format);
    }
    Ok(LegacyHash {
        sha256,
        iterations,
        salt,
        hash: Zeroizing::new(hash),
    })
}

/// Verifies a key part against an imported 25.x `$pbkdf2-sha512$` hash, or a 24.10 passlib
/// `$pbkdf2-sha256$` one. Malformed strings are `false`, never a panic.
pub fn verify_legacy_hash(key_part: &str, stored: &str) -> bool {
    let Ok(parsed) = parse_legacy(stored) else {
        return false;
    };
    if parsed.sha256 {
        let mut out = Zeroizing::new([0u8; 32]);
        pbkdf2::pbkdf2_hmac::<Sha256>(
            key_part.as_bytes(),
            &parsed.salt,
            parsed.iterations,
            out.as_mut_slice(),
        );
        out.as_slice().ct_eq(parsed.hash.as_slice()).into()
    } else {
        let out = salted_password(key_part, &parsed.salt, parsed.iterations);
        out.as_slice().ct_eq(parsed.hash.as_slice()).into()
    }
}

/// 26+ material converted from a 25.x hash, without knowing the key.
#[derive(Debug)]
pub struct ConvertedLegacy {
    pub salt_ascii: Vec<u8>,
    pub iterations: u32,
    /// Includes `client_key`, which the server should not keep; store only stored/server keys.
    pub keys: ScramKeys,
}

/// The 25.x hash *is* the SCRAM SaltedPassword, so it converts to 26+ material directly
/// (TrueNAS `legacy_api_key_hash_string_to_scram_server_data`). `$pbkdf2-sha256$` hashes
/// cannot be converted (TrueNAS revokes them).
pub fn legacy_hash_to_scram(stored: &str) -> Result<ConvertedLegacy, LegacyHashError> {
    let mut parsed = parse_legacy(stored)?;
    if parsed.sha256 {
        return Err(LegacyHashError::Format);
    }
    let keys = ScramKeys::from_salted_password(&parsed.hash);
    parsed.hash.zeroize();
    Ok(ConvertedLegacy {
        salt_ascii: parsed.salt,
        iterations: parsed.iterations,
        keys,
    })
}

/// SHA-256 of the whole raw key, the lookup key of the server's verified-key cache.
/// A fast hash is enough for a 381-bit random secret (peers report §0 item 2).
pub fn cache_digest(raw_key: &str) -> [u8; 32] {
    Sha256::digest(raw_key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salt_alphabet_has_64_distinct_symbols() {
        let mut v = SALT_CHARS.to_vec();
        v.sort_unstable();
        v.dedup();
        assert_eq!(v.len(), 64);
        let mut a = ALNUM.to_vec();
        a.sort_unstable();
        a.dedup();
        assert_eq!(a.len(), 62);
    }
}
