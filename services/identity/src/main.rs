//! The identity service on its own (as in Kubernetes). Configuration: environment variables, see README.
//! `immilink-identity link-sweep` runs the agency-link sweep once (the clock rules of seed 003) and
//! exits (the Kubernetes CronJob); `immilink-identity migrate` runs the pending migrations and exits
//! (the Kubernetes migrate Job).

use immilink_shared::clock::system_clock;
use immilink_shared::telemetry;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = telemetry::init("immilink-identity");
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        // Only the database URL is read: the migrate Job holds no other secret.
        println!(
            "{}",
            immilink_shared::server::migrate_command(immilink_identity::SERVICE, &immilink_identity::MIGRATIONS)?
        );
        return Ok(());
    }
    let settings = immilink_identity::Settings::from_env()?;
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {}
        Some("link-sweep") => {
            let run = immilink_identity::link_sweep_command(settings, system_clock()).await?;
            println!("{}", serde_json::to_string(&run)?);
            return Ok(());
        }
        Some(other) => anyhow::bail!("unknown command {other:?}: use `serve` (default), `link-sweep` or `migrate`"),
    }
    let running = immilink_identity::Application::build(settings, system_clock()).await?;
    immilink_shared::server::run_until_stopped(running, telemetry).await?;
    Ok(())
}
