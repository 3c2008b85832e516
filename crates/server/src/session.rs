//! Credentials of an authenticated connection, and the registry of live sessions (§7).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use gatehouse_core::origin::Origin;
use gatehouse_core::roles::ComposedPrivilege;
use gatehouse_proto::ejson;
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
    pub privilege: Arc<ComposedPrivilege>,
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
    ///
    /// Built field by field: `json!` would deep-copy every nested `Value` through
    /// `to_value`, and `auth.sessions` builds this for every one of 10,000 sessions.
    pub fn data(&self) -> Value {
        let mut m = Map::with_capacity(4);
        match &self.kind {
            CredKind::Token { parent, .. } => {
                let mut p = Map::with_capacity(2);
                p.insert("credentials".into(), Value::from(parent.type_name()));
                p.insert("credentials_data".into(), parent.data());
                m.insert("parent".into(), Value::Object(p));
                m.insert("login_id".into(), Value::from(self.login_id.as_str()));
                m.insert("username".into(), Value::from(self.user.username.as_str()));
            }
            CredKind::ApiKey { id, name } => {
                m.insert("username".into(), Value::from(self.user.username.as_str()));
                m.insert("login_at".into(), ejson::date(self.login_at));
                m.insert("login_id".into(), Value::from(self.login_id.as_str()));
                let mut k = Map::with_capacity(2);
                k.insert("id".into(), Value::from(*id));
                k.insert("name".into(), Value::from(name.as_str()));
                m.insert("api_key".into(), Value::Object(k));
            }
            _ => {
                m.insert("username".into(), Value::from(self.user.username.as_str()));
                m.insert("login_at".into(), ejson::date(self.login_at));
                m.insert("login_id".into(), Value::from(self.login_id.as_str()));
            }
        }
        Value::Object(m)
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
    next_seq: u64,
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, SessionsInner> {
        // A panic while holding this lock cannot leave it half-updated in a way that matters
        // more than refusing all further logins would; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
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
        g.by_id.insert(id, (seq, session));
    }

    pub fn remove(&self, id: &str) -> Option<Session> {
        let mut g = self.lock();
        let (seq, s) = g.by_id.remove(id)?;
        g.order.remove(&seq);
        Some(s)
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

    /// The connections of all sessions, in creation order: cheaper than [`Self::all`] when
    /// the ids are not needed (no string copies).
    pub fn conns(&self) -> Vec<Arc<Conn>> {
        let g = self.lock();
        g.order
            .values()
            .filter_map(|id| g.by_id.get(id).map(|(_, s)| s.conn.clone()))
            .collect()
    }
}

/// The `auth.sessions` entry of a session.
pub fn session_entry(
    id: &str,
    s: &Session,
    creds: &Credentials,
    origin: &Origin,
    current: bool,
) -> Value {
    // Field by field for the same reason as `Credentials::data`; the key order is the wire's.
    let mut m = Map::with_capacity(8);
    m.insert("id".into(), Value::from(id));
    m.insert("current".into(), Value::Bool(current));
    m.insert("internal".into(), Value::Bool(creds.internal));
    m.insert("origin".into(), Value::String(origin.to_string()));
    m.insert("credentials".into(), Value::from(creds.type_name()));
    m.insert("credentials_data".into(), creds.data());
    m.insert("created_at".into(), ejson::date(s.created_at));
    m.insert(
        "secure_transport".into(),
        Value::Bool(origin.secure_transport()),
    );
    Value::Object(m)
}
