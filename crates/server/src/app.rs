//! The server's shared state and the call pipeline: look up → authorize → validate → run →
//! redact → audit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use gatehouse_core::model::{AuditRecord, Write};
use gatehouse_core::{Clock, Entropy};
use gatehouse_proto::schema::{Access, redact_params};
use gatehouse_proto::{ApiError, errno};
use gatehouse_store::Store;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::conn::Conn;
use crate::directory::Directory;
use crate::registry::{Ctx, Registry, Reply};
use crate::session::{Credentials, SessionPrivilege, Sessions};

/// The system clock, the only place the server reads wall and monotonic time.
pub struct SystemClock {
    start: std::time::Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        Self {
            start: std::time::Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now_unix(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }
    fn monotonic_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

/// The OS random number generator.
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&self, buf: &mut [u8]) {
        // getrandom only fails when the OS has no RNG at all; an auth server must not go on
        // with predictable secrets then.
        if getrandom::fill(buf).is_err() {
            std::process::abort();
        }
    }
}

pub struct App {
    pub config: Config,
    pub store: Arc<dyn Store>,
    dir: RwLock<Directory>,
    write_lock: tokio::sync::Mutex<()>,
    pub sessions: Sessions,
    pub registry: Registry,
    pub clock: Arc<dyn Clock>,
    pub entropy: Arc<dyn Entropy>,
    /// Bounds concurrent slow hashes so a login storm cannot starve other work.
    pub kdf: Semaphore,
    pub rate: RateLimiter,
    /// Open connections, counted by the listeners (`listen::Limited`).
    pub connections: Arc<crate::listen::ConnCounter>,
    /// Per-account login failures and temporary locks.
    pub lockout: crate::services::lockout::Lockout,
    pub hostname: String,
    audit_tx: tokio::sync::mpsc::UnboundedSender<AuditMsg>,
    /// Services keep their own in-memory state here (tokens, pending logins, caches).
    pub ext: crate::services::Extensions,
    privileges: Mutex<PrivilegeCache>,
}

/// Composed privileges shared by the sessions they were composed for: 10,000 sessions of one
/// user hold one `Arc`, not 10,000 copies of ~100 role names.
///
/// A composition depends only on the user's group ids and on the directory (groups and
/// privileges), so entries are keyed by the group ids and dropped whenever the directory's
/// revision changes.
struct PrivilegeCache {
    revision: u64,
    by_gids: HashMap<Vec<u32>, Option<Arc<SessionPrivilege>>>,
    full: Arc<SessionPrivilege>,
}

/// Distinct group-id sets remembered per directory revision.
const PRIVILEGE_CACHE_MAX: usize = 1024;

impl App {
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        dir: Directory,
        registry: Registry,
        hostname: String,
    ) -> Arc<Self> {
        let (audit_tx, audit_rx) = tokio::sync::mpsc::unbounded_channel();
        let app = Arc::new(Self {
            kdf: Semaphore::new(config.kdf_threads()),
            rate: RateLimiter::new(config.rate_limit.clone()),
            connections: crate::listen::ConnCounter::new(&config.limits),
            lockout: crate::services::lockout::Lockout::new(config.lockout.clone()),
            config,
            store: store.clone(),
            dir: RwLock::new(dir),
            write_lock: tokio::sync::Mutex::new(()),
            sessions: Sessions::default(),
            registry,
            clock: Arc::new(SystemClock::default()),
            entropy: Arc::new(OsEntropy),
            hostname,
            audit_tx,
            ext: crate::services::Extensions::default(),
            privileges: Mutex::new(PrivilegeCache {
                revision: 0,
                by_gids: HashMap::new(),
                full: Arc::new(SessionPrivilege::new(
                    gatehouse_core::roles::ComposedPrivilege::full(),
                )),
            }),
        });
        tokio::spawn(audit_writer(store, audit_rx));
        app
    }

    /// A consistent read view of the directory. Never hold it across an `.await`.
    pub fn dir(&self) -> RwLockReadGuard<'_, Directory> {
        self.dir.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Serialises writers: `build` sees the current directory and returns the batch to commit
    /// plus a result; the batch is durable in the store before the directory changes.
    pub async fn mutate<T, F>(&self, build: F) -> Result<T, ApiError>
    where
        F: FnOnce(&Directory) -> Result<(Vec<Write>, T), ApiError>,
    {
        self.mutate_view(build, |_, out| out).await
    }

    /// Like [`App::mutate`], then `view` turns the result into the answer using the directory
    /// as it is right after this commit (e.g. to render the new entry), still under the write
    /// lock so no other write can slip in between.
    pub async fn mutate_view<T, R, F, V>(&self, build: F, view: V) -> Result<R, ApiError>
    where
        F: FnOnce(&Directory) -> Result<(Vec<Write>, T), ApiError>,
        V: FnOnce(&Directory, T) -> R,
    {
        let _guard = self.write_lock.lock().await;
        let (batch, out) = {
            let dir = self.dir();
            build(&dir)?
        };
        if !batch.is_empty() {
            let store = self.store.clone();
            let batch = tokio::task::spawn_blocking(move || store.apply(&batch).map(|()| batch))
                .await
                .map_err(|e| ApiError::Other(format!("store task failed: {e}")))?
                .map_err(|e| match e {
                    gatehouse_store::StoreError::Conflict(m) => {
                        ApiError::call(errno::EEXIST, format!("Conflicting record: {m}"))
                    }
                    other => ApiError::call(errno::EFAULT, other.to_string()),
                })?;
            self.dir
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .apply(&batch);
        }
        Ok(view(&self.dir(), out))
    }

    /// The composed privilege of `user` in `dir` (`None`: no privilege matches, no API access),
    /// shared with every other session composed from the same inputs.
    pub fn privilege_for(
        &self,
        dir: &Directory,
        user: &gatehouse_core::model::User,
    ) -> Option<Arc<SessionPrivilege>> {
        let gids = dir.user_gids(user);
        let mut cache = self.privileges.lock().unwrap_or_else(|p| p.into_inner());
        if cache.revision != dir.revision || cache.by_gids.len() >= PRIVILEGE_CACHE_MAX {
            cache.revision = dir.revision;
            cache.by_gids.clear();
        }
        if let Some(p) = cache.by_gids.get(&gids) {
            return p.clone();
        }
        let composed = dir
            .compose_gids(&gids)
            .map(|c| Arc::new(SessionPrivilege::new(c)));
        cache.by_gids.insert(gids, composed.clone());
        composed
    }

    /// The full privilege of root and internal sessions.
    pub fn full_privilege(&self) -> Arc<SessionPrivilege> {
        self.privileges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .full
            .clone()
    }

    /// Runs slow hashing on the bounded blocking pool.
    pub async fn kdf<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _permit = self
            .kdf
            .acquire()
            .await
            .map_err(|_| ApiError::Other("shutting down".into()))?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| ApiError::Other(format!("hash task failed: {e}")))
    }

    pub fn random_bytes<const N: usize>(&self) -> [u8; N] {
        let mut b = [0u8; N];
        self.entropy.fill(&mut b);
        b
    }

    pub fn new_uuid(&self) -> String {
        let b: [u8; 16] = self.random_bytes();
        uuid::Builder::from_random_bytes(b).into_uuid().to_string()
    }

    /// Uniform random delay in `[lo, hi]` ms.
    pub async fn random_delay(&self, range: [u64; 2]) {
        let [lo, hi] = range;
        if hi == 0 {
            return;
        }
        let r = u64::from_le_bytes(self.random_bytes());
        let ms = lo + r % (hi.saturating_sub(lo) + 1);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    pub async fn login_failure_delay(&self) {
        self.random_delay(self.config.login_failure_delay_ms).await;
    }

    /// Queues an audit record (written durably, in batches, by the audit writer task).
    pub fn audit(&self, conn: &Conn, event: &str, event_data: Value, success: bool) {
        let creds = conn.credentials();
        let username = match &creds {
            Some(c) => c.root().user.username.clone(),
            None => ".UNAUTHENTICATED".to_string(),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        // Serialized straight to the text the record stores (no `Value` tree in between).
        let svc_data = serde_json::to_string(&SvcData {
            vers: Vers { major: 0, minor: 1 },
            origin: conn.origin.repr(),
            protocol: "WEBSOCKET",
            credentials: creds.as_ref().map(|c| c.dump()),
        })
        .unwrap_or_default();
        let aid = self.new_uuid();
        let data = json!({
            "aid": aid,
            "vers": {"major": 0, "minor": 1},
            "addr": conn.origin.audit_addr(),
            "user": username,
            "sess": conn.session_id,
            "time": format_time(now),
            "svc": "MIDDLEWARE",
            "svc_data": svc_data,
            "event": event,
            "event_data": event_data.to_string(),
            "success": success,
        });
        let _ = self.audit_tx.send(AuditMsg::Record(AuditRecord {
            aid,
            time: now,
            data,
        }));
    }

    /// Waits until every audit record queued so far is durable (before `audit.query`, and at
    /// shutdown).
    pub async fn flush_audit(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.audit_tx.send(AuditMsg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Sends a collection event to every subscribed connection (§1.5 notifications).
    pub fn publish(&self, collection: &str, msg: &str, id: Value, fields: Option<Value>) {
        let mut params = serde_json::Map::new();
        params.insert("msg".into(), json!(msg));
        params.insert("collection".into(), json!(collection));
        params.insert("id".into(), id);
        if let Some(f) = fields {
            params.insert("fields".into(), f);
        }
        // Every login and logout publishes: only sessions that subscribed to something.
        for conn in self.sessions.watchers() {
            conn.deliver_event(collection, &params);
        }
    }

    /// Runs one call through the whole pipeline.
    pub async fn call(
        self: &Arc<Self>,
        conn: &Arc<Conn>,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Reply, ApiError> {
        let Some(m) = self.registry.get(method).cloned() else {
            return Err(ApiError::MethodNotFound(method.to_string()));
        };
        // The call log (trace level) shows params only as the audit does: secrets redacted.
        if tracing::enabled!(tracing::Level::TRACE) {
            let mut p = params.clone();
            redact_params(&m.spec, &mut p);
            let shown = Value::Array(p);
            tracing::trace!(session = %conn.session_id, method, params = %shown, "call");
        }
        let creds = conn.credentials();
        if let Err(e) = self
            .authorize(conn, &m.spec.access, creds.as_deref(), method)
            .await
        {
            if let Some(desc) = m.spec.audit {
                let mut p = params.clone();
                redact_params(&m.spec, &mut p);
                let authenticated = creds.is_some();
                self.audit(
                    conn,
                    "METHOD_CALL",
                    json!({
                        "method": method, "params": p, "description": desc,
                        "authenticated": authenticated, "authorized": false,
                    }),
                    false,
                );
            }
            return Err(e);
        }
        let params_for_audit = m.spec.audit.map(|_| {
            let mut p = params.clone();
            redact_params(&m.spec, &mut p);
            p
        });
        let params = m.spec.validate(params)?;
        let audit_extra = Arc::new(Mutex::new(None));
        let ctx = Ctx {
            app: self.clone(),
            conn: conn.clone(),
            audit_extra: audit_extra.clone(),
        };
        let mut result = (m.handler)(ctx, params).await;
        if let (Some(base), Some(p)) = (m.spec.audit, params_for_audit) {
            let extra = audit_extra.lock().unwrap_or_else(|p| p.into_inner()).take();
            let desc = match extra {
                Some(e) => format!("{base} {e}"),
                None => base.to_string(),
            };
            self.audit(
                conn,
                "METHOD_CALL",
                json!({
                    "method": method, "params": p, "description": desc,
                    "authenticated": true, "authorized": true,
                }),
                result.is_ok(),
            );
        }
        if let (Ok(Reply::Value(value)), Some(r)) = (&mut result, m.redact) {
            let see = match conn.credentials() {
                None => false,
                Some(c) => c.internal || c.privilege.has_any(&[r.write_role]),
            };
            if !see {
                redact_fields(value, r.fields);
            }
        }
        result
    }

    async fn authorize(
        &self,
        conn: &Conn,
        access: &Access,
        creds: Option<&Credentials>,
        method: &str,
    ) -> Result<(), ApiError> {
        match (access, creds) {
            (Access::Public { .. }, Some(_)) => Ok(()),
            (Access::Public { rate_limit }, None) => {
                if *rate_limit
                    && let Some(ip) = conn.origin.ip()
                    && !self.rate.check(method, ip, self.clock.monotonic_ms())
                {
                    self.random_delay(self.config.rate_limit.penalty_ms).await;
                    return Err(ApiError::call(errno::EBUSY, "Rate Limit Exceeded"));
                }
                Ok(())
            }
            (_, None) => Err(ApiError::not_authenticated()),
            (Access::AnyUser, Some(_)) => Ok(()),
            (Access::Roles(roles), Some(c)) => {
                if c.root().privilege.has_any(roles) {
                    Ok(())
                } else if !c.is_valid(self.clock.monotonic_ms()) {
                    Err(ApiError::call(errno::EACCES, "Session is expired"))
                } else {
                    Err(ApiError::not_authorized())
                }
            }
        }
    }

    /// Whether `creds` may call `method` (used by `core.get_methods` to show only what works).
    pub fn may_call(&self, creds: Option<&Credentials>, access: &Access) -> bool {
        match (access, creds) {
            (Access::Public { .. }, _) => true,
            (_, None) => false,
            (Access::AnyUser, Some(_)) => true,
            (Access::Roles(roles), Some(c)) => c.root().privilege.has_any(roles),
        }
    }
}

fn redact_fields(value: &mut Value, fields: &[&str]) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|i| redact_fields(i, fields)),
        Value::Object(map) => {
            for f in fields {
                if let Some(v) = map.get_mut(*f)
                    && !v.is_null()
                {
                    *v = json!("********");
                }
            }
        }
        _ => {}
    }
}

/// An audit record's `svc_data`, in TrueNAS' key order.
#[derive(serde::Serialize)]
struct SvcData {
    vers: Vers,
    origin: String,
    protocol: &'static str,
    credentials: Option<Value>,
}

#[derive(serde::Serialize)]
struct Vers {
    major: u8,
    minor: u8,
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` (UTC) from Unix seconds.
pub fn format_time(unix: f64) -> String {
    let secs = unix.floor() as i64;
    let micros = ((unix - secs as f64) * 1e6) as u32;
    let (y, mo, d, h, mi, s) = civil(secs);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{micros:06}")
}

/// Unix seconds → (year, month, day, hour, minute, second), proleptic Gregorian, UTC.
pub fn civil(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        ((rem % 3600) / 60) as u32,
        (rem % 60) as u32,
    )
}

/// What the audit writer task receives.
enum AuditMsg {
    Record(AuditRecord),
    /// Answered once everything queued before it is written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Writes audit records in batches: one durable transaction for everything queued meanwhile,
/// so a login storm costs one fsync per batch, not per record.
async fn audit_writer(
    store: Arc<dyn Store>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<AuditMsg>,
) {
    let mut buf = Vec::new();
    while rx.recv_many(&mut buf, 256).await > 0 {
        let mut batch = Vec::new();
        let mut waiters = Vec::new();
        for msg in buf.drain(..) {
            match msg {
                AuditMsg::Record(r) => batch.push(Write::AppendAudit(r)),
                AuditMsg::Flush(tx) => waiters.push(tx),
            }
        }
        if !batch.is_empty() {
            let store = store.clone();
            let res = tokio::task::spawn_blocking(move || store.apply(&batch)).await;
            if !matches!(res, Ok(Ok(()))) {
                tracing::error!("could not write audit records");
            }
        }
        for w in waiters {
            let _ = w.send(());
        }
    }
}

/// TrueNAS' unauthenticated-call rate limit (§2.10): per (method, IP), a fixed window.
pub struct RateLimiter {
    cfg: crate::config::RateLimit,
    inner: Mutex<RateState>,
}

struct RateState {
    keys: HashMap<(String, std::net::IpAddr), (u64, u32)>,
    cleared_at: u64,
}

/// The whole cache is forgotten this often, as TrueNAS' periodic `cache_clear`.
const RATE_CLEAR_MS: u64 = 600_000;

impl RateLimiter {
    pub fn new(cfg: crate::config::RateLimit) -> Self {
        Self {
            cfg,
            inner: Mutex::new(RateState {
                keys: HashMap::new(),
                cleared_at: 0,
            }),
        }
    }

    /// Records a call; false when it must be refused.
    pub fn check(&self, method: &str, ip: std::net::IpAddr, now_ms: u64) -> bool {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if now_ms.saturating_sub(g.cleared_at) >= RATE_CLEAR_MS {
            g.keys.clear();
            g.cleared_at = now_ms;
        }
        let window = self.cfg.window_secs * 1000;
        let key = (method.to_string(), ip);
        if let Some((start, count)) = g.keys.get_mut(&key) {
            if now_ms.saturating_sub(*start) >= window {
                *start = now_ms;
                *count = 0;
            }
            *count += 1;
            return *count <= self.cfg.max_calls;
        }
        // A full cache refuses new keys instead of growing without bound.
        if g.keys.len() >= self.cfg.max_keys {
            return false;
        }
        g.keys.insert(key, (now_ms, 1));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_window_and_cache_bound() {
        let cfg = crate::config::RateLimit {
            max_calls: 3,
            window_secs: 60,
            max_keys: 2,
            penalty_ms: [0, 0],
        };
        let rl = RateLimiter::new(cfg);
        let ip: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let results: Vec<bool> = (0..4).map(|_| rl.check("auth.login_ex", ip, 1)).collect();
        assert_eq!(results, [true, true, true, false]);
        // Next window: allowed again.
        assert!(rl.check("auth.login_ex", ip, 60_001));
        assert!(rl.check("core.ping", ip, 60_001));
        // A third distinct key does not fit.
        assert!(!rl.check("auth.mechanism_choices", ip, 60_001));
    }

    #[test]
    fn svc_data_text_is_the_json_macro_shape() {
        for credentials in [
            None,
            Some(json!({"credentials": "API_KEY", "credentials_data": {"username": "a"}})),
        ] {
            let by_macro = json!({
                "vers": {"major": 0, "minor": 1},
                "origin": "127.0.0.1",
                "protocol": "WEBSOCKET",
                "credentials": credentials,
            });
            let text = serde_json::to_string(&SvcData {
                vers: Vers { major: 0, minor: 1 },
                origin: "127.0.0.1".into(),
                protocol: "WEBSOCKET",
                credentials,
            })
            .unwrap();
            assert_eq!(text, by_macro.to_string());
        }
    }

    #[test]
    fn time_format() {
        assert_eq!(format_time(0.0), "1970-01-01 00:00:00.000000");
        assert_eq!(format_time(1_700_000_000.5), "2023-11-14 22:13:20.500000");
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
    }
}
