//! SQLite (`session.store = "sqlite"`, the default): the same state as
//! PostgreSQL (sessions, refresh families, lockout and rate, SSO replay,
//! audit rows, shared keys) in one file, so a single instance keeps its
//! users signed in and its lockouts across restarts.
//!
//! - Every statement runs on a pooled connection through `interact`, on
//!   tokio's blocking threads, never on the reactor.
//! - The file is in WAL mode (readers never wait for the writer) with
//!   `synchronous = NORMAL` (a power cut may lose the last commits, never
//!   corrupt the file) and `busy_timeout`, and foreign keys on.
//! - Writers of this process queue on an async lock ([`Sqlite::write`])
//!   rather than on SQLite's busy loop; another process (the `sessions`
//!   commands) waits on `busy_timeout`.
//! - Times are INTEGER unix milliseconds in every table.
//! - Revocations made by another process on the same file reach the server
//!   through the `revocations` row, polled every 250 ms (see `watch`).

mod account_tokens;
mod audit;
mod factors;
pub(crate) mod migrations;
mod refresh;
mod replay;
mod sessions;
mod sweep;
mod throttle;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_sqlite::{Hook, HookError, Manager, Pool, Runtime};
use rusqlite::Connection;

pub(crate) use account_tokens::SqliteAccountTokens;
pub(crate) use factors::SqliteFactorStore;
pub(crate) use refresh::SqliteRefreshStore;
pub(crate) use replay::SqliteReplayStore;
pub(crate) use sessions::SqliteSessionStore;
pub(crate) use throttle::SqliteThrottle;

use super::StoreError;
use crate::config::SqliteConfig;

/// How long any database step may take before the request gets a 503; also
/// SQLite's `busy_timeout` (how long a statement waits for another
/// process' write to finish).
pub(crate) const DB_TIMEOUT: Duration = Duration::from_secs(3);
/// Connections in the pool: WAL lets them read in parallel; writes are
/// serialised anyway.
const POOL_SIZE: usize = 4;
/// Set on every new connection (WAL is a property of the file, the others
/// of the connection). A page cache of 256 KiB instead of 2 MiB per
/// connection: the request path reads sessions from the in-process cache,
/// and the operating system caches the file anyway.
const PRAGMAS: &str = "PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;
PRAGMA busy_timeout = 3000;
PRAGMA cache_size = -256;";

/// A pool on the SQLite file plus whether the schema is in place.
pub(crate) struct Sqlite {
    pool: Pool,
    path: PathBuf,
    migrated: AtomicBool,
    /// Taken by every write of this process, so they queue here (fairly,
    /// without holding a blocking thread) rather than in SQLite's busy loop.
    writing: tokio::sync::Mutex<()>,
    /// Revocations seen by this process (see `watch`).
    revocations: watch::Revocations,
}

impl Sqlite {
    /// Builds the pool without opening the file: `check` must not create
    /// it, and `serve` opens it in its start-up work.
    pub(crate) fn new(config: &SqliteConfig) -> Result<Arc<Sqlite>, String> {
        let manager =
            Manager::from_config(&deadpool_sqlite::Config::new(&config.path), Runtime::Tokio1);
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(DB_TIMEOUT))
            .create_timeout(Some(DB_TIMEOUT))
            .recycle_timeout(Some(DB_TIMEOUT))
            .post_create(Hook::async_fn(|conn, _| {
                Box::pin(async move {
                    conn.interact(|c| c.execute_batch(PRAGMAS))
                        .await
                        .map_err(|e| HookError::message(e.to_string()))?
                        .map_err(HookError::Backend)
                })
            }))
            .build()
            .map_err(|e| format!("sqlite: {e}"))?;
        Ok(Arc::new(Sqlite {
            pool,
            path: config.path.clone(),
            migrated: AtomicBool::new(false),
            writing: tokio::sync::Mutex::new(()),
            revocations: watch::Revocations::default(),
        }))
    }

    /// Starts reading the `revocations` row every 250 ms (serving
    /// processes only; it waits for the schema and stops with the store).
    pub(crate) fn follow_revocations(self: &Arc<Self>) {
        tokio::spawn(watch::poll(Arc::downgrade(self)));
    }

    /// Runs `f` on a pooled connection, off the reactor, under
    /// [`DB_TIMEOUT`] (a statement waiting on another process' lock gives
    /// up by then through `busy_timeout`).
    pub(crate) async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let conn = tokio::time::timeout(DB_TIMEOUT, self.pool.get())
            .await
            .map_err(|_| unavailable("no connection within 3s"))?
            .map_err(|e| unavailable(format!("{}: {e}", self.path.display())))?;
        conn.interact(f)
            .await
            .map_err(|e| unavailable(format!("statement aborted: {e}")))?
            .map_err(db_error)
    }

    /// [`Sqlite::read`] for a statement that writes: one writer of this
    /// process at a time.
    pub(crate) async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let _writing = tokio::time::timeout(DB_TIMEOUT, self.writing.lock())
            .await
            .map_err(|_| unavailable("write queue did not move within 3s"))?;
        self.read(f).await
    }

    /// Creates the file if needed and applies the schema; marks the store
    /// ready on success. Returns how many steps ran.
    pub(crate) async fn migrate(&self) -> Result<usize, StoreError> {
        let ran = self.write(migrations::migrate).await?;
        self.migrated.store(true, Ordering::Release);
        Ok(ran)
    }

    /// True once the schema is known to be in place.
    pub(crate) fn is_migrated(&self) -> bool {
        self.migrated.load(Ordering::Acquire)
    }

    /// Trusts the schema without checking (the operator commands: the file
    /// was made by `serve` or `migrate`; a missing table says so).
    pub(crate) fn assume_migrated(&self) {
        self.migrated.store(true, Ordering::Release);
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        if !self.is_migrated() {
            return Err(unavailable("schema not applied yet"));
        }
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(()))).await
    }

    /// A 32-byte key kept in the file, created on first use, so forms and
    /// bearer tokens signed before a restart are still accepted after it.
    pub(crate) async fn shared_secret(&self, name: &'static str) -> Result<[u8; 32], StoreError> {
        let fresh = super::random_key();
        let value: Vec<u8> = self
            .write(move |c| {
                c.execute(
                    "INSERT INTO shared_secrets (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                    rusqlite::params![name, &fresh[..]],
                )?;
                c.query_row(
                    "SELECT value FROM shared_secrets WHERE name = ?1",
                    [name],
                    |row| row.get(0),
                )
            })
            .await?;
        value
            .try_into()
            .map_err(|_| unavailable("shared secret has the wrong length"))
    }

    /// Whether the file can be used (for `check`), without creating it: its
    /// directory must exist and take new files (SQLite writes `-wal` and
    /// `-shm` beside it), and an existing file must open as a database.
    pub(crate) async fn usable(&self) -> Result<(), String> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || usable(&path))
            .await
            .map_err(|e| e.to_string())?
    }
}

fn usable(path: &Path) -> Result<(), String> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(format!(
            "{}: directory {} does not exist",
            path.display(),
            dir.display()
        ));
    }
    let probe = dir.join(format!(".portcullis-check-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| {
        format!(
            "{}: cannot create files in {}: {e}",
            path.display(),
            dir.display()
        )
    })?;
    let _ = std::fs::remove_file(&probe);
    if path.exists() {
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
            .map_err(|e| format!("{}: not a usable SQLite database: {e}", path.display()))?;
    }
    Ok(())
}

pub(crate) fn unavailable(message: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable {
        backend: "sqlite",
        message: message.to_string(),
    }
}

pub(crate) fn db_error(e: rusqlite::Error) -> StoreError {
    unavailable(e)
}

/// A time as stored: unix milliseconds.
pub(crate) fn millis(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// A stored time (unix milliseconds) back as a `SystemTime`.
pub(crate) fn time_of(ms: i64) -> SystemTime {
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// Now, as stored.
pub(crate) fn now_ms() -> i64 {
    millis(SystemTime::now())
}

/// A duration in milliseconds, for arithmetic with stored times.
pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Roles as stored: a JSON array.
pub(crate) fn roles_json(roles: &[String]) -> String {
    serde_json::to_string(roles).unwrap_or_else(|_| "[]".to_string())
}

/// Roles read back; a damaged value grants nothing.
pub(crate) fn roles_of(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

#[cfg(test)]
mod tests;
