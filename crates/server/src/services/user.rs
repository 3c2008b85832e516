//! `user.*`: local accounts, as much of TrueNAS' account API as authentication needs.

use gatehouse_core::model::{Group, User, Write};
use gatehouse_core::password;
use gatehouse_proto::error::Verrors;
use gatehouse_proto::schema::{Access, Field, MethodSpec, Ty};
use gatehouse_proto::{ApiError, errno};
use serde_json::{Value, json};

use crate::directory::Directory;
use crate::registry::{Ctx, Registry, ServiceKind};

fn str_list() -> Ty {
    Ty::list(Ty::str())
}

/// The writable fields shared by create and update.
fn common_fields() -> Vec<Field> {
    vec![
        Field::optional("home", Ty::str(), json!("/var/empty")),
        Field::optional("home_create", Ty::Bool, json!(false)),
        Field::optional("shell", Ty::str(), json!("/usr/bin/zsh")),
        Field::optional("email", Ty::nullable(Ty::str()), Value::Null),
        Field::optional("password", Ty::nullable(Ty::secret(Ty::str())), Value::Null),
        Field::optional("password_disabled", Ty::Bool, json!(false)),
        Field::optional("ssh_password_enabled", Ty::Bool, json!(false)),
        Field::optional("sshpubkey", Ty::nullable(Ty::str()), Value::Null),
        Field::optional("locked", Ty::Bool, json!(false)),
        Field::optional("smb", Ty::Bool, json!(true)),
        Field::optional("sudo_commands", str_list(), json!([])),
        Field::optional("sudo_commands_nopasswd", str_list(), json!([])),
        Field::optional("group", Ty::nullable(Ty::int()), Value::Null),
        Field::optional("groups", Ty::list(Ty::int()), json!([])),
    ]
}

fn create_ty() -> Ty {
    let mut fields = vec![
        Field::optional(
            "uid",
            Ty::nullable(Ty::int_range(Some(0), Some(4_294_967_294))),
            Value::Null,
        ),
        Field::required("username", Ty::str_len(1, 32)),
        Field::required("full_name", Ty::non_empty_str()),
        Field::optional("group_create", Ty::Bool, json!(false)),
    ];
    fields.extend(common_fields());
    Ty::object("UserCreate", fields)
}

fn update_ty() -> Ty {
    let mut fields = vec![
        Field::optional("username", Ty::str_len(1, 32), Value::Null),
        Field::optional("full_name", Ty::non_empty_str(), Value::Null),
    ];
    fields.extend(common_fields());
    Ty::object("UserUpdate", fields).for_update()
}

fn entry_ty() -> Ty {
    Ty::object(
        "UserEntry",
        [
            "id",
            "uid",
            "username",
            "full_name",
            "home",
            "shell",
            "builtin",
            "locked",
            "roles",
            "api_keys",
        ]
        .into_iter()
        .map(|n| Field::required(n, Ty::Any))
        .collect(),
    )
}

/// POSIX portable user names: letters, digits, `.`, `_`, `-`, not starting with `-`, with an
/// optional trailing `$` (Samba machine accounts).
fn valid_username(name: &str) -> bool {
    let body = name.strip_suffix('$').unwrap_or(name);
    !body.is_empty()
        && !body.starts_with('-')
        && body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn entries(dir: &Directory) -> Vec<Value> {
    dir.users.values().map(|u| dir.user_entry(u)).collect()
}

/// The `user.query` entry of user `id` in `dir`, if it exists.
fn entry_of(dir: &Directory, id: i64) -> Option<Value> {
    dir.users.get(&id).map(|u| dir.user_entry(u))
}

fn s(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn b(v: &Value, key: &str) -> Option<bool> {
    v.get(key).and_then(Value::as_bool)
}

fn strs(v: &Value, key: &str) -> Option<Vec<String>> {
    v.get(key).and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    })
}

/// Applies the given fields of `data` to `u` (shared by create and update).
fn apply_fields(u: &mut User, data: &Value) {
    if let Some(x) = s(data, "username") {
        u.username = x;
    }
    if let Some(x) = s(data, "full_name") {
        u.full_name = x;
    }
    if let Some(x) = s(data, "home") {
        u.home = x;
    }
    if let Some(x) = s(data, "shell") {
        u.shell = x;
    }
    if data.get("email").is_some() {
        u.email = s(data, "email");
    }
    if data.get("sshpubkey").is_some() {
        u.sshpubkey = s(data, "sshpubkey");
    }
    for (key, field) in [
        ("password_disabled", &mut u.password_disabled),
        ("ssh_password_enabled", &mut u.ssh_password_enabled),
        ("locked", &mut u.locked),
        ("smb", &mut u.smb),
    ] {
        if let Some(x) = b(data, key) {
            *field = x;
        }
    }
    if let Some(x) = strs(data, "sudo_commands") {
        u.sudo_commands = x;
    }
    if let Some(x) = strs(data, "sudo_commands_nopasswd") {
        u.sudo_commands_nopasswd = x;
    }
    if let Some(g) = data.get("group").and_then(Value::as_i64) {
        u.group = g;
    }
    if let Some(a) = data.get("groups").and_then(Value::as_array) {
        u.groups = a.iter().filter_map(Value::as_i64).collect();
    }
}

/// Checks shared by create and update, on the resulting record.
fn validate(dir: &Directory, schema: &str, u: &User, data: &Value, verrors: &mut Verrors) {
    if data.get("username").is_some() {
        if !valid_username(&u.username) {
            verrors.add(
                format!("{schema}.username"),
                "Valid characters are letters, digits, '.', '_' and '-'; it may not begin with '-'.",
            );
        } else if dir
            .users
            .values()
            .any(|o| o.username == u.username && o.id != u.id)
        {
            verrors.add(
                format!("{schema}.username"),
                format!("The username \"{}\" already exists.", u.username),
            );
        }
    }
    if data.get("group").is_some_and(|g| !g.is_null()) && !dir.groups.contains_key(&u.group) {
        verrors.add(
            format!("{schema}.group"),
            format!("Group {} not found", u.group),
        );
    }
    for (i, g) in u.groups.iter().enumerate() {
        if !dir.groups.contains_key(g) {
            verrors.add(
                format!("{schema}.groups.{i}"),
                format!("Group {g} not found"),
            );
        }
    }
    for (key, value) in [("home", &u.home), ("shell", &u.shell)] {
        if data.get(key).is_some() && !value.starts_with('/') {
            verrors.add(format!("{schema}.{key}"), "Must be an absolute path.");
        }
    }
}

async fn hash_if_given(ctx: &Ctx, data: &Value) -> Result<Option<String>, ApiError> {
    let Some(pw) = s(data, "password") else {
        return Ok(None);
    };
    let entropy = ctx.app.entropy.clone();
    let hash = ctx
        .app
        .kdf(move || password::hash_password(&pw, entropy.as_ref()))
        .await?
        .map_err(|e| ApiError::call(errno::EFAULT, e.to_string()))?;
    Ok(Some(hash))
}

async fn create(ctx: Ctx, params: Vec<Value>) -> Result<Value, ApiError> {
    let data = params.into_iter().next().unwrap_or(Value::Null);
    let hash = hash_if_given(&ctx, &data).await?;
    let now = ctx.app.clock.now_unix();
    let entry = ctx
        .app
        .mutate_view(
            move |dir| {
                let mut verrors = Verrors::new();
                let mut batch = Vec::new();
                let id = Directory::next_id(&dir.users, dir.id_high.users);
                let uid = data
                    .get("uid")
                    .and_then(Value::as_u64)
                    .map_or_else(|| dir.next_uid(), |u| u as u32);
                if dir.user_by_uid(uid).is_some() {
                    verrors.add("user_create.uid", format!("Uid {uid} is already used."));
                }
                let username = s(&data, "username").unwrap_or_default();
                let mut group_id = data.get("group").and_then(Value::as_i64);
                if b(&data, "group_create") == Some(true) {
                    if group_id.is_some() {
                        verrors.add(
                            "user_create.group",
                            "Enter either a group name or create a new group to continue.",
                        );
                    } else if dir.groups.values().any(|g| g.name == username) {
                        verrors.add(
                            "user_create.group",
                            format!("Group {username} already exists"),
                        );
                    } else {
                        let gid_taken = dir.group_by_gid(uid).is_some();
                        let g = Group {
                            id: Directory::next_id(&dir.groups, dir.id_high.groups),
                            gid: if gid_taken { dir.next_gid() } else { uid },
                            name: username.clone(),
                            builtin: false,
                            smb: false,
                            sudo_commands: vec![],
                            sudo_commands_nopasswd: vec![],
                            immutable: false,
                        };
                        group_id = Some(g.id);
                        batch.push(Write::PutGroup(g));
                    }
                } else if group_id.is_none() {
                    verrors.add(
                        "user_create.group",
                        "Enter either a group name or create a new group to continue.",
                    );
                }
                let mut u = User {
                    id,
                    uid,
                    username: String::new(),
                    full_name: String::new(),
                    home: "/var/empty".into(),
                    shell: "/usr/bin/zsh".into(),
                    group: group_id.unwrap_or_default(),
                    groups: vec![],
                    password_hash: hash,
                    password_disabled: false,
                    ssh_password_enabled: false,
                    locked: false,
                    smb: true,
                    builtin: false,
                    immutable: false,
                    email: None,
                    sshpubkey: None,
                    sudo_commands: vec![],
                    sudo_commands_nopasswd: vec![],
                    last_password_change: None,
                    password_change_required: false,
                };
                apply_fields(&mut u, &data);
                if u.password_hash.is_some() {
                    u.last_password_change = Some(now);
                } else if !u.password_disabled {
                    verrors.add(
                        "user_create.password",
                        "Password is required when password login is enabled.",
                    );
                }
                // The primary group may be created in this same batch: validate against it.
                let created_group = batch.iter().any(|w| matches!(w, Write::PutGroup(_)));
                if created_group {
                    let mut check = dir.clone();
                    check.apply(&batch);
                    validate(&check, "user_create", &u, &data, &mut verrors);
                } else {
                    validate(dir, "user_create", &u, &data, &mut verrors);
                }
                verrors.check()?;
                batch.push(Write::PutUser(u));
                Ok((batch, id))
            },
            entry_of,
        )
        .await?
        .ok_or_else(|| ApiError::Other("created user vanished".into()))?;
    ctx.app.publish(
        "user.query",
        "added",
        entry["id"].clone(),
        Some(entry.clone()),
    );
    Ok(entry)
}

async fn update(ctx: Ctx, params: Vec<Value>) -> Result<Value, ApiError> {
    let id = super::id_param(&params);
    let data = params.get(1).cloned().unwrap_or(Value::Null);
    let hash = hash_if_given(&ctx, &data).await?;
    let now = ctx.app.clock.now_unix();
    let entry = ctx
        .app
        .mutate_view(
            move |dir| {
                let Some(old) = dir.users.get(&id) else {
                    return Err(ApiError::not_found("User", id));
                };
                let mut verrors = Verrors::new();
                let mut u = old.clone();
                apply_fields(&mut u, &data);
                if old.builtin && u.username != old.username {
                    verrors.add("user_update.username", "This attribute cannot be changed");
                }
                if let Some(h) = hash {
                    u.password_hash = Some(h);
                    u.last_password_change = Some(now);
                    u.password_change_required = false;
                }
                if !u.password_disabled
                    && u.password_hash.is_none()
                    && data.get("password_disabled").is_some()
                {
                    verrors.add(
                        "user_update.password",
                        "Password is required when password login is enabled.",
                    );
                }
                validate(dir, "user_update", &u, &data, &mut verrors);
                verrors.check()?;
                Ok((vec![Write::PutUser(u)], id))
            },
            entry_of,
        )
        .await?
        .ok_or_else(|| ApiError::not_found("User", id))?;
    ctx.app.publish(
        "user.query",
        "changed",
        entry["id"].clone(),
        Some(entry.clone()),
    );
    Ok(entry)
}

async fn delete(ctx: Ctx, params: Vec<Value>) -> Result<Value, ApiError> {
    let id = super::id_param(&params);
    let delete_group = params
        .get(1)
        .and_then(|o| o.get("delete_group"))
        .and_then(Value::as_bool)
        .unwrap_or(true);
    ctx.app
        .mutate(move |dir| {
            let Some(u) = dir.users.get(&id) else {
                return Err(ApiError::not_found("User", id));
            };
            if u.builtin {
                return Err(ApiError::call(
                    errno::EINVAL,
                    "Cannot delete a built-in user",
                ));
            }
            let mut batch = vec![Write::DeleteUser(id)];
            // The user's API keys and two-factor secret go with it.
            batch.extend(
                dir.api_keys
                    .values()
                    .filter(|k| k.user_id == id)
                    .map(|k| Write::DeleteApiKey(k.id)),
            );
            if dir.twofactor_users.contains_key(&id) {
                batch.push(Write::DeleteTwoFactorUser(id));
            }
            if delete_group {
                let shared = dir
                    .users
                    .values()
                    .any(|o| o.id != id && (o.group == u.group || o.groups.contains(&u.group)));
                let own = dir
                    .groups
                    .get(&u.group)
                    .is_some_and(|g| !g.builtin && g.name == u.username);
                if own && !shared {
                    batch.push(Write::DeleteGroup(u.group));
                }
            }
            Ok((batch, ()))
        })
        .await?;
    ctx.app.publish("user.query", "removed", json!(id), None);
    Ok(json!(true))
}

pub fn register(r: &mut Registry) {
    let _ = ServiceKind::Crud;
    r.add(
        MethodSpec::new("user.query", Access::Roles(vec!["ACCOUNT_READ"]))
            .query(entry_ty())
            .doc("Query users with `query-filters` and `query-options`."),
        |ctx, params| async move {
            let mut records = entries(&ctx.app.dir());
            super::lockout::annotate(&ctx.app, &mut records);
            super::run_query(records, &params)
        },
    );
    let [id, options] = super::get_instance_params(Ty::int());
    r.add(
        MethodSpec::new("user.get_instance", Access::Roles(vec!["ACCOUNT_READ"]))
            .param(id)
            .param(options)
            .doc(
                "Returns instance matching `id`. If `id` is not found, Validation error is raised.",
            ),
        |ctx, params| async move {
            let mut records = entries(&ctx.app.dir());
            super::lockout::annotate(&ctx.app, &mut records);
            super::get_instance(records, "User", &params)
        },
    );
    r.add(
        MethodSpec::new("user.create", Access::Roles(vec!["ACCOUNT_WRITE"]))
            .param(Field::required("user_create", create_ty()))
            .doc("Create a new user."),
        create,
    );
    r.add(
        MethodSpec::new("user.update", Access::Roles(vec!["ACCOUNT_WRITE"]))
            .param(Field::required("id", Ty::int()))
            .param(Field::required("user_update", update_ty()))
            .doc("Update attributes of an existing user."),
        update,
    );
    r.add(
        MethodSpec::new("user.delete", Access::Roles(vec!["ACCOUNT_WRITE"]))
            .param(Field::required("id", Ty::int()))
            .param(Field::optional(
                "options",
                Ty::object(
                    "UserDeleteOptions",
                    vec![Field::optional("delete_group", Ty::Bool, json!(true))],
                ),
                json!({"delete_group": true}),
            ))
            .doc("Delete user `id`."),
        delete,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_rules() {
        for (name, ok) in [
            ("alice", true),
            ("a.b_c-d", true),
            ("pc$", true),
            ("-x", false),
            ("a b", false),
            ("ü", false),
            ("", false),
        ] {
            assert_eq!(valid_username(name), ok, "{name:?}");
        }
    }
}
