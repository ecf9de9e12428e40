//! Test databases: every test gets its own. SQLite: a file in a fresh temp folder. PostgreSQL (when
//! `TEST_DATABASE_URL` is set, as CI does): a fresh schema in that database, addressed through the
//! connection's `search_path`, dropped when the test ends. No shared state, no serial execution.
//!
//! Dropping never waits forever: every connection of a test names its schema (`application_name`),
//! so the drop first ends whatever sessions the test left (a service still running after a failed
//! assertion, a transaction stuck behind a cut network), then drops the schema with a lock timeout,
//! a bounded number of times.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::Connection;

/// A throwaway database URL, cleaned up on drop.
pub struct TestDb {
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    PgSchema { admin_url: String, schema: String },
}

/// How long the drop of a PostgreSQL test schema may take in all.
const DROP_WITHIN: Duration = Duration::from_secs(20);

impl TestDb {
    /// A new empty database for one service of one test.
    pub fn new() -> Self {
        match std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.trim().is_empty()) {
            Some(admin_url) => Self::postgres_schema(admin_url),
            None => Self::sqlite_file(),
        }
    }

    fn sqlite_file() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir for the test database");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        Self { url, cleanup: Cleanup::Sqlite(dir) }
    }

    fn postgres_schema(admin_url: String) -> Self {
        let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
        let mut admin =
            admin_connection(&admin_url).unwrap_or_else(|err| panic!("TEST_DATABASE_URL does not answer: {err}"));
        admin.batch_execute(&format!("CREATE SCHEMA {schema}")).expect("create the test schema");
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        // The schema's name is also the connections' name, so the drop can find them.
        let url = format!("{admin_url}{separator}application_name={schema}&options=-csearch_path%3D{schema}");
        Self { url, cleanup: Cleanup::PgSchema { admin_url, schema } }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.cleanup, Cleanup::PgSchema { .. })
    }
}

impl Default for TestDb {
    fn default() -> Self {
        Self::new()
    }
}

/// The harness's own connection: bounded connect, and every statement bounded too.
fn admin_connection(admin_url: &str) -> diesel::ConnectionResult<PgConnection> {
    let separator = if admin_url.contains('?') { '&' } else { '?' };
    let mut conn = PgConnection::establish(&format!(
        "{admin_url}{separator}connect_timeout=5&keepalives_idle=5&keepalives_interval=2&keepalives_count=3&tcp_user_timeout=10000"
    ))?;
    // Best effort: a statement stuck behind a lock fails instead of waiting forever.
    let _ = conn.batch_execute("SET statement_timeout = '10s'; SET lock_timeout = '2s'");
    Ok(conn)
}

/// Ends the test's sessions, then drops its schema; retried until [`DROP_WITHIN`]. Returns the last
/// error when it gave up.
fn drop_schema(admin_url: &str, schema: &str) -> Result<(), String> {
    let started = Instant::now();
    let mut last_error = String::new();
    while started.elapsed() < DROP_WITHIN {
        match admin_connection(admin_url) {
            Ok(mut admin) => {
                let terminate = format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = '{schema}' AND pid <> pg_backend_pid()"
                );
                let result = admin
                    .batch_execute(&terminate)
                    .and_then(|()| admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")));
                match result {
                    Ok(()) => return Ok(()),
                    Err(err) => last_error = err.to_string(),
                }
            }
            Err(err) => last_error = err.to_string(),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(last_error)
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Cleanup::PgSchema { admin_url, schema } = &self.cleanup {
            // Bounded, and best effort: a schema left behind in a throwaway CI database is harmless.
            if let Err(err) = drop_schema(admin_url, schema) {
                eprintln!("test schema {schema} left behind after {DROP_WITHIN:?}: {err}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session of the test that holds a lock (as a service stuck mid-transaction would) does not
    /// keep the drop waiting: it is ended and the schema dropped within the bound.
    #[test]
    fn dropping_a_schema_ends_the_sessions_that_hold_it() {
        let test_db = TestDb::new();
        if !test_db.is_postgres() {
            return;
        }
        let mut holder = PgConnection::establish(test_db.url()).unwrap();
        holder.batch_execute("CREATE TABLE held (n INTEGER); BEGIN; LOCK TABLE held IN ACCESS EXCLUSIVE MODE").unwrap();
        let Cleanup::PgSchema { admin_url, schema } = &test_db.cleanup else { unreachable!() };
        let (admin_url, schema) = (admin_url.clone(), schema.clone());
        let started = Instant::now();
        drop(test_db);
        assert!(started.elapsed() < DROP_WITHIN, "dropped within the bound: {:?}", started.elapsed());
        let mut admin = admin_connection(&admin_url).unwrap();
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        use diesel::RunQueryDsl;
        let left: Count =
            diesel::sql_query(format!("SELECT COUNT(*) AS n FROM pg_namespace WHERE nspname = '{schema}'"))
                .get_result(&mut admin)
                .unwrap();
        assert_eq!(left.n, 0, "the schema is gone");
        assert!(holder.batch_execute("SELECT 1").is_err(), "the holding session was ended");
    }
}
