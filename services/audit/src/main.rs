//! The audit service on its own (as in Kubernetes). Configuration: environment variables, see README.
//! `immilink-audit dispose` runs the disposal job once and exits (the Kubernetes CronJob);
//! `immilink-audit oversight` runs the oversight job once (last month's reviews opened, overdue
//! reviews and findings flagged) and exits (another CronJob);
//! `immilink-audit verify-bundle FILE [--log-key VKEY] [--witness-key VKEY]...` checks an export
//! offline and exits non-zero naming the first failure;
//! `immilink-audit migrate` runs the pending migrations and exits (the Kubernetes migrate Job).

use immilink_shared::clock::system_clock;
use immilink_shared::telemetry;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = telemetry::init("immilink-audit");
    if std::env::args().nth(1).as_deref() == Some("verify-bundle") {
        // Offline: no settings, no database, no network.
        std::process::exit(immilink_audit::verify_bundle_command(std::env::args().skip(2).collect()));
    }
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        // Only the database URL is read: the migrate Job holds no other secret.
        println!("{}", immilink_shared::server::migrate_command(immilink_audit::SERVICE, &immilink_audit::MIGRATIONS)?);
        return Ok(());
    }
    let settings = immilink_audit::settings_from_env(None)?;
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {}
        Some("dispose") => {
            let done = immilink_audit::dispose_command(settings, system_clock()).await?;
            println!("disposed {} records, {} held", done.disposed, done.held);
            return Ok(());
        }
        Some("oversight") => {
            let run = immilink_audit::oversight_command(settings, system_clock()).await?;
            let reviews = &run.reviews;
            println!(
                "month {}: {} review reports opened, {} lookups added, {} reviews and {} findings flagged overdue",
                reviews.month,
                reviews.reports_opened,
                reviews.entries_added,
                reviews.overdue_flagged,
                run.overdue_findings
            );
            return Ok(());
        }
        Some(other) => {
            anyhow::bail!(
                "unknown command {other:?}: use `serve` (default), `dispose`, `oversight`, `migrate` or `verify-bundle FILE`"
            )
        }
    }
    let running = immilink_audit::Application::build(settings, system_clock()).await?;
    immilink_shared::server::run_until_stopped(running, telemetry).await?;
    Ok(())
}
