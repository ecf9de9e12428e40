//! One database layer over two backends: PostgreSQL in production, bundled SQLite as the embedded
//! default. The backend is chosen from the URL scheme here (not by trial, which would hide the real
//! connection error). Each service embeds its own per-backend migrations and runs them at start.
//! Diesel is synchronous: all work runs through [`Db::run`] on the blocking pool, never on the async
//! executor, and keeps the caller's tracing span.

use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::pg::PgConnection;
use diesel::r2d2::{self, ManageConnection, Pool, PooledConnection, R2D2Connection};
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};

use crate::problem::ApiError;

/// A connection to either backend. Domain functions take `&mut DbConn`, so callers can compose them
/// in one transaction.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// Where a service's data lives, parsed from its database URL.
#[derive(Debug, Clone)]
pub enum Target {
    Postgres(String),
    Sqlite(PathBuf),
}

impl Target {
    /// `postgres://…` / `postgresql://…`, or `sqlite://path`, `sqlite:path` (relative paths are relative
    /// to the working directory).
    pub fn parse(url: &str) -> Result<Self, DbError> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Target::Postgres(url.to_owned()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| DbError::Config(format!("unsupported database URL scheme in {:?}", redact(url))))?;
        if path.is_empty() {
            return Err(DbError::Config("the sqlite URL has no file path".into()));
        }
        Ok(Target::Sqlite(PathBuf::from(path)))
    }

    pub fn backend(&self) -> Backend {
        match self {
            Target::Postgres(_) => Backend::Postgres,
            Target::Sqlite(_) => Backend::Sqlite,
        }
    }
}

/// Hides a password in a URL for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***{}", &url[..scheme], &url[at..]),
        _ => url.to_owned(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database configuration: {0}")]
    Config(String),
    /// The database is not answering (connection refused, pool exhausted): 503.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("running migrations failed: {0}")]
    Migration(String),
    #[error("blocking task failed: {0}")]
    Blocking(String),
}

impl DbError {
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            DbError::Query(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _))
        )
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                ApiError::unavailable("database_unavailable", "the database is not answering; try again shortly")
            }
            DbError::Query(diesel::result::Error::NotFound) => ApiError::not_found("the record"),
            other => ApiError::internal(other),
        }
    }
}

/// One multi-row INSERT of `rows` into `table`, on whichever backend `conn` is. Diesel's batch insert
/// does not go through the multi-backend connection, so this dispatches to the backend's own
/// connection. Evaluates to the number of rows inserted; an error returns from the caller (`?`).
#[macro_export]
macro_rules! insert_rows {
    ($conn:expr, $table:expr, $rows:expr) => {
        match $conn {
            $crate::db::DbConn::Pg(pg) => diesel::RunQueryDsl::execute(diesel::insert_into($table).values($rows), pg)?,
            $crate::db::DbConn::Sqlite(sqlite) => {
                diesel::RunQueryDsl::execute(diesel::insert_into($table).values($rows), sqlite)?
            }
        }
    };
}

/// r2d2 manager that opens the backend named by the URL and sets SQLite up for durability.
#[derive(Debug, Clone)]
pub struct Manager {
    target: Target,
}

/// SQLite settings: a busy timeout instead of an immediate "database is locked" (first, so the others
/// wait for a lock too); WAL so readers do not block the writer; `synchronous=FULL` so a committed
/// audit record survives a power loss (R-QRY-08).
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;";

impl ManageConnection for Manager {
    type Connection = DbConn;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConn, r2d2::Error> {
        match &self.target {
            Target::Postgres(url) => PgConnection::establish(url).map(DbConn::Pg).map_err(r2d2::Error::ConnectionError),
            Target::Sqlite(path) => {
                let path = path.to_string_lossy();
                let mut conn = SqliteConnection::establish(&path).map_err(r2d2::Error::ConnectionError)?;
                conn.batch_execute(SQLITE_PRAGMAS).map_err(r2d2::Error::QueryError)?;
                Ok(DbConn::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), r2d2::Error> {
        conn.ping().map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        conn.is_broken()
    }
}

/// The per-backend migration sets a service embeds.
pub struct Migrations {
    pub postgres: EmbeddedMigrations,
    pub sqlite: EmbeddedMigrations,
}

/// Pool handle. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: Pool<Manager>,
    backend: Backend,
}

pub type PooledConn = PooledConnection<Manager>;

#[derive(Debug, Clone)]
pub struct DbSettings {
    pub url: String,
    pub pool_size: u32,
    pub connect_timeout: Duration,
}

impl DbSettings {
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), pool_size: 8, connect_timeout: Duration::from_secs(5) }
    }
}

impl Db {
    /// Opens the pool (creating the SQLite file's folder), then runs pending migrations. Blocking:
    /// call it from startup code, not from a request handler.
    pub fn connect(settings: &DbSettings, migrations: &Migrations) -> Result<Self, DbError> {
        let target = Target::parse(&settings.url)?;
        if let Target::Sqlite(path) = &target {
            ensure_parent_dir(path)?;
        }
        let backend = target.backend();
        let manager = Manager { target };
        // Build lazily (min_idle 0), then take one connection ourselves so a refused connection
        // reports the real driver error instead of r2d2's generic timeout.
        let mut first = manager.connect().map_err(|err| DbError::Unavailable(err.to_string()))?;
        run_migrations(&mut first, migrations)?;
        let pool = Pool::builder()
            .max_size(settings.pool_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(settings.connect_timeout)
            .test_on_check_out(false)
            .build_unchecked(manager);
        Ok(Self { pool, backend })
    }

    /// [`Db::connect`] from async startup code, off the executor.
    pub async fn open(settings: &DbSettings, migrations: &'static Migrations) -> Result<Self, DbError> {
        let settings = settings.clone();
        actix_web::web::block(move || Db::connect(&settings, migrations))
            .await
            .map_err(|err| DbError::Blocking(err.to_string()))?
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A connection for blocking code that is already off the executor.
    pub fn get(&self) -> Result<PooledConn, DbError> {
        self.pool.get().map_err(|err| DbError::Unavailable(err.to_string()))
    }

    /// Runs diesel work on the blocking pool with a pooled connection, inside the caller's span.
    pub async fn run<F, T, E>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let pool = self.pool.clone();
        let span = tracing::Span::current();
        actix_web::web::block(move || {
            span.in_scope(|| {
                let mut conn = pool.get().map_err(|err| E::from(DbError::Unavailable(err.to_string())))?;
                work(&mut conn)
            })
        })
        .await
        .map_err(|err| E::from(DbError::Blocking(err.to_string())))?
    }

    /// Readiness: the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.run(|conn| conn.ping().map_err(DbError::from)).await
    }
}

impl DbConn {
    /// A transaction for work that writes. On SQLite it begins `IMMEDIATE`, taking the write lock up
    /// front: a deferred transaction that reads first and writes later fails at once with
    /// SQLITE_BUSY (no busy timeout applies) when another connection committed in between. On
    /// PostgreSQL it is an ordinary transaction (READ COMMITTED): lost-update safety comes from the
    /// statements (row locks, atomic updates), as on any PostgreSQL code path. Not nestable.
    pub fn write_transaction<T, E, F>(&mut self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        use diesel::connection::{AnsiTransactionManager, TransactionManager};
        match self {
            DbConn::Sqlite(inner) => AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?,
            DbConn::Pg(inner) => AnsiTransactionManager::begin_transaction(inner)?,
        }
        // Commit and rollback go through the connection's own manager, which delegates to the
        // backend's: the same bookkeeping `Connection::transaction` does.
        type Manager = <DbConn as Connection>::TransactionManager;
        match work(self) {
            Ok(value) => {
                Manager::commit_transaction(self)?;
                Ok(value)
            }
            Err(error) => match Manager::rollback_transaction(self) {
                Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(error),
                Err(rollback_error) => Err(rollback_error.into()),
            },
        }
    }

    /// Inside a transaction: let its commit return before its WAL record is flushed, for writes a
    /// crash may lose without harm (an outcome that is otherwise closed as unknown, a delivery mark
    /// whose loss means a harmless redelivery). PostgreSQL only (`synchronous_commit = off` for this
    /// transaction: lost, never corrupted); on SQLite commits stay fully synchronous.
    pub fn relax_commit_durability(&mut self) -> diesel::QueryResult<()> {
        match self {
            DbConn::Pg(pg) => pg.batch_execute("SET LOCAL synchronous_commit TO OFF"),
            DbConn::Sqlite(_) => Ok(()),
        }
    }

    /// Inside a transaction that matches many ids at once (`id = ANY($1)`): plan each statement for
    /// its actual values. PostgreSQL otherwise switches a prepared statement to a generic plan after
    /// five runs, and for an array parameter that plan is a sequential scan, slower as the table grows.
    /// A no-op on SQLite.
    pub fn plan_for_actual_values(&mut self) -> diesel::QueryResult<()> {
        match self {
            DbConn::Pg(pg) => pg.batch_execute("SET LOCAL plan_cache_mode = force_custom_plan"),
            DbConn::Sqlite(_) => Ok(()),
        }
    }

    pub fn ping(&mut self) -> diesel::QueryResult<()> {
        self.batch_execute("SELECT 1")
    }

    pub fn backend(&self) -> Backend {
        match self {
            DbConn::Pg(_) => Backend::Postgres,
            DbConn::Sqlite(_) => Backend::Sqlite,
        }
    }
}

fn ensure_parent_dir(path: &Path) -> Result<(), DbError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .map_err(|err| DbError::Config(format!("cannot create {}: {err}", dir.display()))),
        _ => Ok(()),
    }
}

/// Lets a borrowed embedded set be run (diesel takes the source by value and the set is not `Clone`).
struct BorrowedMigrations<'a>(&'a EmbeddedMigrations);

impl<DB: diesel::backend::Backend> MigrationSource<DB> for BorrowedMigrations<'_> {
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn diesel::migration::Migration<DB>>>> {
        MigrationSource::<DB>::migrations(self.0)
    }
}

fn run_migrations(conn: &mut DbConn, migrations: &Migrations) -> Result<(), DbError> {
    let result = match conn {
        DbConn::Pg(pg) => pg.run_pending_migrations(BorrowedMigrations(&migrations.postgres)).map(|_| ()),
        DbConn::Sqlite(sqlite) => sqlite.run_pending_migrations(BorrowedMigrations(&migrations.sqlite)).map(|_| ()),
    };
    result.map_err(|err| DbError::Migration(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_is_chosen_by_scheme() {
        assert_eq!(Target::parse("postgres://u@h/db").unwrap().backend(), Backend::Postgres);
        assert_eq!(Target::parse("postgresql://u@h/db").unwrap().backend(), Backend::Postgres);
        assert_eq!(Target::parse("sqlite://./data/x.db").unwrap().backend(), Backend::Sqlite);
        assert_eq!(Target::parse("sqlite:x.db").unwrap().backend(), Backend::Sqlite);
        assert!(matches!(Target::parse("mysql://h/db"), Err(DbError::Config(_))));
        assert!(matches!(Target::parse("sqlite://"), Err(DbError::Config(_))));
    }

    #[test]
    fn passwords_are_redacted_from_messages() {
        let err = Target::parse("mysql://user:hunter2@host/db").unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }

    fn scratch_db() -> (crate::testing::TestDb, Db) {
        let test_db = crate::testing::TestDb::new();
        let migrations = Migrations {
            postgres: diesel_migrations::embed_migrations!("src/testdata/no_migrations"),
            sqlite: diesel_migrations::embed_migrations!("src/testdata/no_migrations"),
        };
        let db = Db::connect(&DbSettings::new(test_db.url()), &migrations).unwrap();
        db.get()
            .unwrap()
            .batch_execute("CREATE TABLE counter (n INTEGER NOT NULL); INSERT INTO counter VALUES (0);")
            .unwrap();
        (test_db, db)
    }

    /// Many writers that each read, then write, in one transaction: none may fail with "busy" and no
    /// increment may be lost. (Write transactions do not make read-modify-write safe on PostgreSQL by
    /// themselves: the update is atomic, as domain code must make its own with row locks or
    /// `SET n = n + 1`.)
    #[test]
    fn write_transactions_read_then_write_under_contention_without_busy_errors() {
        use diesel::sql_types::BigInt;
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Counter {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let (_guard, db) = scratch_db();
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let db = db.clone();
                std::thread::spawn(move || {
                    let mut conn = db.get().unwrap();
                    for _ in 0..25 {
                        conn.write_transaction(|conn| -> Result<(), diesel::result::Error> {
                            let before: Counter =
                                diesel::sql_query("SELECT CAST(n AS BIGINT) AS n FROM counter").get_result(conn)?;
                            diesel::sql_query("UPDATE counter SET n = n + 1").execute(conn)?;
                            assert!(before.n < 100);
                            Ok(())
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        let total: Counter =
            diesel::sql_query("SELECT CAST(n AS BIGINT) AS n FROM counter").get_result(&mut db.get().unwrap()).unwrap();
        assert_eq!(total.n, 100);
    }

    #[test]
    fn write_transaction_rolls_back_on_error() {
        use diesel::RunQueryDsl;
        let (_guard, db) = scratch_db();
        let mut conn = db.get().unwrap();
        let result: Result<(), diesel::result::Error> = conn.write_transaction(|conn| {
            diesel::sql_query("UPDATE counter SET n = 42").execute(conn)?;
            Err(diesel::result::Error::RollbackTransaction)
        });
        assert!(result.is_err());
        conn.batch_execute("UPDATE counter SET n = n").unwrap();
        assert!(!conn.is_broken(), "the connection is usable after the rollback");
    }

    #[test]
    fn unreachable_postgres_reports_the_real_error() {
        let settings = DbSettings::new("postgres://nobody@127.0.0.1:1/none?connect_timeout=1");
        let migrations = Migrations {
            postgres: diesel_migrations::embed_migrations!("src/testdata/no_migrations"),
            sqlite: diesel_migrations::embed_migrations!("src/testdata/no_migrations"),
        };
        let err = Db::connect(&settings, &migrations).err().unwrap();
        assert!(matches!(err, DbError::Unavailable(ref m) if m.contains("127.0.0.1") || m.contains("onnect")), "{err}");
    }

    #[actix_web::test]
    async fn pool_exhaustion_is_503_and_not_found_is_404() {
        let unavailable: ApiError = DbError::Unavailable("timed out".into()).into();
        assert_eq!(unavailable.status(), actix_web::http::StatusCode::SERVICE_UNAVAILABLE);
        let missing: ApiError = DbError::Query(diesel::result::Error::NotFound).into();
        assert_eq!(missing.status(), actix_web::http::StatusCode::NOT_FOUND);
    }
}
