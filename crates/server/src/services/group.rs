//! `group.*`: local groups.

use gatehouse_core::model::{Group, Write};
use gatehouse_proto::error::Verrors;
use gatehouse_proto::schema::{Access, Field, MethodSpec, Ty};
use gatehouse_proto::{ApiError, errno};
use serde_json::{Value, json};

use crate::directory::Directory;
use crate::registry::{Ctx, Registry};

fn fields(update: bool) -> Vec<Field> {
    let mut f = vec![Field::required("name", Ty::str_len(1, 32))];
    if !update {
        f.push(Field::optional(
            "gid",
            Ty::nullable(Ty::int_range(Some(0), Some(4_294_967_294))),
            Value::Null,
        ));
    }
    f.extend([
        Field::optional("smb", Ty::Bool, json!(true)),
        Field::optional("sudo_commands", Ty::list(Ty::str()), json!([])),
        Field::optional("sudo_commands_nopasswd", Ty::list(Ty::str()), json!([])),
        Field::optional("users", Ty::list(Ty::int()), json!([])),
    ]);
    f
}

fn entry_ty() -> Ty {
    Ty::object(
        "GroupEntry",
        [
            "id", "gid", "name", "builtin", "smb", "roles", "users", "local",
        ]
        .into_iter()
        .map(|n| Field::required(n, Ty::Any))
        .collect(),
    )
}

fn entries(dir: &Directory) -> Vec<Value> {
    dir.groups.values().map(|g| dir.group_entry(g)).collect()
}

/// The `group.query` entry of group `id` in `dir`, if it exists.
fn entry_of(dir: &Directory, id: i64) -> Option<Value> {
    dir.groups.get(&id).map(|g| dir.group_entry(g))
}

fn strs(v: &Value, key: &str) -> Option<Vec<String>> {
    v.get(key).and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    })
}

/// Applies `data` to `g`; returns the membership batch for the `users` field.
fn apply(
    dir: &Directory,
    schema: &str,
    g: &mut Group,
    data: &Value,
    verrors: &mut Verrors,
) -> Vec<Write> {
    if let Some(name) = data.get("name").and_then(Value::as_str) {
        if dir.groups.values().any(|o| o.name == name && o.id != g.id) {
            verrors.add(
                format!("{schema}.name"),
                format!("A Group with the name \"{name}\" already exists."),
            );
        }
        if g.builtin && g.name != name {
            verrors.add(format!("{schema}.name"), "This attribute cannot be changed");
        }
        g.name = name.to_string();
    }
    if let Some(x) = data.get("smb").and_then(Value::as_bool) {
        g.smb = x;
    }
    if let Some(x) = strs(data, "sudo_commands") {
        g.sudo_commands = x;
    }
    if let Some(x) = strs(data, "sudo_commands_nopasswd") {
        g.sudo_commands_nopasswd = x;
    }
    let mut batch = Vec::new();
    if let Some(users) = data.get("users").and_then(Value::as_array) {
        let wanted: Vec<i64> = users.iter().filter_map(Value::as_i64).collect();
        for (i, id) in wanted.iter().enumerate() {
            if !dir.users.contains_key(id) {
                verrors.add(
                    format!("{schema}.users.{i}"),
                    format!("User {id} not found"),
                );
            }
        }
        for u in dir.users.values() {
            let member = u.groups.contains(&g.id);
            let want = wanted.contains(&u.id);
            if member != want && u.group != g.id {
                let mut nu = u.clone();
                if want {
                    nu.groups.push(g.id);
                } else {
                    nu.groups.retain(|x| *x != g.id);
                }
                batch.push(Write::PutUser(nu));
            }
        }
    }
    batch
}

async fn create(ctx: Ctx, params: Vec<Value>) -> Result<Value, ApiError> {
    let data = params.into_iter().next().unwrap_or(Value::Null);
    let entry = ctx
        .app
        .mutate_view(
            move |dir| {
                let mut verrors = Verrors::new();
                let gid = data
                    .get("gid")
                    .and_then(Value::as_u64)
                    .map_or_else(|| dir.next_gid(), |g| g as u32);
                if dir.group_by_gid(gid).is_some() {
                    verrors.add("group_create.gid", format!("Gid {gid} is already used."));
                }
                let mut g = Group {
                    id: Directory::next_id(&dir.groups, dir.id_high.groups),
                    gid,
                    name: String::new(),
                    builtin: false,
                    smb: true,
                    sudo_commands: vec![],
                    sudo_commands_nopasswd: vec![],
                    immutable: false,
                };
                let mut batch = apply(dir, "group_create", &mut g, &data, &mut verrors);
                verrors.check()?;
                let id = g.id;
                batch.insert(0, Write::PutGroup(g));
                Ok((batch, id))
            },
            entry_of,
        )
        .await?
        .ok_or_else(|| ApiError::Other("created group vanished".into()))?;
    ctx.app.publish(
        "group.query",
        "added",
        entry["id"].clone(),
        Some(entry.clone()),
    );
    Ok(entry)
}

async fn update(ctx: Ctx, params: Vec<Value>) -> Result<Value, ApiError> {
    let id = super::id_param(&params);
    let data = params.get(1).cloned().unwrap_or(Value::Null);
    let entry = ctx
        .app
        .mutate_view(
            move |dir| {
                let Some(old) = dir.groups.get(&id) else {
                    return Err(ApiError::not_found("Group", id));
                };
                let mut verrors = Verrors::new();
                let mut g = old.clone();
                let mut batch = apply(dir, "group_update", &mut g, &data, &mut verrors);
                verrors.check()?;
                batch.insert(0, Write::PutGroup(g));
                Ok((batch, id))
            },
            entry_of,
        )
        .await?
        .ok_or_else(|| ApiError::not_found("Group", id))?;
    ctx.app.publish(
        "group.query",
        "changed",
        entry["id"].clone(),
        Some(entry.clone()),
    );
    Ok(entry)
}

async fn delete(ctx: Ctx, params: Vec<Value>) -> Result<Value, ApiError> {
    let id = super::id_param(&params);
    let delete_users = params
        .get(1)
        .and_then(|o| o.get("delete_users"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    ctx.app
        .mutate(move |dir| {
            let Some(g) = dir.groups.get(&id) else {
                return Err(ApiError::not_found("Group", id));
            };
            if g.builtin {
                return Err(ApiError::call(
                    errno::EINVAL,
                    "Cannot delete a built-in group",
                ));
            }
            let primary: Vec<_> = dir.users.values().filter(|u| u.group == id).collect();
            if !primary.is_empty() && !delete_users {
                let names: Vec<&str> = primary.iter().map(|u| u.username.as_str()).collect();
                return Err(ApiError::call(
                    errno::EBUSY,
                    format!(
                        "Group is the primary group of: {}; delete them with delete_users",
                        names.join(", ")
                    ),
                ));
            }
            if primary.iter().any(|u| u.builtin) {
                return Err(ApiError::call(
                    errno::EINVAL,
                    "Cannot delete the primary group of a built-in user",
                ));
            }
            let mut batch = vec![Write::DeleteGroup(id)];
            for u in dir.users.values() {
                if u.group == id {
                    batch.push(Write::DeleteUser(u.id));
                } else if u.groups.contains(&id) {
                    let mut nu = u.clone();
                    nu.groups.retain(|x| *x != id);
                    batch.push(Write::PutUser(nu));
                }
            }
            Ok((batch, ()))
        })
        .await?;
    ctx.app.publish("group.query", "removed", json!(id), None);
    Ok(json!(true))
}

pub fn register(r: &mut Registry) {
    r.add(
        MethodSpec::new("group.query", Access::Roles(vec!["ACCOUNT_READ"]))
            .query(entry_ty())
            .doc("Query groups with `query-filters` and `query-options`."),
        |ctx, params| async move {
            let records = entries(&ctx.app.dir());
            super::run_query(records, &params)
        },
    );
    let [id, options] = super::get_instance_params(Ty::int());
    r.add(
        MethodSpec::new("group.get_instance", Access::Roles(vec!["ACCOUNT_READ"]))
            .param(id)
            .param(options)
            .doc(
                "Returns instance matching `id`. If `id` is not found, Validation error is raised.",
            ),
        |ctx, params| async move {
            let records = entries(&ctx.app.dir());
            super::get_instance(records, "Group", &params)
        },
    );
    r.add(
        MethodSpec::new("group.create", Access::Roles(vec!["ACCOUNT_WRITE"]))
            .param(Field::required(
                "group_create",
                Ty::object("GroupCreate", fields(false)),
            ))
            .doc("Create a new group."),
        create,
    );
    r.add(
        MethodSpec::new("group.update", Access::Roles(vec!["ACCOUNT_WRITE"]))
            .param(Field::required("id", Ty::int()))
            .param(Field::required(
                "group_update",
                Ty::object("GroupUpdate", fields(true)).for_update(),
            ))
            .doc("Update attributes of an existing group."),
        update,
    );
    r.add(
        MethodSpec::new("group.delete", Access::Roles(vec!["ACCOUNT_WRITE"]))
            .param(Field::required("id", Ty::int()))
            .param(Field::optional(
                "options",
                Ty::object(
                    "GroupDeleteOptions",
                    vec![Field::optional("delete_users", Ty::Bool, json!(false))],
                ),
                json!({"delete_users": false}),
            ))
            .doc("Delete group `id`."),
        delete,
    );
}
