//! The 25.10 role catalogue, expansion and privilege composition (spec §5.3, §5.5).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use gatehouse_core::roles::{
    self, ComposedPrivilege, PrivilegeGrant, catalogue, compose, compose_with_stig, expand,
    expand_with_stig, is_valid, to_entry,
};
use proptest::prelude::*;
use serde_json::json;

fn names() -> Vec<&'static str> {
    catalogue().iter().map(|r| r.name).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn catalogue_has_140_roles_plus_readonly_admin() {
    let all = names();
    assert_eq!(all.len(), 141);
    assert_eq!(all.iter().filter(|n| **n != "READONLY_ADMIN").count(), 140);
    assert_eq!(*all.last().unwrap(), "READONLY_ADMIN");
    let unique: BTreeSet<_> = all.iter().collect();
    assert_eq!(unique.len(), 141, "duplicate role names");
    // Stable: same slice on every call.
    assert!(std::ptr::eq(catalogue(), catalogue()));
}

#[test]
fn catalogue_is_the_25_10_set() {
    for present in [
        "VIRT_GLOBAL_READ",
        "VIRT_GLOBAL_WRITE",
        "VIRT_IMAGE_READ",
        "VIRT_IMAGE_WRITE",
        "VIRT_INSTANCE_READ",
        "VIRT_INSTANCE_WRITE",
        "VIRT_INSTANCE_DELETE",
        "SHARING_NVME_TARGET_READ",
        "SHARING_NVME_TARGET_WRITE",
        "SYSTEM_PRODUCT_READ",
        "SYSTEM_PRODUCT_WRITE",
        "MAIL_WRITE",
        "ZFS_RESOURCE_READ",
        "FULL_ADMIN",
        "SHARING_ADMIN",
        "REPLICATION_ADMIN",
        "READONLY_ADMIN",
    ] {
        assert!(is_valid(present), "{present} missing");
    }
    for absent in [
        "CONTAINER_READ",
        "CONTAINER_WRITE",
        "CONTAINER_DEVICE_READ",
        "CONTAINER_IMAGE_WRITE",
        "LXC_CONFIG_READ",
        "LXC_CONFIG_WRITE",
        "SHARING_WEBSHARE_READ",
        "SHARING_WEBSHARE_WRITE",
        "ZFS_RESOURCE_WRITE",
        "ZFS_RESOURCE_DELETE",
        "CERTIFICATE_AUTHORITY_READ",
        "CERTIFICATE_AUTHORITY_WRITE",
        "",
        "full_admin",
        "FULL_ADMIN ",
    ] {
        assert!(!is_valid(absent), "{absent} should not exist in 25.10");
    }
}

#[test]
fn builtin_flags_and_includes_are_consistent() {
    for role in catalogue() {
        let group = [
            "FULL_ADMIN",
            "READONLY_ADMIN",
            "SHARING_ADMIN",
            "REPLICATION_ADMIN",
        ];
        assert_eq!(role.builtin, !group.contains(&role.name), "{}", role.name);
        assert_eq!(role.full_admin, role.name == "FULL_ADMIN");
        for inc in &role.includes {
            assert!(is_valid(inc), "{} includes unknown {inc}", role.name);
        }
    }
}

#[test]
fn write_roles_include_their_read_role_except_documented_ones() {
    // Upstream: these do not reach their `_READ` role. The aggregate sharing roles include
    // the sub-protocol roles (whose writes include their reads) but not the aggregate read.
    let exceptions = [
        "SYSTEM_AUDIT_WRITE",
        "SERVICE_WRITE",
        "PRIVILEGE_WRITE",
        "SYSTEM_PRODUCT_WRITE",
        "SHARING_ISCSI_WRITE",
        "SHARING_WRITE",
    ];
    for role in catalogue() {
        let Some(base) = role.name.strip_suffix("_WRITE") else {
            continue;
        };
        let read = format!("{base}_READ");
        if !is_valid(&read) {
            assert_eq!(role.name, "MAIL_WRITE", "{} has no read role", role.name);
            continue;
        }
        let reaches_read = expand([role.name]).contains(&read);
        if exceptions.contains(&role.name) {
            assert!(!reaches_read, "{}", role.name);
        } else {
            assert!(role.includes.contains(&read.as_str()), "{}", role.name);
        }
    }
}

#[test]
fn upstream_quirks_are_preserved() {
    assert!(!expand(["SYSTEM_AUDIT_WRITE"]).contains("SYSTEM_AUDIT_READ"));
    assert_eq!(expand(["SYSTEM_AUDIT_WRITE"]), set(&["SYSTEM_AUDIT_WRITE"]));
    assert_eq!(expand(["SERVICE_WRITE"]), set(&["SERVICE_WRITE"]));
    assert_eq!(expand(["DATASET_DELETE"]), set(&["DATASET_DELETE"]));
    // Self-including typos: expansion terminates and adds nothing.
    assert_eq!(
        roles::get("PRIVILEGE_WRITE").unwrap().includes,
        vec!["PRIVILEGE_WRITE"]
    );
    assert_eq!(expand(["PRIVILEGE_WRITE"]), set(&["PRIVILEGE_WRITE"]));
    assert_eq!(
        expand(["SYSTEM_PRODUCT_WRITE"]),
        set(&["SYSTEM_PRODUCT_WRITE"])
    );
}

#[test]
fn readonly_admin_is_exactly_the_read_roles() {
    let ro = roles::get("READONLY_ADMIN").unwrap();
    let reads: Vec<&str> = names()
        .into_iter()
        .filter(|n| n.ends_with("_READ"))
        .collect();
    assert_eq!(ro.includes, reads);
    assert_eq!(reads.len(), 66);
    let mut expected: BTreeSet<String> = reads.iter().map(|s| (*s).to_owned()).collect();
    expected.insert("READONLY_ADMIN".to_owned());
    assert_eq!(expand(["READONLY_ADMIN"]), expected);
}

#[test]
fn full_admin_expands_to_everything() {
    let all: BTreeSet<String> = names().into_iter().map(str::to_owned).collect();
    assert_eq!(expand(["FULL_ADMIN"]), all);
}

#[test]
fn sharing_admin_expansion() {
    let got = expand(["SHARING_ADMIN"]);
    for r in [
        "SHARING_ADMIN",
        "READONLY_ADMIN",
        "DATASET_WRITE",
        "DATASET_READ",
        "SHARING_WRITE",
        "SHARING_SMB_WRITE",
        "SHARING_NFS_WRITE",
        "SHARING_NVME_TARGET_WRITE",
        "SHARING_FTP_WRITE",
        "SHARING_ISCSI_WRITE",
        "SHARING_ISCSI_TARGETEXTENT_WRITE",
        "FILESYSTEM_ATTRS_WRITE",
        "SERVICE_READ",
        "POOL_READ",
        "ACCOUNT_READ",
    ] {
        assert!(got.contains(r), "{r}");
    }
    for r in [
        "DATASET_DELETE",
        "SERVICE_WRITE",
        "ACCOUNT_WRITE",
        "FULL_ADMIN",
        "FILESYSTEM_DATA_WRITE",
    ] {
        assert!(!got.contains(r), "{r}");
    }
    let sharing_admin = roles::get("SHARING_ADMIN").unwrap();
    assert_eq!(
        sharing_admin.includes,
        vec![
            "READONLY_ADMIN",
            "DATASET_WRITE",
            "SHARING_WRITE",
            "FILESYSTEM_ATTRS_WRITE",
            "SERVICE_READ"
        ]
    );
}

#[test]
fn expand_ignores_unknown_names() {
    assert!(expand(["NOPE"]).is_empty());
    assert_eq!(
        expand(["NOPE", "VM_DEVICE_WRITE"]),
        set(&["VM_DEVICE_WRITE", "VM_WRITE", "VM_DEVICE_READ", "VM_READ"])
    );
}

#[test]
fn stig_drops_unavailable_roles() {
    let got = expand_with_stig(["APPS_WRITE", "VM_READ", "API_KEY_WRITE"], true);
    assert_eq!(got, set(&["VM_READ"]));
    let full = expand_with_stig(["FULL_ADMIN"], true);
    assert!(full.contains("FULL_ADMIN") && full.contains("APPS_READ"));
    assert!(!full.contains("APPS_WRITE") && !full.contains("VIRT_INSTANCE_DELETE"));
    let none: Vec<&str> = catalogue()
        .iter()
        .filter(|r| r.stig.is_none())
        .map(|r| r.name)
        .collect();
    assert_eq!(none.len(), 12, "{none:?}");
}

#[test]
fn compose_follows_spec_5_3() {
    let c = compose(&[
        PrivilegeGrant {
            roles: vec!["SHARING_ADMIN".into()],
            web_shell: false,
        },
        PrivilegeGrant {
            roles: vec!["VM_WRITE".into()],
            web_shell: true,
        },
    ]);
    assert!(!c.full_admin);
    assert!(c.web_shell);
    assert!(c.webui_access);
    assert!(c.roles.contains("VM_READ") && c.roles.contains("SHARING_SMB_WRITE"));
    assert!(c.has_any(&["NOPE", "VM_WRITE"]));
    assert!(!c.has_any(&["ACCOUNT_WRITE"]));
    assert!(!c.has_any(&[]));

    // Only builtin roles: no Web UI access.
    let c = compose(&[PrivilegeGrant {
        roles: vec!["ACCOUNT_WRITE".into()],
        web_shell: false,
    }]);
    assert!(!c.webui_access && !c.web_shell && !c.full_admin);

    let c = compose(&[PrivilegeGrant {
        roles: vec!["FULL_ADMIN".into()],
        web_shell: true,
    }]);
    assert!(c.full_admin && c.webui_access);
    assert_eq!(c.roles.len(), 141);
    assert!(c.has_any(&["ANYTHING"]));

    let empty = compose(&[]);
    assert_eq!(empty, ComposedPrivilege::default());
    assert!(!empty.has_any(&["ACCOUNT_READ"]));

    let stig = compose_with_stig(
        &[PrivilegeGrant {
            roles: vec!["FULL_ADMIN".into()],
            web_shell: true,
        }],
        true,
    );
    assert!(stig.full_admin && !stig.web_shell);
}

#[test]
fn full_privilege() {
    let f = ComposedPrivilege::full();
    assert_eq!(f.roles, set(&["FULL_ADMIN"]));
    assert!(f.full_admin && f.web_shell && f.webui_access);
    assert!(f.has_any(&["SYSTEM_AUDIT_WRITE"]));
}

#[test]
fn privilege_roles_entries() {
    let e = to_entry(roles::get("ALERT_WRITE").unwrap());
    assert_eq!(
        e,
        json!({"name": "ALERT_WRITE", "title": "ALERT_WRITE", "includes": ["ALERT_LIST_WRITE", "ALERT_READ"], "builtin": true, "stig": 1})
    );
    // Key order as upstream (serde_json preserve_order).
    assert_eq!(
        serde_json::to_string(&to_entry(roles::get("APPS_WRITE").unwrap())).unwrap(),
        r#"{"name":"APPS_WRITE","title":"APPS_WRITE","includes":["CATALOG_WRITE","APPS_READ"],"builtin":true,"stig":null}"#
    );
    let e = to_entry(roles::get("FULL_ADMIN").unwrap());
    assert_eq!(e["builtin"], json!(false));
    assert_eq!(e["includes"], json!([]));
    assert_eq!(e["stig"], json!(1));
}

proptest! {
    #[test]
    fn expand_is_monotone_and_idempotent(
        a in proptest::collection::vec(0usize..141, 0..6),
        b in proptest::collection::vec(0usize..141, 0..6),
    ) {
        let all = names();
        let a: Vec<&str> = a.into_iter().map(|i| all[i]).collect();
        let b: Vec<&str> = b.into_iter().map(|i| all[i]).collect();
        let ea = expand(a.iter().copied());
        let eab = expand(a.iter().chain(b.iter()).copied());
        prop_assert!(ea.is_subset(&eab));
        prop_assert!(a.iter().all(|r| ea.contains(*r)));
        let again = expand(ea.iter().map(String::as_str));
        prop_assert_eq!(&again, &ea);
        // Union distributes.
        let eb = expand(b.iter().copied());
        let union: BTreeSet<String> = ea.union(&eb).cloned().collect();
        prop_assert_eq!(eab, union);
    }
}
