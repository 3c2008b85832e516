//! Two-factor authentication: `auth.twofactor.config/update` (§3.6), the per-user `user.*`
//! methods (§3.7), and the OTP check of the login flow.
//!
//! TOTP secrets are encrypted at rest with ChaCha20-Poly1305 under a 32-byte key kept in
//! `<data_dir>/twofactor.key` (mode 0600, created on first use); the user id is bound in as
//! associated data so a ciphertext cannot be moved to another account. A code is accepted at
//! most once: the last accepted time step is stored with the secret and checked in the same
//! serialised write that records the new one.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use gatehouse_core::model::{TwoFactorConfig, TwoFactorUser, User, Write};
use gatehouse_core::totp;
use gatehouse_proto::error::Verrors;
use gatehouse_proto::schema::{Access, Field, MethodSpec, Ty};
use gatehouse_proto::{ApiError, errno};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::app::App;
use crate::directory::Directory;
use crate::registry::{Ctx, Registry};

/// Wrong OTP codes per account within [`FAILURE_WINDOW_MS`] before OTP checks are refused.
const MAX_ACCOUNT_FAILURES: u32 = 10;
const FAILURE_WINDOW_MS: u64 = 15 * 60 * 1000;
const KEY_FILE: &str = "twofactor.key";
const CIPHER_PREFIX: &str = "v1:";

#[derive(Default)]
pub struct State {
    key: Mutex<Option<Zeroizing<[u8; 32]>>>,
    /// user id → (wrong codes, window start ms).
    failures: Mutex<HashMap<i64, (u32, u64)>>,
}

impl State {
    /// Whether the account has had too many wrong codes recently.
    pub fn account_locked(&self, user_id: i64, now_ms: u64) -> bool {
        let g = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        g.get(&user_id).is_some_and(|(n, start)| {
            *n >= MAX_ACCOUNT_FAILURES && now_ms.saturating_sub(*start) < FAILURE_WINDOW_MS
        })
    }

    fn record_failure(&self, user_id: i64, now_ms: u64) {
        let mut g = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let e = g.entry(user_id).or_insert((0, now_ms));
        if now_ms.saturating_sub(e.1) >= FAILURE_WINDOW_MS {
            *e = (0, now_ms);
        }
        e.0 += 1;
    }

    fn clear_failures(&self, user_id: i64) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&user_id);
    }
}

// ---------------------------------------------------------------------------------------------
// Secret encryption

/// The data directory's 2FA key, read or created on first use.
fn secret_key(app: &App) -> Result<Zeroizing<[u8; 32]>, ApiError> {
    let mut g = app
        .ext
        .twofactor
        .key
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(k) = g.as_ref() {
        return Ok(k.clone());
    }
    let path = app.config.data_dir.join(KEY_FILE);
    let fail = |e: String| {
        ApiError::call(
            errno::EFAULT,
            format!("two-factor key {}: {e}", path.display()),
        )
    };
    let key = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bytes = Zeroizing::new(B64.decode(text.trim()).map_err(|e| fail(e.to_string()))?);
            let arr: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| fail("not a 32-byte key".into()))?;
            Zeroizing::new(arr)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let k: Zeroizing<[u8; 32]> = Zeroizing::new(app.random_bytes());
            let text = Zeroizing::new(format!("{}\n", B64.encode(k.as_slice())));
            crate::provision::write_secret_file(&path, &text).map_err(|e| fail(e.to_string()))?;
            k
        }
        Err(e) => return Err(fail(e.to_string())),
    };
    *g = Some(key.clone());
    Ok(key)
}

fn aad(user_id: i64) -> String {
    format!("gatehouse-2fa-secret:{user_id}")
}

fn encrypt(app: &App, key: &[u8; 32], user_id: i64, secret: &str) -> Result<String, ApiError> {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    let nonce: [u8; 12] = app.random_bytes();
    let aad = aad(user_id);
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: secret.as_bytes(),
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| ApiError::call(errno::EFAULT, "cannot encrypt two-factor secret"))?;
    let mut blob = nonce.to_vec();
    blob.extend_from_slice(&ct);
    Ok(format!("{CIPHER_PREFIX}{}", B64.encode(blob)))
}

/// The base32 secret of a stored (encrypted) value; `None` if it does not decrypt.
fn decrypt(key: &[u8; 32], user_id: i64, stored: &str) -> Option<Zeroizing<String>> {
    let blob = B64.decode(stored.strip_prefix(CIPHER_PREFIX)?).ok()?;
    if blob.len() < 12 {
        return None;
    }
    let (nonce, ct) = blob.split_at(12);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    let aad = aad(user_id);
    let pt = Zeroizing::new(
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .ok()?,
    );
    String::from_utf8(pt.to_vec()).ok().map(Zeroizing::new)
}

// ---------------------------------------------------------------------------------------------
// Per-user configuration

fn provisioning_uri(app: &App, user: &User, row: &TwoFactorUser) -> Option<String> {
    let stored = row.secret.as_ref()?;
    let key = secret_key(app).ok()?;
    let secret = decrypt(&key, user.id, stored)?;
    Some(totp::provisioning_uri(
        &secret,
        &user.username,
        &app.hostname,
        row.interval,
        row.otp_digits,
    ))
}

/// `user.twofactor_config(username)`: `{provisioning_uri, secret_configured, interval, otp_digits}`.
pub fn user_config(app: &App, dir: &Directory, user: &User) -> Value {
    serde_json::to_value(user_config_of(app, dir, user)).unwrap_or(Value::Null)
}

/// [`user_config`] as a struct, to serialize straight into a larger reply (`auth.me`).
#[derive(serde::Serialize)]
pub struct UserConfig {
    provisioning_uri: Option<String>,
    secret_configured: bool,
    interval: u32,
    otp_digits: u32,
}

pub fn user_config_of(app: &App, dir: &Directory, user: &User) -> UserConfig {
    let row = dir.twofactor_users.get(&user.id);
    UserConfig {
        provisioning_uri: row.and_then(|r| provisioning_uri(app, user, r)),
        secret_configured: row.is_some_and(|t| t.secret.is_some()),
        interval: row.map_or(totp::DEFAULT_INTERVAL, |t| t.interval),
        otp_digits: row.map_or(totp::DEFAULT_DIGITS, |t| t.otp_digits),
    }
}

fn user_not_found(username: &str) -> ApiError {
    ApiError::call(errno::ENOENT, format!("User '{username}' does not exist"))
}

fn find_user(app: &App, username: &str) -> Result<User, ApiError> {
    app.dir()
        .user_by_name(username)
        .cloned()
        .ok_or_else(|| user_not_found(username))
}

async fn renew_secret(ctx: Ctx, params: Vec<Value>) -> Result<Value, ApiError> {
    if let Some(u) = params.first().and_then(Value::as_str) {
        ctx.audit_extend(u);
    }
    let app = ctx.app.clone();
    let creds = ctx
        .conn
        .credentials()
        .ok_or_else(ApiError::not_authenticated)?;
    let username = params
        .first()
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let opts = params.get(1).cloned().unwrap_or_else(|| json!({}));
    let root = creds.root();
    if !(root.privilege.full_admin || root.user.username == username) {
        return Err(ApiError::call(
            errno::EPERM,
            format!(
                "{username}: currently authenticated credential may not renew two-factor authentication for this user."
            ),
        ));
    }
    let user = find_user(&app, &username)?;
    let key = secret_key(&app)?;
    let secret = Zeroizing::new(totp::generate_secret(app.entropy.as_ref()));
    let encrypted = encrypt(&app, &key, user.id, &secret)?;
    let digits = opts
        .get("otp_digits")
        .and_then(Value::as_u64)
        .map(|d| d as u32);
    let interval = opts
        .get("interval")
        .and_then(Value::as_u64)
        .map(|i| i as u32);
    let user_id = user.id;
    app.mutate(move |dir| {
        if !dir.users.contains_key(&user_id) {
            return Err(user_not_found(&username));
        }
        let old = dir.twofactor_users.get(&user_id);
        let row = TwoFactorUser {
            user_id,
            secret: Some(encrypted),
            otp_digits: digits
                .or(old.map(|o| o.otp_digits))
                .unwrap_or(totp::DEFAULT_DIGITS),
            interval: interval
                .or(old.map(|o| o.interval))
                .unwrap_or(totp::DEFAULT_INTERVAL),
            last_step: None,
        };
        Ok((vec![Write::PutTwoFactorUser(row)], ()))
    })
    .await?;
    app.ext.twofactor.clear_failures(user_id);
    let dir = app.dir();
    let Some(u) = dir.users.get(&user_id) else {
        return Err(user_not_found(&user.username));
    };
    let mut entry = dir.user_entry(u);
    entry["twofactor_config"] = user_config(&app, &dir, u);
    Ok(entry)
}

async fn unset_secret(ctx: Ctx, params: Vec<Value>) -> Result<Value, ApiError> {
    if let Some(u) = params.first().and_then(Value::as_str) {
        ctx.audit_extend(u);
    }
    let username = params
        .first()
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let user = find_user(&ctx.app, &username)?;
    ctx.app
        .mutate(move |dir| {
            let Some(old) = dir.twofactor_users.get(&user.id) else {
                return Ok((vec![], Value::Null));
            };
            let row = TwoFactorUser {
                secret: None,
                last_step: None,
                ..old.clone()
            };
            Ok((vec![Write::PutTwoFactorUser(row)], Value::Null))
        })
        .await
}

/// Checks a login OTP for `user_id` and, if it is good, records its step so it cannot be
/// used again. Too many recent failures for the account refuse every code.
pub async fn verify_login_code(
    app: &std::sync::Arc<App>,
    user_id: i64,
    code: &str,
) -> Result<bool, ApiError> {
    let now_ms = app.clock.monotonic_ms();
    if app.ext.twofactor.account_locked(user_id, now_ms) {
        return Ok(false);
    }
    let key = secret_key(app)?;
    let code = code.to_string();
    let now = app.clock.now_unix();
    let ok = app
        .mutate(move |dir| {
            let Some(row) = dir.twofactor_users.get(&user_id) else {
                return Ok((vec![], false));
            };
            let Some(secret) = row.secret.as_ref().and_then(|s| decrypt(&key, user_id, s)) else {
                return Ok((vec![], false));
            };
            let Ok(bytes) = totp::decode_secret(&secret) else {
                return Ok((vec![], false));
            };
            let window = dir.twofactor_config.window;
            match totp::verify(
                &bytes,
                &code,
                now,
                row.interval,
                row.otp_digits,
                window,
                row.last_step,
            ) {
                Some(step) => {
                    let row = TwoFactorUser {
                        last_step: Some(step),
                        ..row.clone()
                    };
                    Ok((vec![Write::PutTwoFactorUser(row)], true))
                }
                None => Ok((vec![], false)),
            }
        })
        .await?;
    if ok {
        app.ext.twofactor.clear_failures(user_id);
    } else {
        app.ext.twofactor.record_failure(user_id, now_ms);
    }
    Ok(ok)
}

// ---------------------------------------------------------------------------------------------
// Global configuration

fn config_entry(c: &TwoFactorConfig) -> Value {
    json!({"enabled": c.enabled, "services": {"ssh": c.services_ssh}, "window": c.window, "id": 1})
}

async fn update_config(ctx: Ctx, params: Vec<Value>) -> Result<Value, ApiError> {
    let data = params.into_iter().next().unwrap_or_else(|| json!({}));
    ctx.app
        .mutate(move |dir| {
            let mut c = dir.twofactor_config.clone();
            if let Some(e) = data.get("enabled").and_then(Value::as_bool) {
                c.enabled = e;
            }
            if let Some(s) = data.get("services") {
                c.services_ssh = s.get("ssh").and_then(Value::as_bool).unwrap_or(false);
            }
            if let Some(w) = data.get("window").and_then(Value::as_u64) {
                if w > u64::from(totp::MAX_WINDOW) {
                    let mut v = Verrors::new();
                    v.add(
                        "auth_twofactor_update.window",
                        format!("Input should be less than or equal to {}", totp::MAX_WINDOW),
                    );
                    v.check()?;
                }
                c.window = w as u32;
            }
            let entry = config_entry(&c);
            if c == dir.twofactor_config {
                return Ok((vec![], entry));
            }
            Ok((vec![Write::PutTwoFactorConfig(c)], entry))
        })
        .await
}

pub fn register(r: &mut Registry) {
    r.add(
        MethodSpec::new(
            "auth.twofactor.config",
            Access::Roles(vec!["SYSTEM_SECURITY_READ"]),
        )
        .doc("Retrieve the global two-factor authentication configuration."),
        |ctx, _| async move { Ok(config_entry(&ctx.app.dir().twofactor_config)) },
    );
    r.add(
        MethodSpec::new("auth.twofactor.update", Access::Roles(vec!["SYSTEM_SECURITY_WRITE"]))
            .param(Field::required(
                "auth_twofactor_update",
                Ty::object(
                    "AuthTwoFactorUpdate",
                    vec![
                        Field::optional("enabled", Ty::Bool, json!(false)),
                        Field::optional(
                            "services",
                            Ty::object(
                                "AuthTwoFactorServices",
                                vec![Field::optional("ssh", Ty::Bool, json!(false))],
                            ),
                            json!({"ssh": false}),
                        ),
                        Field::optional("window", Ty::int_range(Some(0), None), json!(0)),
                    ],
                )
                .for_update(),
            ))
            .audited("Update two-factor authentication settings")
            .doc("Update the global two-factor authentication configuration.\n\n`window` extends the validity of a code to that many time steps before and after the current one."),
        update_config,
    );
    r.add(
        MethodSpec::new("user.renew_2fa_secret", Access::AnyUser)
            .param(Field::required("username", Ty::str()))
            .param(Field::required(
                "twofactor_options",
                Ty::object(
                    "TwoFactorOptions",
                    vec![
                        Field::optional("otp_digits", Ty::int_range(Some(6), Some(8)), json!(6)),
                        Field::optional("interval", Ty::int_range(Some(5), None), json!(30)),
                    ],
                )
                .for_update(),
            ))
            .audited("Renew two-factor authentication secret:")
            .doc("Renew `username` user's two-factor authentication secret."),
        renew_secret,
    );
    r.add(
        MethodSpec::new(
            "user.unset_2fa_secret",
            Access::Roles(vec!["ACCOUNT_WRITE"]),
        )
        .param(Field::required("username", Ty::str()))
        .audited("Unset two-factor authentication secret:")
        .doc("Unset two-factor authentication secret for `username`."),
        unset_secret,
    );
    r.add(
        MethodSpec::new("user.twofactor_config", Access::Roles(vec![]))
            .param(Field::required("username", Ty::str()))
            .private()
            .doc("Returns two-factor authentication configuration settings for specified `username`."),
        |ctx, params| async move {
            let username = params.first().and_then(Value::as_str).unwrap_or_default().to_string();
            let user = find_user(&ctx.app, &username)?;
            Ok(user_config(&ctx.app, &ctx.app.dir(), &user))
        },
    );
    r.add(
        MethodSpec::new("user.provisioning_uri", Access::Roles(vec![]))
            .param(Field::required("username", Ty::str()))
            .private()
            .doc("Returns the provisioning URI for the OTP of `username`."),
        |ctx, params| async move {
            let username = params
                .first()
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let user = find_user(&ctx.app, &username)?;
            let row = ctx.app.dir().twofactor_users.get(&user.id).cloned();
            row.and_then(|r| provisioning_uri(&ctx.app, &user, &r))
                .map(|u| json!(u))
                .ok_or_else(|| {
                    ApiError::call(
                        errno::EFAULT,
                        format!(
                            "'{username}' user does not have two factor authentication configured"
                        ),
                    )
                })
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_round_trip_is_bound_to_the_user() {
        let key = [7u8; 32];
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&key));
        let nonce = [1u8; 12];
        let aad = aad(5);
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: b"SECRET",
                    aad: aad.as_bytes(),
                },
            )
            .unwrap();
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        let stored = format!("{CIPHER_PREFIX}{}", B64.encode(blob));
        assert_eq!(decrypt(&key, 5, &stored).unwrap().as_str(), "SECRET");
        assert!(decrypt(&key, 6, &stored).is_none());
        assert!(decrypt(&[8u8; 32], 5, &stored).is_none());
    }
}
