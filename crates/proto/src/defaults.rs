//! Default locations, shared by `gatehoused` and `gatehouse` so that both find each other with
//! no flags.

use std::path::PathBuf;

/// Default TCP listen address, as TrueNAS middlewared.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:6000";
/// File name of the UNIX socket inside the data directory.
pub const SOCKET_NAME: &str = "gatehoused.sock";
/// Environment variable that overrides the default data directory.
pub const DATA_DIR_ENV: &str = "GATEHOUSE_DATA_DIR";

/// The data directory used when none is given: `$GATEHOUSE_DATA_DIR`, else
/// `/var/lib/gatehouse` for root, else `$XDG_DATA_HOME/gatehouse` or
/// `~/.local/share/gatehouse`.
pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(DATA_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if is_root() {
        return PathBuf::from("/var/lib/gatehouse");
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(xdg).join("gatehouse");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/gatehouse"),
        None => PathBuf::from("/var/lib/gatehouse"),
    }
}

/// The UNIX socket path of a server using `data_dir`.
pub fn socket_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// The default socket the shell connects to.
pub fn default_socket() -> PathBuf {
    socket_path(&data_dir())
}

/// True when this process runs as uid 0 (read from `/proc/self`, no `unsafe` needed).
pub fn is_root() -> bool {
    current_uid() == Some(0)
}

/// The effective uid of this process, from the owner of `/proc/self`.
pub fn current_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}
