//! The data directory: creation, the single-instance lock, and first-start provisioning of the
//! built-in groups, users and privileges.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use gatehouse_core::model::{Group, Privilege, User, Write};
use gatehouse_core::password;
use gatehouse_store::Store;

use crate::StartError;
use crate::app::OsEntropy;
use crate::config::Config;
use crate::directory::Directory;

/// Holds the data directory's lock file for the life of the server.
pub struct DirLock {
    _file: File,
}

/// Creates the data directory if needed, checks it is writable, and takes the lock.
pub fn prepare_data_dir(dir: &Path) -> Result<DirLock, StartError> {
    let fail = |reason: String| StartError::DataDir {
        path: dir.to_path_buf(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        // Traversable but not listable: local users must reach the UNIX socket inside (its
        // peer credentials decide what they get), while every other file here is created
        // owner-only (database, keys, lock). Failure is ignored on a directory we do not own
        // but can write (the lock file below decides).
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711));
    }
    let lock_path = dir.join("gatehoused.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| fail(format!("not writable ({e})")))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(StartError::Locked(dir.to_path_buf(), lock_path));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(fail(format!("cannot lock: {e}"))),
    }
    let mut f = &file;
    let _ = f.write_all(format!("{}\n", std::process::id()).as_bytes());
    Ok(DirLock { _file: file })
}

/// Creates the database file owner-only before SQLite opens it; SQLite gives its `-wal` and
/// `-shm` files the same permissions.
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map(drop)
}

pub fn machine_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "gatehouse".to_string())
}

/// Where the generated first password of `truenas_admin` is written.
pub fn initial_password_path(data_dir: &Path) -> PathBuf {
    data_dir.join("initial-admin-password")
}

fn group(id: i64, gid: u32, name: &str) -> Group {
    Group {
        id,
        gid,
        name: name.to_string(),
        builtin: true,
        smb: false,
        sudo_commands: vec![],
        sudo_commands_nopasswd: vec![],
        immutable: true,
    }
}

#[allow(clippy::too_many_arguments)]
fn user(
    id: i64,
    uid: u32,
    name: &str,
    full_name: &str,
    home: &str,
    shell: &str,
    group: i64,
    groups: Vec<i64>,
) -> User {
    User {
        id,
        uid,
        username: name.to_string(),
        full_name: full_name.to_string(),
        home: home.to_string(),
        shell: shell.to_string(),
        group,
        groups,
        password_hash: None,
        password_disabled: true,
        ssh_password_enabled: false,
        locked: false,
        smb: false,
        builtin: true,
        immutable: true,
        email: None,
        sshpubkey: None,
        sudo_commands: vec![],
        sudo_commands_nopasswd: vec![],
        last_password_change: None,
        password_change_required: false,
    }
}

fn privilege(
    id: i64,
    builtin: &str,
    name: &str,
    gid: u32,
    role: &str,
    web_shell: bool,
) -> Privilege {
    Privilege {
        id,
        builtin_name: Some(builtin.to_string()),
        name: name.to_string(),
        local_groups: vec![gid],
        ds_groups: vec![],
        roles: vec![role.to_string()],
        web_shell,
    }
}

/// Loads the directory, creating the built-ins on first start.
pub fn load_or_provision(config: &Config, store: &dyn Store) -> Result<Directory, StartError> {
    let snapshot = store.load()?;
    if !snapshot.users.is_empty() {
        return Ok(Directory::from_snapshot(snapshot));
    }
    let (password, generated) = match config.initial_admin_password.clone() {
        Some(p) if !p.is_empty() => (p, false),
        _ => {
            let key = gatehouse_core::apikey::generate_key_part(&OsEntropy);
            (key.chars().take(20).collect::<String>(), true)
        }
    };
    let hash = password::hash_password(&password, &OsEntropy)
        .map_err(|e| StartError::Provision(format!("cannot hash the initial password: {e}")))?;
    let mut admin = user(
        2,
        950,
        "truenas_admin",
        "Local Administrator",
        "/home/truenas_admin",
        "/usr/bin/bash",
        5,
        vec![2],
    );
    admin.password_hash = Some(hash);
    admin.password_disabled = false;
    admin.immutable = false;
    let batch = vec![
        Write::PutGroup(group(1, 0, "root")),
        Write::PutGroup(group(2, 544, "builtin_administrators")),
        Write::PutGroup(group(3, 951, "truenas_readonly_administrators")),
        Write::PutGroup(group(4, 952, "truenas_sharing_administrators")),
        Write::PutGroup(Group {
            immutable: false,
            ..group(5, 950, "truenas_admin")
        }),
        Write::PutUser(user(
            1,
            0,
            "root",
            "root",
            "/root",
            "/usr/bin/zsh",
            1,
            vec![],
        )),
        Write::PutUser(admin),
        Write::PutPrivilege(privilege(
            1,
            "LOCAL_ADMINISTRATOR",
            "Local Administrator",
            544,
            "FULL_ADMIN",
            true,
        )),
        Write::PutPrivilege(privilege(
            2,
            "READONLY_ADMINISTRATOR",
            "Read-Only Administrator",
            951,
            "READONLY_ADMIN",
            false,
        )),
        Write::PutPrivilege(privilege(
            3,
            "SHARING_ADMINISTRATOR",
            "Sharing Administrator",
            952,
            "SHARING_ADMIN",
            false,
        )),
    ];
    if generated {
        let path = initial_password_path(&config.data_dir);
        write_secret_file(&path, &format!("{password}\n"))
            .map_err(|e| StartError::Provision(format!("cannot write {}: {e}", path.display())))?;
        tracing::warn!(
            "first start: the password of truenas_admin was generated and written to {}",
            path.display()
        );
    }
    store.apply(&batch)?;
    Ok(Directory::from_snapshot(store.load()?))
}

/// Writes a file readable by the owner only (created with mode 0600, never wider).
pub fn write_secret_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}
