//! Credentials of an authenticated connection, and the registry of live sessions (§7).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use gatehouse_core::origin::Origin;
use gatehouse_core::roles::ComposedPrivilege;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::conn::Conn;

/// Which way a session logged in; the names are TrueNAS' `credentials` strings.
#[derive(Debug, Clone)]
pub enum CredKind {
    UnixSocket,
    LoginPassword,
    LoginTwofactor,
    LoginOnetimePassword,
    ApiKey {
        id: i64,
        name: String,
    },
    /// Logged in with a token; authorization is the root (first non-token) credential's.
    Token {
        parent: Arc<Credentials>,
        digest: [u8; 32],
    },
}

/// A composed privilege as sessions hold it: shared by every session composed from the same
/// inputs (see `App::privilege_for`), immutable, and with `auth.me`'s `privilege` member
/// serialized once. That member holds role names and method names only, never a secret.
#[derive(Debug)]
pub struct SessionPrivilege {
    composed: ComposedPrivilege,
    me_json: OnceLock<Box<RawValue>>,
}

impl SessionPrivilege {
    pub fn new(composed: ComposedPrivilege) -> Self {
        Self {
            composed,
            me_json: OnceLock::new(),
        }
    }

    /// `auth.me`'s `privilege` member as JSON text, built by `build` on first use.
    pub fn me_json(&self, build: impl FnOnce(&ComposedPrivilege) -> Value) -> &RawValue {
        self.me_json.get_or_init(|| {
            serde_json::value::to_raw_value(&build(&self.composed)).unwrap_or_else(|_| {
                // Serializing a `Value` cannot fail; `null` keeps the reply well-formed anyway.
                RawValue::NULL.to_owned()
            })
        })
    }
}

impl std::ops::Deref for SessionPrivilege {
    type Target = ComposedPrivilege;
    fn deref(&self) -> &ComposedPrivilege {
        &self.composed
    }
}

/// The account behind a user session.
#[derive(Debug, Clone)]
pub struct UserRef {
    pub id: i64,
    pub uid: u32,
    pub username: String,
}

#[derive(Debug, Clone)]
pub struct Credentials {
    pub kind: CredKind,
    pub user: UserRef,
    pub privilege: Arc<SessionPrivilege>,
    /// Account attributes from login (`LOCAL`, `SYS_ADMIN`, `2FA`, `API_KEY`, `OTPW`, ...).
    pub account_attributes: Vec<&'static str>,
    /// Unix seconds.
    pub login_at: i64,
    pub login_id: String,
    /// uid-0 UNIX socket sessions: listed as internal, no events, no audit, never expire.
    pub internal: bool,
    /// Monotonic ms after which the credential is no longer valid (`None`: never).
    pub expires_at_ms: Option<u64>,
}

impl Credentials {
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            CredKind::UnixSocket => "UNIX_SOCKET",
            CredKind::LoginPassword => "LOGIN_PASSWORD",
            CredKind::LoginTwofactor => "LOGIN_TWOFACTOR",
            CredKind::LoginOnetimePassword => "LOGIN_ONETIME_PASSWORD",
            CredKind::ApiKey { .. } => "API_KEY",
            CredKind::Token { .. } => "TOKEN",
        }
    }

    /// The root credential: for a token session, the credential that created the token.
    pub fn root(&self) -> &Credentials {
        match &self.kind {
            CredKind::Token { parent, .. } => parent.root(),
            _ => self,
        }
    }

    /// `credentials_data` as `auth.sessions` shows it (§3.4).
    pub fn data(&self) -> Value {
        to_value(&CredData(self))
    }

    /// `{"credentials": ..., "credentials_data": ...}` as audit records carry it.
    pub fn dump(&self) -> Value {
        let mut m = Map::with_capacity(2);
        m.insert("credentials".into(), Value::from(self.type_name()));
        m.insert("credentials_data".into(), self.data());
        Value::Object(m)
    }

    pub fn may_create_tokens(&self) -> bool {
        !matches!(self.root().kind, CredKind::LoginOnetimePassword)
    }

    pub fn is_valid(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_none_or(|t| now_ms < t)
    }
}

/// One live authenticated session.
#[derive(Clone)]
pub struct Session {
    pub conn: Arc<Conn>,
    /// Unix seconds.
    pub created_at: i64,
    /// The session's `auth.sessions` entry, serialized once (see [`CachedEntry`]).
    pub entry: Option<Arc<CachedEntry>>,
}

/// A session's `auth.sessions` entry as JSON text, split around the one field that depends on
/// the caller (`current`), for the credentials it was built from. Everything in an entry is
/// fixed for a credential; a connection that logs in again gets new credentials, and an entry
/// built for other credentials is not used. Nothing in it is secret (ids, names, times).
pub struct CachedEntry {
    creds: Arc<Credentials>,
    /// `{"id":"…","current":`
    head: Box<str>,
    /// `,"internal":…}`
    tail: Box<str>,
}

impl CachedEntry {
    pub fn new(
        id: &str,
        created_at: i64,
        creds: Arc<Credentials>,
        origin: &Origin,
    ) -> Option<Self> {
        let entry = SessionEntry {
            id,
            current: false,
            creds: &creds,
            origin,
            created_at,
        };
        let text = serde_json::to_string(&entry).ok()?;
        let mut head = String::from("{\"id\":");
        head.push_str(&serde_json::to_string(id).ok()?);
        head.push_str(",\"current\":");
        let tail = text.strip_prefix(head.as_str())?.strip_prefix("false")?;
        Some(Self {
            tail: tail.into(),
            head: head.into_boxed_str(),
            creds,
        })
    }

    /// Appends the entry for `creds` to `out`; false (nothing written) when the entry was built
    /// for other credentials.
    pub fn write(&self, creds: &Arc<Credentials>, current: bool, out: &mut Vec<u8>) -> bool {
        if !Arc::ptr_eq(&self.creds, creds) {
            return false;
        }
        out.extend_from_slice(self.head.as_bytes());
        out.extend_from_slice(if current { b"true" } else { b"false" });
        out.extend_from_slice(self.tail.as_bytes());
        true
    }
}

/// All authenticated sessions, by session id, in creation order.
#[derive(Default)]
pub struct Sessions {
    inner: Mutex<SessionsInner>,
}

/// Creation order is kept by a sequence number so that removing one of 10,000 sessions is
/// O(log n), not a scan and shift of the whole list.
#[derive(Default)]
struct SessionsInner {
    by_id: HashMap<String, (u64, Session)>,
    order: BTreeMap<u64, String>,
    /// Sessions that have subscribed to events: every login and logout publishes an event,
    /// and with 10,000 sessions of which a handful subscribe, it visits only these.
    watchers: BTreeMap<u64, Arc<Conn>>,
    next_seq: u64,
}

fn has_subscriptions(conn: &Conn) -> bool {
    !conn
        .subscriptions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .is_empty()
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, SessionsInner> {
        // A panic while holding this lock cannot leave it half-updated in a way that matters
        // more than refusing all further logins would; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the cached entry of session `id` (a connection that logged in again).
    pub fn set_entry(&self, id: &str, entry: Option<Arc<CachedEntry>>) {
        if let Some(slot) = self.lock().by_id.get_mut(id) {
            slot.1.entry = entry;
        }
    }

    pub fn insert(&self, id: String, session: Session) {
        let mut g = self.lock();
        if let Some(slot) = g.by_id.get_mut(&id) {
            slot.1 = session;
            return;
        }
        let seq = g.next_seq;
        g.next_seq += 1;
        g.order.insert(seq, id.clone());
        // A subscription made before the session existed (`watch` found no session then).
        if has_subscriptions(&session.conn) {
            g.watchers.insert(seq, session.conn.clone());
        }
        g.by_id.insert(id, (seq, session));
    }

    pub fn remove(&self, id: &str) -> Option<Session> {
        let mut g = self.lock();
        let (seq, s) = g.by_id.remove(id)?;
        g.order.remove(&seq);
        g.watchers.remove(&seq);
        Some(s)
    }

    /// Call after adding a subscription to `conn` (not holding its subscriptions lock): its
    /// session, if it has one, receives events from now on.
    pub fn watch(&self, conn: &Arc<Conn>) {
        let mut g = self.lock();
        if let Some((seq, _)) = g.by_id.get(&conn.session_id) {
            let seq = *seq;
            g.watchers.insert(seq, conn.clone());
        }
    }

    /// Whether any session has subscribed to events (else an event need not even be built).
    pub fn has_watchers(&self) -> bool {
        !self.lock().watchers.is_empty()
    }

    /// The connections of sessions that have subscribed to events, in creation order: the
    /// only ones an event can be for.
    pub fn watchers(&self) -> Vec<Arc<Conn>> {
        self.lock().watchers.values().cloned().collect()
    }

    pub fn get(&self, id: &str) -> Option<Session> {
        self.lock().by_id.get(id).map(|(_, s)| s.clone())
    }

    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sessions in creation order.
    pub fn all(&self) -> Vec<(String, Session)> {
        let g = self.lock();
        g.order
            .values()
            .filter_map(|id| g.by_id.get(id).map(|(_, s)| (id.clone(), s.clone())))
            .collect()
    }

    /// The sessions in creation order, without copying their ids (a session's id is its
    /// connection's `session_id`).
    pub fn list(&self) -> Vec<Session> {
        let g = self.lock();
        g.order
            .values()
            .filter_map(|id| g.by_id.get(id).map(|(_, s)| s.clone()))
            .collect()
    }
}

/// `{"$date": secs * 1000}`, as `ejson::date` builds it.
struct Date(i64);

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("$date", &self.0.saturating_mul(1000))?;
        m.end()
    }
}

/// A credential's `credentials_data`, serialized straight from the credential.
struct CredData<'a>(&'a Credentials);

impl Serialize for CredData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.0;
        match &c.kind {
            CredKind::Token { parent, .. } => {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("parent", &Parent(parent))?;
                m.serialize_entry("login_id", &c.login_id)?;
                m.serialize_entry("username", &c.user.username)?;
                m.end()
            }
            CredKind::ApiKey { id, name } => {
                let mut m = s.serialize_map(Some(4))?;
                m.serialize_entry("username", &c.user.username)?;
                m.serialize_entry("login_at", &Date(c.login_at))?;
                m.serialize_entry("login_id", &c.login_id)?;
                m.serialize_entry("api_key", &KeyRef { id: *id, name })?;
                m.end()
            }
            _ => {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("username", &c.user.username)?;
                m.serialize_entry("login_at", &Date(c.login_at))?;
                m.serialize_entry("login_id", &c.login_id)?;
                m.end()
            }
        }
    }
}

/// `{"credentials": ..., "credentials_data": ...}` of a token session's parent.
struct Parent<'a>(&'a Credentials);

impl Serialize for Parent<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("credentials", self.0.type_name())?;
        m.serialize_entry("credentials_data", &CredData(self.0))?;
        m.end()
    }
}

#[derive(serde::Serialize)]
struct KeyRef<'a> {
    id: i64,
    name: &'a str,
}

/// Serializes through `Display` (the origin's TrueNAS string form).
struct Shown<'a>(&'a Origin);

impl Serialize for Shown<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

/// `serde_json::to_value` for the types here, which cannot fail to serialize.
fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The `auth.sessions` entry of a session: one definition that is serialized straight to
/// JSON text for `auth.sessions`, or turned into a `Value` (events, queries with `select` or
/// `order_by`). The field order is the wire's.
pub struct SessionEntry<'a> {
    pub id: &'a str,
    pub current: bool,
    pub creds: &'a Credentials,
    pub origin: &'a Origin,
    /// Unix seconds.
    pub created_at: i64,
}

/// The keys of a [`SessionEntry`], in wire order.
pub const SESSION_ENTRY_KEYS: [&str; 8] = [
    "id",
    "current",
    "internal",
    "origin",
    "credentials",
    "credentials_data",
    "created_at",
    "secure_transport",
];

impl SessionEntry<'_> {
    /// The value of one top-level key, exactly as it appears in [`SessionEntry::to_value`].
    pub fn field(&self, key: &str) -> Option<Value> {
        Some(match key {
            "id" => Value::from(self.id),
            "current" => Value::Bool(self.current),
            "internal" => Value::Bool(self.creds.internal),
            "origin" => Value::String(self.origin.to_string()),
            "credentials" => Value::from(self.creds.type_name()),
            "credentials_data" => self.creds.data(),
            "created_at" => to_value(&Date(self.created_at)),
            "secure_transport" => Value::Bool(self.origin.secure_transport()),
            _ => return None,
        })
    }

    pub fn to_value(&self) -> Value {
        to_value(self)
    }
}

impl Serialize for SessionEntry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(SESSION_ENTRY_KEYS.len()))?;
        m.serialize_entry("id", self.id)?;
        m.serialize_entry("current", &self.current)?;
        m.serialize_entry("internal", &self.creds.internal)?;
        m.serialize_entry("origin", &Shown(self.origin))?;
        m.serialize_entry("credentials", self.creds.type_name())?;
        m.serialize_entry("credentials_data", &CredData(self.creds))?;
        m.serialize_entry("created_at", &Date(self.created_at))?;
        m.serialize_entry("secure_transport", &self.origin.secure_transport())?;
        m.end()
    }
}

/// The `auth.sessions` entry of a session as a `Value`.
pub fn session_entry(
    id: &str,
    s: &Session,
    creds: &Credentials,
    origin: &Origin,
    current: bool,
) -> Value {
    SessionEntry {
        id,
        current,
        creds,
        origin,
        created_at: s.created_at,
    }
    .to_value()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_proto::ejson;
    use serde_json::json;

    fn creds(kind: CredKind) -> Credentials {
        Credentials {
            kind,
            user: UserRef {
                id: 1,
                uid: 950,
                username: "truenas_admin".into(),
            },
            privilege: Arc::new(SessionPrivilege::new(ComposedPrivilege::full())),
            account_attributes: vec!["LOCAL"],
            login_at: 1_700_000_000,
            login_id: "9b3c5c0e-0000-4000-8000-000000000001".into(),
            internal: false,
            expires_at_ms: None,
        }
    }

    /// The serialized entry, its `Value` form and each `field` agree with the shape built by
    /// hand (the pre-serde definition), for every kind of credential.
    #[test]
    fn session_entry_forms_agree() {
        let key = creds(CredKind::ApiKey {
            id: 7,
            name: "bench \"key\"".into(),
        });
        let token = creds(CredKind::Token {
            parent: Arc::new(key.clone()),
            digest: [0; 32],
        });
        let origins = [
            Origin::Tcp {
                addr: "::1".parse().unwrap(),
                port: 5,
                ssl: false,
            },
            Origin::Unix {
                pid: 3,
                uid: 0,
                gid: 0,
                loginuid: None,
            },
        ];
        for c in [creds(CredKind::LoginPassword), key.clone(), token] {
            for origin in &origins {
                let e = SessionEntry {
                    id: "abc",
                    current: true,
                    creds: &c,
                    origin,
                    created_at: 1_700_000_001,
                };
                let by_hand = json!({
                    "id": "abc",
                    "current": true,
                    "internal": false,
                    "origin": origin.to_string(),
                    "credentials": c.type_name(),
                    "credentials_data": by_hand_data(&c),
                    "created_at": ejson::date(1_700_000_001),
                    "secure_transport": origin.secure_transport(),
                });
                let text = serde_json::to_string(&e).unwrap();
                assert_eq!(text, by_hand.to_string());
                assert_eq!(e.to_value().to_string(), text);
                for k in SESSION_ENTRY_KEYS {
                    assert_eq!(e.field(k).as_ref(), by_hand.get(k), "{k}");
                }
                assert_eq!(e.field("nope"), None);
                let arc = Arc::new(c.clone());
                let cached = CachedEntry::new("abc", 1_700_000_001, arc.clone(), origin).unwrap();
                let mut out = Vec::new();
                assert!(cached.write(&arc, true, &mut out));
                assert_eq!(String::from_utf8(out).unwrap(), text);
                let mut out = Vec::new();
                assert!(!cached.write(&Arc::new(c.clone()), true, &mut out));
                assert!(out.is_empty());
            }
        }
    }

    fn by_hand_data(c: &Credentials) -> Value {
        match &c.kind {
            CredKind::Token { parent, .. } => json!({
                "parent": {"credentials": parent.type_name(), "credentials_data": by_hand_data(parent)},
                "login_id": c.login_id,
                "username": c.user.username,
            }),
            CredKind::ApiKey { id, name } => json!({
                "username": c.user.username,
                "login_at": ejson::date(c.login_at),
                "login_id": c.login_id,
                "api_key": {"id": id, "name": name},
            }),
            _ => json!({
                "username": c.user.username,
                "login_at": ejson::date(c.login_at),
                "login_id": c.login_id,
            }),
        }
    }
}
