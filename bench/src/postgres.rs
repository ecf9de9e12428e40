//! Throwaway PostgreSQL databases, one per service as in production, created on the server the
//! admin URL names (`BENCH_PG_URL`, default `postgres://postgres@127.0.0.1:5432`, trust auth) and
//! dropped again when the handle is dropped, also after a failed run.

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432";

/// The admin URL from `BENCH_PG_URL`, else the default.
pub fn admin_url() -> String {
    std::env::var("BENCH_PG_URL").ok().filter(|u| !u.trim().is_empty()).unwrap_or_else(|| DEFAULT_ADMIN_URL.into())
}

/// Databases created for one run, dropped on drop.
pub struct Throwaway {
    admin_url: String,
    names: Vec<String>,
    /// One URL per service, in the order given to [`Throwaway::create`].
    pub urls: [String; 4],
}

impl Throwaway {
    /// Creates `immilink_bench_<run>_<service>` for each service. Fails at once (in seconds, not at
    /// libpq's endless default) when the server does not answer.
    pub fn create(admin_url: &str, services: [&str; 4]) -> anyhow::Result<Self> {
        let mut admin = connect(admin_url)?;
        let run = uuid::Uuid::now_v7().simple().to_string();
        let run = &run[run.len() - 8..];
        let mut created = Self { admin_url: admin_url.to_owned(), names: Vec::new(), urls: Default::default() };
        for (slot, service) in services.iter().enumerate() {
            let name = format!("immilink_bench_{run}_{service}");
            admin
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .with_context(|| format!("CREATE DATABASE {name}"))?;
            created.urls[slot] = database_url(admin_url, &name);
            created.names.push(name);
        }
        Ok(created)
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        let Ok(mut admin) = connect(&self.admin_url) else {
            eprintln!("could not reconnect to drop the benchmark databases {}", self.names.join(", "));
            return;
        };
        for name in &self.names {
            // FORCE (PostgreSQL 13+) ends the stack's pooled connections should any be left.
            let dropped = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .or_else(|_| admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")));
            if let Err(err) = dropped {
                eprintln!("could not drop the benchmark database {name}: {err}");
            }
        }
    }
}

/// A connection to the admin URL, giving up after 5 seconds.
pub fn connect(admin_url: &str) -> anyhow::Result<PgConnection> {
    let separator = if admin_url.contains('?') { '&' } else { '?' };
    let url = format!("{admin_url}{separator}connect_timeout=5");
    PgConnection::establish(&url).with_context(|| format!("PostgreSQL at {} does not answer", redact(admin_url)))
}

/// The URL of database `name` on the server of `admin_url` (same user, host, port and parameters).
pub fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin_url, String::new()),
    };
    let authority_end = base
        .find("://")
        .map(|scheme| scheme + 3)
        .and_then(|start| base[start..].find('/').map(|slash| start + slash).or(Some(base.len())));
    let base = &base[..authority_end.unwrap_or(base.len())];
    format!("{base}/{name}{query}")
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{}://{user}{hidden}{}", &url[..scheme], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_replace_only_the_path() {
        assert_eq!(database_url("postgres://postgres@127.0.0.1:5432", "b"), "postgres://postgres@127.0.0.1:5432/b");
        assert_eq!(database_url("postgres://u@h:5432/postgres", "b"), "postgres://u@h:5432/b");
        assert_eq!(
            database_url("postgresql://u:p@h/postgres?sslmode=disable", "b"),
            "postgresql://u:p@h/b?sslmode=disable"
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("postgres://postgres@127.0.0.1:5432"), "postgres://postgres@127.0.0.1:5432");
    }
}
