//! Per-account brute-force protection for password and API-key logins (a softlock in the
//! spirit of kanidm and Vault's user lockout).
//!
//! ```text
//!   failure ──► failures += 1, sleep min(failures × delay_step, max_delay)
//!      │
//!      └─ failures ≥ max_failures ──► LOCKED until now + lock_secs (audited once)
//!   LOCKED: every attempt answers AUTH_ERR after a dummy hash, the real hash is never tried
//!   success (not locked) ──► counter cleared
//!   no failure for reset_secs ──► counter forgotten
//!   user.clear_auth_lock(id) ──► counter and lock cleared (ACCOUNT_WRITE)
//! ```
//!
//! Unknown user names are tracked like real ones, so neither the delay nor the lock tells an
//! attacker whether an account exists. The table is bounded (`max_tracked`). State lives in
//! memory: a restart clears every lock, as kanidm's softlocks.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use gatehouse_proto::schema::{Access, Field, MethodSpec, Ty};
use serde_json::{Value, json};

use crate::app::App;
use crate::config::LockoutConfig;
use crate::conn::Conn;
use crate::registry::{Ctx, Registry};
use gatehouse_proto::ApiError;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure_ms: u64,
    /// Monotonic ms until which the account is locked (0: not locked).
    locked_until_ms: u64,
    lock_audited: bool,
}

pub struct Lockout {
    cfg: LockoutConfig,
    inner: Mutex<HashMap<String, Entry>>,
}

impl Lockout {
    pub fn new(cfg: LockoutConfig) -> Self {
        Self {
            cfg,
            inner: Mutex::new(HashMap::new()),
        }
    }

    fn enabled(&self) -> bool {
        self.cfg.max_failures > 0
    }

    fn fresh(&self, e: &Entry, now_ms: u64) -> bool {
        e.locked_until_ms > now_ms
            || now_ms.saturating_sub(e.last_failure_ms) < self.cfg.reset_secs * 1000
    }

    /// Whether `username` is locked now (checked before any hash is computed).
    pub fn is_locked(&self, username: &str, now_ms: u64) -> bool {
        self.locked_for_ms(username, now_ms).is_some()
    }

    /// Remaining lock time in ms, if locked.
    pub fn locked_for_ms(&self, username: &str, now_ms: u64) -> Option<u64> {
        if !self.enabled() {
            return None;
        }
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.get(username)
            .filter(|e| e.locked_until_ms > now_ms)
            .map(|e| e.locked_until_ms - now_ms)
    }

    /// Records a failed attempt; returns the delay to add before answering.
    pub fn record_failure(&self, username: &str, now_ms: u64) -> Duration {
        if !self.enabled() {
            return Duration::ZERO;
        }
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if !g.contains_key(username) && g.len() >= self.cfg.max_tracked.max(1) {
            g.retain(|_, e| self.fresh(e, now_ms));
            if g.len() >= self.cfg.max_tracked.max(1) {
                // Still full: forget the stalest unlocked entry.
                let victim = g
                    .iter()
                    .filter(|(_, e)| e.locked_until_ms <= now_ms)
                    .min_by_key(|(_, e)| e.last_failure_ms)
                    .map(|(k, _)| k.clone());
                if let Some(v) = victim {
                    g.remove(&v);
                }
            }
        }
        let e = g.entry(username.to_string()).or_insert(Entry {
            failures: 0,
            last_failure_ms: now_ms,
            locked_until_ms: 0,
            lock_audited: false,
        });
        if !self.fresh(e, now_ms) {
            *e = Entry {
                failures: 0,
                last_failure_ms: now_ms,
                locked_until_ms: 0,
                lock_audited: false,
            };
        }
        e.failures = e.failures.saturating_add(1);
        e.last_failure_ms = now_ms;
        if e.failures >= self.cfg.max_failures && e.locked_until_ms <= now_ms {
            e.locked_until_ms = now_ms + self.cfg.lock_secs * 1000;
            e.lock_audited = false;
        }
        let ms = (u64::from(e.failures) * self.cfg.delay_step_ms).min(self.cfg.max_delay_ms);
        Duration::from_millis(ms)
    }

    /// A successful login clears the counter (a locked account never gets here).
    pub fn record_success(&self, username: &str) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(username);
    }

    /// Clears a lock; true when there was anything to clear.
    pub fn clear(&self, username: &str) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(username)
            .is_some()
    }

    /// True once per lock: the caller audits it.
    fn take_unaudited_lock(&self, username: &str, now_ms: u64) -> Option<u32> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let e = g.get_mut(username)?;
        if e.locked_until_ms > now_ms && !e.lock_audited {
            e.lock_audited = true;
            return Some(e.failures);
        }
        None
    }
}

/// Hook after every password check (`auth::check_password`): a success clears the counter, a
/// failure counts and sleeps the growing delay.
pub async fn after_password_check(app: &App, username: &str, ok: bool) {
    if ok {
        app.lockout.record_success(username);
        return;
    }
    let delay = app
        .lockout
        .record_failure(username, app.clock.monotonic_ms());
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

/// Audits the lock the first time a failed login finds the account locked.
pub fn audit_lock(app: &App, conn: &Conn, mechanism: &str, username: &str) {
    let now = app.clock.monotonic_ms();
    if let Some(failures) = app.lockout.take_unaudited_lock(username, now) {
        tracing::warn!(user = %username, failures, "account locked after repeated login failures");
        app.audit(
            conn,
            "AUTHENTICATION",
            json!({
                "credentials": {"credentials": mechanism, "credentials_data": {"username": username}},
                "error": format!("Account locked for {} seconds after {failures} failed attempts", app.config.lockout.lock_secs),
            }),
            false,
        );
    }
}

/// API_KEY_PLAIN behind the lock: a locked account is answered as an invalid key without
/// looking at the key; failures count like password failures.
pub async fn api_key_login(
    ctx: &Ctx,
    username: &str,
    raw: &str,
    user_info: bool,
) -> Result<Value, ApiError> {
    let app = &ctx.app;
    let locked = app.lockout.is_locked(username, app.clock.monotonic_ms());
    let raw = if locked { "" } else { raw };
    let result = super::api_key::login_plain(ctx, username, raw, user_info).await;
    let success = matches!(&result, Ok(v) if v.get("response_type") == Some(&json!("SUCCESS")));
    if success {
        app.lockout.record_success(username);
    } else {
        let delay = app
            .lockout
            .record_failure(username, app.clock.monotonic_ms());
        audit_lock(app, &ctx.conn, "API_KEY", username);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
    result
}

/// Adds `auth_locked_until` (`$date` of the lock's end, or null) to `user.query` entries.
pub fn annotate(app: &App, entries: &mut [Value]) {
    let now_ms = app.clock.monotonic_ms();
    let now_unix = app.clock.now_unix();
    for e in entries.iter_mut() {
        let name = e
            .get("username")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let until = app
            .lockout
            .locked_for_ms(&name, now_ms)
            .map(|ms| gatehouse_proto::ejson::date(now_unix + ms.div_ceil(1000) as i64));
        if let Value::Object(m) = e {
            m.insert("auth_locked_until".into(), until.unwrap_or(Value::Null));
        }
    }
}

pub fn register(r: &mut Registry) {
    r.add(
        MethodSpec::new("user.clear_auth_lock", Access::Roles(vec!["ACCOUNT_WRITE"]))
            .param(Field::required("id", Ty::int()))
            .audited("Clear login lockout")
            .doc("Clear the temporary login lock (and failure count) of user `id`."),
        |ctx, params| async move {
            let id = params.first().and_then(Value::as_i64).unwrap_or_default();
            let name = ctx
                .app
                .dir()
                .users
                .get(&id)
                .map(|u| u.username.clone())
                .ok_or_else(|| ApiError::not_found("User", id))?;
            ctx.audit_extend(name.clone());
            Ok(json!(ctx.app.lockout.clear(&name)))
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LockoutConfig {
        LockoutConfig {
            max_failures: 3,
            lock_secs: 60,
            reset_secs: 30,
            delay_step_ms: 100,
            max_delay_ms: 250,
            max_tracked: 2,
        }
    }

    #[test]
    fn locks_after_threshold_and_unlocks_at_deadline() {
        let l = Lockout::new(cfg());
        assert_eq!(l.record_failure("a", 0), Duration::from_millis(100));
        assert_eq!(l.record_failure("a", 10), Duration::from_millis(200));
        assert!(!l.is_locked("a", 10));
        assert_eq!(l.record_failure("a", 20), Duration::from_millis(250));
        assert!(l.is_locked("a", 20));
        assert!(l.is_locked("a", 60_019));
        assert!(!l.is_locked("a", 60_020));
        assert_eq!(l.take_unaudited_lock("a", 30), Some(3));
    }

    #[test]
    fn lock_is_audited_once_and_cleared_by_admin() {
        let l = Lockout::new(cfg());
        for t in 0..3 {
            l.record_failure("a", t);
        }
        assert_eq!(l.take_unaudited_lock("a", 5), Some(3));
        assert_eq!(l.take_unaudited_lock("a", 6), None);
        assert!(l.clear("a"));
        assert!(!l.is_locked("a", 7));
    }

    #[test]
    fn counter_resets_after_quiet_period_and_table_is_bounded() {
        let l = Lockout::new(cfg());
        l.record_failure("a", 0);
        l.record_failure("a", 1);
        // 30 s without failures: forgotten.
        l.record_failure("a", 40_000);
        assert!(!l.is_locked("a", 40_000));
        l.record_failure("b", 40_001);
        l.record_failure("c", 40_002);
        assert!(l.inner.lock().unwrap().len() <= 2);
    }
}
