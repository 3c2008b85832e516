//! `audit.query` (§7.4): the stored MIDDLEWARE audit records through the query engine.

use gatehouse_core::model::AuditRecord;
use gatehouse_proto::schema::{Access, Field, MethodSpec, Ty};
use gatehouse_proto::{ApiError, ejson, errno};
use serde_json::{Value, json};

use crate::registry::{Ctx, Registry};

/// A stored TNAUDIT record as `audit.query` returns it.
fn entry(r: &AuditRecord) -> Value {
    let d = &r.data;
    let parse = |key: &str| -> Value {
        match d.get(key) {
            Some(Value::String(s)) => serde_json::from_str(s).unwrap_or_else(|_| json!(s)),
            Some(other) => other.clone(),
            None => Value::Null,
        }
    };
    json!({
        "audit_id": d.get("aid").cloned().unwrap_or(Value::Null),
        "message_timestamp": r.time.floor() as i64,
        "timestamp": ejson::date(r.time.floor() as i64),
        "address": d.get("addr").cloned().unwrap_or(Value::Null),
        "username": d.get("user").cloned().unwrap_or(Value::Null),
        "session": d.get("sess").cloned().unwrap_or(Value::Null),
        "service": d.get("svc").cloned().unwrap_or(Value::Null),
        "service_data": parse("svc_data"),
        "event": d.get("event").cloned().unwrap_or(Value::Null),
        "event_data": parse("event_data"),
        "success": d.get("success").cloned().unwrap_or(Value::Null),
    })
}

async fn query(ctx: Ctx, params: Vec<Value>) -> Result<Value, ApiError> {
    // Read your own writes: every record queued before this call is on disk first.
    ctx.app.flush_audit().await;
    let data = params.into_iter().next().unwrap_or_else(|| json!({}));
    let services: Vec<String> = data
        .get("services")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_else(|| vec!["MIDDLEWARE".into()]);
    let store = ctx.app.store.clone();
    let records = tokio::task::spawn_blocking(move || store.audit_records())
        .await
        .map_err(|e| ApiError::Other(format!("audit task failed: {e}")))?
        .map_err(|e| ApiError::call(errno::EFAULT, e.to_string()))?;
    let entries: Vec<Value> = records
        .iter()
        .map(entry)
        .filter(|e| {
            e["service"]
                .as_str()
                .is_some_and(|s| services.iter().any(|x| x == s))
        })
        .collect();
    let filters = data
        .get("query-filters")
        .cloned()
        .unwrap_or_else(|| json!([]));
    let options = data
        .get("query-options")
        .cloned()
        .unwrap_or_else(|| json!({}));
    super::run_query(entries, &[filters, options])
}

pub fn register(r: &mut Registry) {
    r.add(
        MethodSpec::new("audit.query", Access::Roles(vec!["SYSTEM_AUDIT_READ"]))
            .param(Field::optional(
                "data",
                Ty::object(
                    "AuditQuery",
                    vec![
                        Field::optional(
                            "services",
                            Ty::list(Ty::Literal(vec!["MIDDLEWARE", "SMB", "SUDO", "SYSTEM"])),
                            json!(["MIDDLEWARE"]),
                        ),
                        Field::optional("query-filters", Ty::list(Ty::Any), json!([])),
                        Field::optional("query-options", Ty::Dict, json!({})),
                        Field::optional("remote_controller", Ty::Bool, json!(false)),
                    ],
                ),
                json!({}),
            ))
            .doc("Query contents of audit databases specified by `services`."),
        query,
    );
}
