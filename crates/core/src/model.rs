//! Durable records, as the store keeps them. Computed fields (roles, api_keys,
//! twofactor_auth_configured, ...) are derived by the services, never stored.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A local user account (`user.*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub uid: u32,
    pub username: String,
    pub full_name: String,
    pub home: String,
    pub shell: String,
    /// Entry id (not gid) of the primary group.
    pub group: i64,
    /// Entry ids (not gids) of auxiliary groups.
    pub groups: Vec<i64>,
    /// Argon2id PHC string or imported `$6$` crypt string; never leaves the server.
    #[serde(default)]
    pub password_hash: Option<String>,
    pub password_disabled: bool,
    pub ssh_password_enabled: bool,
    pub locked: bool,
    pub smb: bool,
    pub builtin: bool,
    pub immutable: bool,
    pub email: Option<String>,
    pub sshpubkey: Option<String>,
    pub sudo_commands: Vec<String>,
    pub sudo_commands_nopasswd: Vec<String>,
    /// Unix seconds.
    pub last_password_change: Option<i64>,
    pub password_change_required: bool,
}

/// A local group (`group.*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub id: i64,
    pub gid: u32,
    pub name: String,
    pub builtin: bool,
    pub smb: bool,
    pub sudo_commands: Vec<String>,
    pub sudo_commands_nopasswd: Vec<String>,
    pub immutable: bool,
}

/// A privilege: roles granted to groups (`privilege.*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Privilege {
    pub id: i64,
    pub builtin_name: Option<String>,
    pub name: String,
    /// GIDs.
    pub local_groups: Vec<u32>,
    /// GIDs or SIDs.
    pub ds_groups: Vec<Value>,
    pub roles: Vec<String>,
    pub web_shell: bool,
}

/// `expiry` encoding, as TrueNAS: 0 never, -1 revoked, else Unix seconds.
pub const EXPIRY_NEVER: i64 = 0;
pub const EXPIRY_REVOKED: i64 = -1;

/// An API key: SCRAM-SHA-512 material only, never the raw key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    /// Users-table id of the owner (TrueNAS `user_identifier` for local users).
    pub user_id: i64,
    /// Base64 of the 16 ASCII salt bytes.
    pub salt: String,
    pub iterations: u32,
    /// Base64 StoredKey / ServerKey.
    pub stored_key: String,
    pub server_key: String,
    /// Unix seconds.
    pub created_at: i64,
    pub expiry: i64,
    pub revoked_reason: Option<String>,
}

/// Per-user two-factor settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TwoFactorUser {
    pub user_id: i64,
    /// The TOTP secret, encrypted with the data directory's key (opaque to the store).
    pub secret: Option<String>,
    pub otp_digits: u32,
    pub interval: u32,
    /// Last accepted TOTP step (replay protection).
    pub last_step: Option<u64>,
}

/// Global two-factor configuration (`auth.twofactor.config`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TwoFactorConfig {
    pub enabled: bool,
    pub services_ssh: bool,
    pub window: u32,
}

/// One audit record (the TrueNAS TNAUDIT shape lives in `data`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub aid: String,
    /// Unix seconds (with fraction).
    pub time: f64,
    pub data: Value,
}

/// Everything durable, loaded at start-up.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub users: Vec<User>,
    pub groups: Vec<Group>,
    pub privileges: Vec<Privilege>,
    pub api_keys: Vec<ApiKey>,
    pub twofactor_users: Vec<TwoFactorUser>,
    pub twofactor_config: TwoFactorConfig,
    /// uid → `auth.set_attribute` object.
    pub attributes: Vec<(u32, Value)>,
    /// The largest id ever given out per table, deleted records included.
    pub id_high: IdHigh,
}

/// High-water marks of record ids. Ids are never reused (like SQLite `AUTOINCREMENT` and
/// TrueNAS' tables): a call that looked a record up by id before a slow step (a KDF) and
/// writes it after must never land on a different record that took a freed id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdHigh {
    pub users: i64,
    pub groups: i64,
    pub privileges: i64,
    pub api_keys: i64,
}

/// One durable change; a batch of them commits atomically.
#[derive(Debug, Clone)]
pub enum Write {
    PutUser(User),
    DeleteUser(i64),
    PutGroup(Group),
    DeleteGroup(i64),
    PutPrivilege(Privilege),
    DeletePrivilege(i64),
    PutApiKey(ApiKey),
    DeleteApiKey(i64),
    PutTwoFactorUser(TwoFactorUser),
    DeleteTwoFactorUser(i64),
    PutTwoFactorConfig(TwoFactorConfig),
    PutAttributes(u32, Value),
    AppendAudit(AuditRecord),
}
