//! Test databases: every test gets its own. SQLite: a file in a fresh temp folder. PostgreSQL (when
//! `TEST_DATABASE_URL` is set, as CI does): a fresh schema in that database, addressed through the
//! connection's `search_path`, dropped when the test ends. No shared state, no serial execution.

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
        let mut admin = PgConnection::establish(&admin_url)
            .unwrap_or_else(|err| panic!("TEST_DATABASE_URL does not answer: {err}"));
        admin.batch_execute(&format!("CREATE SCHEMA {schema}")).expect("create the test schema");
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{separator}options=-csearch_path%3D{schema}");
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

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Cleanup::PgSchema { admin_url, schema } = &self.cleanup {
            // Best effort: a failed drop leaves a schema in a throwaway CI database, nothing worse.
            if let Ok(mut admin) = PgConnection::establish(admin_url) {
                let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}
