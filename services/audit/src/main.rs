//! The audit service on its own (as in Kubernetes). Configuration: environment variables, see README.

use immilink_shared::clock::system_clock;
use immilink_shared::telemetry;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = telemetry::init("immilink-audit");
    let settings = immilink_audit::settings_from_env(None)?;
    let running = immilink_audit::Application::build(settings, system_clock()).await?;
    immilink_shared::server::run_until_stopped(running, telemetry).await?;
    Ok(())
}
