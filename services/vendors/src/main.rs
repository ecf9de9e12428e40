//! The vendors service on its own (as in Kubernetes). Configuration: environment variables, see README.
//! `immilink-vendors sweep` runs the vendors sweep once (attestations and audit findings fallen
//! overdue, R-VEN-07 and R-VEN-05) and exits (the Kubernetes CronJob); `immilink-vendors migrate`
//! runs the pending migrations and exits (the Kubernetes migrate Job).

use immilink_shared::clock::system_clock;
use immilink_shared::telemetry;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = telemetry::init("immilink-vendors");
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        // Only the database URL is read: the migrate Job holds no other secret.
        println!(
            "{}",
            immilink_shared::server::migrate_command(immilink_vendors::SERVICE, &immilink_vendors::MIGRATIONS)?
        );
        return Ok(());
    }
    let settings = immilink_vendors::settings_from_env(None)?;
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {}
        Some("sweep") => {
            let run = immilink_vendors::sweep_command(settings, system_clock()).await?;
            println!("{}", serde_json::to_string(&run)?);
            return Ok(());
        }
        Some(other) => anyhow::bail!("unknown command {other:?}: use `serve` (default), `sweep` or `migrate`"),
    }
    let running = immilink_vendors::Application::build(settings, system_clock()).await?;
    immilink_shared::server::run_until_stopped(running, telemetry).await?;
    Ok(())
}
