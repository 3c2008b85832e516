//! `system.*`: the little the shell needs.

use gatehouse_proto::schema::{Access, MethodSpec};
use serde_json::json;

use crate::registry::Registry;

pub fn register(r: &mut Registry) {
    r.add(
        MethodSpec::new("system.hostname", Access::AnyUser).doc("Return the system hostname."),
        |ctx, _| async move { Ok(json!(ctx.app.hostname)) },
    );
}
