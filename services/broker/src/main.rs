//! The broker service on its own (as in Kubernetes). Configuration: environment variables, see README.

use immilink_shared::clock::system_clock;
use immilink_shared::telemetry;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = telemetry::init("immilink-broker");
    let settings = immilink_broker::Settings::from_env()?;
    let running = immilink_broker::Application::build(settings, system_clock()).await?;
    immilink_shared::server::run_until_stopped(running, telemetry).await?;
    Ok(())
}
