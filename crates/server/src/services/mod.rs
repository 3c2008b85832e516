//! The services: each module registers its methods (spec + handler) with the registry.

pub mod api_key;
pub mod audit;
pub mod auth;
pub mod core_svc;
pub mod group;
pub mod lockout;
pub mod otpw;
pub mod privilege;
pub mod system;
pub mod token;
pub mod twofactor;
pub mod user;

use gatehouse_proto::ApiError;
use gatehouse_proto::schema::{Field, Ty};
use serde_json::{Value, json};

use crate::registry::{Registry, ServiceKind, ServiceSpec};

/// In-memory state owned by services (tokens, pending logins, caches); see each service.
#[derive(Default)]
pub struct Extensions {
    /// `auth.generate_token` tokens, by SHA-256.
    pub tokens: token::Tokens,
    /// Verified API keys, so a repeat login skips PBKDF2.
    pub key_cache: api_key::KeyCache,
    /// `auth.generate_onetime_password` passwords.
    pub otpw: otpw::OnetimePasswords,
    /// Two-factor: the secret encryption key and per-account OTP failure counters.
    pub twofactor: twofactor::State,
}

/// The complete registry of this server, in the order `core.get_methods` lists methods.
pub fn registry() -> Registry {
    let mut r = Registry::default();
    let services = [
        ("auth", "auth", ServiceKind::Service, None),
        ("core", "core", ServiceKind::Service, None),
        ("system", "system", ServiceKind::Service, None),
        ("user", "account.user", ServiceKind::Crud, None),
        ("group", "account.group", ServiceKind::Crud, None),
        ("api_key", "auth.api_key", ServiceKind::Crud, None),
        ("privilege", "auth.privilege", ServiceKind::Crud, None),
        (
            "auth.twofactor",
            "auth.two_factor",
            ServiceKind::Config,
            None,
        ),
        ("audit", "system.audit", ServiceKind::Config, None),
    ];
    for (name, cli_namespace, kind, cli_description) in services {
        r.service(ServiceSpec {
            name,
            cli_namespace,
            kind,
            cli_description,
        });
    }
    auth::register(&mut r);
    core_svc::register(&mut r);
    system::register(&mut r);
    user::register(&mut r);
    group::register(&mut r);
    api_key::register(&mut r);
    privilege::register(&mut r);
    twofactor::register(&mut r);
    otpw::register(&mut r);
    token::register(&mut r);
    audit::register(&mut r);
    lockout::register(&mut r);
    r
}

/// Runs a standard query over derived entries (params are `[filters, options]`, validated).
pub fn run_query(records: Vec<Value>, params: &[Value]) -> Result<Value, ApiError> {
    let filters = params.first().cloned().unwrap_or_else(|| json!([]));
    let options = params.get(1).cloned().unwrap_or_else(|| json!({}));
    gatehouse_core::query::query(records, &filters, &options)
}

/// `get_instance(id, options)`: the query with `["id","=",id]` and `get`, or InstanceNotFound.
pub fn get_instance(
    records: Vec<Value>,
    verbose_name: &str,
    params: &[Value],
) -> Result<Value, ApiError> {
    let id = params.first().cloned().unwrap_or(Value::Null);
    let mut options = params.get(1).cloned().unwrap_or_else(|| json!({}));
    if let Value::Object(m) = &mut options {
        m.insert("get".into(), json!(true));
    }
    match gatehouse_core::query::query(records, &json!([["id", "=", id]]), &options) {
        Err(ApiError::MatchNotFound) => {
            let shown = match &id {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Err(ApiError::not_found(verbose_name, shown))
        }
        other => other,
    }
}

/// The `(id, options)` parameters of `get_instance`.
pub fn get_instance_params(id: Ty) -> [Field; 2] {
    [
        Field::required("id", id),
        Field::optional("options", Ty::Dict, json!({})),
    ]
}

/// Extracts a validated integer id parameter.
pub fn id_param(params: &[Value]) -> i64 {
    params.first().and_then(Value::as_i64).unwrap_or_default()
}
