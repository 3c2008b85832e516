//! `auth.generate_token` and the TOKEN_PLAIN login (§3.1, §2.6).
//!
//! Tokens live in memory only, keyed by SHA-256 (the manager never keeps the token itself).
//! A token acts for the *root* credential of the session that created it; the TTL is a sliding
//! inactivity window refreshed by every message of a session logged in with the token.

use std::sync::Arc;

use gatehouse_core::origin::Origin;
use gatehouse_core::token::{self, NewToken, OriginMatch, TokenManager};
use gatehouse_proto::schema::{Access, Field, MethodSpec, Ty};
use gatehouse_proto::{ApiError, errno};
use serde_json::{Value, json};

use super::auth;
use crate::registry::{Ctx, Registry};
use crate::session::{CredKind, Credentials};

/// The connection origin as the token manager compares it (same IP for TCP, same uid+gid for
/// UNIX sockets).
#[derive(Debug, Clone)]
pub struct TokOrigin(pub Origin);

impl OriginMatch for TokOrigin {
    fn matches(&self, other: &Self) -> bool {
        self.0.matches(&other.0)
    }
}

pub type Tokens = TokenManager<TokOrigin, Arc<Credentials>>;

/// The credential a token created by `creds` acts for: the first non-token credential.
pub fn root_arc(creds: &Arc<Credentials>) -> Arc<Credentials> {
    match &creds.kind {
        CredKind::Token { parent, .. } => root_arc(parent),
        _ => creds.clone(),
    }
}

/// The Python class name TrueNAS puts in "does not support creation of tokens" errors.
fn class_name(c: &Credentials) -> &'static str {
    match c.kind {
        CredKind::UnixSocket => "UnixSocketSessionManagerCredentials",
        CredKind::LoginPassword => "LoginPasswordSessionManagerCredentials",
        CredKind::LoginTwofactor => "LoginTwofactorSessionManagerCredentials",
        CredKind::LoginOnetimePassword => "LoginOnetimePasswordSessionManagerCredentials",
        CredKind::ApiKey { .. } => "ApiKeySessionManagerCredentials",
        CredKind::Token { .. } => "TokenSessionManagerCredentials",
    }
}

async fn generate(ctx: Ctx, params: Vec<Value>) -> Result<Value, ApiError> {
    let app = &ctx.app;
    let creds = ctx
        .conn
        .credentials()
        .ok_or_else(ApiError::not_authenticated)?;
    if !creds.may_create_tokens() {
        return Err(ApiError::call(
            errno::EOPNOTSUPP,
            format!(
                "{}: the current session type does not support creation of authentication tokens.",
                class_name(creds.root())
            ),
        ));
    }
    let ttl = params
        .first()
        .and_then(Value::as_i64)
        .unwrap_or(token::DEFAULT_TTL_SECS);
    let attrs = params.get(1).cloned().unwrap_or_else(|| json!({}));
    let match_origin = params.get(2).and_then(Value::as_bool).unwrap_or(true);
    let single_use = params.get(3).and_then(Value::as_bool).unwrap_or(false);
    if let Some(job) = attrs.get("job") {
        // This server runs no jobs, so no job id can be valid.
        let shown = match job {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        return Err(ApiError::call(
            errno::EFAULT,
            format!("{shown}: job does not exist."),
        ));
    }
    let spec = NewToken {
        ttl_secs: ttl,
        attrs,
        match_origin,
        single_use,
        origin: TokOrigin(ctx.conn.origin.clone()),
        parent: root_arc(&creds),
        session_id: ctx.conn.session_id.clone(),
    };
    let t = app
        .ext
        .tokens
        .create(app.entropy.as_ref(), spec, app.clock.monotonic_ms())
        .map_err(|e| ApiError::call(errno::EFAULT, e.to_string()))?;
    Ok(json!(t))
}

/// TOKEN_PLAIN: a valid, origin-matching token without attrs logs in as a TOKEN session
/// acting for the token's root credential.
pub async fn login_token(ctx: &Ctx, token_str: &str, user_info: bool) -> Result<Value, ApiError> {
    let app = &ctx.app;
    let origin = TokOrigin(ctx.conn.origin.clone());
    let now_ms = app.clock.monotonic_ms();
    // The token itself is never written to the audit log (TrueNAS logs it; a deviation).
    let fail_data = json!({"token": "********"});
    let Some(view) = app.ext.tokens.lookup(token_str, &origin, now_ms) else {
        auth::audit_failure(app, &ctx.conn, "TOKEN", fail_data, "Invalid token");
        app.login_failure_delay().await;
        return Ok(auth::response("AUTH_ERR"));
    };
    if view.attrs.as_object().is_some_and(|m| !m.is_empty()) {
        auth::audit_failure(app, &ctx.conn, "TOKEN", fail_data, "Bad token");
        app.login_failure_delay().await;
        return Ok(auth::response("AUTH_ERR"));
    }
    // Consume atomically: of two racing logins with a single-use token exactly one wins.
    let Some(view) = app.ext.tokens.consume(token_str, &origin, now_ms) else {
        auth::audit_failure(app, &ctx.conn, "TOKEN", fail_data, "Invalid token");
        app.login_failure_delay().await;
        return Ok(auth::response("AUTH_ERR"));
    };
    let parent = view.parent.clone();
    // The account must still be usable (TrueNAS re-runs PAM for the root user).
    let usable = {
        let dir = app.dir();
        dir.users
            .get(&parent.user.id)
            .is_some_and(|u| u.uid == parent.user.uid && !u.locked)
    };
    if !usable || !parent.is_valid(now_ms) {
        app.ext.tokens.destroy(&view.digest);
        auth::audit_failure(app, &ctx.conn, "TOKEN", fail_data, "Invalid token");
        app.login_failure_delay().await;
        return Ok(auth::response("AUTH_ERR"));
    }
    let creds = Credentials {
        kind: CredKind::Token {
            parent: parent.clone(),
            digest: view.digest,
        },
        user: parent.user.clone(),
        privilege: parent.privilege.clone(),
        account_attributes: parent.account_attributes.clone(),
        login_at: app.clock.now_unix(),
        login_id: app.new_uuid(),
        internal: false,
        expires_at_ms: parent.expires_at_ms,
    };
    auth::login(app, &ctx.conn, creds);
    auth::success(app, &ctx.conn, user_info)
}

pub fn register(r: &mut Registry) {
    r.add(
        MethodSpec::new("auth.generate_token", Access::AnyUser)
            .param(Field::optional("ttl", Ty::nullable(Ty::int()), json!(600)))
            .param(Field::optional("attrs", Ty::Dict, json!({})))
            .param(Field::optional("match_origin", Ty::Bool, json!(true)))
            .param(Field::optional("single_use", Ty::Bool, json!(false)))
            .audited("Generate authentication token for session")
            .doc("Generate a token to be used for authentication.\n\n`ttl` stands for Time To Live, in seconds. The token will be invalidated if the connection has been inactive for a time greater than this.\n\n`attrs` is a general purpose object/dictionary to hold information about the token.\n\n`match_origin` will only allow using this token from the same IP address or with the same user UID.\n\n`single_use` will invalidate the token after its first use."),
        generate,
    );
    r.add(
        MethodSpec::new("auth.login_with_token", Access::Public { rate_limit: true })
            .param(Field::required("token", Ty::secret(Ty::str())))
            .cli_private()
            .doc("Authenticate using a given `token` id."),
        |ctx, params| async move {
            let t = params.first().cloned().unwrap_or(Value::Null);
            let data = json!({"mechanism": "TOKEN_PLAIN", "token": t, "login_options": {"user_info": false}});
            let resp = auth::login_ex(&ctx, data).await?;
            Ok(json!(resp.get("response_type") == Some(&json!("SUCCESS"))))
        },
    );
}
