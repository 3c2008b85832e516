//! `privilege.*` (§5.2): roles granted to groups, with the built-in protections.
//!
//! A changed privilege takes effect for new sessions (composition happens at login); existing
//! sessions keep theirs until they end or are terminated.

use gatehouse_core::model::{Privilege, Write};
use gatehouse_core::roles;
use gatehouse_proto::error::Verrors;
use gatehouse_proto::schema::{Access, Field, MethodSpec, Ty};
use gatehouse_proto::{ApiError, errno};
use serde_json::{Value, json};

use crate::directory::Directory;
use crate::registry::{Ctx, Registry};

fn entries(dir: &Directory) -> Vec<Value> {
    dir.privileges
        .values()
        .map(|p| dir.privilege_entry(p))
        .collect()
}

fn ds_group_ty() -> Ty {
    Ty::Union(vec![Ty::int(), Ty::str()])
}

fn fields(required_web_shell: bool) -> Vec<Field> {
    vec![
        Field::required("name", Ty::non_empty_str()),
        Field::optional("local_groups", Ty::list(Ty::int()), json!([])),
        Field::optional("ds_groups", Ty::list(ds_group_ty()), json!([])),
        Field::optional("roles", Ty::list(Ty::str()), json!([])),
        if required_web_shell {
            Field::required("web_shell", Ty::Bool)
        } else {
            Field::optional("web_shell", Ty::Bool, json!(false))
        },
    ]
}

fn u32_list(v: Option<&Value>) -> Option<Vec<u32>> {
    v.and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(|x| x.as_u64().map(|n| n as u32))
            .collect()
    })
}

fn str_list(v: Option<&Value>) -> Option<Vec<String>> {
    v.and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    })
}

/// Applies given fields to `p`.
fn apply(p: &mut Privilege, data: &Value) {
    if let Some(n) = data.get("name").and_then(Value::as_str) {
        p.name = n.to_string();
    }
    if let Some(g) = u32_list(data.get("local_groups")) {
        p.local_groups = g;
    }
    if let Some(a) = data.get("ds_groups").and_then(Value::as_array) {
        p.ds_groups = a
            .iter()
            .map(|x| match x {
                Value::String(s) => json!(s.to_uppercase()),
                other => other.clone(),
            })
            .collect();
    }
    if let Some(r) = str_list(data.get("roles")) {
        p.roles = r;
    }
    if let Some(w) = data.get("web_shell").and_then(Value::as_bool) {
        p.web_shell = w;
    }
}

/// `_validate(schema_name, data, id)`.
fn validate(dir: &Directory, schema: &str, p: &Privilege, v: &mut Verrors) {
    if dir
        .privileges
        .values()
        .any(|o| o.name == p.name && o.id != p.id)
    {
        v.add(
            format!("{schema}.name"),
            "Object with this name already exists",
        );
    }
    for (i, gid) in p.local_groups.iter().enumerate() {
        if dir.group_by_gid(*gid).is_none() {
            v.add(
                format!("{schema}.local_groups.{i}"),
                format!("{gid}: local group does not exist. This error may be addressed by either re-creating the missing group with the specified group id or removing this entry from the privilege."),
            );
        }
    }
    // No directory service is joined, so no directory group resolves.
    for (i, id) in p.ds_groups.iter().enumerate() {
        let shown = match id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        v.add(
            format!("{schema}.ds_groups.{i}"),
            format!("{shown}: directory service group does not exist. If the directory service state is healthy, then this error may be addressed by removing this entry from the privilege."),
        );
    }
    for (i, r) in p.roles.iter().enumerate() {
        if !roles::is_valid(r) {
            v.add(format!("{schema}.roles.{i}"), "Invalid role");
        }
    }
}

/// Restrictions on built-in privileges (checked before the generic validation).
fn validate_builtin(dir: &Directory, old: &Privilege, new: &Privilege, v: &mut Verrors) {
    let Some(builtin) = old.builtin_name.as_deref() else {
        return;
    };
    if new.name != old.name {
        v.add(
            "privilege_update.name",
            "This field is read-only for built-in privileges",
        );
    }
    if new.roles != old.roles {
        v.add(
            "privilege_update.roles",
            "This field is read-only for built-in privileges",
        );
    }
    match builtin {
        "LOCAL_ADMINISTRATOR" => {
            if !new.local_groups.contains(&544) {
                v.add(
                    "privilege_update.local_groups",
                    "The group builtin_administrators must be among grantees of the \"Local Administrator\" privilege.",
                );
            } else {
                let gids = &new.local_groups;
                let any_password = dir.users.values().any(|u| {
                    !u.password_disabled && dir.user_gids(u).iter().any(|g| gids.contains(g))
                });
                if !any_password {
                    v.add(
                        "privilege_update.local_groups",
                        "None of the members of these groups has password login enabled. At least one grantee of the \"Local Administrator\" privilege must have password login enabled.",
                    );
                }
            }
        }
        "READONLY_ADMINISTRATOR" if new.web_shell => {
            v.add(
                "privilege_update.web_shell",
                "Web shell access may not be enabled for the built-in group for read-only administrators.",
            );
        }
        _ => {}
    }
}

async fn create(ctx: Ctx, params: Vec<Value>) -> Result<Value, ApiError> {
    if let Some(n) = params
        .first()
        .and_then(|d| d.get("name"))
        .and_then(Value::as_str)
    {
        ctx.audit_extend(n);
    }
    let data = params.into_iter().next().unwrap_or(Value::Null);
    let entry = ctx
        .app
        .mutate(move |dir| {
            let mut p = Privilege {
                id: Directory::next_id(&dir.privileges, dir.id_high.privileges),
                builtin_name: None,
                name: String::new(),
                local_groups: vec![],
                ds_groups: vec![],
                roles: vec![],
                web_shell: false,
            };
            apply(&mut p, &data);
            put(dir, "privilege_create", p)
        })
        .await?;
    Ok(published(&ctx, "added", entry))
}

/// Validates `p` against the directory and writes it; the call's result is its entry.
fn put(dir: &Directory, schema: &str, p: Privilege) -> Result<(Vec<Write>, Value), ApiError> {
    let mut v = Verrors::new();
    validate(dir, schema, &p, &mut v);
    v.check()?;
    let entry = dir.privilege_entry(&p);
    Ok((vec![Write::PutPrivilege(p)], entry))
}

/// Tells `privilege.query` subscribers, and returns the entry.
fn published(ctx: &Ctx, msg: &str, entry: Value) -> Value {
    ctx.app.publish(
        "privilege.query",
        msg,
        entry["id"].clone(),
        Some(entry.clone()),
    );
    entry
}

async fn update(ctx: Ctx, params: Vec<Value>) -> Result<Value, ApiError> {
    ctx.audit_object(|d| {
        d.privileges
            .get(&super::id_param(&params))
            .map(|x| x.name.clone())
    });
    let id = super::id_param(&params);
    let data = params.get(1).cloned().unwrap_or_else(|| json!({}));
    let entry = ctx
        .app
        .mutate(move |dir| {
            let Some(old) = dir.privileges.get(&id) else {
                return Err(ApiError::not_found("Privilege", id));
            };
            let mut p = old.clone();
            apply(&mut p, &data);
            let mut v = Verrors::new();
            validate_builtin(dir, old, &p, &mut v);
            v.check()?;
            put(dir, "privilege_update", p)
        })
        .await?;
    Ok(published(&ctx, "changed", entry))
}

async fn delete(ctx: Ctx, params: Vec<Value>) -> Result<Value, ApiError> {
    ctx.audit_object(|d| {
        d.privileges
            .get(&super::id_param(&params))
            .map(|x| x.name.clone())
    });
    let id = super::id_param(&params);
    ctx.app
        .mutate(move |dir| {
            let Some(p) = dir.privileges.get(&id) else {
                return Err(ApiError::not_found("Privilege", id));
            };
            if p.builtin_name.is_some() {
                return Err(ApiError::call(
                    errno::EPERM,
                    "Unable to delete built-in privilege",
                ));
            }
            Ok((vec![Write::DeletePrivilege(id)], ()))
        })
        .await?;
    ctx.app
        .publish("privilege.query", "removed", json!(id), None);
    Ok(json!(true))
}

fn entry_ty() -> Ty {
    Ty::object(
        "PrivilegeEntry",
        vec![
            Field::required("id", Ty::int()),
            Field::required("builtin_name", Ty::nullable(Ty::str())),
            Field::required("name", Ty::non_empty_str()),
            Field::required("local_groups", Ty::list(Ty::Dict)),
            Field::required("ds_groups", Ty::list(Ty::Dict)),
            Field::optional("roles", Ty::list(Ty::str()), json!([])),
            Field::required("web_shell", Ty::Bool),
        ],
    )
}

fn role_entry_ty() -> Ty {
    Ty::object(
        "PrivilegeRoleEntry",
        vec![
            Field::required("name", Ty::str()),
            Field::required("title", Ty::str()),
            Field::required("includes", Ty::list(Ty::str())),
            Field::required("builtin", Ty::Bool),
            Field::required("stig", Ty::nullable(Ty::int())),
        ],
    )
}

pub fn register(r: &mut Registry) {
    r.add(
        MethodSpec::new("privilege.query", Access::Roles(vec!["PRIVILEGE_READ"]))
            .query(entry_ty())
            .doc("Query privileges with `query-filters` and `query-options`."),
        |ctx, params| async move {
            let records = entries(&ctx.app.dir());
            super::run_query(records, &params)
        },
    );
    let [id, options] = super::get_instance_params(Ty::int());
    r.add(
        MethodSpec::new(
            "privilege.get_instance",
            Access::Roles(vec!["PRIVILEGE_READ"]),
        )
        .param(id)
        .param(options)
        .doc("Returns instance matching `id`. If `id` is not found, Validation error is raised."),
        |ctx, params| async move {
            let records = entries(&ctx.app.dir());
            super::get_instance(records, "Privilege", &params)
        },
    );
    r.add(
        MethodSpec::new("privilege.create", Access::Roles(vec!["PRIVILEGE_WRITE"]))
            .param(Field::required("privilege_create", Ty::object("PrivilegeCreate", fields(true))))
            .audited("Create privilege")
            .doc("Creates a privilege.\n\n`local_groups` is a list of local user account group GIDs that gain this privilege. `ds_groups` is list of Directory Service group GIDs or SIDs. `roles` is a list of roles granted. `web_shell` controls whether users can use the web shell."),
        create,
    );
    r.add(
        MethodSpec::new("privilege.update", Access::Roles(vec!["PRIVILEGE_WRITE"]))
            .param(Field::required("id", Ty::int()))
            .param(Field::required(
                "privilege_update",
                Ty::object("PrivilegeUpdate", fields(false)).for_update(),
            ))
            .audited("Update privilege")
            .doc("Update the privilege `id`."),
        update,
    );
    r.add(
        MethodSpec::new("privilege.delete", Access::Roles(vec!["PRIVILEGE_WRITE"]))
            .param(Field::required("id", Ty::int()))
            .audited("Delete privilege")
            .doc("Delete the privilege `id`."),
        delete,
    );
    r.add(
        MethodSpec::new("privilege.roles", Access::AnyUser)
            .query(role_entry_ty())
            .doc("Get all available roles.\n\nEach entry contains the following keys: `name` - the internal name of the role, `includes` - list of other roles that this role includes."),
        |_, params| async move {
            let records: Vec<Value> = roles::catalogue().iter().map(roles::to_entry).collect();
            super::run_query(records, &params)
        },
    );
}
