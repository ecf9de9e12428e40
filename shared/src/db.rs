//! One database layer over two backends: PostgreSQL in production, bundled SQLite as the embedded
//! default. The backend is chosen from the URL scheme here (not by trial, which would hide the real
//! connection error). Each service embeds its own per-backend migrations and runs them at start, or,
//! with `IMMILINK_MIGRATE_ON_START=false` (Kubernetes), only checks that a `migrate` run
//! ([`Db::migrate`], the service's migrate Job) has applied them all. A run takes a lock first, so
//! replicas starting together migrate one after the other.
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
    /// The service does not migrate at start and the database lacks migrations it needs.
    #[error("the database schema is behind this binary: {0}")]
    SchemaBehind(String),
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

    /// The database could not be reached or the connection was lost mid-use: nothing about the
    /// work itself was wrong, and whatever it was doing may or may not have been committed.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            DbError::Unavailable(_) => true,
            DbError::Query(err) => is_connection_lost(err),
            _ => false,
        }
    }
}

/// A diesel error that means the connection, not the statement, failed.
pub fn is_connection_lost(err: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    matches!(err, Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _) | Error::BrokenTransactionManager)
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                ApiError::unavailable("database_unavailable", "the database is not answering; try again shortly")
            }
            DbError::Query(diesel::result::Error::NotFound) => ApiError::not_found("the record"),
            // The connection was lost mid-use (the database restarted or the network dropped): the
            // pool drops it and the next request gets a fresh one.
            lost if lost.is_connection_lost() => {
                tracing::warn!(error = %lost, "database connection lost");
                ApiError::unavailable("database_unavailable", "the database is not answering; try again shortly")
            }
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

/// r2d2 manager that opens the backend named by the URL and sets SQLite up for durability. A
/// PostgreSQL URL is opened with the bounds of [`PgTimeouts`] added ([`bounded_postgres_url`]).
#[derive(Debug, Clone)]
pub struct Manager {
    target: Target,
    /// What PostgreSQL connections are opened with: the URL with every wait bounded.
    postgres_url: Option<String>,
}

impl Manager {
    fn new(target: Target, settings: &DbSettings) -> Self {
        let postgres_url = match &target {
            Target::Postgres(url) => Some(bounded_postgres_url(url, settings)),
            Target::Sqlite(_) => None,
        };
        Self { target, postgres_url }
    }
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
            Target::Postgres(url) => PgConnection::establish(self.postgres_url.as_deref().unwrap_or(url))
                .map(DbConn::Pg)
                .map_err(r2d2::Error::ConnectionError),
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

    /// A connection whose server went away is broken too: diesel marks its transaction manager
    /// broken on the first statement that finds the connection lost, so it is dropped on its way
    /// back into the pool and the next caller gets a fresh one.
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
    manager: Manager,
    backend: Backend,
    work_bound: Option<Duration>,
}

pub type PooledConn = PooledConnection<Manager>;

#[derive(Debug, Clone)]
pub struct DbSettings {
    pub url: String,
    pub pool_size: u32,
    /// How long a caller waits for a pooled connection (r2d2's `connection_timeout`), and on
    /// PostgreSQL libpq's `connect_timeout` for opening one. Default 5 s.
    pub connect_timeout: Duration,
    /// The other bounds on a PostgreSQL connection's waits (ignored for SQLite, which has its busy
    /// timeout).
    pub postgres: PgTimeouts,
    /// The connection's `application_name` on PostgreSQL when the URL names none (`pg_stat_activity`).
    pub application_name: Option<String>,
    /// `IMMILINK_MIGRATE_ON_START` (default true): [`Db::connect`] runs pending migrations. False: it
    /// only checks that none is pending and refuses to open a database whose schema is behind (the
    /// migrations are then run by `immilink-<service> migrate`, a Kubernetes Job).
    pub migrate_on_start: bool,
}

impl DbSettings {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 8,
            connect_timeout: PgTimeouts::DEFAULT_CONNECT,
            postgres: PgTimeouts::default(),
            application_name: None,
            migrate_on_start: true,
        }
    }

    /// As [`DbSettings::new`], for `service`: its statement timeout and its name on the connection.
    pub fn for_service(service: &str, url: impl Into<String>) -> Self {
        let mut settings = Self::new(url);
        settings.postgres.statement = PgTimeouts::default_statement_timeout(service);
        settings.application_name = Some(format!("immilink-{service}"));
        settings
    }

    /// The longest one unit of database work should wait on PostgreSQL: a pooled connection, then
    /// its statements (each bounded by the statement timeout). `None` on SQLite.
    pub fn work_bound(&self) -> Option<Duration> {
        match Target::parse(&self.url) {
            Ok(Target::Postgres(_)) => Some(self.connect_timeout + self.postgres.statement),
            _ => None,
        }
    }
}

/// Bounds on every wait of a PostgreSQL connection, so that a database that goes away mid-use (a
/// killed connection, a network partition, a peer that stops answering) becomes an error within a
/// known time instead of a thread blocked forever in libpq. They are passed in the connection URL:
/// to libpq for the client side, and as `options` to the server for its side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTimeouts {
    /// TCP keepalives on both ends: the first probe after this long without traffic. Default 5 s.
    pub keepalive_idle: Duration,
    /// Then a probe every `keepalive_interval` (default 5 s), `keepalive_count` of them (default 3):
    /// a silent peer is noticed within about 20 s even where `tcp_user_timeout` is not supported.
    pub keepalive_interval: Duration,
    pub keepalive_count: u32,
    /// `tcp_user_timeout`: data (or a keepalive probe) left unacknowledged this long closes the
    /// connection. Default 15 s.
    pub tcp_user_timeout: Duration,
    /// `statement_timeout`, set per service: the server cancels a statement that runs longer.
    /// Default 10 s; see [`PgTimeouts::default_statement_timeout`].
    pub statement: Duration,
    /// `idle_in_transaction_session_timeout`: the server ends a session that holds a transaction
    /// open without a statement this long (a client that froze or vanished mid-transaction, whose
    /// locks would otherwise block every other writer). Default 60 s.
    pub idle_in_transaction: Duration,
}

impl PgTimeouts {
    pub const DEFAULT_CONNECT: Duration = Duration::from_secs(5);

    /// The statement timeout of each service: the broker answers lookups, so its statements are
    /// short and a stuck one must fail within seconds (the lookup is then refused, R-QRY-08); audit
    /// verifies and searches the whole chain; the others run ordinary requests.
    pub fn default_statement_timeout(service: &str) -> Duration {
        match service {
            "broker" => Duration::from_secs(5),
            "audit" => Duration::from_secs(60),
            _ => Duration::from_secs(10),
        }
    }
}

impl Default for PgTimeouts {
    fn default() -> Self {
        Self {
            keepalive_idle: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(5),
            keepalive_count: 3,
            tcp_user_timeout: Duration::from_secs(15),
            statement: Duration::from_secs(10),
            idle_in_transaction: Duration::from_secs(60),
        }
    }
}

/// `url` with the bounds of `settings` added as libpq parameters: `connect_timeout`, `keepalives*`,
/// `tcp_user_timeout`, `fallback_application_name`, and the server's side (its own keepalives and
/// user timeout, `statement_timeout`, `idle_in_transaction_session_timeout`) as `-c` settings in ONE
/// `options` parameter, put before whatever `options` the URL already carries (the test URLs carry
/// `-csearch_path=…`), so the URL's own settings win. A parameter the URL already sets is kept.
pub fn bounded_postgres_url(url: &str, settings: &DbSettings) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect();
    let t = &settings.postgres;
    let secs = |d: Duration| d.as_secs().max(1).to_string();
    let millis = |d: Duration| d.as_millis().to_string();
    // libpq takes whole seconds and treats anything below 2 as 2.
    let connect = settings.connect_timeout.as_secs_f64().ceil().max(2.0) as u64;
    let mut client = vec![
        ("connect_timeout", connect.to_string()),
        ("keepalives", "1".to_owned()),
        ("keepalives_idle", secs(t.keepalive_idle)),
        ("keepalives_interval", secs(t.keepalive_interval)),
        ("keepalives_count", t.keepalive_count.max(1).to_string()),
        ("tcp_user_timeout", millis(t.tcp_user_timeout)),
    ];
    if let Some(name) = &settings.application_name {
        client.push(("fallback_application_name", name.clone()));
    }
    for (key, value) in client {
        if !params.iter().any(|(k, _)| k == key) {
            params.push((key.to_owned(), value));
        }
    }
    let server = [
        ("tcp_keepalives_idle", secs(t.keepalive_idle)),
        ("tcp_keepalives_interval", secs(t.keepalive_interval)),
        ("tcp_keepalives_count", t.keepalive_count.max(1).to_string()),
        ("tcp_user_timeout", millis(t.tcp_user_timeout)),
        ("statement_timeout", millis(t.statement)),
        ("idle_in_transaction_session_timeout", millis(t.idle_in_transaction)),
    ];
    let ours = server.iter().map(|(name, value)| format!("-c {name}={value}")).collect::<Vec<_>>().join(" ");
    match params.iter_mut().find(|(key, _)| key == "options") {
        Some((_, theirs)) => *theirs = format!("{ours} {theirs}"),
        None => params.push(("options".to_owned(), ours)),
    }
    let query = params
        .iter()
        .map(|(key, value)| format!("{}={}", percent_encode(key), percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&");
    format!("{base}?{query}")
}

/// Decodes `%XX` escapes as libpq does (a `+` stays a `+`).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Escapes everything but unreserved characters (a space becomes `%20`: libpq does not read `+`).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The connection that migrates (or checks the schema), opened as the pool opens its. Opening it
/// ourselves reports the real driver error instead of r2d2's generic timeout.
fn migration_connection(manager: &Manager) -> Result<DbConn, DbError> {
    let mut conn = manager.connect().map_err(|err| DbError::Unavailable(err.to_string()))?;
    if let DbConn::Pg(pg) = &mut conn {
        // A migration may rewrite a large table, and may wait for another replica's run: the
        // per-statement bound is for requests.
        pg.batch_execute("SET statement_timeout = 0").map_err(|err| DbError::Migration(err.to_string()))?;
    }
    Ok(conn)
}

fn manager_for(settings: &DbSettings) -> Result<Manager, DbError> {
    let target = Target::parse(&settings.url)?;
    if let Target::Sqlite(path) = &target {
        ensure_parent_dir(path)?;
    }
    Ok(Manager::new(target, settings))
}

impl Db {
    /// Opens the pool (creating the SQLite file's folder), then runs pending migrations, or with
    /// `migrate_on_start` off checks that none is pending. Blocking: call it from startup code, not
    /// from a request handler.
    pub fn connect(settings: &DbSettings, migrations: &Migrations) -> Result<Self, DbError> {
        let manager = manager_for(settings)?;
        let backend = manager.target.backend();
        // Build lazily (min_idle 0), after one connection of our own has migrated.
        let mut first = migration_connection(&manager)?;
        if settings.migrate_on_start {
            run_migrations(&mut first, migrations)?;
        } else {
            require_migrated(&mut first, migrations, settings)?;
        }
        drop(first);
        let pool = Pool::builder()
            .max_size(settings.pool_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(settings.connect_timeout)
            .test_on_check_out(false)
            .build_unchecked(manager.clone());
        Ok(Self { pool, manager, backend, work_bound: settings.work_bound() })
    }

    /// Runs the pending migrations and returns what it applied (nothing when another run got there
    /// first), whatever `migrate_on_start` says: `immilink-<service> migrate`. Blocking.
    pub fn migrate(settings: &DbSettings, migrations: &Migrations) -> Result<Vec<String>, DbError> {
        let manager = manager_for(settings)?;
        let mut conn = migration_connection(&manager)?;
        run_migrations(&mut conn, migrations)
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

    /// The longest one unit of work should take on PostgreSQL (see [`DbSettings::work_bound`]); `None`
    /// on SQLite, whose waits are bounded by its busy timeout.
    pub fn work_bound(&self) -> Option<Duration> {
        self.work_bound
    }

    /// A connection of its own, outside the pool, for a long-lived user that keeps one (the broker's
    /// journal); opened as the pool opens its, with the same bounds. Blocking.
    pub fn open_connection(&self) -> Result<DbConn, DbError> {
        self.manager.connect().map_err(|err| DbError::Unavailable(err.to_string()))
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
                let result = work(&mut conn);
                if result.is_err() && !conn.still_answers() {
                    tracing::warn!("a pooled database connection was found dead; the pool drops it");
                }
                result
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
        self.transaction_begun_with("BEGIN IMMEDIATE", None, work)
    }

    /// A read-only transaction that sees one snapshot of the database throughout, whatever commits
    /// meanwhile: for reading many tables that must agree with each other (the audit log's records,
    /// tree and head) without blocking writers. SQLite in WAL mode keeps the snapshot of a deferred
    /// transaction's first read; PostgreSQL needs REPEATABLE READ. Not nestable.
    pub fn snapshot_transaction<T, E, F>(&mut self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        self.transaction_begun_with("BEGIN DEFERRED", Some("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"), work)
    }

    /// Runs `work` in a transaction begun with `sqlite` or `postgres` (None: PostgreSQL's default),
    /// committed when it succeeds and rolled back when it fails.
    fn transaction_begun_with<T, E, F>(&mut self, sqlite: &str, postgres: Option<&str>, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E>,
        E: From<diesel::result::Error>,
    {
        use diesel::connection::{AnsiTransactionManager, TransactionManager};
        match (&mut *self, postgres) {
            (DbConn::Sqlite(inner), _) => AnsiTransactionManager::begin_transaction_sql(inner, sqlite)?,
            (DbConn::Pg(inner), Some(begin)) => AnsiTransactionManager::begin_transaction_sql(inner, begin)?,
            (DbConn::Pg(inner), None) => AnsiTransactionManager::begin_transaction(inner)?,
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

    /// After work on the connection failed: whether it still answers. A PostgreSQL connection that
    /// does not is marked broken by the failed ping, so the pool drops it instead of handing it out
    /// again. Diesel does not always notice by itself: a statement that fails while being prepared
    /// (the first use of a query on that connection) leaves a dead connection looking healthy, and
    /// every later use fails with "no connection to the server". Costs a round trip, on failures
    /// only; SQLite has no connection to lose.
    pub fn still_answers(&mut self) -> bool {
        match self {
            DbConn::Pg(_) => self.ping().is_ok(),
            DbConn::Sqlite(_) => true,
        }
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

/// The first key of the PostgreSQL advisory lock a migration run holds ("immi"). The second is the
/// hash of the schema migrated (`hashtext(current_schema())`): replicas of one service share their
/// database and schema, so they take the same lock and migrate one after the other, while services
/// (or tests) in other schemas of one database do not wait for each other. Advisory locks are
/// per database already.
const MIGRATION_LOCK_CLASS: i32 = 0x696d_6d69;
const MIGRATION_LOCK_KEY: &str = "hashtext(coalesce(current_schema(), ''))";

/// Runs the pending migrations, one run at a time per database, and returns the versions applied.
/// PostgreSQL: under a session-level advisory lock (above), taken before diesel reads which
/// migrations are applied, so a replica that waited finds nothing left to do; released after, and in
/// any case when the connection closes (a migrator that dies frees it). SQLite: the whole run is one
/// `BEGIN IMMEDIATE` transaction (diesel's per-migration transactions become savepoints in it), whose
/// write lock serialises runs the same way; a second process waits on the busy timeout.
fn run_migrations(conn: &mut DbConn, migrations: &Migrations) -> Result<Vec<String>, DbError> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let migration_error = |err: &dyn std::fmt::Display| DbError::Migration(err.to_string());
    fn versions(applied: Vec<diesel::migration::MigrationVersion<'_>>) -> Vec<String> {
        applied.iter().map(ToString::to_string).collect()
    }
    match conn {
        DbConn::Pg(pg) => {
            if !pg_try_migration_lock(pg)? {
                tracing::info!("another instance is migrating this database; waiting for it to finish");
                pg_migration_lock(pg, "pg_advisory_lock")?;
            }
            let result = pg
                .run_pending_migrations(BorrowedMigrations(&migrations.postgres))
                .map(versions)
                .map_err(|err| migration_error(&err));
            // Released before the result is looked at, so a failed run frees the next replica too.
            if let Err(err) = pg_migration_lock(pg, "pg_advisory_unlock") {
                tracing::warn!(error = %err, "releasing the migration lock failed; it goes with the connection");
            }
            result
        }
        DbConn::Sqlite(sqlite) => {
            AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
            let result = sqlite.run_pending_migrations(BorrowedMigrations(&migrations.sqlite)).map(versions);
            match result {
                Ok(applied) => {
                    AnsiTransactionManager::commit_transaction(sqlite)?;
                    Ok(applied)
                }
                Err(err) => {
                    let _ = AnsiTransactionManager::rollback_transaction(sqlite);
                    Err(migration_error(&err))
                }
            }
        }
    }
}

/// `pg_try_advisory_lock` on the migration lock: whether it was free (and is now held).
fn pg_try_migration_lock(pg: &mut PgConnection) -> Result<bool, DbError> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Taken {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        taken: bool,
    }
    let query = format!("SELECT pg_try_advisory_lock({MIGRATION_LOCK_CLASS}, {MIGRATION_LOCK_KEY}) AS taken");
    let answer: Taken = diesel::sql_query(query)
        .get_result(pg)
        .map_err(|err| DbError::Migration(format!("the migration lock (pg_try_advisory_lock): {err}")))?;
    Ok(answer.taken)
}

/// `pg_advisory_lock` (waits until it is held) or `pg_advisory_unlock` on the migration lock.
fn pg_migration_lock(pg: &mut PgConnection, function: &str) -> Result<(), DbError> {
    pg.batch_execute(&format!("SELECT {function}({MIGRATION_LOCK_CLASS}, {MIGRATION_LOCK_KEY})"))
        .map_err(|err| DbError::Migration(format!("the migration lock ({function}): {err}")))
}

/// With `migrate_on_start` off: the schema must already carry every migration this binary embeds
/// (applied by the service's `migrate` command). Migrations the binary does not know (a newer release
/// migrated first) do not matter here.
fn require_migrated(conn: &mut DbConn, migrations: &Migrations, settings: &DbSettings) -> Result<(), DbError> {
    fn names<DB: diesel::backend::Backend>(pending: Vec<Box<dyn diesel::migration::Migration<DB>>>) -> Vec<String> {
        pending.iter().map(|migration| migration.name().to_string()).collect()
    }
    let pending = match conn {
        DbConn::Pg(pg) => pg.pending_migrations(BorrowedMigrations(&migrations.postgres)).map(names),
        DbConn::Sqlite(sqlite) => sqlite.pending_migrations(BorrowedMigrations(&migrations.sqlite)).map(names),
    }
    .map_err(|err| DbError::Migration(err.to_string()))?;
    if pending.is_empty() {
        return Ok(());
    }
    let command = match &settings.application_name {
        Some(binary) => format!("`{binary} migrate`"),
        None => "the service's `migrate` command".to_owned(),
    };
    Err(DbError::SchemaBehind(format!(
        "{} migration(s) not applied ({}) and IMMILINK_MIGRATE_ON_START is false: run {command} first \
         (in Kubernetes, the service's migrate Job)",
        pending.len(),
        pending.join(", ")
    )))
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

    /// Every bound reaches libpq and the server, in one `options` parameter merged with the one the
    /// URL already carries (whose own settings come last, so they win), and nothing the URL sets
    /// itself is overridden.
    #[test]
    fn postgres_urls_get_every_bound_and_keep_their_own_settings() {
        let mut settings = DbSettings::for_service("broker", "postgres://u@h:5432/db");
        let url = bounded_postgres_url(&settings.url, &settings);
        let (base, query) = url.split_once('?').unwrap();
        assert_eq!(base, "postgres://u@h:5432/db");
        let params: Vec<(String, String)> = query
            .split('&')
            .map(|pair| pair.split_once('=').unwrap())
            .map(|(k, v)| (k.to_owned(), percent_decode(v)))
            .collect();
        let get = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        assert_eq!(get("connect_timeout").as_deref(), Some("5"));
        assert_eq!(get("keepalives").as_deref(), Some("1"));
        assert_eq!(get("keepalives_idle").as_deref(), Some("5"));
        assert_eq!(get("keepalives_interval").as_deref(), Some("5"));
        assert_eq!(get("keepalives_count").as_deref(), Some("3"));
        assert_eq!(get("tcp_user_timeout").as_deref(), Some("15000"));
        assert_eq!(get("fallback_application_name").as_deref(), Some("immilink-broker"));
        let options = get("options").unwrap();
        for setting in [
            "-c statement_timeout=5000",
            "-c idle_in_transaction_session_timeout=60000",
            "-c tcp_keepalives_idle=5",
            "-c tcp_user_timeout=15000",
        ] {
            assert!(options.contains(setting), "{setting} in {options}");
        }
        assert!(!query.contains(' ') && !query.contains('+'), "spaces are escaped as %20 for libpq: {query}");

        // A test URL: its own options (URL-encoded) and a connect timeout of its own.
        settings.url = "postgres://u@h/db?connect_timeout=9&options=-csearch_path%3Dt_1".into();
        settings.postgres.statement = Duration::from_millis(1500);
        let url = bounded_postgres_url(&settings.url, &settings);
        assert!(url.contains("connect_timeout=9") && !url.contains("connect_timeout=5"), "{url}");
        assert_eq!(url.matches("options=").count(), 1, "one options parameter: {url}");
        let options = percent_decode(url.split("options=").nth(1).unwrap().split('&').next().unwrap());
        assert!(options.starts_with("-c tcp_keepalives_idle=5 "), "{options}");
        assert!(options.contains("-c statement_timeout=1500 "), "{options}");
        assert!(options.ends_with(" -csearch_path=t_1"), "the URL's own settings last: {options}");
    }

    #[test]
    fn each_service_has_its_statement_timeout() {
        assert_eq!(DbSettings::for_service("broker", "x").postgres.statement, Duration::from_secs(5));
        assert_eq!(DbSettings::for_service("audit", "x").postgres.statement, Duration::from_secs(60));
        assert_eq!(DbSettings::for_service("identity", "x").postgres.statement, Duration::from_secs(10));
        assert_eq!(DbSettings::new("sqlite://x.db").work_bound(), None, "SQLite waits on its busy timeout");
        assert_eq!(DbSettings::for_service("broker", "postgres://h/db").work_bound(), Some(Duration::from_secs(10)));
    }

    /// The bounds are in force on the server: a statement longer than the service's statement
    /// timeout is cancelled, and the connection stays usable.
    #[test]
    fn a_statement_longer_than_the_statement_timeout_is_cancelled() {
        let test_db = crate::testing::TestDb::new();
        if !test_db.is_postgres() {
            return;
        }
        let mut settings = DbSettings::new(test_db.url());
        settings.postgres.statement = Duration::from_millis(300);
        let migrations = Migrations {
            postgres: diesel_migrations::embed_migrations!("src/testdata/no_migrations"),
            sqlite: diesel_migrations::embed_migrations!("src/testdata/no_migrations"),
        };
        let db = Db::connect(&settings, &migrations).unwrap();
        let mut conn = db.get().unwrap();
        let started = std::time::Instant::now();
        let err = conn.batch_execute("SELECT pg_sleep(5)").unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3), "cancelled at the bound: {:?}", started.elapsed());
        assert!(err.to_string().contains("statement timeout"), "{err}");
        conn.batch_execute("SELECT 1").expect("the connection is still usable");
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

    #[test]
    fn a_connection_lost_mid_use_is_503_not_500() {
        use diesel::result::{DatabaseErrorKind, Error};
        let lost = DbError::Query(Error::DatabaseError(
            DatabaseErrorKind::ClosedConnection,
            Box::new("server closed the connection unexpectedly".to_owned()),
        ));
        assert!(lost.is_connection_lost());
        let problem: ApiError = lost.into();
        assert_eq!(problem.status(), actix_web::http::StatusCode::SERVICE_UNAVAILABLE);
        let refused =
            DbError::Query(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, Box::new("dup".to_owned())));
        assert!(!refused.is_connection_lost());
    }

    #[actix_web::test]
    async fn pool_exhaustion_is_503_and_not_found_is_404() {
        let unavailable: ApiError = DbError::Unavailable("timed out".into()).into();
        assert_eq!(unavailable.status(), actix_web::http::StatusCode::SERVICE_UNAVAILABLE);
        let missing: ApiError = DbError::Query(diesel::result::Error::NotFound).into();
        assert_eq!(missing.status(), actix_web::http::StatusCode::NOT_FOUND);
    }
}
