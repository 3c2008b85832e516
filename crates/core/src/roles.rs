//! The TrueNAS 25.10 role catalogue and privilege composition (spec §5.3–5.5).
//!
//! The table mirrors `middlewared/role.py` as of 25.10, in its order and with its quirks,
//! because `privilege.roles` shows it verbatim and clients (the Web UI) key off the names:
//!
//! * `SYSTEM_AUDIT_WRITE`, `SERVICE_WRITE`, `MAIL_WRITE` and the `*_DELETE` roles include no
//!   read role;
//! * `PRIVILEGE_WRITE` and `SYSTEM_PRODUCT_WRITE` list *themselves* in `includes` (upstream
//!   typos), so neither grants the matching `_READ` role;
//! * `READONLY_ADMIN` is computed: every role whose name ends in `_READ`, appended last.
//!
//! Expansion tolerates the self-includes (upstream's recursive expansion would not).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

/// `STIGType.GPOS`: the role stays available in General Purpose OS STIG mode.
pub const STIG_GPOS: u8 = 1;

pub const FULL_ADMIN: &str = "FULL_ADMIN";
pub const READONLY_ADMIN: &str = "READONLY_ADMIN";
pub const SHARING_ADMIN: &str = "SHARING_ADMIN";
pub const REPLICATION_ADMIN: &str = "REPLICATION_ADMIN";

/// One role of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: &'static str,
    /// Directly included roles, in upstream order.
    pub includes: Vec<&'static str>,
    /// `FULL_ADMIN` only: expands to every role.
    pub full_admin: bool,
    /// `false` for the four "group" roles; such a role grants Web UI access.
    pub builtin: bool,
    /// `Some(STIG_GPOS)` if available under GPOS STIG, `None` if not.
    pub stig: Option<u8>,
}

struct Def {
    name: &'static str,
    includes: &'static [&'static str],
    builtin: bool,
    stig: Option<u8>,
}

/// An individual role available under STIG.
const fn r(name: &'static str, includes: &'static [&'static str]) -> Def {
    Def {
        name,
        includes,
        builtin: true,
        stig: Some(STIG_GPOS),
    }
}

/// An individual role unavailable under STIG (`stig=None`).
const fn ns(name: &'static str, includes: &'static [&'static str]) -> Def {
    Def {
        name,
        includes,
        builtin: true,
        stig: None,
    }
}

/// A group role (`builtin=False`).
const fn group(name: &'static str, includes: &'static [&'static str]) -> Def {
    Def {
        name,
        includes,
        builtin: false,
        stig: Some(STIG_GPOS),
    }
}

/// `middlewared/role.py` (25.10) `ROLES`, in declaration order, without `READONLY_ADMIN`.
#[rustfmt::skip]
const DEFS: &[Def] = &[
    r("ACCOUNT_READ", &[]),
    r("ACCOUNT_WRITE", &["ACCOUNT_READ"]),
    r("API_KEY_READ", &[]),
    ns("API_KEY_WRITE", &["API_KEY_READ"]),
    r("AUTH_SESSIONS_READ", &[]),
    r("AUTH_SESSIONS_WRITE", &["AUTH_SESSIONS_READ"]),
    r("BOOT_ENV_READ", &[]),
    r("BOOT_ENV_WRITE", &["BOOT_ENV_READ"]),
    r("DIRECTORY_SERVICE_READ", &[]),
    r("DIRECTORY_SERVICE_WRITE", &["DIRECTORY_SERVICE_READ"]),
    r("DISK_READ", &[]),
    r("DISK_WRITE", &["DISK_READ"]),
    r("FAILOVER_READ", &[]),
    r("FAILOVER_WRITE", &["FAILOVER_READ"]),
    r("FILESYSTEM_ATTRS_READ", &[]),
    r("FILESYSTEM_ATTRS_WRITE", &["FILESYSTEM_ATTRS_READ"]),
    r("FILESYSTEM_DATA_READ", &[]),
    r("FILESYSTEM_DATA_WRITE", &["FILESYSTEM_DATA_READ"]),
    r("FILESYSTEM_FULL_CONTROL", &["FILESYSTEM_ATTRS_WRITE", "FILESYSTEM_DATA_WRITE"]),
    r("IPMI_READ", &[]),
    r("IPMI_WRITE", &["IPMI_READ"]),
    r("KMIP_READ", &[]),
    r("KMIP_WRITE", &["KMIP_READ"]),
    r("MAIL_WRITE", &[]),
    r("PRIVILEGE_READ", &[]),
    r("PRIVILEGE_WRITE", &["PRIVILEGE_WRITE"]),
    r("REPORTING_READ", &[]),
    r("REPORTING_WRITE", &["REPORTING_READ"]),
    r("SUPPORT_READ", &[]),
    r("SUPPORT_WRITE", &["SUPPORT_READ"]),
    r("SSH_READ", &[]),
    r("SSH_WRITE", &["SSH_READ"]),
    r("SYSTEM_AUDIT_READ", &[]),
    r("SYSTEM_AUDIT_WRITE", &[]),
    Def { name: FULL_ADMIN, includes: &[], builtin: false, stig: Some(STIG_GPOS) },
    r("ALERT_LIST_READ", &[]),
    r("ALERT_LIST_WRITE", &["ALERT_LIST_READ"]),
    r("ALERT_READ", &["ALERT_LIST_READ"]),
    r("ALERT_WRITE", &["ALERT_LIST_WRITE", "ALERT_READ"]),
    r("CLOUD_BACKUP_READ", &[]),
    r("CLOUD_BACKUP_WRITE", &["CLOUD_BACKUP_READ"]),
    r("CLOUD_SYNC_READ", &[]),
    r("CLOUD_SYNC_WRITE", &["CLOUD_SYNC_READ"]),
    r("SERVICE_READ", &[]),
    r("SERVICE_WRITE", &[]),
    r("ENCLOSURE_READ", &[]),
    r("ENCLOSURE_WRITE", &["ENCLOSURE_READ"]),
    r("NETWORK_GENERAL_READ", &[]),
    r("NETWORK_GENERAL_WRITE", &["NETWORK_GENERAL_READ"]),
    r("NETWORK_INTERFACE_READ", &[]),
    r("NETWORK_INTERFACE_WRITE", &["NETWORK_INTERFACE_READ"]),
    r("VM_READ", &[]),
    ns("VM_WRITE", &["VM_READ"]),
    r("VM_DEVICE_READ", &["VM_READ"]),
    ns("VM_DEVICE_WRITE", &["VM_WRITE", "VM_DEVICE_READ"]),
    r("JBOF_READ", &[]),
    r("JBOF_WRITE", &["JBOF_READ"]),
    r("TRUECOMMAND_READ", &[]),
    ns("TRUECOMMAND_WRITE", &["TRUECOMMAND_READ"]),
    r("TRUENAS_CONNECT_READ", &[]),
    ns("TRUENAS_CONNECT_WRITE", &["TRUENAS_CONNECT_READ"]),
    r("CERTIFICATE_READ", &[]),
    r("CERTIFICATE_WRITE", &["CERTIFICATE_READ"]),
    r("CATALOG_READ", &[]),
    ns("CATALOG_WRITE", &["CATALOG_READ"]),
    r("DOCKER_READ", &[]),
    ns("DOCKER_WRITE", &["DOCKER_READ"]),
    r("APPS_READ", &["CATALOG_READ"]),
    ns("APPS_WRITE", &["CATALOG_WRITE", "APPS_READ"]),
    r("SHARING_FTP_READ", &[]),
    r("SHARING_FTP_WRITE", &["SHARING_FTP_READ"]),
    r("SHARING_ISCSI_AUTH_READ", &[]),
    r("SHARING_ISCSI_AUTH_WRITE", &["SHARING_ISCSI_AUTH_READ"]),
    r("SHARING_ISCSI_EXTENT_READ", &[]),
    r("SHARING_ISCSI_EXTENT_WRITE", &["SHARING_ISCSI_EXTENT_READ"]),
    r("SHARING_ISCSI_GLOBAL_READ", &[]),
    r("SHARING_ISCSI_GLOBAL_WRITE", &["SHARING_ISCSI_GLOBAL_READ"]),
    r("SHARING_ISCSI_HOST_READ", &[]),
    r("SHARING_ISCSI_HOST_WRITE", &["SHARING_ISCSI_HOST_READ"]),
    r("SHARING_ISCSI_INITIATOR_READ", &[]),
    r("SHARING_ISCSI_INITIATOR_WRITE", &["SHARING_ISCSI_INITIATOR_READ"]),
    r("SHARING_ISCSI_PORTAL_READ", &[]),
    r("SHARING_ISCSI_PORTAL_WRITE", &["SHARING_ISCSI_PORTAL_READ"]),
    r("SHARING_ISCSI_TARGET_READ", &[]),
    r("SHARING_ISCSI_TARGET_WRITE", &["SHARING_ISCSI_TARGET_READ"]),
    r("SHARING_ISCSI_TARGETEXTENT_READ", &[]),
    r("SHARING_ISCSI_TARGETEXTENT_WRITE", &["SHARING_ISCSI_TARGETEXTENT_READ"]),
    r("SHARING_ISCSI_READ", &[
        "SHARING_ISCSI_AUTH_READ", "SHARING_ISCSI_EXTENT_READ", "SHARING_ISCSI_GLOBAL_READ",
        "SHARING_ISCSI_HOST_READ", "SHARING_ISCSI_INITIATOR_READ", "SHARING_ISCSI_PORTAL_READ",
        "SHARING_ISCSI_TARGET_READ", "SHARING_ISCSI_TARGETEXTENT_READ",
    ]),
    r("SHARING_ISCSI_WRITE", &[
        "SHARING_ISCSI_AUTH_WRITE", "SHARING_ISCSI_EXTENT_WRITE", "SHARING_ISCSI_GLOBAL_WRITE",
        "SHARING_ISCSI_HOST_WRITE", "SHARING_ISCSI_INITIATOR_WRITE", "SHARING_ISCSI_PORTAL_WRITE",
        "SHARING_ISCSI_TARGET_WRITE", "SHARING_ISCSI_TARGETEXTENT_WRITE",
    ]),
    r("SHARING_NFS_READ", &[]),
    r("SHARING_NFS_WRITE", &["SHARING_NFS_READ"]),
    r("SHARING_NVME_TARGET_READ", &[]),
    r("SHARING_NVME_TARGET_WRITE", &["SHARING_NVME_TARGET_READ"]),
    r("SHARING_SMB_READ", &[]),
    r("SHARING_SMB_WRITE", &["SHARING_SMB_READ"]),
    r("SHARING_READ", &[
        "SHARING_ISCSI_READ", "SHARING_NFS_READ", "SHARING_NVME_TARGET_READ", "SHARING_SMB_READ",
        "SHARING_FTP_READ",
    ]),
    r("SHARING_WRITE", &[
        "SHARING_ISCSI_WRITE", "SHARING_NFS_WRITE", "SHARING_NVME_TARGET_WRITE",
        "SHARING_SMB_WRITE", "SHARING_FTP_WRITE",
    ]),
    r("KEYCHAIN_CREDENTIAL_READ", &[]),
    r("KEYCHAIN_CREDENTIAL_WRITE", &["KEYCHAIN_CREDENTIAL_READ"]),
    r("REPLICATION_TASK_CONFIG_READ", &[]),
    r("REPLICATION_TASK_CONFIG_WRITE", &["REPLICATION_TASK_CONFIG_READ"]),
    r("REPLICATION_TASK_READ", &[]),
    r("REPLICATION_TASK_WRITE", &["REPLICATION_TASK_READ"]),
    r("REPLICATION_TASK_WRITE_PULL", &["REPLICATION_TASK_WRITE"]),
    r("SNAPSHOT_TASK_READ", &[]),
    r("SNAPSHOT_TASK_WRITE", &["SNAPSHOT_TASK_READ"]),
    r("POOL_SCRUB_READ", &[]),
    r("POOL_SCRUB_WRITE", &["POOL_SCRUB_READ"]),
    r("POOL_READ", &["POOL_SCRUB_READ"]),
    r("POOL_WRITE", &["POOL_READ", "POOL_SCRUB_WRITE"]),
    r("DATASET_READ", &[]),
    r("DATASET_WRITE", &["DATASET_READ"]),
    r("DATASET_DELETE", &[]),
    r("SNAPSHOT_READ", &[]),
    r("SNAPSHOT_WRITE", &["SNAPSHOT_READ"]),
    r("SNAPSHOT_DELETE", &[]),
    group(REPLICATION_ADMIN, &[
        "KEYCHAIN_CREDENTIAL_WRITE", "REPLICATION_TASK_CONFIG_WRITE", "REPLICATION_TASK_WRITE",
        "SNAPSHOT_TASK_WRITE", "SNAPSHOT_WRITE",
    ]),
    group(SHARING_ADMIN, &[
        READONLY_ADMIN, "DATASET_WRITE", "SHARING_WRITE", "FILESYSTEM_ATTRS_WRITE", "SERVICE_READ",
    ]),
    r("SYSTEM_GENERAL_READ", &[]),
    r("SYSTEM_GENERAL_WRITE", &["SYSTEM_GENERAL_READ"]),
    r("SYSTEM_PRODUCT_READ", &[]),
    r("SYSTEM_PRODUCT_WRITE", &["SYSTEM_PRODUCT_WRITE"]),
    r("SYSTEM_ADVANCED_READ", &[]),
    r("SYSTEM_ADVANCED_WRITE", &["SYSTEM_ADVANCED_READ"]),
    r("SYSTEM_SECURITY_READ", &[]),
    r("SYSTEM_SECURITY_WRITE", &["SYSTEM_SECURITY_READ"]),
    r("SYSTEM_TUNABLE_READ", &[]),
    r("SYSTEM_TUNABLE_WRITE", &["SYSTEM_TUNABLE_READ"]),
    r("SYSTEM_CRON_READ", &[]),
    r("SYSTEM_CRON_WRITE", &["SYSTEM_CRON_READ"]),
    r("SYSTEM_UPDATE_READ", &[]),
    r("SYSTEM_UPDATE_WRITE", &["SYSTEM_UPDATE_READ"]),
    r("VIRT_GLOBAL_READ", &[]),
    ns("VIRT_GLOBAL_WRITE", &["VIRT_GLOBAL_READ"]),
    r("VIRT_INSTANCE_READ", &[]),
    ns("VIRT_INSTANCE_WRITE", &["VIRT_INSTANCE_READ"]),
    ns("VIRT_INSTANCE_DELETE", &[]),
    r("VIRT_IMAGE_READ", &[]),
    ns("VIRT_IMAGE_WRITE", &["VIRT_IMAGE_READ"]),
    r("ZFS_RESOURCE_READ", &[]),
];

struct Catalogue {
    roles: Vec<Role>,
    index: BTreeMap<&'static str, usize>,
}

fn build() -> Catalogue {
    let mut roles: Vec<Role> = DEFS
        .iter()
        .map(|d| Role {
            name: d.name,
            includes: d.includes.to_vec(),
            full_admin: d.name == FULL_ADMIN,
            builtin: d.builtin,
            stig: d.stig,
        })
        .collect();
    let readonly = DEFS
        .iter()
        .map(|d| d.name)
        .filter(|n| n.ends_with("_READ"))
        .collect();
    roles.push(Role {
        name: READONLY_ADMIN,
        includes: readonly,
        full_admin: false,
        builtin: false,
        stig: Some(STIG_GPOS),
    });
    let index = roles.iter().enumerate().map(|(i, r)| (r.name, i)).collect();
    Catalogue { roles, index }
}

fn cat() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(build)
}

/// Every role, in `role.py` order with `READONLY_ADMIN` last (the `privilege.roles` order).
pub fn catalogue() -> &'static [Role] {
    &cat().roles
}

/// The role called `name`, if it exists.
pub fn get(name: &str) -> Option<&'static Role> {
    let c = cat();
    c.index.get(name).and_then(|&i| c.roles.get(i))
}

/// Whether `name` is a role (`privilege.create` answers "Invalid role" otherwise).
pub fn is_valid(name: &str) -> bool {
    cat().index.contains_key(name)
}

fn stig_allows(role: &Role, stig: bool) -> bool {
    !stig || role.stig.is_some()
}

/// Adds `name` and everything it includes. A role already in `out` was expanded when it was
/// added (or is there because FULL_ADMIN added every allowed role), which also stops cycles.
fn add_role(name: &str, stig: bool, out: &mut BTreeSet<String>) {
    let Some(role) = get(name) else {
        return; // unknown names grant nothing, as upstream `roles_for_role`
    };
    if !stig_allows(role, stig) {
        return;
    }
    if role.full_admin {
        for r in catalogue().iter().filter(|r| stig_allows(r, stig)) {
            out.insert(r.name.to_owned());
        }
        return;
    }
    if !out.insert(role.name.to_owned()) {
        return;
    }
    for inc in &role.includes {
        add_role(inc, stig, out);
    }
}

/// The transitive closure of `roles` (FULL_ADMIN → every role; READONLY_ADMIN → every
/// `*_READ`). Unknown names are ignored.
pub fn expand<'a>(roles: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    expand_with_stig(roles, false)
}

/// [`expand`] under GPOS STIG: roles with `stig: None` are dropped, including ones named
/// directly. (Upstream keeps a directly named role; dropping it is the safe reading.)
pub fn expand_with_stig<'a>(
    roles: impl IntoIterator<Item = &'a str>,
    stig: bool,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for role in roles {
        add_role(role, stig, &mut out);
    }
    out
}

/// The parts of a privilege row that composition needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrivilegeGrant {
    pub roles: Vec<String>,
    pub web_shell: bool,
}

/// A session's effective privilege (`privilege.compose_privilege`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ComposedPrivilege {
    pub roles: BTreeSet<String>,
    pub full_admin: bool,
    pub web_shell: bool,
    pub webui_access: bool,
}

impl ComposedPrivilege {
    /// Root and internal sessions (`privilege.full_privilege`): upstream reports just
    /// `{"FULL_ADMIN"}` as the role set.
    pub fn full() -> Self {
        Self {
            roles: BTreeSet::from([FULL_ADMIN.to_owned()]),
            full_admin: true,
            web_shell: true,
            webui_access: true,
        }
    }

    /// Whether the session holds any of `roles`; FULL_ADMIN holds everything.
    pub fn has_any(&self, roles: &[&str]) -> bool {
        self.full_admin || roles.iter().any(|r| self.roles.contains(*r))
    }
}

/// Composes the privileges matched for a user (spec §5.3). No privileges yields an empty
/// composition, which the caller must treat as "no API access".
pub fn compose(privileges: &[PrivilegeGrant]) -> ComposedPrivilege {
    compose_with_stig(privileges, false)
}

/// [`compose`] under GPOS STIG: STIG-unavailable roles are dropped and web shell is off.
pub fn compose_with_stig(privileges: &[PrivilegeGrant], stig: bool) -> ComposedPrivilege {
    let mut out = ComposedPrivilege::default();
    for p in privileges {
        for role in &p.roles {
            add_role(role, stig, &mut out.roles);
        }
        out.web_shell |= p.web_shell;
        // `privilege_has_webui_access`: a directly granted group role.
        out.webui_access |= p.roles.iter().any(|r| get(r).is_some_and(|r| !r.builtin));
    }
    out.full_admin = out.roles.contains(FULL_ADMIN);
    if stig {
        out.web_shell = false;
    }
    out
}

/// A `privilege.roles` entry: `{"name","title","includes","builtin","stig"}`.
pub fn to_entry(role: &Role) -> serde_json::Value {
    serde_json::json!({
        "name": role.name,
        "title": role.name,
        "includes": role.includes,
        "builtin": role.builtin,
        "stig": role.stig,
    })
}
