//! The audit service on its own (as in Kubernetes). Configuration: environment variables, see README.
//! `immilink-audit dispose` runs the disposal job once and exits (the Kubernetes CronJob);
//! `immilink-audit verify-bundle FILE [--log-key VKEY] [--witness-key VKEY]...` checks an export
//! offline and exits non-zero naming the first failure.

use immilink_shared::clock::system_clock;
use immilink_shared::telemetry;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = telemetry::init("immilink-audit");
    if std::env::args().nth(1).as_deref() == Some("verify-bundle") {
        // Offline: no settings, no database, no network.
        std::process::exit(immilink_audit::verify_bundle_command(std::env::args().skip(2).collect()));
    }
    let settings = immilink_audit::settings_from_env(None)?;
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {}
        Some("dispose") => {
            let done = immilink_audit::dispose_command(settings, system_clock()).await?;
            println!("disposed {} records, {} held", done.disposed, done.held);
            return Ok(());
        }
        Some(other) => {
            anyhow::bail!("unknown command {other:?}: use `serve` (default), `dispose` or `verify-bundle FILE`")
        }
    }
    let running = immilink_audit::Application::build(settings, system_clock()).await?;
    immilink_shared::server::run_until_stopped(running, telemetry).await?;
    Ok(())
}
