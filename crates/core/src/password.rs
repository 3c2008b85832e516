//! Local account passwords.
//!
//! New hashes are Argon2id in PHC form with the RustCrypto defaults (m=19456 KiB, t=2, p=1:
//! ~20 ms, against ~270 ms for TrueNAS's 656 000-round SHA-512-crypt, peers §E.2).
//! Imported TrueNAS accounts keep their `$6$` hashes until [`needs_rehash`] says to upgrade
//! them at the next successful login.
//!
//! Stored strings come from our own database, but a tampered or corrupted row must still
//! not crash or stall the server: malformed strings verify as `false`, and cost parameters
//! are capped (see the `MAX_*` constants).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::Entropy;

/// Random salt bytes for new Argon2id hashes (the PHC recommendation).
pub const SALT_BYTES: usize = 16;
/// Largest Argon2 memory cost (KiB) [`verify_password`] will run: 256 MiB.
pub const MAX_ARGON2_M_COST: u32 = 256 * 1024;
/// Largest Argon2 time cost [`verify_password`] will run.
pub const MAX_ARGON2_T_COST: u32 = 16;
/// Largest Argon2 parallelism [`verify_password`] will run.
pub const MAX_ARGON2_P_COST: u32 = 16;
/// Largest SHA-512-crypt round count [`verify_password`] will run (~2 s). TrueNAS uses
/// 656 000; glibc allows up to 999 999 999, which a tampered row could use to stall us.
pub const MAX_SHA512_ROUNDS: usize = 5_000_000;

/// An Argon2id hash (default parameters) of a random password that was thrown away; [`dummy_verify`]
/// checks against it so unknown users cost as much as known ones.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$Nb9LDfxYDacWYSBm0hccKg$dyqbJxgPKbMztfX53H1CCjkM32PFrYQjaEch2c0/rrI";

/// Why hashing failed (only on internal errors: the inputs cannot make Argon2 fail).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// The scheme of a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKind {
    Argon2id,
    Sha512Crypt,
}

/// Which scheme a stored string claims to use (without validating it).
pub fn hash_kind(stored: &str) -> Option<HashKind> {
    if stored.starts_with("$argon2id$") {
        Some(HashKind::Argon2id)
    } else if stored.starts_with("$6$") {
        Some(HashKind::Sha512Crypt)
    } else {
        None
    }
}

/// Argon2id (RustCrypto defaults) over `password` with a 16-byte salt from `entropy`.
pub fn hash_password(password: &str, entropy: &dyn Entropy) -> Result<String, PasswordError> {
    let mut salt_bytes = Zeroizing::new([0u8; SALT_BYTES]);
    entropy.fill(salt_bytes.as_mut_slice());
    let salt = SaltString::encode_b64(salt_bytes.as_slice())
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Checks `password` against a stored `$argon2id$…` or `$6$[rounds=N$]salt$hash` string.
/// Anything else, or anything malformed, is `false`.
pub fn verify_password(password: &str, stored: &str) -> bool {
    match hash_kind(stored) {
        Some(HashKind::Argon2id) => verify_argon2id(password, stored),
        Some(HashKind::Sha512Crypt) => verify_sha512_crypt(password, stored),
        None => false,
    }
}

/// Whether a stored hash should be replaced by a fresh [`hash_password`] after the next
/// successful login: anything that is not Argon2id with at least the default costs.
pub fn needs_rehash(stored: &str) -> bool {
    let Ok(hash) = PasswordHash::new(stored) else {
        return true;
    };
    let Ok(params) = Params::try_from(&hash) else {
        return true;
    };
    let defaults = Params::default();
    hash.algorithm != Algorithm::Argon2id.ident()
        || params.m_cost() < defaults.m_cost()
        || params.t_cost() < defaults.t_cost()
}

fn verify_argon2id(password: &str, stored: &str) -> bool {
    let Ok(hash) = PasswordHash::new(stored) else {
        return false;
    };
    if hash.algorithm != Algorithm::Argon2id.ident() {
        return false;
    }
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    if params.m_cost() > MAX_ARGON2_M_COST
        || params.t_cost() > MAX_ARGON2_T_COST
        || params.p_cost() > MAX_ARGON2_P_COST
    {
        return false;
    }
    // The hash's own version and parameters are used; the output comparison inside
    // password-hash is constant-time.
    Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_ok()
}

/// `$6$[rounds=N$]salt$hash`, as glibc/libxcrypt write it. Rounds outside 1000..=MAX are
/// refused (libxcrypt itself refuses < 1000).
fn verify_sha512_crypt(password: &str, stored: &str) -> bool {
    let Some(rest) = stored.strip_prefix("$6$") else {
        return false;
    };
    let (rounds, rest) = match rest.strip_prefix("rounds=") {
        Some(r) => {
            let Some((n, rest)) = r.split_once('$') else {
                return false;
            };
            if n.is_empty() || n.len() > 9 || !n.bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
            let Ok(n) = n.parse::<usize>() else {
                return false;
            };
            (n, rest)
        }
        None => (sha_crypt::ROUNDS_DEFAULT, rest),
    };
    if rounds > MAX_SHA512_ROUNDS {
        return false;
    }
    let Ok(params) = sha_crypt::Sha512Params::new(rounds) else {
        return false;
    };
    let Some((salt, hash)) = rest.split_once('$') else {
        return false;
    };
    // crypt salts are at most 16 characters and never contain '$'; the hash is 86 chars of
    // the crypt base64 alphabet.
    if salt.len() > 16 || hash.len() != 86 || hash.contains('$') {
        return false;
    }
    let Ok(computed) = sha_crypt::sha512_crypt_b64(password.as_bytes(), salt.as_bytes(), &params)
    else {
        return false;
    };
    let computed = Zeroizing::new(computed);
    computed.as_bytes().ct_eq(hash.as_bytes()).into()
}

/// Runs one Argon2id verification with default parameters and discards the result, so a
/// login for an unknown user takes as long as a wrong password for an Argon2id account.
/// (Accounts still on 656 000-round `$6$` hashes are slower; they converge after rehash.)
pub fn dummy_verify(password: &str) {
    std::hint::black_box(verify_argon2id(password, DUMMY_HASH));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummy_hash_uses_default_cost() {
        let hash = PasswordHash::new(DUMMY_HASH).unwrap();
        assert_eq!(hash.algorithm, Algorithm::Argon2id.ident());
        let params = Params::try_from(&hash).unwrap();
        let defaults = Params::default();
        assert_eq!(params.m_cost(), defaults.m_cost());
        assert_eq!(params.t_cost(), defaults.t_cost());
        assert_eq!(params.p_cost(), defaults.p_cost());
        assert!(!needs_rehash(DUMMY_HASH));
        assert!(!verify_password("", DUMMY_HASH));
    }
}
