//! Server configuration: defaults, an optional TOML file, then command-line flags.

use std::path::PathBuf;

use serde::Deserialize;

/// Everything `gatehoused` can be told. Every flag has a key of the same name in the TOML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the database, the lock file, the socket and key files live.
    pub data_dir: PathBuf,
    /// TCP listen address (`HOST:PORT`); an empty string disables TCP.
    pub listen: String,
    /// UNIX socket path; default `<data_dir>/gatehoused.sock`.
    pub socket: Option<PathBuf>,
    /// `error`, `warn`, `info`, `debug` or `trace` (or a tracing filter).
    pub log_level: String,
    pub limits: Limits,
    pub rate_limit: RateLimit,
    /// Per-account login failure tracking (`services::lockout`).
    pub lockout: LockoutConfig,
    /// Delay added to failed logins, in ms (TrueNAS: uniform 1000–2000 at level 1).
    pub login_failure_delay_ms: [u64; 2],
    /// Threads for slow hashing (PBKDF2, Argon2, SHA-512-crypt); 0 = one less than the number
    /// of cores (at least 1), so that a login storm leaves a core to everything else.
    pub kdf_threads: usize,
    /// Hostname reported by `system.hostname`; default: the machine's.
    pub hostname: Option<String>,
    /// PBKDF2 iterations for new API keys (TrueNAS: 500000). Lower only in tests.
    pub api_key_iterations: u32,
    /// Password given to `truenas_admin` on first start (from `GATEHOUSE_ADMIN_PASSWORD`);
    /// `None` generates one into `<data_dir>/initial-admin-password`. Never read from a file.
    #[serde(skip)]
    pub initial_admin_password: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Calls in flight per connection before -32000.
    pub max_inflight: usize,
    /// Characters of one message before login (close 1007 past it).
    pub unauthenticated_message: usize,
    /// Characters of one message after login (close 1009 past it).
    pub authenticated_message: usize,
    /// Queued outbound frames per connection; events past it are dropped with
    /// `notify_unsubscribed`.
    pub outbound_queue: usize,
    /// Open connections over both listeners; past it new connections are refused at accept
    /// (HTTP 503). 0 = unlimited.
    pub max_connections: usize,
    /// Open TCP connections per remote IP address; past it refused at accept. 0 = unlimited.
    pub max_connections_per_ip: usize,
    /// Time from accept to a complete WebSocket upgrade request, in ms; a client that sends
    /// nothing or a partial request is dropped after it. 0 = no limit.
    pub handshake_timeout_ms: u64,
    /// Time an upgraded connection may stay without a session, in ms (counted from the
    /// upgrade or from its logout); then it is closed with 1008. 0 = no limit.
    pub unauthenticated_idle_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimit {
    /// Unauthenticated calls per method and remote IP within `window_secs`.
    pub max_calls: u32,
    pub window_secs: u64,
    /// Distinct (method, IP) keys tracked; when full, every rate-limited call fails.
    pub max_keys: usize,
    /// Random sleep before answering "Rate Limit Exceeded", in ms.
    pub penalty_ms: [u64; 2],
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: gatehouse_proto::defaults::data_dir(),
            listen: gatehouse_proto::defaults::DEFAULT_LISTEN.to_string(),
            socket: None,
            log_level: "info".to_string(),
            limits: Limits::default(),
            rate_limit: RateLimit::default(),
            lockout: LockoutConfig::default(),
            login_failure_delay_ms: [1000, 2000],
            kdf_threads: 0,
            hostname: None,
            api_key_iterations: gatehouse_core::apikey::DEFAULT_ITERATIONS,
            initial_admin_password: None,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_inflight: 20,
            unauthenticated_message: 8192,
            authenticated_message: 65536,
            outbound_queue: 1024,
            max_connections: 1024,
            max_connections_per_ip: 64,
            handshake_timeout_ms: 10_000,
            unauthenticated_idle_ms: 60_000,
        }
    }
}

/// Brute-force protection per account name (password and API-key logins). Defaults follow
/// Vault's user lockout (5 failures → 15 min) with kanidm-style growing delays.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LockoutConfig {
    /// Failures within `reset_secs` that lock the account; 0 disables tracking.
    pub max_failures: u32,
    /// How long a lock lasts.
    pub lock_secs: u64,
    /// A failure counter with no new failure for this long is forgotten.
    pub reset_secs: u64,
    /// Extra delay per recorded failure, in ms ...
    pub delay_step_ms: u64,
    /// ... capped at this.
    pub max_delay_ms: u64,
    /// Account names tracked at once (unknown names included, so they look like real ones).
    pub max_tracked: usize,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        Self {
            max_failures: 5,
            lock_secs: 900,
            reset_secs: 900,
            delay_step_ms: 250,
            max_delay_ms: 3000,
            max_tracked: 10_000,
        }
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            max_calls: 20,
            window_secs: 60,
            max_keys: 100,
            penalty_ms: [1000, 10000],
        }
    }
}

impl Config {
    pub fn socket_path(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| gatehouse_proto::defaults::socket_path(&self.data_dir))
    }

    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    pub fn kdf_threads(&self) -> usize {
        if self.kdf_threads > 0 {
            self.kdf_threads
        } else {
            default_kdf_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
        }
    }
}

/// `kdf_threads = 0`: cores − 1, at least 1. Each slow hash keeps a core busy for tens of
/// milliseconds; with every core hashing, the reactor threads queue behind them and other
/// calls' latency grows with the storm.
fn default_kdf_threads(cores: usize) -> usize {
    cores.saturating_sub(1).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdf_threads_leave_a_core() {
        assert_eq!(default_kdf_threads(1), 1);
        assert_eq!(default_kdf_threads(2), 1);
        assert_eq!(default_kdf_threads(8), 7);
        let c = Config {
            kdf_threads: 3,
            ..Config::default()
        };
        assert_eq!(c.kdf_threads(), 3);
    }

    #[test]
    fn toml_keys_match_flags_and_unknown_keys_fail() {
        let c = Config::from_toml(
            "data_dir = \"/tmp/x\"\nlisten = \"127.0.0.1:7000\"\nlog_level = \"debug\"\n[limits]\nmax_inflight = 5\n",
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:7000");
        assert_eq!(c.limits.max_inflight, 5);
        assert_eq!(c.limits.authenticated_message, 65536);
        assert!(Config::from_toml("bogus = 1").is_err());
    }
}
