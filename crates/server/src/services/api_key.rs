//! `api_key.*` (§4) and the API-key logins: API_KEY_PLAIN (§2.5) and SCRAM (§2.7).
//!
//! Keys are stored as TrueNAS 26 stores them (salt, iterations, SCRAM StoredKey/ServerKey),
//! never the raw key. Verifying a plain key costs a 500 000-round PBKDF2 on the bounded KDF
//! pool; a verified key is remembered in [`KeyCache`] under SHA-256 of the raw key together
//! with a stamp of the key record, so a repeat login is a hash lookup, and any change to the
//! record (reset, revoke, expiry, owner, deletion) makes the cached entry useless at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use gatehouse_core::apikey;
use gatehouse_core::model::{ApiKey, EXPIRY_NEVER, EXPIRY_REVOKED, User, Write};
use gatehouse_core::scram::{self, ScramPending, ServerFirst};
use gatehouse_proto::ejson;
use gatehouse_proto::error::Verrors;
use gatehouse_proto::schema::{Access, Field, MethodSpec, Ty};
use gatehouse_proto::{ApiError, errno};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::auth;
use crate::app::App;
use crate::directory::Directory;
use crate::registry::{Ctx, Redaction, Registry};
use crate::session::{CredKind, Credentials};

/// TrueNAS 25.x limit of keys per user.
const MAX_KEYS_PER_USER: usize = 10;
/// Entries the verified-key cache holds before it is cleared.
const KEY_CACHE_MAX: usize = 4096;

const REDACT: Redaction = Redaction {
    fields: &["keyhash"],
    write_role: "API_KEY_WRITE",
};
const REDACT_CONVERTED: Redaction = Redaction {
    fields: &["salt", "client_key", "stored_key", "server_key"],
    write_role: "API_KEY_WRITE",
};

// ---------------------------------------------------------------------------------------------
// Verified-key cache

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CachedKey {
    key_id: i64,
    user_id: i64,
    stamp: [u8; 32],
}

/// `cache_digest(raw key)` → the key record it verified against.
#[derive(Default)]
pub struct KeyCache {
    inner: Mutex<HashMap<[u8; 32], CachedKey>>,
}

impl KeyCache {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], CachedKey>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, digest: &[u8; 32]) -> Option<CachedKey> {
        self.map().get(digest).copied()
    }

    fn insert(&self, digest: [u8; 32], entry: CachedKey) {
        let mut m = self.map();
        if m.len() >= KEY_CACHE_MAX {
            m.clear();
        }
        m.insert(digest, entry);
    }

    /// Forgets every verification of key `id`.
    pub fn invalidate_key(&self, id: i64) {
        self.map().retain(|_, e| e.key_id != id);
    }

    /// Forgets every verification of keys owned by `user_id`.
    pub fn invalidate_user(&self, user_id: i64) {
        self.map().retain(|_, e| e.user_id != user_id);
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A digest of everything a verification depends on: any change to the record changes it.
fn stamp(k: &ApiKey) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [
        k.id.to_string(),
        k.user_id.to_string(),
        k.salt.clone(),
        k.iterations.to_string(),
        k.stored_key.clone(),
        k.server_key.clone(),
        k.expiry.to_string(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize().into()
}

// ---------------------------------------------------------------------------------------------
// Entries and helpers

fn entries(app: &App, dir: &Directory) -> Vec<Value> {
    let now = app.clock.now_unix();
    dir.api_keys
        .values()
        .map(|k| dir.api_key_entry(k, now))
        .collect()
}

fn redacted_entry(dir: &Directory, k: &ApiKey, now: i64) -> Value {
    let mut e = dir.api_key_entry(k, now);
    e["keyhash"] = json!("********");
    e
}

fn is_expired(k: &ApiKey, now: i64) -> bool {
    k.expiry > 0 && k.expiry <= now
}

/// The material for a fresh key: `(key part, salt field, stored key, server key)`.
async fn new_material(app: &Arc<App>) -> Result<(String, String, u32, String, String), ApiError> {
    let key_part = apikey::generate_key_part(app.entropy.as_ref());
    let salt = apikey::generate_salt(app.entropy.as_ref());
    let iterations = app.config.api_key_iterations.max(1);
    let kp = key_part.clone();
    let (salt_field, stored, server) = app
        .kdf(move || {
            let keys = apikey::derive(&kp, salt.as_bytes(), iterations);
            (
                apikey::salt_field(salt.as_bytes()),
                keys.stored_key_b64(),
                keys.server_key_b64(),
            )
        })
        .await?;
    Ok((key_part, salt_field, iterations, stored, server))
}

/// The owner check of create/update/delete (§4.3 step 2).
fn check_owner(creds: &Credentials, owner: &str) -> Result<(), ApiError> {
    let root = creds.root();
    if root.internal || root.privilege.has_any(&["API_KEY_WRITE"]) || root.user.username == owner {
        return Ok(());
    }
    Err(ApiError::call(
        errno::EACCES,
        format!(
            "{}: authenticated user lacks privileges to create or modify API keys of other users.",
            root.user.username
        ),
    ))
}

fn expiry_from(v: Option<&Value>) -> Option<i64> {
    v.and_then(ejson::as_date)
}

// ---------------------------------------------------------------------------------------------
// CRUD

async fn create(ctx: Ctx, params: Vec<Value>) -> Result<Value, ApiError> {
    if let Some(n) = params
        .first()
        .and_then(|d| d.get("name"))
        .and_then(Value::as_str)
    {
        ctx.audit_extend(n);
    }
    let app = ctx.app.clone();
    let creds = ctx
        .conn
        .credentials()
        .ok_or_else(ApiError::not_authenticated)?;
    let data = params.into_iter().next().unwrap_or(Value::Null);
    let name = data
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let username = data
        .get("username")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let expires = expiry_from(data.get("expires_at"));
    check_owner(&creds, &username)?;
    let now = app.clock.now_unix();
    // Cheap checks first, so a refused request does not cost a KDF run.
    validate_create(&app.dir(), &name, &username, expires, now)?;
    let (key_part, salt, iterations, stored_key, server_key) = new_material(&app).await?;
    let (entry, id) = app
        .mutate(move |dir| {
            validate_create(dir, &name, &username, expires, now)?;
            let Some(user) = dir.user_by_name(&username) else {
                return Err(ApiError::validation(
                    "api_key_create",
                    "User does not exist.",
                ));
            };
            let id = Directory::next_id(&dir.api_keys, dir.id_high.api_keys);
            let k = ApiKey {
                id,
                name,
                user_id: user.id,
                salt,
                iterations,
                stored_key,
                server_key,
                created_at: now,
                expiry: expires.unwrap_or(EXPIRY_NEVER),
                revoked_reason: None,
            };
            let entry = dir.api_key_entry(&k, now);
            let public = redacted_entry(dir, &k, now);
            Ok((vec![Write::PutApiKey(k)], (entry, (id, public))))
        })
        .await?;
    let (id, public) = id;
    app.publish("api_key.query", "added", json!(id), Some(public));
    let mut out = entry;
    out["key"] = json!(format!("{id}-{key_part}"));
    Ok(out)
}

fn validate_create(
    dir: &Directory,
    name: &str,
    username: &str,
    expires: Option<i64>,
    now: i64,
) -> Result<(), ApiError> {
    let mut v = Verrors::new();
    if dir.api_keys.values().any(|k| k.name == name) {
        v.add("api_key_create", "name must be unique");
    }
    if expires.is_some_and(|e| e <= now) {
        v.add("api_key_create", "Expiration date is in the past");
    }
    match dir.user_by_name(username) {
        None => v.add("api_key_create", "User does not exist."),
        Some(u) => {
            if dir.compose_for_user(u).is_none_or(|p| p.roles.is_empty()) {
                v.add("api_key_create", "User lacks privilege role membership.");
            }
            if dir.api_keys.values().filter(|k| k.user_id == u.id).count() >= MAX_KEYS_PER_USER {
                v.add(
                    "api_key_create.username",
                    format!("User already meets or exceeds maximum per-user API key limit of {MAX_KEYS_PER_USER}"),
                );
            }
        }
    }
    v.check()
}

fn owner_name(dir: &Directory, k: &ApiKey) -> String {
    dir.users
        .get(&k.user_id)
        .map(|u| u.username.clone())
        .unwrap_or_default()
}

async fn update(ctx: Ctx, params: Vec<Value>) -> Result<Value, ApiError> {
    ctx.audit_object(|d| {
        d.api_keys
            .get(&super::id_param(&params))
            .map(|x| x.name.clone())
    });
    let app = ctx.app.clone();
    let creds = ctx
        .conn
        .credentials()
        .ok_or_else(ApiError::not_authenticated)?;
    let id = super::id_param(&params);
    let data = params.get(1).cloned().unwrap_or_else(|| json!({}));
    let now = app.clock.now_unix();
    // Checked here so a refused reset costs no KDF run, and again under the write lock below:
    // while the new material is hashed, the key may be deleted and its id reused for a key of
    // someone else (regression: a READONLY_ADMIN's reset of its own key landed on an admin's).
    let identity = {
        let dir = app.dir();
        let Some(k) = dir.api_keys.get(&id) else {
            return Err(ApiError::not_found("ApiKey", id));
        };
        check_owner(&creds, &owner_name(&dir, k))?;
        (k.user_id, k.created_at)
    };
    let reset = data.get("reset").and_then(Value::as_bool).unwrap_or(false);
    let material = if reset {
        Some(new_material(&app).await?)
    } else {
        None
    };
    let key_part = material.as_ref().map(|m| m.0.clone());
    let (entry, public) = app
        .mutate(move |dir| {
            let Some(old) = dir
                .api_keys
                .get(&id)
                .filter(|k| (k.user_id, k.created_at) == identity)
            else {
                return Err(ApiError::not_found("ApiKey", id));
            };
            check_owner(&creds, &owner_name(dir, old))?;
            let mut k = old.clone();
            let mut v = Verrors::new();
            if let Some(name) = data.get("name").and_then(Value::as_str) {
                if dir.api_keys.values().any(|o| o.name == name && o.id != id) {
                    v.add("api_key_update", "name must be unique");
                }
                k.name = name.to_string();
            }
            if let Some(e) = data.get("expires_at") {
                k.expiry = expiry_from(Some(e)).unwrap_or(EXPIRY_NEVER);
            }
            if let Some((_, salt, iterations, stored, server)) = material {
                k.salt = salt;
                k.iterations = iterations;
                k.stored_key = stored;
                k.server_key = server;
                k.revoked_reason = None;
                if k.expiry == EXPIRY_REVOKED {
                    k.expiry = EXPIRY_NEVER;
                }
            }
            // As TrueNAS: the resulting expiry is checked, so renaming an expired key fails.
            if k.expiry > 0 && k.expiry <= now {
                v.add("api_key_update", "Expiration date is in the past");
            }
            v.check()?;
            let entry = dir.api_key_entry(&k, now);
            let public = redacted_entry(dir, &k, now);
            Ok((vec![Write::PutApiKey(k)], (entry, public)))
        })
        .await?;
    app.ext.key_cache.invalidate_key(id);
    app.publish("api_key.query", "changed", json!(id), Some(public));
    let mut out = entry;
    if let Some(kp) = key_part {
        out["key"] = json!(format!("{id}-{kp}"));
    }
    Ok(out)
}

async fn delete(ctx: Ctx, params: Vec<Value>) -> Result<Value, ApiError> {
    ctx.audit_object(|d| {
        d.api_keys
            .get(&super::id_param(&params))
            .map(|x| x.name.clone())
    });
    let app = ctx.app.clone();
    let creds = ctx
        .conn
        .credentials()
        .ok_or_else(ApiError::not_authenticated)?;
    let id = super::id_param(&params);
    app.mutate(move |dir| {
        let Some(k) = dir.api_keys.get(&id) else {
            return Err(ApiError::not_found("ApiKey", id));
        };
        check_owner(&creds, &owner_name(dir, k))?;
        Ok((vec![Write::DeleteApiKey(id)], ()))
    })
    .await?;
    app.ext.key_cache.invalidate_key(id);
    app.publish("api_key.query", "removed", json!(id), None);
    Ok(json!(true))
}

/// Revokes a key (`api_key.revoke`): expiry -1 with a reason.
pub async fn revoke(app: &Arc<App>, id: i64, reason: &str) -> Result<(), ApiError> {
    let reason = reason.to_string();
    let now = app.clock.now_unix();
    let public = app
        .mutate(move |dir| {
            let Some(old) = dir.api_keys.get(&id) else {
                return Ok((vec![], None));
            };
            let mut k = old.clone();
            k.expiry = EXPIRY_REVOKED;
            k.revoked_reason = Some(reason);
            let public = redacted_entry(dir, &k, now);
            Ok((vec![Write::PutApiKey(k)], Some(public)))
        })
        .await?;
    app.ext.key_cache.invalidate_key(id);
    if let Some(p) = public {
        app.publish("api_key.query", "changed", json!(id), Some(p));
    }
    Ok(())
}

async fn convert_raw_key(ctx: Ctx, params: Vec<Value>) -> Result<Value, ApiError> {
    let raw = params
        .first()
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_string();
    let attr = "api_key_convert_raw_key";
    let (id, key_part) =
        apikey::parse_raw_key(&raw).map_err(|e| ApiError::validation(attr, e.to_string()))?;
    let key_part = key_part.to_string();
    let k = ctx.app.dir().api_keys.get(&id).cloned();
    let Some(k) = k else {
        return Err(ApiError::validation(attr, "Key does not exist."));
    };
    if k.expiry == EXPIRY_REVOKED {
        return Err(ApiError::validation(attr, "Key is revoked."));
    }
    let salt = B64
        .decode(&k.salt)
        .map_err(|_| ApiError::validation(attr, "Key does not exist."))?;
    let iterations = k.iterations.min(apikey::MAX_ITERATIONS);
    let keys = ctx
        .app
        .kdf(move || apikey::derive(&key_part, &salt, iterations))
        .await?;
    Ok(json!({
        "api_key_id": id,
        "iterations": k.iterations,
        "salt": k.salt,
        "client_key": keys.client_key_b64(),
        "stored_key": keys.stored_key_b64(),
        "server_key": keys.server_key_b64(),
    }))
}

// ---------------------------------------------------------------------------------------------
// Logins

/// The key record and its owner, if the key exists and belongs to `username`.
fn key_for(app: &App, id: i64, username: &str) -> Option<(ApiKey, User)> {
    let dir = app.dir();
    let k = dir.api_keys.get(&id)?;
    let u = dir
        .users
        .get(&k.user_id)
        .filter(|u| u.username == username)?;
    Some((k.clone(), u.clone()))
}

fn key_info(k: &ApiKey) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "expires_at": if k.expiry > 0 { ejson::date(k.expiry) } else { Value::Null },
        "revoked": k.expiry == EXPIRY_REVOKED,
    })
}

async fn fail(
    ctx: &Ctx,
    cred: &str,
    data: Value,
    error: &str,
    response: &str,
) -> Result<Value, ApiError> {
    auth::audit_failure(&ctx.app, &ctx.conn, cred, data, error);
    ctx.app.login_failure_delay().await;
    Ok(auth::response(response))
}

fn api_key_credentials(app: &App, k: &ApiKey, user: &User, scram: bool) -> Option<Credentials> {
    let privilege = {
        let dir = app.dir();
        app.privilege_for(&dir, user)?
    };
    let mut extra = vec!["API_KEY"];
    if scram {
        extra.push("SCRAM");
    }
    Some(auth::user_credentials(
        app,
        CredKind::ApiKey {
            id: k.id,
            name: k.name.clone(),
        },
        user,
        privilege,
        &extra,
    ))
}

/// API_KEY_PLAIN (§2.5, §4.4).
pub async fn login_plain(
    ctx: &Ctx,
    username: &str,
    raw: &str,
    user_info: bool,
) -> Result<Value, ApiError> {
    let app = &ctx.app;
    let data = |key: Value| json!({"username": username, "api_key": key});
    let raw = raw.trim();
    let Ok((id, key_part)) = apikey::parse_raw_key(raw) else {
        return fail(
            ctx,
            "API_KEY",
            data(json!("<INVALID>")),
            "Invalid API key",
            "AUTH_ERR",
        )
        .await;
    };
    let Some((k, user)) = key_for(app, id, username) else {
        return fail(
            ctx,
            "API_KEY",
            data(json!("<INVALID>")),
            "Invalid API key",
            "AUTH_ERR",
        )
        .await;
    };
    let now = app.clock.now_unix();
    if k.expiry == EXPIRY_REVOKED {
        return fail(
            ctx,
            "API_KEY",
            data(key_info(&k)),
            "API key is revoked",
            "AUTH_ERR",
        )
        .await;
    }
    if is_expired(&k, now) {
        app.ext.key_cache.invalidate_key(k.id);
        return fail(
            ctx,
            "API_KEY",
            data(key_info(&k)),
            "Api key is expired.",
            "EXPIRED",
        )
        .await;
    }
    if user.locked {
        return fail(
            ctx,
            "API_KEY",
            data(key_info(&k)),
            "Account is locked.",
            "AUTH_ERR",
        )
        .await;
    }
    let digest = apikey::cache_digest(raw);
    let st = stamp(&k);
    let cached = app.ext.key_cache.get(&digest)
        == Some(CachedKey {
            key_id: k.id,
            user_id: user.id,
            stamp: st,
        });
    if !cached {
        let salt = B64.decode(&k.salt).unwrap_or_default();
        let stored = B64.decode(&k.stored_key).unwrap_or_default();
        let kp = key_part.to_string();
        let iterations = k.iterations;
        let ok = app
            .kdf(move || apikey::verify_plain(&kp, &salt, iterations, &stored))
            .await?;
        if !ok {
            return fail(
                ctx,
                "API_KEY",
                data(key_info(&k)),
                "Invalid API key",
                "AUTH_ERR",
            )
            .await;
        }
        // Only remember it if the record did not change while we were hashing.
        if key_for(app, id, username).is_some_and(|(now_k, _)| stamp(&now_k) == st) {
            app.ext.key_cache.insert(
                digest,
                CachedKey {
                    key_id: k.id,
                    user_id: user.id,
                    stamp: st,
                },
            );
        }
    }
    if !ctx.conn.origin.secure_transport() {
        revoke(app, k.id, "Attempt to use over an insecure transport").await?;
        return fail(
            ctx,
            "API_KEY",
            data(key_info(&k)),
            "API key revoked due to insecure transport.",
            "EXPIRED",
        )
        .await;
    }
    let Some(creds) = api_key_credentials(app, &k, &user, false) else {
        return fail(
            ctx,
            "API_KEY",
            data(key_info(&k)),
            "User lacks API access.",
            "DENIED",
        )
        .await;
    };
    auth::login(app, &ctx.conn, creds);
    auth::success(app, &ctx.conn, user_info)
}

/// A SCRAM exchange between server-first and client-final.
pub struct ScramState {
    pub pending: ScramPending,
    pub key_id: i64,
    pub stamp: [u8; 32],
    pub started_ms: u64,
}

/// SCRAM CLIENT_FIRST_MESSAGE: answers server-first, or `None` plus the failure response.
pub async fn scram_first(
    ctx: &Ctx,
    rfc_str: &str,
) -> Result<(Value, Option<ScramState>), ApiError> {
    let app = &ctx.app;
    let tls = matches!(
        ctx.conn.origin,
        gatehouse_core::origin::Origin::Tcp { ssl: true, .. }
    );
    let cf = match scram::parse_client_first(rfc_str, tls) {
        Ok(cf) => cf,
        Err(e) => {
            return Ok((
                fail(
                    ctx,
                    "SCRAM",
                    json!({"username": null}),
                    &e.to_string(),
                    "AUTH_ERR",
                )
                .await?,
                None,
            ));
        }
    };
    let data = json!({"username": cf.username, "api_key": cf.api_key_id});
    let Some((k, user)) = key_for(app, cf.api_key_id, &cf.username) else {
        return Ok((
            fail(ctx, "SCRAM", data, "Invalid API key", "AUTH_ERR").await?,
            None,
        ));
    };
    if k.expiry == EXPIRY_REVOKED || user.locked {
        return Ok((
            fail(ctx, "SCRAM", data, "API key is revoked", "AUTH_ERR").await?,
            None,
        ));
    }
    if is_expired(&k, app.clock.now_unix()) {
        return Ok((
            fail(ctx, "SCRAM", data, "Api key is expired.", "EXPIRED").await?,
            None,
        ));
    }
    let nonce: [u8; scram::NONCE_LEN] = app.random_bytes();
    let sf = ServerFirst::new(cf, &nonce, &k.salt, k.iterations);
    let resp = json!({
        "response_type": "SCRAM_RESPONSE",
        "scram_type": "SERVER_FIRST_RESPONSE",
        "rfc_str": sf.rfc_str,
        "user_info": null,
    });
    let state = ScramState {
        pending: sf.pending,
        key_id: k.id,
        stamp: stamp(&k),
        started_ms: app.clock.monotonic_ms(),
    };
    Ok((resp, Some(state)))
}

/// SCRAM CLIENT_FINAL_MESSAGE against the exchange started by [`scram_first`].
pub async fn scram_final(ctx: &Ctx, state: ScramState, rfc_str: &str) -> Result<Value, ApiError> {
    let app = &ctx.app;
    let username = state.pending.client_first().username.clone();
    let data = json!({"username": username, "api_key": state.key_id});
    let current = key_for(app, state.key_id, &username).filter(|(k, _)| stamp(k) == state.stamp);
    let Some((k, user)) = current else {
        return fail(ctx, "SCRAM", data, "Invalid API key", "AUTH_ERR").await;
    };
    if app.clock.monotonic_ms().saturating_sub(state.started_ms) > auth::PENDING_LOGIN_TTL_MS {
        return fail(ctx, "SCRAM", data, "SCRAM exchange expired", "AUTH_ERR").await;
    }
    let stored = B64.decode(&k.stored_key).unwrap_or_default();
    let server = B64.decode(&k.server_key).unwrap_or_default();
    let server_final = match scram::verify_client_final(state.pending, rfc_str, &stored, &server) {
        Ok(v) => v,
        Err(e) => return fail(ctx, "SCRAM", data, &e.to_string(), "AUTH_ERR").await,
    };
    let Some(creds) = api_key_credentials(app, &k, &user, true) else {
        return fail(ctx, "SCRAM", data, "User lacks API access.", "DENIED").await;
    };
    auth::login(app, &ctx.conn, creds);
    let info = match ctx.conn.credentials() {
        Some(c) => auth::me(app, &c)?,
        None => Value::Null,
    };
    Ok(json!({
        "response_type": "SCRAM_RESPONSE",
        "scram_type": "SERVER_FINAL_RESPONSE",
        "rfc_str": server_final,
        "user_info": info,
    }))
}

// ---------------------------------------------------------------------------------------------
// Registration

fn entry_ty() -> Ty {
    Ty::object(
        "ApiKeyEntry",
        vec![
            Field::required("id", Ty::int()),
            Field::required("name", Ty::str_len(1, 200)),
            Field::required("username", Ty::nullable(Ty::str())),
            Field::required("user_identifier", Ty::Union(vec![Ty::int(), Ty::str()])),
            Field::required("keyhash", Ty::secret(Ty::str())),
            Field::required("created_at", Ty::DateTime),
            Field::optional("expires_at", Ty::nullable(Ty::DateTime), Value::Null),
            Field::required("local", Ty::Bool),
            Field::required("revoked", Ty::Bool),
            Field::required("revoked_reason", Ty::nullable(Ty::str())),
        ],
    )
}

pub fn register(r: &mut Registry) {
    let write = || Access::Roles(vec!["READONLY_ADMIN", "API_KEY_WRITE"]);
    r.add_redacted(
        MethodSpec::new("api_key.query", Access::Roles(vec!["API_KEY_READ"]))
            .query(entry_ty())
            .doc("Query API keys with `query-filters` and `query-options`."),
        Some(REDACT),
        |ctx, params| async move {
            let records = entries(&ctx.app, &ctx.app.dir());
            super::run_query(records, &params)
        },
    );
    let [id, options] = super::get_instance_params(Ty::int());
    r.add_redacted(
        MethodSpec::new("api_key.get_instance", Access::Roles(vec!["API_KEY_READ"]))
            .param(id)
            .param(options)
            .doc(
                "Returns instance matching `id`. If `id` is not found, Validation error is raised.",
            ),
        Some(REDACT),
        |ctx, params| async move {
            let records = entries(&ctx.app, &ctx.app.dir());
            super::get_instance(records, "ApiKey", &params)
        },
    );
    r.add_redacted(
        MethodSpec::new("api_key.create", write())
            .param(Field::required(
                "api_key_create",
                Ty::object(
                    "ApiKeyCreate",
                    vec![
                        Field::required("name", Ty::str_len(1, 200)),
                        Field::required("username", Ty::non_empty_str()),
                        Field::optional("expires_at", Ty::nullable(Ty::DateTime), Value::Null),
                    ],
                ),
            ))
            .audited("Create API key")
            .doc("Creates API Key.\n\n`name` is a user-readable name for key. The raw key is returned only once, in the `key` field."),
        Some(REDACT),
        create,
    );
    r.add_redacted(
        MethodSpec::new("api_key.update", write())
            .param(Field::required("id", Ty::int()))
            .param(Field::required(
                "api_key_update",
                Ty::object(
                    "ApiKeyUpdate",
                    vec![
                        Field::optional("name", Ty::str_len(1, 200), Value::Null),
                        Field::optional("expires_at", Ty::nullable(Ty::DateTime), Value::Null),
                        Field::optional("reset", Ty::Bool, json!(false)),
                    ],
                )
                .for_update(),
            ))
            .audited("Update API key")
            .doc("Update API Key `id`.\n\nSpecify `reset: true` to reset this API Key."),
        Some(REDACT),
        update,
    );
    r.add(
        MethodSpec::new("api_key.delete", write())
            .param(Field::required("id", Ty::int()))
            .audited("Delete API key")
            .doc("Delete API Key `id`."),
        delete,
    );
    r.add_redacted(
        MethodSpec::new(
            "api_key.my_keys",
            Access::Roles(vec!["READONLY_ADMIN", "API_KEY_READ"]),
        )
        .doc("Get the existing API keys for the currently-authenticated user."),
        Some(REDACT),
        |ctx, _| async move {
            let c = ctx
                .conn
                .credentials()
                .ok_or_else(ApiError::not_authenticated)?;
            let username = c.root().user.username.clone();
            let records = entries(&ctx.app, &ctx.app.dir());
            super::run_query(records, &[json!([["username", "=", username]]), json!({})])
        },
    );
    r.add_redacted(
        MethodSpec::new(
            "api_key.convert_raw_key",
            Access::Roles(vec!["API_KEY_READ"]),
        )
        .param(Field::required("raw_key", Ty::secret(Ty::non_empty_str())))
        .doc("Convert a raw API key into the SCRAM material a client may keep instead of the key."),
        Some(REDACT_CONVERTED),
        convert_raw_key,
    );
    r.add(
        MethodSpec::new(
            "auth.login_with_api_key",
            Access::Public { rate_limit: true },
        )
        .param(Field::required("api_key", Ty::secret(Ty::str())))
        .cli_private()
        .doc("Authenticate session using API Key."),
        |ctx, params| async move {
            let raw = params
                .first()
                .and_then(Value::as_str)
                .unwrap_or_default()
                .trim()
                .to_string();
            let owner = apikey::parse_raw_key(&raw).ok().and_then(|(id, _)| {
                let dir = ctx.app.dir();
                let k = dir.api_keys.get(&id)?;
                dir.users.get(&k.user_id).map(|u| u.username.clone())
            });
            let Some(username) = owner else {
                auth::abandon_pending(&ctx);
                auth::audit_failure(
                    &ctx.app,
                    &ctx.conn,
                    "API_KEY",
                    json!({"username": null, "api_key": "<INVALID>"}),
                    "Invalid API key",
                );
                ctx.app.login_failure_delay().await;
                return Ok(json!(false));
            };
            let data = json!({
                "mechanism": "API_KEY_PLAIN",
                "username": username,
                "api_key": raw,
                "login_options": {"user_info": false},
            });
            let resp = auth::login_ex(&ctx, data).await?;
            Ok(json!(resp.get("response_type") == Some(&json!("SUCCESS"))))
        },
    );
}
