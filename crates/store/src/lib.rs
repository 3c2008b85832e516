//! Persistence behind the [`Store`] trait. Only this crate knows SQL.
//!
//! The embedded default is SQLite in WAL mode with `synchronous=FULL`: a write batch is durable
//! when [`Store::apply`] returns. Records are kept as JSON documents in per-kind tables, with
//! unique expression indexes for the natural keys, so the schema stays small while the record
//! shapes live in one place (`gatehouse_core::model`). Migrations are numbered and recorded in
//! `PRAGMA user_version`, so later releases upgrade a data directory in place.

use std::path::Path;
use std::sync::Mutex;

use gatehouse_core::model::{
    ApiKey, AuditRecord, Group, IdHigh, Privilege, Snapshot, TwoFactorConfig, TwoFactorUser, User,
    Write,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Marks a database as ours (`PRAGMA application_id`, "GATE").
const APPLICATION_ID: i64 = 0x4741_5445;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: not a gatehouse database (it belongs to another application)")]
    Foreign { path: String },
    #[error("{path}: database is damaged or not a database: {reason}")]
    Damaged { path: String, reason: String },
    #[error(
        "{path}: database schema version {found} is newer than this release supports ({supported})"
    )]
    TooNew {
        path: String,
        found: i64,
        supported: i64,
    },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("corrupt record in {table}: {reason}")]
    Record { table: &'static str, reason: String },
    #[error("unique constraint violated: {0}")]
    Conflict(String),
    #[error("store lock poisoned")]
    Poisoned,
}

/// Durable state. Implementations must make a batch durable and atomic before returning.
pub trait Store: Send + Sync {
    /// Everything durable except audit records.
    fn load(&self) -> Result<Snapshot, StoreError>;
    /// Applies a batch of writes in one transaction.
    fn apply(&self, batch: &[Write]) -> Result<(), StoreError>;
    /// Audit records, oldest first.
    fn audit_records(&self) -> Result<Vec<AuditRecord>, StoreError>;
    /// Runs the backend's integrity check; `Ok(())` when healthy.
    fn integrity_check(&self) -> Result<(), StoreError>;
}

/// Schema migrations, applied in order; index + 1 is the schema version.
const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    "CREATE TABLE users (id INTEGER PRIMARY KEY, data TEXT NOT NULL CHECK (json_valid(data)));
     CREATE UNIQUE INDEX users_username ON users (json_extract(data, '$.username'));
     CREATE UNIQUE INDEX users_uid ON users (json_extract(data, '$.uid'));
     CREATE TABLE groups (id INTEGER PRIMARY KEY, data TEXT NOT NULL CHECK (json_valid(data)));
     CREATE UNIQUE INDEX groups_name ON groups (json_extract(data, '$.name'));
     CREATE UNIQUE INDEX groups_gid ON groups (json_extract(data, '$.gid'));
     CREATE TABLE privileges (id INTEGER PRIMARY KEY, data TEXT NOT NULL CHECK (json_valid(data)));
     CREATE TABLE api_keys (id INTEGER PRIMARY KEY, data TEXT NOT NULL CHECK (json_valid(data)));
     CREATE UNIQUE INDEX api_keys_name ON api_keys (json_extract(data, '$.name'));
     CREATE TABLE twofactor_users (user_id INTEGER PRIMARY KEY, data TEXT NOT NULL CHECK (json_valid(data)));
     CREATE TABLE settings (key TEXT PRIMARY KEY, data TEXT NOT NULL CHECK (json_valid(data)));
     CREATE TABLE user_attributes (uid INTEGER PRIMARY KEY, data TEXT NOT NULL CHECK (json_valid(data)));
     CREATE TABLE audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, aid TEXT NOT NULL, time REAL NOT NULL,
                         data TEXT NOT NULL CHECK (json_valid(data)));",
    // 2: id high-water marks, so a deleted record's id is never given out again.
    "CREATE TABLE id_seq (kind TEXT PRIMARY KEY, last INTEGER NOT NULL);
     INSERT INTO id_seq SELECT 'users', coalesce(max(id), 0) FROM users;
     INSERT INTO id_seq SELECT 'groups', coalesce(max(id), 0) FROM groups;
     INSERT INTO id_seq SELECT 'privileges', coalesce(max(id), 0) FROM privileges;
     INSERT INTO id_seq SELECT 'api_keys', coalesce(max(id), 0) FROM api_keys;",
];

/// The embedded SQLite store.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it to the current schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        let damaged = |e: rusqlite::Error| StoreError::Damaged {
            path: shown.clone(),
            reason: e.to_string(),
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(damaged)?;
        // A file that is not SQLite only fails on first read; probe it here.
        let app_id: i64 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(damaged)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(damaged)?;
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(damaged)?;
        if app_id != APPLICATION_ID && (app_id != 0 || tables > 0) {
            return Err(StoreError::Foreign { path: shown });
        }
        let ok: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(damaged)?;
        if ok != "ok" {
            return Err(StoreError::Damaged {
                path: shown,
                reason: ok,
            });
        }
        let supported = MIGRATIONS.len() as i64;
        if version > supported {
            return Err(StoreError::TooNew {
                path: shown,
                found: version,
                supported,
            });
        }
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 5000;",
        )?;
        let store = Self {
            conn: Mutex::new(conn),
        };
        store.migrate(version)?;
        Ok(store)
    }

    fn migrate(&self, from: i64) -> Result<(), StoreError> {
        let mut conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(from.max(0) as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.pragma_update(None, "application_id", APPLICATION_ID)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// The current schema version.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }
}

fn load_table<T: DeserializeOwned>(
    conn: &Connection,
    table: &'static str,
    sql: &str,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for row in rows {
        let text = row?;
        out.push(serde_json::from_str(&text).map_err(|e| StoreError::Record {
            table,
            reason: e.to_string(),
        })?);
    }
    Ok(out)
}

fn to_json<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Record {
        table: "-",
        reason: e.to_string(),
    })
}

fn conflict(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, msg)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict(msg.clone().unwrap_or_default())
        }
        _ => StoreError::Sql(e),
    }
}

impl Store for SqliteStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let twofactor_config: Option<String> = conn
            .query_row(
                "SELECT data FROM settings WHERE key = 'twofactor'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        let twofactor_config: TwoFactorConfig = match twofactor_config {
            Some(t) => serde_json::from_str(&t).map_err(|e| StoreError::Record {
                table: "settings",
                reason: e.to_string(),
            })?,
            None => TwoFactorConfig::default(),
        };
        let mut attributes = Vec::new();
        {
            let mut stmt = conn.prepare("SELECT uid, data FROM user_attributes ORDER BY uid")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
            for row in rows {
                let (uid, text) = row?;
                let value = serde_json::from_str(&text).map_err(|e| StoreError::Record {
                    table: "user_attributes",
                    reason: e.to_string(),
                })?;
                attributes.push((uid as u32, value));
            }
        }
        Ok(Snapshot {
            users: load_table::<User>(&conn, "users", "SELECT data FROM users ORDER BY id")?,
            groups: load_table::<Group>(&conn, "groups", "SELECT data FROM groups ORDER BY id")?,
            privileges: load_table::<Privilege>(
                &conn,
                "privileges",
                "SELECT data FROM privileges ORDER BY id",
            )?,
            api_keys: load_table::<ApiKey>(
                &conn,
                "api_keys",
                "SELECT data FROM api_keys ORDER BY id",
            )?,
            twofactor_users: load_table::<TwoFactorUser>(
                &conn,
                "twofactor_users",
                "SELECT data FROM twofactor_users ORDER BY user_id",
            )?,
            twofactor_config,
            attributes,
            id_high: load_id_high(&conn)?,
        })
    }

    fn apply(&self, batch: &[Write]) -> Result<(), StoreError> {
        let mut conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = conn.transaction()?;
        for w in batch {
            match w {
                Write::PutUser(u) => put(&tx, "users", u.id, &to_json(u)?)?,
                Write::DeleteUser(id) => del(&tx, "users", *id)?,
                Write::PutGroup(g) => put(&tx, "groups", g.id, &to_json(g)?)?,
                Write::DeleteGroup(id) => del(&tx, "groups", *id)?,
                Write::PutPrivilege(p) => put(&tx, "privileges", p.id, &to_json(p)?)?,
                Write::DeletePrivilege(id) => del(&tx, "privileges", *id)?,
                Write::PutApiKey(k) => put(&tx, "api_keys", k.id, &to_json(k)?)?,
                Write::DeleteApiKey(id) => del(&tx, "api_keys", *id)?,
                Write::PutTwoFactorUser(t) => {
                    tx.execute(
                        "INSERT INTO twofactor_users (user_id, data) VALUES (?1, ?2)
                         ON CONFLICT (user_id) DO UPDATE SET data = excluded.data",
                        params![t.user_id, to_json(t)?],
                    )
                    .map_err(conflict)?;
                }
                Write::DeleteTwoFactorUser(id) => {
                    tx.execute(
                        "DELETE FROM twofactor_users WHERE user_id = ?1",
                        params![id],
                    )?;
                }
                Write::PutTwoFactorConfig(c) => {
                    tx.execute(
                        "INSERT INTO settings (key, data) VALUES ('twofactor', ?1)
                         ON CONFLICT (key) DO UPDATE SET data = excluded.data",
                        params![to_json(c)?],
                    )?;
                }
                Write::PutAttributes(uid, v) => {
                    tx.execute(
                        "INSERT INTO user_attributes (uid, data) VALUES (?1, ?2)
                         ON CONFLICT (uid) DO UPDATE SET data = excluded.data",
                        params![*uid as i64, v.to_string()],
                    )?;
                }
                Write::AppendAudit(r) => {
                    tx.execute(
                        "INSERT INTO audit (aid, time, data) VALUES (?1, ?2, ?3)",
                        params![r.aid, r.time, r.data.to_string()],
                    )?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn audit_records(&self) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let mut stmt = conn.prepare("SELECT aid, time, data FROM audit ORDER BY seq")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, f64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (aid, time, data) = row?;
            let data = serde_json::from_str(&data).map_err(|e| StoreError::Record {
                table: "audit",
                reason: e.to_string(),
            })?;
            out.push(AuditRecord { aid, time, data });
        }
        Ok(out)
    }

    fn integrity_check(&self) -> Result<(), StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if ok == "ok" {
            Ok(())
        } else {
            Err(StoreError::Damaged {
                path: "database".into(),
                reason: ok,
            })
        }
    }
}

fn put(tx: &rusqlite::Transaction<'_>, table: &str, id: i64, data: &str) -> Result<(), StoreError> {
    // Table names come from the fixed match above, never from input.
    let sql = format!(
        "INSERT INTO {table} (id, data) VALUES (?1, ?2) ON CONFLICT (id) DO UPDATE SET data = excluded.data"
    );
    tx.execute(&sql, params![id, data]).map_err(conflict)?;
    tx.execute(
        "INSERT INTO id_seq (kind, last) VALUES (?1, ?2)
         ON CONFLICT (kind) DO UPDATE SET last = max(last, excluded.last)",
        params![table, id],
    )?;
    Ok(())
}

fn load_id_high(conn: &Connection) -> Result<IdHigh, StoreError> {
    let mut high = IdHigh::default();
    let mut stmt = conn.prepare("SELECT kind, last FROM id_seq")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (kind, last) = row?;
        match kind.as_str() {
            "users" => high.users = last,
            "groups" => high.groups = last,
            "privileges" => high.privileges = last,
            "api_keys" => high.api_keys = last,
            _ => {}
        }
    }
    Ok(high)
}

fn del(tx: &rusqlite::Transaction<'_>, table: &str, id: i64) -> Result<(), StoreError> {
    tx.execute(&format!("DELETE FROM {table} WHERE id = ?1"), params![id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(id: i64, name: &str, uid: u32) -> User {
        User {
            id,
            uid,
            username: name.into(),
            full_name: name.into(),
            home: "/var/empty".into(),
            shell: "/usr/bin/zsh".into(),
            group: 1,
            groups: vec![],
            password_hash: None,
            password_disabled: true,
            ssh_password_enabled: false,
            locked: false,
            smb: false,
            builtin: false,
            immutable: false,
            email: None,
            sshpubkey: None,
            sudo_commands: vec![],
            sudo_commands_nopasswd: vec![],
            last_password_change: None,
            password_change_required: false,
        }
    }

    #[test]
    fn round_trip_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        {
            let s = SqliteStore::open(&path).unwrap();
            assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
            s.apply(&[
                Write::PutUser(user(1, "alice", 3000)),
                Write::PutAttributes(3000, json!({"a": 1})),
                Write::PutTwoFactorConfig(TwoFactorConfig {
                    enabled: true,
                    services_ssh: false,
                    window: 1,
                }),
            ])
            .unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        let snap = s.load().unwrap();
        assert_eq!(snap.users, vec![user(1, "alice", 3000)]);
        assert_eq!(snap.attributes, vec![(3000, json!({"a": 1}))]);
        assert!(snap.twofactor_config.enabled);
        s.integrity_check().unwrap();
    }

    #[test]
    fn deleted_ids_stay_taken_across_reopen_and_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let s = SqliteStore::open(&path).unwrap();
            s.apply(&[
                Write::PutUser(user(1, "alice", 3000)),
                Write::PutUser(user(7, "bob", 3001)),
            ])
            .unwrap();
            s.apply(&[Write::DeleteUser(7)]).unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        let snap = s.load().unwrap();
        assert_eq!(snap.users.len(), 1);
        assert_eq!(
            snap.id_high.users, 7,
            "bob's id 7 must not be given out again"
        );
        assert_eq!(snap.id_high.groups, 0);
        drop(s);

        // A schema-1 database (before id_seq) starts from its current largest ids.
        let old = dir.path().join("v1");
        {
            let c = Connection::open(&old).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
            c.pragma_update(None, "application_id", APPLICATION_ID)
                .unwrap();
            c.execute(
                "INSERT INTO users (id, data) VALUES (5, ?1)",
                params![to_json(&user(5, "carol", 3005)).unwrap()],
            )
            .unwrap();
        }
        let s = SqliteStore::open(&old).unwrap();
        assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
        assert_eq!(s.load().unwrap().id_high.users, 5);
    }

    #[test]
    fn failed_batch_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("db")).unwrap();
        s.apply(&[Write::PutUser(user(1, "alice", 3000))]).unwrap();
        // Second user reuses the username: the whole batch must roll back.
        let err = s
            .apply(&[
                Write::PutUser(user(2, "bob", 3001)),
                Write::PutUser(user(3, "alice", 3002)),
            ])
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        let names: Vec<_> = s
            .load()
            .unwrap()
            .users
            .into_iter()
            .map(|u| u.username)
            .collect();
        assert_eq!(names, vec!["alice"]);
    }

    #[test]
    fn rejects_foreign_and_damaged_files() {
        let dir = tempfile::tempdir().unwrap();
        let foreign = dir.path().join("foreign.db");
        {
            let c = Connection::open(&foreign).unwrap();
            c.execute_batch("CREATE TABLE t (x)").unwrap();
        }
        assert!(matches!(
            SqliteStore::open(&foreign),
            Err(StoreError::Foreign { .. })
        ));
        let junk = dir.path().join("junk.db");
        std::fs::write(
            &junk,
            b"this is not a database file at all, just text.......",
        )
        .unwrap();
        assert!(matches!(
            SqliteStore::open(&junk),
            Err(StoreError::Damaged { .. })
        ));
    }

    #[test]
    fn audit_is_append_only_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("db")).unwrap();
        for i in 0..3 {
            s.apply(&[Write::AppendAudit(AuditRecord {
                aid: format!("a{i}"),
                time: i as f64,
                data: json!({"i": i}),
            })])
            .unwrap();
        }
        let aids: Vec<_> = s
            .audit_records()
            .unwrap()
            .into_iter()
            .map(|r| r.aid)
            .collect();
        assert_eq!(aids, ["a0", "a1", "a2"]);
    }
}
