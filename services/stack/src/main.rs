//! `cargo run --release`: the whole immilink stack on this machine.

use immilink_shared::clock::{system_clock, OffsetClock, SharedClock};
use immilink_shared::telemetry;
use immilink_stack::{start, StackConfig};

const DEMO_USERS: &[(&str, &str)] = &[
    ("tpe.caseworker", "TPE-SW 臺北市政府社會局 caseworker"),
    ("tpe.supervisor", "TPE-SW unit supervisor"),
    ("tpe.manager", "TPE-SW account manager"),
    ("hln.clerk", "HLN-HR 花蓮縣戶政事務所 caseworker"),
    ("hln.supervisor", "HLN-HR unit supervisor"),
    ("hln.manager", "HLN-HR account manager"),
];

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = telemetry::init("immilink");
    // Listen before anything runs: a SIGTERM from now on stops the stack gracefully.
    let stop = immilink_shared::server::ShutdownSignal::listen();
    let config = StackConfig::from_env()?;
    let demo = config.identity.demo;
    let clock = demo_clock(demo)?;
    let stack = start(config, clock).await?;
    println!("immilink is running");
    println!("  gateway   {}   (API docs: {}/docs/)", stack.gateway_url, stack.gateway_url);
    println!("  identity  {}", stack.identity_url);
    println!("  broker    {}", stack.broker_url);
    println!("  audit     {}", stack.audit_url);
    println!("  vendors   {}", stack.vendors_url);
    println!("  nia-mock  {}", stack.nia_url);
    if demo {
        println!("demo users (password immilink-demo, certificate DEMO-<username>, from 127.0.0.1):");
        for (username, what) in DEMO_USERS {
            println!("  {username:<16} {what}");
        }
    }
    println!("Ctrl-C (or SIGTERM) stops it.");
    stop.received().await;
    stack.stop().await;
    telemetry.shutdown().await;
    Ok(())
}

/// `IMMILINK_DEMO_DAYS_AHEAD=N`: the demo runs as if it were N days later (to see the monthly review
/// open on the 1st, or a deadline pass, without waiting). Refused outside the demo mode: a real
/// deployment's clock is the wall clock.
fn demo_clock(demo: bool) -> anyhow::Result<SharedClock> {
    let Some(days) = std::env::var("IMMILINK_DEMO_DAYS_AHEAD").ok().filter(|v| !v.trim().is_empty()) else {
        return Ok(system_clock());
    };
    let days: i64 = days
        .trim()
        .parse()
        .ok()
        .filter(|d| (0..=400).contains(d))
        .ok_or_else(|| anyhow::anyhow!("IMMILINK_DEMO_DAYS_AHEAD must be a number of days from 0 to 400"))?;
    anyhow::ensure!(demo, "IMMILINK_DEMO_DAYS_AHEAD is for the demo mode only (IMMILINK_DEMO=true)");
    println!("demo clock: {days} days ahead of the wall clock");
    Ok(std::sync::Arc::new(OffsetClock { offset: chrono::Duration::days(days) }))
}
