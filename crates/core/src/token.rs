//! Authentication tokens (`auth.generate_token`, spec §3.1).
//!
//! Tokens are 48 random bytes, so a fast hash is as good as a KDF (peers §0 item 2): the
//! manager keys entries by SHA-256 and never keeps the token itself, so a memory dump does
//! not yield usable tokens. Time is passed in (`now_ms`, monotonic) and expired entries are
//! dropped lazily on access, as TrueNAS does.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::Entropy;

/// Random bytes per token (`secrets.token_urlsafe(48)`).
pub const TOKEN_BYTES: usize = 48;
/// Characters per token (48 bytes in unpadded URL-safe base64).
pub const TOKEN_LEN: usize = 64;
/// TTL when the caller passes `null`.
pub const DEFAULT_TTL_SECS: i64 = 600;

/// SHA-256 of a token: the only form the manager stores.
pub type TokenDigest = [u8; 32];

/// Fresh tokens tried before [`TokenManager::create`] gives up.
const CREATE_ATTEMPTS: usize = 4;

/// Why a token could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("entropy source returned a token that already exists")]
    EntropyRepeated,
}

/// A new random token: 48 bytes → 64 URL-safe base64 characters, no padding.
pub fn generate_token(entropy: &dyn Entropy) -> String {
    let mut bytes = Zeroizing::new([0u8; TOKEN_BYTES]);
    entropy.fill(bytes.as_mut_slice());
    URL_SAFE_NO_PAD.encode(bytes.as_slice())
}

/// SHA-256 of the token's UTF-8 bytes.
pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether a token created from one connection origin may be used from another. The server
/// supplies the origin type; TrueNAS compares the IP (not the port) for TCP and uid+gid for
/// UNIX sockets.
pub trait OriginMatch {
    fn matches(&self, other: &Self) -> bool;
}

/// Everything `create` needs besides the clock and the randomness.
#[derive(Debug, Clone)]
pub struct NewToken<O, P> {
    /// Seconds of inactivity before expiry; negative gives an already-expired token (as
    /// TrueNAS, which does not validate it).
    pub ttl_secs: i64,
    /// Free-form; non-empty attrs mark download/upload tokens that cannot log in.
    pub attrs: serde_json::Value,
    pub match_origin: bool,
    pub single_use: bool,
    /// The creator's connection origin.
    pub origin: O,
    /// The credential the token acts for (the creator's root credential).
    pub parent: P,
    /// The creating session, for `destroy_for_session`.
    pub session_id: String,
}

/// What a successful lookup returns (never the token itself).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenView<P> {
    pub digest: TokenDigest,
    pub attrs: serde_json::Value,
    pub match_origin: bool,
    pub single_use: bool,
    pub parent: P,
    pub session_id: String,
    pub ttl_secs: i64,
}

#[derive(Debug)]
struct Entry<O, P> {
    ttl_secs: i64,
    last_used_ms: u64,
    attrs: serde_json::Value,
    match_origin: bool,
    single_use: bool,
    /// A single-use token that has been used: no longer findable, but kept (and still
    /// sliding) for the session that used it, which ends it on logout.
    spent: bool,
    origin: O,
    parent: P,
    session_id: String,
}

impl<O, P: Clone> Entry<O, P> {
    /// Valid while `now < last_used + ttl` (sliding window).
    fn is_valid(&self, now_ms: u64) -> bool {
        i128::from(now_ms) < i128::from(self.last_used_ms) + i128::from(self.ttl_secs) * 1000
    }

    fn view(&self, digest: TokenDigest) -> TokenView<P> {
        TokenView {
            digest,
            attrs: self.attrs.clone(),
            match_origin: self.match_origin,
            single_use: self.single_use,
            parent: self.parent.clone(),
            session_id: self.session_id.clone(),
            ttl_secs: self.ttl_secs,
        }
    }
}

/// The in-memory token table. One mutex: operations are O(1) hash lookups, and it makes
/// single-use consumption trivially atomic.
pub struct TokenManager<O, P> {
    entries: Mutex<HashMap<TokenDigest, Entry<O, P>>>,
}

impl<O, P> std::fmt::Debug for TokenManager<O, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self
            .entries
            .lock()
            .map(|m| m.len())
            .unwrap_or_else(|e| e.into_inner().len());
        f.debug_struct("TokenManager")
            .field("len", &len)
            .finish_non_exhaustive()
    }
}

impl<O: OriginMatch, P: Clone> Default for TokenManager<O, P> {
    fn default() -> Self {
        Self::new()
    }
}

/// What to do with a valid, origin-matching entry found by `find`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnHit {
    Keep,
    SpendIfSingleUse,
}

impl<O: OriginMatch, P: Clone> TokenManager<O, P> {
    pub fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// A poisoned lock only means another thread panicked mid-operation; every operation
    /// leaves the map consistent, so carry on with it.
    fn map(&self) -> MutexGuard<'_, HashMap<TokenDigest, Entry<O, P>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a token and returns it; only its digest is kept. The TTL clock starts now.
    ///
    /// Fails only if the entropy source keeps repeating itself (a 2^-384 event with a real
    /// one): better an error than a spin or a silently shared token.
    pub fn create(
        &self,
        entropy: &dyn Entropy,
        spec: NewToken<O, P>,
        now_ms: u64,
    ) -> Result<String, TokenError> {
        let mut map = self.map();
        for _ in 0..CREATE_ATTEMPTS {
            let token = generate_token(entropy);
            let d = digest(&token);
            if map.contains_key(&d) {
                continue;
            }
            map.insert(
                d,
                Entry {
                    ttl_secs: spec.ttl_secs,
                    last_used_ms: now_ms,
                    attrs: spec.attrs,
                    match_origin: spec.match_origin,
                    single_use: spec.single_use,
                    spent: false,
                    origin: spec.origin,
                    parent: spec.parent,
                    session_id: spec.session_id,
                },
            );
            return Ok(token);
        }
        Err(TokenError::EntropyRepeated)
    }

    fn find(&self, token: &str, origin: &O, now_ms: u64, on_hit: OnHit) -> Option<TokenView<P>> {
        let d = digest(token);
        let mut map = self.map();
        let entry = map.get_mut(&d)?;
        if !entry.is_valid(now_ms) {
            map.remove(&d);
            return None;
        }
        if entry.spent || (entry.match_origin && !entry.origin.matches(origin)) {
            return None;
        }
        if on_hit == OnHit::SpendIfSingleUse && entry.single_use {
            entry.spent = true;
        }
        Some(entry.view(d))
    }

    /// Finds a valid token usable from `origin` without changing it. Expired entries are
    /// removed; an origin mismatch leaves the token in place (the owner may still use it).
    pub fn lookup(&self, token: &str, origin: &O, now_ms: u64) -> Option<TokenView<P>> {
        self.find(token, origin, now_ms, OnHit::Keep)
    }

    /// Like [`lookup`](Self::lookup), but a single-use token is spent in the same critical
    /// section, so of two concurrent consumers exactly one gets it. Use this whenever a token
    /// is about to be used; multi-use tokens are left in place. A spent token is never found
    /// again but still answers [`touch`](Self::touch), so the session that logged in with it
    /// lives on (as in TrueNAS, where the session holds the token object); a consumer that
    /// keeps no session should [`destroy`](Self::destroy) it.
    pub fn consume(&self, token: &str, origin: &O, now_ms: u64) -> Option<TokenView<P>> {
        self.find(token, origin, now_ms, OnHit::SpendIfSingleUse)
    }

    /// Marks the token used now (slides the TTL). Returns false, removing the entry, if it
    /// had already expired, and false if it does not exist.
    pub fn touch(&self, digest: &TokenDigest, now_ms: u64) -> bool {
        let mut map = self.map();
        let Some(entry) = map.get_mut(digest) else {
            return false;
        };
        if !entry.is_valid(now_ms) {
            map.remove(digest);
            return false;
        }
        entry.last_used_ms = entry.last_used_ms.max(now_ms);
        true
    }

    /// Whether the token exists and has not expired, without sliding its TTL.
    pub fn is_valid(&self, digest: &TokenDigest, now_ms: u64) -> bool {
        self.map().get(digest).is_some_and(|e| e.is_valid(now_ms))
    }

    /// Removes a token. Returns whether it existed.
    pub fn destroy(&self, digest: &TokenDigest) -> bool {
        self.map().remove(digest).is_some()
    }

    /// Removes every token created by `session_id` (`auth.terminate_session`). Returns how many.
    pub fn destroy_for_session(&self, session_id: &str) -> usize {
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, e| e.session_id != session_id);
        before - map.len()
    }

    /// Drops every expired entry. Optional housekeeping: correctness never depends on it.
    pub fn purge_expired(&self, now_ms: u64) -> usize {
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, e| e.is_valid(now_ms));
        before - map.len()
    }

    /// Entries held, including expired ones not yet dropped.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }
}
