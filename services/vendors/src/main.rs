//! The vendors service on its own (as in Kubernetes). Configuration: environment variables, see README.

use immilink_shared::clock::system_clock;
use immilink_shared::telemetry;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = telemetry::init("immilink-vendors");
    let settings = immilink_vendors::settings_from_env(None)?;
    let running = immilink_vendors::Application::build(settings, system_clock()).await?;
    immilink_shared::server::run_until_stopped(running, telemetry).await?;
    Ok(())
}
