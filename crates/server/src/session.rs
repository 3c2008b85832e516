//! Credentials of an authenticated connection, and the registry of live sessions (§7).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use gatehouse_core::origin::Origin;
use gatehouse_core::roles::ComposedPrivilege;
use gatehouse_proto::ejson;
use serde_json::{Value, json};

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
    pub fn data(&self) -> Value {
        match &self.kind {
            CredKind::Token { parent, .. } => json!({
                "parent": {"credentials": parent.type_name(), "credentials_data": parent.data()},
                "login_id": self.login_id,
                "username": self.user.username,
            }),
            CredKind::ApiKey { id, name } => json!({
                "username": self.user.username,
                "login_at": ejson::date(self.login_at),
                "login_id": self.login_id,
                "api_key": {"id": id, "name": name},
            }),
            _ => json!({
                "username": self.user.username,
                "login_at": ejson::date(self.login_at),
                "login_id": self.login_id,
            }),
        }
    }

    /// `{"credentials": ..., "credentials_data": ...}` as audit records carry it.
    pub fn dump(&self) -> Value {
        json!({"credentials": self.type_name(), "credentials_data": self.data()})
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

#[derive(Default)]
struct SessionsInner {
    by_id: HashMap<String, Session>,
    order: Vec<String>,
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, SessionsInner> {
        // A panic while holding this lock cannot leave it half-updated in a way that matters
        // more than refusing all further logins would; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, id: String, session: Session) {
        let mut g = self.lock();
        if g.by_id.insert(id.clone(), session).is_none() {
            g.order.push(id);
        }
    }

    pub fn remove(&self, id: &str) -> Option<Session> {
        let mut g = self.lock();
        let s = g.by_id.remove(id);
        if s.is_some() {
            g.order.retain(|i| i != id);
        }
        s
    }

    pub fn get(&self, id: &str) -> Option<Session> {
        self.lock().by_id.get(id).cloned()
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
            .iter()
            .filter_map(|id| g.by_id.get(id).map(|s| (id.clone(), s.clone())))
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
    json!({
        "id": id,
        "current": current,
        "internal": creds.internal,
        "origin": origin.to_string(),
        "credentials": creds.type_name(),
        "credentials_data": creds.data(),
        "created_at": ejson::date(s.created_at),
        "secure_transport": origin.secure_transport(),
    })
}
