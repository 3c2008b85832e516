//! `auth.generate_onetime_password` (§2.11): a password valid once, for 24 hours, bound to
//! one account, used as the `password` of PASSWORD_PLAIN.
//!
//! TrueNAS keeps a sha512-crypt hash (656 000 rounds) of each. The password carries 24 random
//! alphanumerics (~143 bits), so SHA-256 is as strong against guessing and costs no KDF time;
//! only the digest is kept.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use gatehouse_core::apikey;
use gatehouse_proto::ApiError;
use gatehouse_proto::error::Verrors;
use gatehouse_proto::schema::{Access, Field, MethodSpec, Ty};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::auth;
use crate::registry::{Ctx, Registry};
use crate::session::CredKind;

const LIFETIME_SECS: i64 = 24 * 3600;
/// Outstanding one-time passwords kept at most; the oldest are dropped past it.
const MAX_OUTSTANDING: usize = 1024;

struct Entry {
    digest: [u8; 32],
    user_id: i64,
    expires: i64,
    admin_generated: bool,
}

#[derive(Default)]
pub struct OnetimePasswords {
    counter: AtomicU64,
    entries: Mutex<HashMap<u64, Entry>>,
}

impl OnetimePasswords {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn fail(
    ctx: &Ctx,
    username: &str,
    error: &str,
    resp: &str,
) -> Result<Option<Value>, ApiError> {
    auth::audit_failure(
        &ctx.app,
        &ctx.conn,
        "ONETIME_PASSWORD",
        json!({"username": username}),
        error,
    );
    ctx.app.login_failure_delay().await;
    Ok(Some(auth::response(resp)))
}

/// `<n>_<6>-<6>-<6>-<6>` → `n`, if the shape matches.
fn parse(password: &str) -> Option<u64> {
    let (n, rest) = password.split_once('_')?;
    let groups: Vec<&str> = rest.split('-').collect();
    if groups.len() != 4
        || !groups
            .iter()
            .all(|g| g.len() == 6 && g.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return None;
    }
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// Tries `password` as a one-time password of `username`. `None`: it is not one (go on with
/// the normal password check); otherwise the login response.
pub async fn try_login(
    ctx: &Ctx,
    username: &str,
    password: &str,
    user_info: bool,
) -> Result<Option<Value>, ApiError> {
    let Some(n) = parse(password) else {
        return Ok(None);
    };
    let app = &ctx.app;
    let now = app.clock.now_unix();
    let user = app.dir().user_by_name(username).cloned();
    let digest: [u8; 32] = Sha256::digest(password.as_bytes()).into();
    // Remove on any use by the right account: once means once, even if it then fails later.
    let outcome = {
        let mut m = app.ext.otpw.map();
        match (m.get(&n), &user) {
            (Some(e), Some(u)) if e.user_id == u.id && bool::from(e.digest.ct_eq(&digest)) => {
                let e = m.remove(&n);
                e.map(|e| {
                    if e.expires <= now {
                        Err(())
                    } else {
                        Ok(e.admin_generated)
                    }
                })
            }
            _ => None,
        }
    };
    let admin_generated = match outcome {
        None => return Ok(None),
        Some(Err(())) => {
            return fail(ctx, username, "One-time password is expired", "EXPIRED").await;
        }
        Some(Ok(a)) => a,
    };
    let Some(user) = user.filter(|u| !u.locked) else {
        return fail(ctx, username, "Account is locked.", "AUTH_ERR").await;
    };
    let privilege = {
        let dir = app.dir();
        app.privilege_for(&dir, &user)
    };
    let Some(privilege) = privilege else {
        return fail(ctx, username, "User lacks API access.", "DENIED").await;
    };
    let mut extra = vec!["OTPW"];
    if admin_generated {
        extra.push("PASSWORD_CHANGE_REQUIRED");
    }
    let creds = auth::user_credentials(
        app,
        CredKind::LoginOnetimePassword,
        &user,
        privilege,
        &extra,
    );
    auth::login(app, &ctx.conn, creds);
    auth::success(app, &ctx.conn, user_info).map(Some)
}

async fn generate(ctx: Ctx, params: Vec<Value>) -> Result<Value, ApiError> {
    let app = &ctx.app;
    let username = params
        .first()
        .and_then(|d| d.get("username"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let attr = "auth.generate_onetime_password.username";
    let user = app.dir().user_by_name(&username).cloned();
    let Some(user) = user else {
        return Err(ApiError::validation(
            attr,
            format!("{username}: user does not exist."),
        ));
    };
    let mut v = Verrors::new();
    if user.password_disabled {
        v.add(
            attr,
            format!("{username}: password authentication is disabled for account."),
        );
    }
    if user.locked {
        v.add(attr, format!("{username}: account is locked."));
    }
    v.check()?;
    let n = app.ext.otpw.counter.fetch_add(1, Ordering::SeqCst) + 1;
    let chars = apikey::generate_key_part(app.entropy.as_ref());
    let groups: Vec<&str> = (0..4).filter_map(|i| chars.get(i * 6..i * 6 + 6)).collect();
    let password = format!("{n}_{}", groups.join("-"));
    let digest: [u8; 32] = Sha256::digest(password.as_bytes()).into();
    let admin_generated = ctx
        .conn
        .credentials()
        .is_some_and(|c| c.root().privilege.has_any(&["ACCOUNT_WRITE"]));
    let expires = app.clock.now_unix() + LIFETIME_SECS;
    {
        let mut m = app.ext.otpw.map();
        let now = app.clock.now_unix();
        m.retain(|_, e| e.expires > now);
        if m.len() >= MAX_OUTSTANDING
            && let Some(oldest) = m.keys().min().copied()
        {
            m.remove(&oldest);
        }
        m.insert(
            n,
            Entry {
                digest,
                user_id: user.id,
                expires,
                admin_generated,
            },
        );
    }
    Ok(json!(password))
}

pub fn register(r: &mut Registry) {
    r.add(
        MethodSpec::new("auth.generate_onetime_password", Access::Roles(vec!["ACCOUNT_WRITE"]))
            .param(Field::required(
                "generate_single_use_password",
                Ty::object("AuthGenerateOnetimePassword", vec![Field::required("username", Ty::str())]),
            ))
            .audited("Generate onetime password for user")
            .doc("Generate a password for the specified username that may be used only a single time to authenticate to TrueNAS. This may be used by server administrators to allow users authenticate and then set a proper password and two-factor authentication token."),
        generate,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        assert_eq!(parse("3_abcdef-ABCDEF-012345-zzzzzz"), Some(3));
        for bad in [
            "abc",
            "3_abcdef-ABCDEF-012345",
            "x_abcdef-ABCDEF-012345-zzzzzz",
            "3_abcde!-ABCDEF-012345-zzzzzz",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
