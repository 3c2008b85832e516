//! `core.*`: ping, per-connection options, method metadata and event subscriptions.

use gatehouse_proto::schema::{Access, Field, MethodSpec, Ty};
use gatehouse_proto::{ApiError, errno};
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::conn::Conn;
use crate::registry::Registry;

/// Events that can be subscribed to, and the roles needed (FULL_ADMIN always qualifies).
const EVENTS: &[(&str, &[&str])] = &[
    ("auth.sessions", &[]),
    ("api_key.query", &["API_KEY_READ"]),
    ("user.query", &["ACCOUNT_READ"]),
    ("group.query", &["ACCOUNT_READ"]),
    ("privilege.query", &["PRIVILEGE_READ"]),
];

/// Checks that the connection may subscribe to `name` (`SUBSCRIBE` on the part before `:`).
pub fn authorize_subscribe(_app: &App, conn: &Conn, name: &str) -> Result<(), ApiError> {
    let Some(creds) = conn.credentials() else {
        return Err(ApiError::not_authenticated());
    };
    let short = name.split(':').next().unwrap_or_default();
    let privilege = &creds.root().privilege;
    match EVENTS.iter().find(|(e, _)| *e == short) {
        Some((_, roles)) if privilege.has_any(roles) => Ok(()),
        Some(_) => Err(ApiError::not_authorized()),
        None if privilege.full_admin => Ok(()),
        None => Err(ApiError::not_authorized()),
    }
}

pub fn register(r: &mut Registry) {
    r.add(
        MethodSpec::new("core.ping", Access::Public { rate_limit: true }).doc("Utility method which just returns \"pong\".\n\nCan be used to keep connection/authtoken alive instead of using \"ping\" message."),
        |_, _| async { Ok(json!("pong")) },
    );
    r.add(
        MethodSpec::new("core.set_options", Access::Public { rate_limit: false })
            .param(Field::required(
                "options",
                Ty::object(
                    "CoreSetOptions",
                    vec![
                        Field::optional("legacy_jobs", Ty::Bool, json!(true)),
                        Field::optional("private_methods", Ty::Bool, json!(false)),
                        Field::optional("py_exceptions", Ty::Bool, json!(false)),
                    ],
                )
                .for_update(),
            ))
            .cli_private()
            .doc("Set connection options."),
        |ctx, params| async move {
            let mut opts = ctx.conn.options.lock().unwrap_or_else(|p| p.into_inner());
            if let (Value::Object(cur), Some(Value::Object(new))) = (&mut *opts, params.first()) {
                for (k, v) in new {
                    cur.insert(k.clone(), v.clone());
                }
            }
            Ok(opts.clone())
        },
    );
    r.add(
        MethodSpec::new("core.get_methods", Access::AnyUser)
            .param(Field::optional(
                "service",
                Ty::nullable(Ty::str()),
                Value::Null,
            ))
            .param(Field::optional(
                "target",
                Ty::Literal(vec!["WS", "CLI", "REST"]),
                json!("WS"),
            ))
            .cli_private()
            .doc("Return methods metadata of every available service."),
        |ctx, params| async move {
            let service = params.first().and_then(Value::as_str).map(str::to_string);
            let cli = params.get(1).and_then(Value::as_str) == Some("CLI");
            let creds = ctx.conn.credentials();
            let mut out = Map::new();
            for m in ctx.app.registry.methods() {
                let spec = &m.spec;
                if spec.private || (cli && spec.cli_private) {
                    continue;
                }
                if let Some(s) = &service
                    && spec.name.rsplit_once('.').map(|(svc, _)| svc) != Some(s.as_str())
                {
                    continue;
                }
                if !ctx.app.may_call(creds.as_deref(), &spec.access) {
                    continue;
                }
                out.insert(spec.name.to_string(), spec.metadata());
            }
            // TrueNAS walks each service's methods in `dir()` order (sorted by name), services
            // in registration order; midcli's banner (`man X`) and completions follow it.
            let mut services: Vec<String> = Vec::new();
            let mut entries: Vec<(usize, String, Value)> = Vec::new();
            for (name, meta) in out {
                let svc = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
                let idx = match services.iter().position(|s| s == svc) {
                    Some(i) => i,
                    None => {
                        services.push(svc.to_string());
                        services.len() - 1
                    }
                };
                entries.push((idx, name, meta));
            }
            entries.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
            let out: Map<String, Value> = entries.into_iter().map(|(_, n, m)| (n, m)).collect();
            Ok(Value::Object(out))
        },
    );
    r.add(
        MethodSpec::new("core.get_services", Access::AnyUser)
            .param(Field::optional(
                "target",
                Ty::Literal(vec!["WS", "CLI", "REST"]),
                json!("WS"),
            ))
            .cli_private()
            .doc("Return services metadata."),
        |ctx, _| async move { Ok(ctx.app.registry.services_metadata()) },
    );
    r.add(
        MethodSpec::new("core.subscribe", Access::AnyUser)
            .param(Field::required("event", Ty::non_empty_str()))
            .cli_private()
            .doc("Subscribe to an event; returns an identifier for core.unsubscribe."),
        |ctx, params| async move {
            let name = params
                .first()
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            authorize_subscribe(&ctx.app, &ctx.conn, &name)?;
            let ident = ctx.app.new_uuid();
            let mut subs = ctx
                .conn
                .subscriptions
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if subs.len() >= 256 {
                return Err(ApiError::call(
                    errno::EBUSY,
                    "Too many subscriptions on this connection",
                ));
            }
            subs.insert(ident.clone(), name);
            drop(subs);
            ctx.app.sessions.watch(&ctx.conn);
            Ok(json!(ident))
        },
    );
    r.add(
        MethodSpec::new("core.unsubscribe", Access::AnyUser)
            .param(Field::required("id", Ty::str()))
            .cli_private()
            .doc("Cancel a subscription."),
        |ctx, params| async move {
            let id = params.first().and_then(Value::as_str).unwrap_or_default();
            ctx.conn
                .subscriptions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(id);
            Ok(Value::Null)
        },
    );
}
