//! `cargo run --release`: the whole immilink stack on this machine.

use immilink_shared::clock::system_clock;
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
    let stack = start(config, system_clock()).await?;
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
