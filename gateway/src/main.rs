//! The gateway on its own (as in Kubernetes). Configuration: environment variables, see README.

use immilink_shared::telemetry;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = telemetry::init("immilink-gateway");
    let settings = immilink_gateway::Settings::from_env()?;
    let running = immilink_gateway::Application::build(settings).await?;
    immilink_shared::server::run_until_stopped(running, telemetry).await?;
    Ok(())
}
