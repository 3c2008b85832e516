//! `auth.*`: login, logout, `auth.me`, sessions; and the connection hooks that make the UNIX
//! socket auto-login and expire sessions.

use std::sync::Arc;

use gatehouse_core::model::{User, Write};
use gatehouse_core::password;
use gatehouse_core::roles::ComposedPrivilege;
use gatehouse_proto::ejson;
use gatehouse_proto::schema::{Access, Field, MethodSpec, Obj, Ty};
use gatehouse_proto::{ApiError, errno};
use serde_json::{Value, json};

use crate::app::App;
use crate::conn::Conn;
use crate::registry::{Ctx, Registry, Reply};
use crate::session::{
    CachedEntry, CredKind, Credentials, Session, SessionEntry, SessionPrivilege, UserRef,
    session_entry,
};

/// Session lifetime at authenticator level 1 (30 days).
pub const MAX_SESSION_AGE_MS: u64 = 30 * 24 * 3600 * 1000;

/// A login waiting for its second step (OTP, SCRAM final) is dropped after this long.
pub const PENDING_LOGIN_TTL_MS: u64 = 5 * 60 * 1000;

/// Wrong OTP codes accepted per pending login before it is abandoned with AUTH_ERR.
pub const MAX_OTP_ATTEMPTS: u32 = 3;

/// Mechanisms offered at level 1, in TrueNAS' order (26+ adds SCRAM).
pub const MECHANISMS: &[&str] = &["API_KEY_PLAIN", "TOKEN_PLAIN", "PASSWORD_PLAIN", "SCRAM"];

// ---------------------------------------------------------------------------------------------
// Connection hooks

/// Runs when a connection opens: UNIX-socket peers are authenticated by their credentials.
pub async fn on_connect(app: &Arc<App>, conn: &Arc<Conn>) {
    let gatehouse_core::origin::Origin::Unix { uid, .. } = conn.origin else {
        return;
    };
    let own_uid = gatehouse_proto::defaults::current_uid();
    let now = app.clock.now_unix();
    let creds = if uid == 0 || Some(uid) == own_uid {
        Credentials {
            kind: CredKind::UnixSocket,
            user: UserRef {
                id: 1,
                uid: 0,
                username: "root".into(),
            },
            privilege: app.full_privilege(),
            account_attributes: vec!["LOCAL", "SYS_ADMIN"],
            login_at: now,
            login_id: app.new_uuid(),
            internal: true,
            expires_at_ms: None,
        }
    } else {
        let found = {
            let dir = app.dir();
            dir.user_by_uid(uid).and_then(|u| {
                if u.locked {
                    return None;
                }
                app.privilege_for(&dir, u).map(|p| (user_ref(u), p))
            })
        };
        // A local user without any privilege simply stays unauthenticated.
        let Some((user, privilege)) = found else {
            return;
        };
        Credentials {
            kind: CredKind::UnixSocket,
            account_attributes: account_attributes(&user),
            user,
            privilege,
            login_at: now,
            login_id: app.new_uuid(),
            internal: false,
            expires_at_ms: None,
        }
    };
    login(app, conn, creds);
}

/// Runs before each inbound message: an expired session is logged out (the socket stays
/// open and the call then fails with "Not authenticated").
pub fn on_message(app: &Arc<App>, conn: &Arc<Conn>) {
    let Some(c) = conn.credentials() else { return };
    let now = app.clock.monotonic_ms();
    let valid = c.is_valid(now)
        && match &c.kind {
            // A token session lives while its token does; each message slides the token's TTL.
            CredKind::Token { parent, digest } => {
                parent.is_valid(now) && app.ext.tokens.touch(digest, now)
            }
            _ => true,
        };
    if !valid {
        logout(app, conn);
    }
}

/// Runs when the connection closes.
pub async fn on_close(app: &Arc<App>, conn: &Arc<Conn>) {
    logout(app, conn);
}

// ---------------------------------------------------------------------------------------------
// Session bookkeeping

pub fn user_ref(u: &User) -> UserRef {
    UserRef {
        id: u.id,
        uid: u.uid,
        username: u.username.clone(),
    }
}

pub fn account_attributes(u: &UserRef) -> Vec<&'static str> {
    let mut a = vec!["LOCAL"];
    if u.uid == 0 || u.uid == 950 {
        a.push("SYS_ADMIN");
    }
    a
}

/// Credentials of a user session established now (30-day session age).
pub fn user_credentials(
    app: &App,
    kind: CredKind,
    user: &User,
    privilege: Arc<SessionPrivilege>,
    extra_attributes: &[&'static str],
) -> Credentials {
    let r = user_ref(user);
    let mut attrs = account_attributes(&r);
    attrs.extend_from_slice(extra_attributes);
    Credentials {
        kind,
        account_attributes: attrs,
        user: r,
        privilege,
        login_at: app.clock.now_unix(),
        login_id: app.new_uuid(),
        internal: false,
        expires_at_ms: Some(app.clock.monotonic_ms() + MAX_SESSION_AGE_MS),
    }
}

/// Establishes (or replaces) the connection's credentials.
pub fn login(app: &Arc<App>, conn: &Arc<Conn>, creds: Credentials) {
    let creds = Arc::new(creds);
    let replacing = conn.credentials().is_some();
    conn.set_credentials(Some(creds.clone()));
    if replacing {
        let created_at = app.sessions.get(&conn.session_id).map(|s| s.created_at);
        if let Some(created_at) = created_at {
            let entry = CachedEntry::new(&conn.session_id, created_at, creds.clone(), &conn.origin);
            app.sessions
                .set_entry(&conn.session_id, entry.map(Arc::new));
        }
    } else {
        let created_at = app.clock.now_unix();
        let entry = CachedEntry::new(&conn.session_id, created_at, creds.clone(), &conn.origin);
        let session = Session {
            conn: conn.clone(),
            created_at,
            entry: entry.map(Arc::new),
        };
        app.sessions
            .insert(conn.session_id.clone(), session.clone());
        // The event is only built when some session subscribed to events.
        if !creds.internal && app.sessions.has_watchers() {
            let mut fields = session_entry(&conn.session_id, &session, &creds, &conn.origin, false);
            if let Value::Object(m) = &mut fields {
                m.remove("current");
                m.remove("internal");
            }
            app.publish(
                "auth.sessions",
                "added",
                json!(conn.session_id),
                Some(fields),
            );
        }
    }
    if !creds.internal {
        app.audit(
            conn,
            "AUTHENTICATION",
            json!({"credentials": creds.dump(), "error": null}),
            true,
        );
    }
}

/// Ends the connection's session, if any.
pub fn logout(app: &Arc<App>, conn: &Arc<Conn>) {
    let Some(creds) = conn.credentials() else {
        return;
    };
    if !creds.internal {
        app.audit(conn, "LOGOUT", json!({"credentials": creds.dump()}), true);
    }
    // A session that logged in with a token consumes it when it ends (§3.1).
    if let CredKind::Token { digest, .. } = &creds.kind {
        app.ext.tokens.destroy(digest);
    }
    conn.set_credentials(None);
    conn.subscriptions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    app.sessions.remove(&conn.session_id);
    if !creds.internal {
        app.publish(
            "auth.sessions",
            "removed",
            json!(conn.session_id),
            Some(json!({"id": conn.session_id})),
        );
    }
}

/// Audits a failed login attempt.
pub fn audit_failure(app: &App, conn: &Conn, credentials: &str, data: Value, error: &str) {
    app.audit(
        conn,
        "AUTHENTICATION",
        json!({"credentials": {"credentials": credentials, "credentials_data": data}, "error": error}),
        false,
    );
}

// ---------------------------------------------------------------------------------------------
// auth.me

/// `auth.me` for a credential (its root user for token sessions).
pub fn me(app: &App, creds: &Credentials) -> Result<Value, ApiError> {
    with_me(app, creds, |m| {
        serde_json::to_value(m).unwrap_or(Value::Null)
    })
}

/// [`me`] serialized straight to JSON text (the `auth.me` method): no `Value` tree is built,
/// and the `privilege` member, the bulk of the reply, is serialized once per composed
/// privilege (`SessionPrivilege`), not per call. The directory parts (user, attributes,
/// two-factor config) are read afresh on every call.
pub fn me_json(app: &App, creds: &Credentials) -> Result<String, ApiError> {
    with_me(app, creds, |m| {
        serde_json::to_string(m).unwrap_or_else(|_| "null".into())
    })
}

/// The `auth.me` object, in the wire's key order (25.10's `AuthUserInfo`: the user object,
/// then `attributes`, `two_factor_config`, `privilege`, `account_attributes`).
#[derive(serde::Serialize)]
struct Me<'a> {
    pw_name: &'a str,
    pw_gecos: &'a str,
    pw_dir: &'a str,
    pw_shell: &'a str,
    pw_uid: u32,
    pw_gid: u32,
    grouplist: Option<()>,
    sid: Option<()>,
    source: &'static str,
    local: bool,
    attributes: Attributes<'a>,
    two_factor_config: super::twofactor::UserConfig,
    privilege: &'a serde_json::value::RawValue,
    account_attributes: Attrs<'a>,
}

/// The session's account attributes, plus PASSWORD_CHANGE_REQUIRED when the account needs it.
struct Attrs<'a> {
    base: &'a [&'static str],
    change_required: bool,
}

impl serde::Serialize for Attrs<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        const CHANGE: &str = "PASSWORD_CHANGE_REQUIRED";
        let extra = (self.change_required && !self.base.contains(&CHANGE)).then_some(CHANGE);
        s.collect_seq(self.base.iter().copied().chain(extra))
    }
}

/// The user's `auth.set_attribute` dictionary; `{}` when there is none.
struct Attributes<'a>(Option<&'a Value>);

impl serde::Serialize for Attributes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(v) => v.serialize(s),
            None => serde::ser::SerializeMap::end(s.serialize_map(Some(0))?),
        }
    }
}

fn with_me<T>(app: &App, creds: &Credentials, f: impl FnOnce(&Me<'_>) -> T) -> Result<T, ApiError> {
    let root = creds.root();
    let dir = app.dir();
    let user = dir
        .users
        .get(&root.user.id)
        .filter(|u| u.uid == root.user.uid)
        .ok_or_else(|| {
            ApiError::call(
                errno::ENOENT,
                format!("{}: user does not exist", root.user.username),
            )
        })?;
    let privilege = root.privilege.me_json(|p| privilege_json(app, p));
    let m = Me {
        pw_name: &user.username,
        pw_gecos: &user.full_name,
        pw_dir: &user.home,
        pw_shell: &user.shell,
        pw_uid: user.uid,
        pw_gid: dir.groups.get(&user.group).map_or(0, |g| g.gid),
        grouplist: None,
        sid: None,
        source: "LOCAL",
        local: true,
        attributes: Attributes(dir.attributes.get(&user.uid)),
        two_factor_config: super::twofactor::user_config_of(app, &dir, user),
        privilege,
        account_attributes: Attrs {
            base: &creds.account_attributes,
            change_required: user.password_change_required,
        },
    };
    Ok(f(&m))
}

/// The composed privilege as `auth.me` shows it: roles as a `$set`, and the allowlist of
/// `CALL` entries the roles grant (FULL_ADMIN: `*`/`*`).
pub fn privilege_json(app: &App, p: &ComposedPrivilege) -> Value {
    let allowlist: Vec<Value> = if p.full_admin {
        vec![json!({"method": "*", "resource": "*"})]
    } else {
        app.registry
            .methods()
            .filter(|m| matches!(&m.spec.access, Access::Roles(r) if !r.is_empty() && p.has_any(r)))
            .map(|m| json!({"method": "CALL", "resource": m.spec.name}))
            .collect()
    };
    json!({
        "roles": ejson::set(p.roles.iter().map(|r| json!(r)).collect()),
        "allowlist": allowlist,
        "web_shell": p.web_shell,
        "webui_access": p.webui_access,
    })
}

// ---------------------------------------------------------------------------------------------
// Login

fn login_options() -> Field {
    Field::optional(
        "login_options",
        Ty::object(
            "AuthCommonOptions",
            vec![Field::optional("user_info", Ty::Bool, json!(true))],
        ),
        json!({"user_info": true}),
    )
}

fn mech(
    name: &'static str,
    title: &'static str,
    mut fields: Vec<Field>,
    with_options: bool,
) -> (&'static str, Obj) {
    fields.insert(0, Field::required("mechanism", Ty::Literal(vec![name])));
    if with_options {
        fields.push(login_options());
    }
    (
        name,
        Obj {
            title,
            fields,
            update: false,
        },
    )
}

fn otp_token_variant() -> (&'static str, Obj) {
    mech(
        "OTP_TOKEN",
        "AuthOTPToken",
        vec![Field::required("otp_token", Ty::secret(Ty::str()))],
        true,
    )
}

/// The `login_data` union of `auth.login_ex`.
pub fn login_data_ty() -> Ty {
    Ty::Tagged {
        tag: "mechanism",
        variants: vec![
            mech(
                "API_KEY_PLAIN",
                "AuthApiKeyPlain",
                vec![
                    Field::required("username", Ty::str()),
                    Field::required("api_key", Ty::secret(Ty::str())),
                ],
                true,
            ),
            mech(
                "PASSWORD_PLAIN",
                "AuthPasswordPlain",
                vec![
                    Field::required("username", Ty::str()),
                    Field::required("password", Ty::secret(Ty::str())),
                ],
                true,
            ),
            mech(
                "TOKEN_PLAIN",
                "AuthTokenPlain",
                vec![Field::required("token", Ty::secret(Ty::str()))],
                true,
            ),
            otp_token_variant(),
            mech(
                "SCRAM",
                "AuthScram",
                vec![
                    Field::required(
                        "scram_type",
                        Ty::Literal(vec!["CLIENT_FIRST_MESSAGE", "CLIENT_FINAL_MESSAGE"]),
                    ),
                    Field::required("rfc_str", Ty::secret(Ty::str())),
                ],
                false,
            ),
        ],
    }
}

pub fn response(kind: &str) -> Value {
    json!({"response_type": kind})
}

/// A SUCCESS response for a fresh login on this connection.
pub fn success(app: &App, conn: &Conn, user_info: bool) -> Result<Value, ApiError> {
    let info = match (user_info, conn.credentials()) {
        (true, Some(c)) => me(app, &c)?,
        _ => Value::Null,
    };
    Ok(json!({"response_type": "SUCCESS", "user_info": info, "authenticator": "LEVEL_1"}))
}

fn wants_user_info(data: &Value) -> bool {
    data.get("login_options")
        .and_then(|o| o.get("user_info"))
        .and_then(Value::as_bool)
        .unwrap_or(true)
}

/// A login waiting for its second step on this connection.
pub enum Pending {
    Otp(OtpPending),
    Scram(super::api_key::ScramState),
}

pub struct OtpPending {
    pub user_id: i64,
    pub username: String,
    pub attempts: u32,
    pub started_ms: u64,
}

fn take_pending(conn: &Conn) -> Option<Pending> {
    let boxed = conn
        .pending_login
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()?;
    boxed.downcast::<Pending>().ok().map(|b| *b)
}

fn put_pending(conn: &Conn, p: Pending) {
    *conn.pending_login.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(p));
}

const ABANDON_OTP: &str = "Abandoning login attempt after being presented with requirement for second factor for authentication.";

fn audit_abandoned(app: &App, conn: &Conn, p: &Pending) {
    if let Pending::Otp(o) = p {
        audit_failure(
            app,
            conn,
            "LOGIN_TWOFACTOR",
            json!({"username": o.username}),
            ABANDON_OTP,
        );
    }
}

/// Drops a pending multi-step login (a different mechanism arrived).
pub fn abandon_pending(ctx: &Ctx) {
    if let Some(p) = take_pending(&ctx.conn) {
        audit_abandoned(&ctx.app, &ctx.conn, &p);
    }
}

fn str_field(data: &Value, key: &str) -> String {
    data.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// `auth.login_ex`: dispatches on `mechanism`. A different mechanism silently abandons a
/// pending OTP or SCRAM exchange (audited for OTP), as TrueNAS does.
pub async fn login_ex(ctx: &Ctx, data: Value) -> Result<Value, ApiError> {
    let mechanism = str_field(&data, "mechanism");
    let user_info = wants_user_info(&data);
    let pending = take_pending(&ctx.conn);
    match mechanism.as_str() {
        "OTP_TOKEN" => match pending {
            Some(Pending::Otp(o)) => {
                otp_token(ctx, o, &str_field(&data, "otp_token"), user_info).await
            }
            _ => Err(ApiError::call(
                errno::EINVAL,
                "OTP_TOKEN: no authentication in progress",
            )),
        },
        "SCRAM" => {
            let rfc = str_field(&data, "rfc_str");
            if str_field(&data, "scram_type") == "CLIENT_FINAL_MESSAGE" {
                match pending {
                    Some(Pending::Scram(st)) => super::api_key::scram_final(ctx, st, &rfc).await,
                    other => {
                        if let Some(p) = other {
                            audit_abandoned(&ctx.app, &ctx.conn, &p);
                        }
                        Err(ApiError::call(
                            errno::EINVAL,
                            "SCRAM authentication is not in progress",
                        ))
                    }
                }
            } else {
                if let Some(p) = pending {
                    audit_abandoned(&ctx.app, &ctx.conn, &p);
                }
                let (resp, state) = super::api_key::scram_first(ctx, &rfc).await?;
                if let Some(st) = state {
                    put_pending(&ctx.conn, Pending::Scram(st));
                }
                Ok(resp)
            }
        }
        other => {
            if let Some(p) = pending {
                audit_abandoned(&ctx.app, &ctx.conn, &p);
            }
            match other {
                "PASSWORD_PLAIN" => password_plain(ctx, &data).await,
                "API_KEY_PLAIN" => {
                    let (u, k) = (str_field(&data, "username"), str_field(&data, "api_key"));
                    super::lockout::api_key_login(ctx, &u, &k, user_info).await
                }
                "TOKEN_PLAIN" => {
                    super::token::login_token(ctx, &str_field(&data, "token"), user_info).await
                }
                _ => Err(ApiError::call(
                    errno::EOPNOTSUPP,
                    format!("{other}: mechanism is not supported at current authenticator level."),
                )),
            }
        }
    }
}

/// Checks a password without logging in: `Some(user)` when it is right and the account may
/// log in with a password. Unknown users cost the same hash.
pub async fn check_password(
    app: &Arc<App>,
    username: &str,
    password: &str,
) -> Result<Option<User>, ApiError> {
    let password = password.to_string();
    // Brute-force lock: checked before any hash; a locked account costs the dummy hash and
    // fails like a wrong password (services::lockout).
    let temp_locked = app.lockout.is_locked(username, app.clock.monotonic_ms());
    let candidate = {
        let dir = app.dir();
        dir.user_by_name(username)
            .filter(|u| !temp_locked && !u.locked && !u.password_disabled)
            .and_then(|u| u.password_hash.clone().map(|h| (u.clone(), h)))
    };
    let found = match candidate {
        Some((user, hash)) => {
            let (ok, password) = {
                let hash = hash.clone();
                app.kdf(move || (password::verify_password(&password, &hash), password))
                    .await?
            };
            if ok && password::needs_rehash(&hash) {
                upgrade_hash(app, user.id, hash, password).await;
            }
            ok.then_some(user)
        }
        None => {
            app.kdf(move || password::dummy_verify(&password)).await?;
            None
        }
    };
    super::lockout::after_password_check(app, username, found.is_some()).await;
    Ok(found)
}

/// After a successful login with an old-style hash (an imported `$6$`), stores an Argon2id hash
/// of the same password, so the account stops being slower (and distinguishable by timing)
/// than the others. Best effort: a failure leaves the old hash, which still verifies, and a
/// password changed meanwhile is not overwritten.
async fn upgrade_hash(app: &Arc<App>, user_id: i64, old: String, password: String) {
    let entropy = app.entropy.clone();
    let Ok(Ok(new)) = app
        .kdf(move || password::hash_password(&password, entropy.as_ref()))
        .await
    else {
        return;
    };
    let res = app
        .mutate(move |dir| {
            let Some(u) = dir.users.get(&user_id) else {
                return Ok((vec![], ()));
            };
            if u.password_hash.as_deref() != Some(old.as_str()) {
                return Ok((vec![], ()));
            }
            let mut u = u.clone();
            u.password_hash = Some(new);
            Ok((vec![Write::PutUser(u)], ()))
        })
        .await;
    if let Err(e) = res {
        tracing::warn!("could not upgrade a password hash to Argon2id: {e}");
    }
}

/// PASSWORD_PLAIN: unknown user, wrong password, locked and disabled accounts all cost one
/// hash and answer AUTH_ERR. A one-time password (`auth.generate_onetime_password`) is tried
/// first; a user with a TOTP secret under global 2FA gets OTP_REQUIRED.
async fn password_plain(ctx: &Ctx, data: &Value) -> Result<Value, ApiError> {
    let app = &ctx.app;
    let username = str_field(data, "username");
    let password = str_field(data, "password");
    if let Some(resp) =
        super::otpw::try_login(ctx, &username, &password, wants_user_info(data)).await?
    {
        return Ok(resp);
    }
    let Some(user) = check_password(app, &username, &password).await? else {
        audit_failure(
            app,
            &ctx.conn,
            "LOGIN_PASSWORD",
            json!({"username": username}),
            "Bad username or password",
        );
        super::lockout::audit_lock(app, &ctx.conn, "LOGIN_PASSWORD", &username);
        app.login_failure_delay().await;
        return Ok(response("AUTH_ERR"));
    };
    let (privilege, needs_otp) = {
        let dir = app.dir();
        (
            app.privilege_for(&dir, &user),
            dir.twofactor_config.enabled && dir.twofactor_configured(user.id),
        )
    };
    let Some(privilege) = privilege else {
        audit_failure(
            app,
            &ctx.conn,
            "LOGIN_PASSWORD",
            json!({"username": username}),
            "User lacks API access.",
        );
        app.login_failure_delay().await;
        return Ok(response("DENIED"));
    };
    if needs_otp {
        put_pending(
            &ctx.conn,
            Pending::Otp(OtpPending {
                user_id: user.id,
                username: user.username.clone(),
                attempts: 0,
                started_ms: app.clock.monotonic_ms(),
            }),
        );
        return Ok(json!({"response_type": "OTP_REQUIRED", "username": user.username}));
    }
    let creds = user_credentials(app, CredKind::LoginPassword, &user, privilege, &[]);
    login(app, &ctx.conn, creds);
    success(app, &ctx.conn, wants_user_info(data))
}

/// OTP_TOKEN after OTP_REQUIRED. Codes are single-use (the last accepted step is kept
/// durably), wrong codes are limited per pending login and per account, and a pending login
/// expires.
async fn otp_token(
    ctx: &Ctx,
    mut p: OtpPending,
    code: &str,
    user_info: bool,
) -> Result<Value, ApiError> {
    let app = &ctx.app;
    let data = json!({"username": p.username});
    let now_ms = app.clock.monotonic_ms();
    if now_ms.saturating_sub(p.started_ms) > PENDING_LOGIN_TTL_MS {
        audit_failure(
            app,
            &ctx.conn,
            "LOGIN_TWOFACTOR",
            data,
            "Second factor was not presented in time.",
        );
        app.login_failure_delay().await;
        return Ok(response("AUTH_ERR"));
    }
    let ok = super::twofactor::verify_login_code(app, p.user_id, code).await?;
    if !ok {
        p.attempts += 1;
        audit_failure(
            app,
            &ctx.conn,
            "LOGIN_TWOFACTOR",
            data,
            "One-time token validation failed.",
        );
        app.login_failure_delay().await;
        if p.attempts >= MAX_OTP_ATTEMPTS || app.ext.twofactor.account_locked(p.user_id, now_ms) {
            return Ok(response("AUTH_ERR"));
        }
        let username = p.username.clone();
        put_pending(&ctx.conn, Pending::Otp(p));
        return Ok(json!({"response_type": "OTP_REQUIRED", "username": username}));
    }
    let found = {
        let dir = app.dir();
        dir.users
            .get(&p.user_id)
            .filter(|u| !u.locked)
            .cloned()
            .and_then(|u| app.privilege_for(&dir, &u).map(|pr| (u, pr)))
    };
    let Some((user, privilege)) = found else {
        audit_failure(
            app,
            &ctx.conn,
            "LOGIN_TWOFACTOR",
            data,
            "User lacks API access.",
        );
        app.login_failure_delay().await;
        return Ok(response("AUTH_ERR"));
    };
    let creds = user_credentials(app, CredKind::LoginTwofactor, &user, privilege, &["2FA"]);
    login(app, &ctx.conn, creds);
    success(app, &ctx.conn, user_info)
}

fn current(ctx: &Ctx) -> Result<Arc<Credentials>, ApiError> {
    ctx.conn
        .credentials()
        .ok_or_else(ApiError::not_authenticated)
}

fn sessions_entries(app: &App, caller: &str) -> Vec<Value> {
    app.sessions
        .list()
        .into_iter()
        .filter_map(|s| {
            let c = s.conn.credentials()?;
            let id = &s.conn.session_id;
            Some(session_entry(id, &s, &c, &s.conn.origin, id == caller))
        })
        .collect()
}

/// `auth.sessions`: `filter_list` over the session entries, with the same results and errors.
///
/// Without `select` and `order_by`, and with filters that read top-level fields only (the
/// common case), the entries are not built as `Value`s: each session's filtered fields are
/// built alone, and the matching entries are serialized straight into the reply.
fn sessions_query(app: &App, caller: &str, params: &[Value]) -> Result<Reply, ApiError> {
    use gatehouse_core::query;
    let (no_filters, no_options) = (json!([]), json!({}));
    let f = params.first().unwrap_or(&no_filters);
    let o = params.get(1).unwrap_or(&no_options);
    let (filters, options) =
        query::parse_args((!f.is_null()).then_some(f), (!o.is_null()).then_some(o))?;
    let keys = match filters.top_level_keys() {
        Some(keys) if options.select.is_empty() && options.order_by.is_empty() => keys,
        _ => {
            let entries = sessions_entries(app, caller);
            return query::query_with(entries, &filters, &options).map(Reply::Value);
        }
    };
    options.check()?;
    // `filter_list` order: filter (with `get` stopping at the first match) → count → get →
    // offset → limit. Without filters, `count` wins over `get`.
    let first_wins = options.get && !(filters.is_empty() && options.count);
    let sessions = app.sessions.list();
    let mut out = Vec::with_capacity(if filters.is_empty() && !options.count {
        // Room for every entry, and for the frame around the result (`result_frame_json`).
        sessions.len() * 384 + 128
    } else {
        1024
    });
    out.push(b'[');
    let (mut matched, mut written) = (0usize, 0usize);
    for s in &sessions {
        let Some(c) = s.conn.credentials() else {
            continue;
        };
        let id = s.conn.session_id.as_str();
        let entry = SessionEntry {
            id,
            current: id == caller,
            creds: &c,
            origin: &s.conn.origin,
            created_at: s.created_at,
        };
        if !filters.is_empty() {
            let mut fields = serde_json::Map::with_capacity(keys.len());
            for k in &keys {
                if let Some(v) = entry.field(k) {
                    fields.insert((*k).to_string(), v);
                }
            }
            if !filters.try_matches(&Value::Object(fields))? {
                continue;
            }
        }
        if first_wins {
            return Ok(Reply::Value(entry.to_value()));
        }
        matched += 1;
        // Past `limit` the remaining records are still filtered: a condition may raise.
        if options.count
            || matched <= options.offset
            || (options.limit > 0 && written >= options.limit)
        {
            continue;
        }
        if written > 0 {
            out.push(b',');
        }
        let cached = s
            .entry
            .as_ref()
            .is_some_and(|e| e.write(&c, entry.current, &mut out));
        if !cached {
            serde_json::to_writer(&mut out, &entry)
                .map_err(|e| ApiError::Other(format!("auth.sessions: {e}")))?;
        }
        written += 1;
    }
    if first_wins {
        return Err(ApiError::MatchNotFound);
    }
    if options.count {
        return Ok(Reply::Value(Value::from(matched)));
    }
    out.push(b']');
    // serde_json writes UTF-8 only.
    String::from_utf8(out)
        .map(Reply::Json)
        .map_err(|e| ApiError::Other(format!("auth.sessions: {e}")))
}

/// Closes another session's connection (its close callback logs it out and audits).
pub fn terminate(app: &Arc<App>, id: &str) -> bool {
    match app.sessions.get(id) {
        Some(s) => {
            app.ext.tokens.destroy_for_session(id);
            logout(app, &s.conn);
            s.conn.close(1000, "Session terminated");
            true
        }
        None => false,
    }
}

fn session_entry_ty() -> Ty {
    Ty::object(
        "AuthSessionsEntry",
        vec![
            Field::required("id", Ty::str()),
            Field::required("current", Ty::Bool),
            Field::required("internal", Ty::Bool),
            Field::required("origin", Ty::str()),
            Field::required("credentials", Ty::str()),
            Field::required("credentials_data", Ty::Dict),
            Field::required("created_at", Ty::DateTime),
            Field::required("secure_transport", Ty::Bool),
        ],
    )
}

pub fn register(r: &mut Registry) {
    let public = || Access::Public { rate_limit: true };
    r.add(
        MethodSpec::new("auth.login_ex", public())
            .param(Field::required("login_data", login_data_ty()))
            .cli_private()
            .doc("Authenticate using one of a variety of mechanisms."),
        |ctx, mut params| async move {
            let data = params.pop().unwrap_or(Value::Null);
            login_ex(&ctx, data).await
        },
    );
    r.add(
        MethodSpec::new("auth.login_ex_continue", public())
            .param(Field::required(
                "login_data",
                Ty::Tagged {
                    tag: "mechanism",
                    variants: vec![otp_token_variant()],
                },
            ))
            .cli_private()
            .doc("Continue in-progress authentication attempt."),
        |ctx, mut params| async move {
            let data = params.pop().unwrap_or(Value::Null);
            login_ex(&ctx, data).await
        },
    );
    r.add(
        MethodSpec::new("auth.two_factor_auth", public())
            .param(Field::required("username", Ty::str()))
            .param(Field::required("password", Ty::secret(Ty::str())))
            .doc("Returns true if two-factor authorization is required for authorizing user's login."),
        |ctx, params| async move {
            let username = params[0].as_str().unwrap_or_default().to_string();
            let password = params[1].as_str().unwrap_or_default().to_string();
            let Some(user) = check_password(&ctx.app, &username, &password).await? else {
                return Ok(json!(false));
            };
            let dir = ctx.app.dir();
            Ok(json!(dir.twofactor_config.enabled && dir.twofactor_configured(user.id)))
        },
    );
    r.add(
        MethodSpec::new("auth.login", public())
            .param(Field::required("username", Ty::str()))
            .param(Field::required("password", Ty::secret(Ty::str())))
            .param(Field::optional("otp_token", Ty::nullable(Ty::secret(Ty::str())), Value::Null))
            .cli_private()
            .doc("Authenticate session using username and password."),
        |ctx, params| async move {
            let data = json!({
                "mechanism": "PASSWORD_PLAIN",
                "username": params[0],
                "password": params[1],
                "login_options": {"user_info": false},
            });
            let resp = login_ex(&ctx, data).await?;
            let kind = resp.get("response_type").and_then(Value::as_str).unwrap_or_default();
            if kind == "OTP_REQUIRED" && !params[2].is_null() {
                let otp = json!({"mechanism": "OTP_TOKEN", "otp_token": params[2], "login_options": {"user_info": false}});
                let resp = login_ex(&ctx, otp).await?;
                return Ok(json!(resp.get("response_type") == Some(&json!("SUCCESS"))));
            }
            Ok(json!(kind == "SUCCESS"))
        },
    );
    r.add(
        MethodSpec::new("auth.logout", Access::AnyUser)
            .cli_private()
            .doc("Deauthenticates an app and if a token exists, removes that from the session."),
        |ctx, _| async move {
            logout(&ctx.app, &ctx.conn);
            Ok(json!(true))
        },
    );
    r.add(
        MethodSpec::new("auth.mechanism_choices", public()).doc(
            "Get the list of authentication mechanisms available for :method:`auth.login_ex`.",
        ),
        |ctx, _| async move {
            let tokens_ok = ctx.conn.credentials().is_none_or(|c| c.may_create_tokens());
            let list: Vec<&str> = MECHANISMS
                .iter()
                .copied()
                .filter(|m| tokens_ok || *m != "TOKEN_PLAIN")
                .collect();
            Ok(json!(list))
        },
    );
    r.add_reply(
        MethodSpec::new("auth.me", Access::AnyUser).doc("Returns currently logged-in user."),
        None,
        |ctx, _| async move {
            let c = current(&ctx)?;
            me_json(&ctx.app, &c).map(Reply::Json)
        },
    );
    r.add(
        MethodSpec::new("auth.set_attribute", Access::AnyUser)
            .param(Field::required("key", Ty::str()))
            .param(Field::required("value", Ty::Any))
            .doc("Set current user's `attributes` dictionary `key` to `value`.\n\ne.g. Setting key=\"foo\" value=\"var\" will result in {\"attributes\": {\"foo\": \"bar\"}}"),
        |ctx, params| async move {
            let c = current(&ctx)?;
            let uid = c.root().user.uid;
            let key = params[0].as_str().unwrap_or_default().to_string();
            let value = params[1].clone();
            ctx.app
                .mutate(move |dir| {
                    let mut attrs = dir.attributes.get(&uid).cloned().unwrap_or_else(|| json!({}));
                    if let Value::Object(m) = &mut attrs {
                        m.insert(key, value);
                    }
                    Ok((vec![gatehouse_core::model::Write::PutAttributes(uid, attrs)], Value::Null))
                })
                .await
        },
    );
    r.add_reply(
        MethodSpec::new("auth.sessions", Access::Roles(vec!["AUTH_SESSIONS_READ"]))
            .query(session_entry_ty())
            .doc("Returns a list of active auth sessions.")
            .example("auth sessions current,origin,credentials WHERE internal == false"),
        None,
        |ctx, params| async move { sessions_query(&ctx.app, &ctx.conn.session_id, &params) },
    );
    r.add(
        MethodSpec::new(
            "auth.terminate_session",
            Access::Roles(vec!["AUTH_SESSIONS_WRITE"]),
        )
        .param(Field::required("id", Ty::str()))
        .doc("Terminates session `id`."),
        |ctx, params| async move {
            let id = params[0].as_str().unwrap_or_default().to_string();
            Ok(json!(terminate(&ctx.app, &id)))
        },
    );
    r.add(
        MethodSpec::new(
            "auth.terminate_other_sessions",
            Access::Roles(vec!["AUTH_SESSIONS_WRITE"]),
        )
        .doc("Terminates all other sessions (except the current one)."),
        |ctx, _| async move {
            for (id, s) in ctx.app.sessions.all() {
                let internal = s.conn.credentials().is_some_and(|c| c.internal);
                if id != ctx.conn.session_id && !internal {
                    terminate(&ctx.app, &id);
                }
            }
            Ok(json!(true))
        },
    );
}
