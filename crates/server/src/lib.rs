//! `gatehoused`: the authentication plane of a NAS appliance, wire-compatible with the TrueNAS
//! SCALE middleware.
//!
//! [`Server::start`] opens the data directory (lock file, SQLite store, first-start
//! provisioning), builds the method registry, and serves JSON-RPC 2.0 and the legacy protocol
//! over TCP and a UNIX socket.

pub mod app;
pub mod config;
pub mod conn;
pub mod directory;
pub mod listen;
pub mod provision;
pub mod registry;
pub mod services;
pub mod session;

use std::path::PathBuf;
use std::sync::Arc;

pub use app::App;
pub use config::Config;

/// Start-up failures, each one line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot use data directory {path}: {reason}")]
    DataDir { path: PathBuf, reason: String },
    #[error("another gatehoused is already running on data directory {0} (lock file {1} is held)")]
    Locked(PathBuf, PathBuf),
    #[error("{0}")]
    Store(#[from] gatehouse_store::StoreError),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("{0}")]
    Provision(String),
}

/// A running server.
pub struct Server {
    pub app: Arc<App>,
    /// The bound TCP address (useful with port 0).
    pub tcp_addr: Option<std::net::SocketAddr>,
    pub socket_path: PathBuf,
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _lock: provision::DirLock,
}

impl Server {
    /// Opens the data directory and starts listening. Must run inside a tokio runtime.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let lock = provision::prepare_data_dir(&config.data_dir)?;
        let store_path = config.data_dir.join("gatehouse.db");
        provision::create_private_file(&store_path).map_err(|e| StartError::DataDir {
            path: config.data_dir.clone(),
            reason: format!("cannot create {}: {e}", store_path.display()),
        })?;
        let store =
            tokio::task::spawn_blocking(move || gatehouse_store::SqliteStore::open(&store_path))
                .await
                .map_err(|e| StartError::Provision(e.to_string()))??;
        let store: Arc<dyn gatehouse_store::Store> = Arc::new(store);
        let dir = provision::load_or_provision(&config, store.as_ref())?;
        let hostname = config
            .hostname
            .clone()
            .unwrap_or_else(provision::machine_hostname);
        let registry = services::registry();
        let app = App::new(config, store, dir, registry, hostname);
        let (shutdown, rx) = tokio::sync::watch::channel(false);
        let (tcp_addr, socket_path, tasks) = listen::bind_all(app.clone(), rx).await?;
        Ok(Self {
            app,
            tcp_addr,
            socket_path,
            shutdown,
            tasks,
            _lock: lock,
        })
    }

    /// Stops accepting, closes every session, waits for pending writes, and returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for (_, s) in self.app.sessions.all() {
            s.conn.close(1001, "Server is shutting down");
        }
        for t in self.tasks {
            let _ = t.await;
        }
        // Let connection tasks run their close callbacks (logout audit records).
        for _ in 0..50 {
            if self.app.sessions.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.app.flush_audit().await;
        let _ = std::fs::remove_file(&self.socket_path);
    }
}
