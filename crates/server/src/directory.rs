//! The in-memory copy of everything durable, and the wire entries derived from it.
//!
//! Reads (every `auth.me`, every authorization decision, every `*.query`) never touch SQL: the
//! directory is loaded once at start-up and updated after each committed write batch
//! (write-through, see `App::commit`).

use std::collections::{BTreeMap, HashMap};

use gatehouse_core::model::{
    ApiKey, EXPIRY_REVOKED, Group, IdHigh, Privilege, Snapshot, TwoFactorConfig, TwoFactorUser,
    User, Write,
};
use gatehouse_core::roles::{self, ComposedPrivilege, PrivilegeGrant};
use gatehouse_proto::ejson;
use serde_json::{Value, json};

/// First uid/gid handed out to new accounts.
pub const FIRST_ID: u32 = 3000;

#[derive(Debug, Default, Clone)]
pub struct Directory {
    pub users: BTreeMap<i64, User>,
    pub groups: BTreeMap<i64, Group>,
    pub privileges: BTreeMap<i64, Privilege>,
    pub api_keys: BTreeMap<i64, ApiKey>,
    pub twofactor_users: HashMap<i64, TwoFactorUser>,
    pub twofactor_config: TwoFactorConfig,
    pub attributes: HashMap<u32, Value>,
    /// Bumped by every applied batch: anything derived from the directory and cached (the
    /// composed privileges of `App::privilege_for`) is valid for one revision only.
    pub revision: u64,
    /// Largest id ever given out per table (ids are never reused, see [`IdHigh`]).
    pub id_high: IdHigh,
}

impl Directory {
    pub fn from_snapshot(s: Snapshot) -> Self {
        Self {
            users: s.users.into_iter().map(|u| (u.id, u)).collect(),
            groups: s.groups.into_iter().map(|g| (g.id, g)).collect(),
            privileges: s.privileges.into_iter().map(|p| (p.id, p)).collect(),
            api_keys: s.api_keys.into_iter().map(|k| (k.id, k)).collect(),
            twofactor_users: s
                .twofactor_users
                .into_iter()
                .map(|t| (t.user_id, t))
                .collect(),
            twofactor_config: s.twofactor_config,
            attributes: s.attributes.into_iter().collect(),
            revision: 0,
            id_high: s.id_high,
        }
    }

    /// Applies a committed batch (audit records are not kept in memory).
    pub fn apply(&mut self, batch: &[Write]) {
        self.revision += 1;
        for w in batch {
            match w {
                Write::PutUser(u) => {
                    self.id_high.users = self.id_high.users.max(u.id);
                    self.users.insert(u.id, u.clone());
                }
                Write::DeleteUser(id) => {
                    self.users.remove(id);
                }
                Write::PutGroup(g) => {
                    self.id_high.groups = self.id_high.groups.max(g.id);
                    self.groups.insert(g.id, g.clone());
                }
                Write::DeleteGroup(id) => {
                    self.groups.remove(id);
                }
                Write::PutPrivilege(p) => {
                    self.id_high.privileges = self.id_high.privileges.max(p.id);
                    self.privileges.insert(p.id, p.clone());
                }
                Write::DeletePrivilege(id) => {
                    self.privileges.remove(id);
                }
                Write::PutApiKey(k) => {
                    self.id_high.api_keys = self.id_high.api_keys.max(k.id);
                    self.api_keys.insert(k.id, k.clone());
                }
                Write::DeleteApiKey(id) => {
                    self.api_keys.remove(id);
                }
                Write::PutTwoFactorUser(t) => {
                    self.twofactor_users.insert(t.user_id, t.clone());
                }
                Write::DeleteTwoFactorUser(id) => {
                    self.twofactor_users.remove(id);
                }
                Write::PutTwoFactorConfig(c) => self.twofactor_config = c.clone(),
                Write::PutAttributes(uid, v) => {
                    self.attributes.insert(*uid, v.clone());
                }
                Write::AppendAudit(_) => {}
            }
        }
    }

    pub fn user_by_name(&self, username: &str) -> Option<&User> {
        self.users.values().find(|u| u.username == username)
    }

    pub fn user_by_uid(&self, uid: u32) -> Option<&User> {
        self.users.values().find(|u| u.uid == uid)
    }

    pub fn group_by_gid(&self, gid: u32) -> Option<&Group> {
        self.groups.values().find(|g| g.gid == gid)
    }

    /// The id for a new record of the table whose live records are `map` and whose
    /// high-water mark is `high` (a field of [`Directory::id_high`]): never a freed id.
    pub fn next_id<T>(map: &BTreeMap<i64, T>, high: i64) -> i64 {
        map.keys().next_back().map_or(0, |k| *k).max(high) + 1
    }

    pub fn next_uid(&self) -> u32 {
        let max = self
            .users
            .values()
            .map(|u| u.uid)
            .filter(|u| *u >= FIRST_ID)
            .max();
        max.map_or(FIRST_ID, |m| m + 1)
    }

    pub fn next_gid(&self) -> u32 {
        let max = self
            .groups
            .values()
            .map(|g| g.gid)
            .filter(|g| *g >= FIRST_ID)
            .max();
        max.map_or(FIRST_ID, |m| m + 1)
    }

    /// GIDs of the user's primary and auxiliary groups.
    pub fn user_gids(&self, user: &User) -> Vec<u32> {
        std::iter::once(user.group)
            .chain(user.groups.iter().copied())
            .filter_map(|id| self.groups.get(&id).map(|g| g.gid))
            .collect()
    }

    /// Privileges whose `local_groups` name any of these gids.
    pub fn privileges_for_gids(&self, gids: &[u32]) -> Vec<&Privilege> {
        self.privileges
            .values()
            .filter(|p| p.local_groups.iter().any(|g| gids.contains(g)))
            .collect()
    }

    /// The composed privilege of a user (§5.3); `None` when no privilege matches.
    pub fn compose_for_user(&self, user: &User) -> Option<ComposedPrivilege> {
        self.compose_gids(&self.user_gids(user))
    }

    /// The composed privilege of a member of the groups `gids`; `None` when no privilege
    /// matches.
    pub fn compose_gids(&self, gids: &[u32]) -> Option<ComposedPrivilege> {
        let privs = self.privileges_for_gids(gids);
        if privs.is_empty() {
            return None;
        }
        let grants: Vec<PrivilegeGrant> = privs
            .iter()
            .map(|p| PrivilegeGrant {
                roles: p.roles.clone(),
                web_shell: p.web_shell,
            })
            .collect();
        Some(roles::compose(&grants))
    }

    /// Roles reported in `user.query` / `group.query` entries.
    fn roles_for_gids(&self, gids: &[u32]) -> Vec<String> {
        let privs = self.privileges_for_gids(gids);
        if privs.is_empty() {
            return Vec::new();
        }
        let grants: Vec<PrivilegeGrant> = privs
            .iter()
            .map(|p| PrivilegeGrant {
                roles: p.roles.clone(),
                web_shell: p.web_shell,
            })
            .collect();
        roles::compose(&grants).roles.into_iter().collect()
    }

    pub fn twofactor_configured(&self, user_id: i64) -> bool {
        self.twofactor_users
            .get(&user_id)
            .is_some_and(|t| t.secret.is_some())
    }

    /// A `user.query` entry. Secrets (`unixhash`, `smbhash`) are shown as `********` or null.
    pub fn user_entry(&self, u: &User) -> Value {
        let group = self.groups.get(&u.group).map_or(
            Value::Null,
            |g| json!({"id": g.id, "bsdgrp_gid": g.gid, "bsdgrp_group": g.name}),
        );
        let api_keys: Vec<i64> = self
            .api_keys
            .values()
            .filter(|k| k.user_id == u.id)
            .map(|k| k.id)
            .collect();
        let hash = if u.password_hash.is_some() {
            json!("********")
        } else {
            Value::Null
        };
        json!({
            "id": u.id,
            "uid": u.uid,
            "username": u.username,
            "unixhash": hash,
            "smbhash": if u.smb { hash.clone() } else { Value::Null },
            "home": u.home,
            "shell": u.shell,
            "full_name": u.full_name,
            "builtin": u.builtin,
            "smb": u.smb,
            "userns_idmap": null,
            "group": group,
            "groups": u.groups,
            "password_disabled": u.password_disabled,
            "ssh_password_enabled": u.ssh_password_enabled,
            "sshpubkey": u.sshpubkey,
            "locked": u.locked,
            "sudo_commands": u.sudo_commands,
            "sudo_commands_nopasswd": u.sudo_commands_nopasswd,
            "email": u.email,
            "id_type_both": false,
            "local": true,
            "immutable": u.immutable,
            "twofactor_auth_configured": self.twofactor_configured(u.id),
            "sid": null,
            "last_password_change": u.last_password_change.map_or(Value::Null, ejson::date),
            "password_age": null,
            "password_history": null,
            "password_change_required": u.password_change_required,
            "roles": self.roles_for_gids(&self.user_gids(u)),
            "api_keys": api_keys,
        })
    }

    /// A `group.query` entry.
    pub fn group_entry(&self, g: &Group) -> Value {
        let users: Vec<i64> = self
            .users
            .values()
            .filter(|u| u.group == g.id || u.groups.contains(&g.id))
            .map(|u| u.id)
            .collect();
        json!({
            "id": g.id,
            "gid": g.gid,
            "name": g.name,
            "builtin": g.builtin,
            "sudo_commands": g.sudo_commands,
            "sudo_commands_nopasswd": g.sudo_commands_nopasswd,
            "smb": g.smb,
            "userns_idmap": null,
            "group": g.name,
            "local": true,
            "sid": null,
            "roles": self.roles_for_gids(&[g.gid]),
            "users": users,
            "immutable": g.immutable,
        })
    }

    /// A `privilege.query` entry with expanded group entries (§5.1).
    pub fn privilege_entry(&self, p: &Privilege) -> Value {
        let local_groups: Vec<Value> = p
            .local_groups
            .iter()
            .map(|gid| match self.group_by_gid(*gid) {
                Some(g) => self.group_entry(g),
                None => json!({"gid": gid, "sid": null, "group": null}),
            })
            .collect();
        let ds_groups: Vec<Value> = p
            .ds_groups
            .iter()
            .map(|id| match id {
                Value::Number(n) => json!({"gid": n, "sid": null, "group": null}),
                other => json!({"gid": null, "sid": other, "group": null}),
            })
            .collect();
        json!({
            "id": p.id,
            "builtin_name": p.builtin_name,
            "name": p.name,
            "local_groups": local_groups,
            "ds_groups": ds_groups,
            "roles": p.roles,
            "web_shell": p.web_shell,
        })
    }

    /// An `api_key.query` entry (25.10 shape). `keyhash` is a secret: the dispatcher redacts it
    /// for callers without API_KEY_WRITE.
    pub fn api_key_entry(&self, k: &ApiKey, now: i64) -> Value {
        let owner = self.users.get(&k.user_id);
        let (revoked, reason) = match owner {
            None => (true, Some("User does not exist".to_string())),
            Some(_) if k.expiry == EXPIRY_REVOKED => (true, k.revoked_reason.clone()),
            Some(_) => (false, None),
        };
        let _ = now;
        json!({
            "id": k.id,
            "name": k.name,
            "username": owner.map(|u| u.username.clone()),
            "user_identifier": k.user_id,
            "keyhash": format!("$scram-sha512${}${}${}", k.iterations, k.salt, k.stored_key),
            "created_at": ejson::date(k.created_at),
            "expires_at": if k.expiry > 0 { ejson::date(k.expiry) } else { Value::Null },
            "local": true,
            "revoked": revoked,
            "revoked_reason": reason,
        })
    }
}
