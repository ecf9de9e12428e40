//! Plain diesel connections to the stack's databases, opened the way the services open theirs, for
//! the write floor ([`crate::inserts`]) and for reading the audit trail's progress ([`crate::trail`]).

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel::{PgConnection, SqliteConnection};
use immilink_shared::db::Target;

/// The settings `shared/src/db.rs` gives every pooled SQLite connection (`SQLITE_PRAGMAS`, private
/// there): wait for a lock instead of failing at once, WAL, and a full fsync at every commit. The
/// write floor must pay what the broker pays, so the same text is repeated here.
pub const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;";

/// One connection to a PostgreSQL or SQLite database, chosen by its URL as the services choose.
pub enum Conn {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

diesel::table! {
    /// The write floor's table: one small row per committed INSERT.
    bench_inserts (id) {
        id -> Text,
        payload -> Text,
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    value: String,
}

impl Conn {
    pub fn establish(url: &str) -> anyhow::Result<Self> {
        match Target::parse(url)? {
            Target::Postgres(url) => Ok(Conn::Pg(PgConnection::establish(&url)?)),
            Target::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())
                    .with_context(|| format!("opening {}", path.display()))?;
                conn.batch_execute(SQLITE_PRAGMAS)?;
                Ok(Conn::Sqlite(conn))
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Conn::Pg(_))
    }

    pub fn batch_execute(&mut self, sql: &str) -> QueryResult<()> {
        match self {
            Conn::Pg(conn) => conn.batch_execute(sql),
            Conn::Sqlite(conn) => conn.batch_execute(sql),
        }
    }

    /// The single `count(*)` a query selects, named `n`.
    pub fn count(&mut self, sql: &str) -> QueryResult<i64> {
        let query = diesel::sql_query(sql);
        let row: Count = match self {
            Conn::Pg(conn) => query.get_result(conn)?,
            Conn::Sqlite(conn) => query.get_result(conn)?,
        };
        Ok(row.n)
    }

    /// One autocommit INSERT into [`bench_inserts`]: a transaction and its commit (an fsync).
    pub fn insert(&mut self, id: &str, payload: &str) -> QueryResult<()> {
        let insert = diesel::insert_into(bench_inserts::table)
            .values((bench_inserts::id.eq(id), bench_inserts::payload.eq(payload)));
        match self {
            Conn::Pg(conn) => insert.execute(conn),
            Conn::Sqlite(conn) => insert.execute(conn),
        }
        .map(|_| ())
    }

    /// The settings that decide what a commit costs, as this connection sees them.
    pub fn durability(&mut self) -> QueryResult<String> {
        let queries: &[(&str, &str)] = match self {
            Conn::Pg(_) => &[
                ("server", "SELECT current_setting('server_version') AS value"),
                ("fsync", "SELECT current_setting('fsync') AS value"),
                ("synchronous_commit", "SELECT current_setting('synchronous_commit') AS value"),
                ("wal_sync_method", "SELECT current_setting('wal_sync_method') AS value"),
                ("commit_delay", "SELECT current_setting('commit_delay') AS value"),
            ],
            Conn::Sqlite(_) => &[
                ("SQLite", "SELECT sqlite_version() AS value"),
                ("journal_mode", "SELECT journal_mode AS value FROM pragma_journal_mode()"),
                ("synchronous", "SELECT CAST(synchronous AS TEXT) AS value FROM pragma_synchronous()"),
                ("busy_timeout", "SELECT CAST(timeout AS TEXT) AS value FROM pragma_busy_timeout()"),
            ],
        };
        let mut parts = Vec::new();
        for (name, sql) in queries {
            let query = diesel::sql_query(*sql);
            let setting: Setting = match self {
                Conn::Pg(conn) => query.get_result(conn)?,
                Conn::Sqlite(conn) => query.get_result(conn)?,
            };
            // SQLite's synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA.
            let value = match (*name, setting.value.as_str()) {
                ("synchronous", "2") => "FULL".to_owned(),
                ("synchronous", "1") => "NORMAL (no fsync per commit!)".to_owned(),
                _ => setting.value,
            };
            parts.push(format!("{name} {value}"));
        }
        Ok(parts.join(", "))
    }
}
