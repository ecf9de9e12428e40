//! Migrations as Kubernetes runs them: `immilink-<service> migrate` ([`Db::migrate`]) before the
//! services start, several replicas (or Jobs) migrating the same database at once, and services that
//! do not migrate at start (`IMMILINK_MIGRATE_ON_START=false`) refusing a schema behind them.

use std::path::PathBuf;
use std::sync::{Arc, Barrier};

use diesel::RunQueryDsl;
use immilink_shared::db::{Backend, Db, DbError, DbSettings, Migrations};
use immilink_shared::testing::TestDb;
use immilink_stack::{audit, broker, identity, start, vendors, StackConfig};
use serde_json::json;

/// The services with a database, and the migrations each binary embeds.
fn services() -> [(&'static str, &'static Migrations); 4] {
    [
        ("identity", &identity::MIGRATIONS),
        ("broker", &broker::MIGRATIONS),
        ("audit", &audit::MIGRATIONS),
        ("vendors", &vendors::MIGRATIONS),
    ]
}

/// The migrations of `service` for `backend` as the repository holds them (one folder each), sorted.
fn migration_folders(service: &str, backend: Backend) -> Vec<String> {
    let backend = match backend {
        Backend::Postgres => "postgres",
        Backend::Sqlite => "sqlite",
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../migrations").join(service).join(backend);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.expect("a directory entry"))
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(!names.is_empty(), "{} holds no migration", dir.display());
    names
}

/// Diesel records a migration by the version its folder name starts with (the date and number,
/// without punctuation).
fn version_of(folder: &str) -> String {
    folder.split('_').next().unwrap_or(folder).chars().filter(char::is_ascii_digit).collect()
}

#[derive(diesel::QueryableByName)]
struct Applied {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}

/// Every row of diesel's migrations table, in order.
fn recorded_versions(db: &Db) -> Vec<String> {
    let mut conn = db.get().expect("a connection");
    let rows: Vec<Applied> = diesel::sql_query("SELECT version FROM __diesel_schema_migrations ORDER BY version")
        .load(&mut *conn)
        .expect("diesel's migrations table");
    rows.into_iter().map(|row| row.version).collect()
}

fn without_migrating(service: &str, url: &str) -> DbSettings {
    let mut settings = DbSettings::for_service(service, url);
    settings.migrate_on_start = false;
    settings
}

/// Four replicas of each of the four services start at the same instant on fresh databases and all
/// migrate: every run succeeds, exactly one per database applies the migrations (the others wait for
/// it, then find nothing left), and each migration is recorded once. On PostgreSQL the runs are
/// serialised by the advisory lock, on SQLite by the write lock of the run's transaction; without
/// them the replicas that lost the race fail on tables that already exist.
#[test]
fn replicas_migrating_one_database_at_once_all_succeed_and_apply_each_migration_once() {
    const REPLICAS: usize = 4;
    let databases: Vec<(&str, &Migrations, TestDb)> =
        services().into_iter().map(|(service, migrations)| (service, migrations, TestDb::new())).collect();
    let start_together = Arc::new(Barrier::new(databases.len() * REPLICAS));
    let runs: Vec<_> = databases
        .iter()
        .flat_map(|(service, migrations, db)| {
            let start_together = &start_together;
            (0..REPLICAS).map(move |_| {
                let settings = DbSettings::for_service(service, db.url());
                let start_together = Arc::clone(start_together);
                let migrations: &'static Migrations = migrations;
                let service = service.to_string();
                std::thread::spawn(move || {
                    start_together.wait();
                    (service, Db::migrate(&settings, migrations))
                })
            })
        })
        .collect();
    let results: Vec<(String, Result<Vec<String>, DbError>)> =
        runs.into_iter().map(|run| run.join().expect("a migrating replica panicked")).collect();

    for (service, migrations, test_db) in &databases {
        let backend = if test_db.is_postgres() { Backend::Postgres } else { Backend::Sqlite };
        let expected: Vec<String> = migration_folders(service, backend).iter().map(|f| version_of(f)).collect();
        let mut applied_by_some = Vec::new();
        for (_, result) in results.iter().filter(|(name, _)| name == service) {
            match result {
                Ok(applied) if applied.is_empty() => {}
                Ok(applied) => applied_by_some.push(applied.clone()),
                Err(err) => panic!("a replica of {service} failed to migrate: {err}"),
            }
        }
        assert_eq!(applied_by_some.len(), 1, "{service}: one replica applies, the others find nothing left");
        assert_eq!(applied_by_some[0], expected, "{service}: every migration, in order");

        let db = Db::connect(&without_migrating(service, test_db.url()), migrations)
            .unwrap_or_else(|err| panic!("{service}: the migrated database opens without migrating: {err}"));
        assert_eq!(recorded_versions(&db), expected, "{service}: each migration recorded once");
        let again = Db::migrate(&DbSettings::for_service(service, test_db.url()), migrations).expect("a later run");
        assert!(again.is_empty(), "{service}: a later run applies nothing: {again:?}");
    }
}

/// What Kubernetes does: the services run with `IMMILINK_MIGRATE_ON_START=false`. Before the migrate
/// Jobs have run, each refuses its database naming every missing migration and the command to run,
/// and changes nothing (the later migrate run still applies all of them); once migrated, the whole
/// stack starts on those databases without migrating and a demo user logs in through the gateway.
#[actix_web::test]
async fn services_that_do_not_migrate_at_start_refuse_an_unmigrated_database_and_start_once_migrated() {
    let databases = [TestDb::new(), TestDb::new(), TestDb::new(), TestDb::new()];
    let backend = if databases[0].is_postgres() { Backend::Postgres } else { Backend::Sqlite };
    for ((service, migrations), test_db) in services().into_iter().zip(&databases) {
        let folders = migration_folders(service, backend);
        let refused = Db::connect(&without_migrating(service, test_db.url()), migrations).err();
        let Some(DbError::SchemaBehind(message)) = refused else {
            panic!("{service}: an unmigrated database must be refused as behind, got {refused:?}");
        };
        assert!(message.contains(&format!("`immilink-{service} migrate`")), "{service}: names the command: {message}");
        assert!(message.starts_with(&format!("{} migration(s) not applied", folders.len())), "{message}");
        for folder in &folders {
            assert!(message.contains(folder.as_str()), "{service}: names {folder}: {message}");
        }
        let applied = Db::migrate(&DbSettings::for_service(service, test_db.url()), migrations)
            .unwrap_or_else(|err| panic!("{service}: migrate: {err}"));
        let expected: Vec<String> = folders.iter().map(|f| version_of(f)).collect();
        assert_eq!(applied, expected, "{service}: the refusal applied nothing, the migrate run all");
    }

    let keys = tempfile::tempdir().expect("a key folder");
    let urls = [databases[0].url(), databases[1].url(), databases[2].url(), databases[3].url()];
    let mut config = StackConfig::for_tests(urls, keys.path());
    for settings in [
        &mut config.identity.service.database,
        &mut config.broker.service.database,
        &mut config.audit.service.database,
        &mut config.vendors.service.database,
    ] {
        settings.migrate_on_start = false;
    }
    let stack = start(config, immilink_shared::clock::system_clock()).await.expect("the migrated stack starts");
    let login = crate::harness::client(None)
        .post(format!("{}/v1/auth/login", stack.gateway_url))
        .json(&json!({"username": "tpe.caseworker", "password": "immilink-demo", "certificate_serial": "DEMO-tpe.caseworker"}))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(login.status(), 200);
    stack.stop().await;
}
