//! Injected time and randomness.

/// A source of time. The server passes the system clock; tests pass a manual one.
pub trait Clock: Send + Sync {
    /// Seconds since the Unix epoch, wall clock (for `created_at`, TOTP steps, expiry dates).
    fn now_unix(&self) -> i64;
    /// Monotonic milliseconds since an arbitrary origin (for TTLs and idle timeouts).
    fn monotonic_ms(&self) -> u64;
}

/// A source of cryptographically secure random bytes.
pub trait Entropy: Send + Sync {
    fn fill(&self, buf: &mut [u8]);
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    unix: std::sync::atomic::AtomicI64,
    mono_ms: std::sync::atomic::AtomicU64,
}

impl ManualClock {
    pub fn new(unix: i64) -> Self {
        Self {
            unix: unix.into(),
            mono_ms: 0.into(),
        }
    }
    /// Moves both clocks forward.
    pub fn advance_secs(&self, secs: u64) {
        use std::sync::atomic::Ordering::SeqCst;
        self.unix.fetch_add(secs as i64, SeqCst);
        self.mono_ms.fetch_add(secs * 1000, SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_unix(&self) -> i64 {
        self.unix.load(std::sync::atomic::Ordering::SeqCst)
    }
    fn monotonic_ms(&self) -> u64 {
        self.mono_ms.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Deterministic "randomness" for tests: a counter run through SHA-256.
#[derive(Debug, Default)]
pub struct SeqEntropy(std::sync::atomic::AtomicU64);

impl Entropy for SeqEntropy {
    fn fill(&self, buf: &mut [u8]) {
        use sha2::{Digest, Sha256};
        for chunk in buf.chunks_mut(32) {
            let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let block = Sha256::digest(n.to_le_bytes());
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    }
}
