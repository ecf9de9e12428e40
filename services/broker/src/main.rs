//! The broker service on its own (as in Kubernetes). Configuration: environment variables, see README.
//! `immilink-broker migrate` runs the pending migrations and exits (the Kubernetes migrate Job).

use immilink_shared::clock::system_clock;
use immilink_shared::telemetry;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = telemetry::init("immilink-broker");
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        // Only the database URL is read: the migrate Job holds no other secret.
        println!(
            "{}",
            immilink_shared::server::migrate_command(immilink_broker::SERVICE, &immilink_broker::MIGRATIONS)?
        );
        return Ok(());
    }
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {}
        Some(other) => anyhow::bail!("unknown command {other:?}: use `serve` (default) or `migrate`"),
    }
    let settings = immilink_broker::Settings::from_env()?;
    let running = immilink_broker::Application::build(settings, system_clock()).await?;
    immilink_shared::server::run_until_stopped(running, telemetry).await?;
    Ok(())
}
