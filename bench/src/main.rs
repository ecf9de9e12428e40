//! `cargo run --release -p immilink-bench --bin gateway-bench`
//!
//! The gateway's per-request token and session check, beside the proxy an operations team would
//! otherwise put in front: the same trivial authenticated endpoint (the broker's
//! `GET /v1/catalogue/purposes`, which verifies the token itself) called directly, through Debian's
//! nginx (`proxy_pass`, keepalive to the upstream, no auth) and through the gateway (token signature +
//! session liveness + forwarding), all with wrk in one run. Then how fast a logout takes effect at the
//! gateway under load, how many logins per second identity admits (argon2id), and whether a login
//! storm starves lookups. Prints ratios measured in this run; exits 0 whether or not the targets are met.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use immilink_bench::clients::{self, Samples};
use immilink_bench::machine::CpuSnapshot;
use immilink_bench::nginx::{Nginx, NGINX};
use immilink_bench::report::{self, median, min_max, ms, verdict};
use immilink_bench::stack::{self, port_of, Tuning};
use immilink_bench::{env_number, wrk};
use immilink_shared::clock::system_clock;
use immilink_stack::RunningStack;

/// The demo caseworker: the user of every token, of the revocation check and of the login storm.
const USER: &str = "tpe.caseworker";
/// A second demo user whose session the login storm cannot supersede: the lookups during the storm.
const OTHER_USER: &str = "hln.clerk";
const ENDPOINT: &str = "/v1/catalogue/purposes";
const TARGET_RATIO: f64 = 0.8;
const TARGET_REVOCATION: Duration = Duration::from_secs(1);
const NGINX_WORKERS: usize = 2;
const WARM_UP: Duration = Duration::from_secs(3);
/// Above this share of the CPUs taken by other processes, a measurement is flagged as unreliable.
const NOISY: f64 = 0.05;
const REVOCATION_TRIALS: u32 = 6;
const LOGIN_CLIENTS: usize = 8;
const STORM: Duration = Duration::from_secs(5);
const LOOKUP_CLIENTS: usize = 4;
const LOOKUP_PERIOD: Duration = Duration::from_millis(10);
/// Lookups count as starved by a login storm when their median gets this many times slower (or any fails).
const STARVED_MEDIAN: f64 = 10.0;

/// Knobs: `BENCH_DURATION_SECS` (default 10), `BENCH_ROUNDS` (3), `BENCH_CONNECTIONS` (64),
/// `BENCH_THREADS` (2), and the stack's own `IMMILINK_WORKERS` (2), `IMMILINK_SESSION_CACHE_MS` (500)
/// and `IMMILINK_LOGIN_CONCURRENCY` (1), with production's defaults.
struct Options {
    duration: Duration,
    rounds: usize,
    connections: u32,
    threads: u32,
    tuning: Tuning,
}

impl Options {
    fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            duration: Duration::from_secs(env_number("BENCH_DURATION_SECS", 10)?.max(1)),
            connections: env_number("BENCH_CONNECTIONS", 64)? as u32,
            threads: env_number("BENCH_THREADS", 2)? as u32,
            rounds: env_number("BENCH_ROUNDS", 3)?.max(1) as usize,
            tuning: Tuning::from_env()?,
        })
    }
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    if let Some(missing) = missing_tools() {
        eprintln!("gateway-bench needs {missing}, which is not installed.");
        eprintln!("Install nginx and wrk with:  bash bench/setup.sh   (apt-get; sudo when not root)");
        std::process::exit(2);
    }
    let options = Options::from_env()?;
    print_header(&options);

    let telemetry = immilink_shared::telemetry::init_with_default_filter("immilink-bench", "error");
    let data = tempfile::Builder::new().prefix("immilink-bench-").tempdir()?;
    let stack = start_stack(data.path(), &options).await?;
    println!(
        "stack: gateway {}, identity {}, broker {} (SQLite files in a temp folder)",
        stack.gateway_url, stack.identity_url, stack.broker_url
    );
    let result = run(&stack, &options).await;
    stack.stop().await;
    telemetry.shutdown().await;
    drop(data);
    result
}

/// Which of nginx and wrk is missing, if any.
fn missing_tools() -> Option<String> {
    match (Path::new(NGINX).is_file(), report::on_path("wrk")) {
        (true, true) => None,
        (false, true) => Some(format!("nginx ({NGINX})")),
        (true, false) => Some("wrk".into()),
        (false, false) => Some(format!("nginx ({NGINX}) and wrk")),
    }
}

fn print_header(options: &Options) {
    println!("== immilink gateway-bench ==");
    report::print_machine();
    println!("tools:    {}; {}", report::first_line(NGINX, &["-v"]), report::first_line("wrk", &["-v"]));
    options.tuning.print();
    println!("nginx:    worker_processes {NGINX_WORKERS}");
    println!(
        "load:     wrk -t{} -c{} -d{}s --latency, {} rounds, {}s warm-up per target; everything shares this \
         machine's CPUs",
        options.threads,
        options.connections,
        options.duration.as_secs(),
        options.rounds,
        WARM_UP.as_secs()
    );
    report::print_load_average();
    println!();
}

async fn start_stack(dir: &Path, options: &Options) -> anyhow::Result<RunningStack> {
    let config = stack::config(&stack::sqlite_urls(dir), &dir.join("keys"), &options.tuning);
    immilink_stack::start(config, system_clock()).await.context("starting the stack")
}

/// One target of the throughput comparison and what each round measured there.
struct Target {
    name: &'static str,
    url: String,
    rounds: Vec<Measured>,
}

struct Measured {
    report: wrk::Report,
    /// Share of the CPUs that processes outside the benchmark took meanwhile.
    others: f64,
}

impl Target {
    fn median(&self, value: impl Fn(&wrk::Report) -> f64) -> f64 {
        median(self.rounds.iter().map(|m| value(&m.report)).collect())
    }

    fn rate(&self, round: usize) -> f64 {
        self.rounds[round].report.requests_per_sec
    }
}

async fn run(stack: &RunningStack, options: &Options) -> anyhow::Result<()> {
    let http = immilink_shared::tls::outbound_builder().build()?;
    let token = clients::login(&http, &stack.gateway_url, USER).await?;
    let nginx = Nginx::start(port_of(&stack.broker_url)?, NGINX_WORKERS).await?;

    let mut targets = [
        ("direct", format!("{}{ENDPOINT}", stack.broker_url)),
        ("nginx", nginx.url(ENDPOINT)),
        ("gateway", format!("{}{ENDPOINT}", stack.gateway_url)),
    ]
    .map(|(name, url)| Target { name, url, rounds: Vec::new() });
    for target in &targets {
        let status = clients::get_status(&http, &target.url, &token).await?;
        if status != 200 {
            bail!("{}: GET {} answered {status} before the load started", target.name, target.url);
        }
    }
    let load = |url: &str, duration: Duration| wrk::Load {
        url: url.to_owned(),
        request: wrk::Request::BearerGet(token.clone()),
        threads: options.threads,
        connections: options.connections,
        duration,
    };

    println!(
        "== 1. Throughput: {ENDPOINT} with a bearer token; {} rounds of direct, nginx, gateway ==",
        options.rounds
    );
    for target in &targets {
        println!("  {:<8} {}", target.name, load(&target.url, options.duration).describe());
        load(&target.url, WARM_UP).run().await.with_context(|| format!("warming up {}", target.name))?;
    }
    for round in 0..options.rounds {
        for target in targets.iter_mut() {
            let before = CpuSnapshot::take();
            let report = load(&target.url, options.duration)
                .run()
                .await
                .with_context(|| format!("measuring {}", target.name))?;
            let others = CpuSnapshot::take().others_since(&before);
            target.rounds.push(Measured { report, others });
        }
        let [direct, nginx, gateway] = &targets;
        println!(
            "  round {}: direct {:.0}, nginx {:.0}, gateway {:.0} req/s; gateway/nginx {:.2}; other processes took \
             {:.0}% / {:.0}% / {:.0}% of the CPUs",
            round + 1,
            direct.rate(round),
            nginx.rate(round),
            gateway.rate(round),
            gateway.rate(round) / nginx.rate(round),
            direct.rounds[round].others * 100.0,
            nginx.rounds[round].others * 100.0,
            gateway.rounds[round].others * 100.0
        );
    }
    drop(nginx);

    let direct = targets[0].median(|r| r.requests_per_sec);
    println!();
    println!("  medians over the rounds:");
    println!(
        "  {:<8} {:>10} {:>11} {:>11} {:>10} {:>13}  {:>16}",
        "target", "req/s", "p50", "p99", "requests", "non-2xx/err", "ratio to direct"
    );
    for target in &targets {
        let (non_2xx, errors, requests) = target
            .rounds
            .iter()
            .fold((0, 0, 0), |(n, e, r), m| (n + m.report.non_2xx, e + m.report.socket_errors, r + m.report.requests));
        let rate = target.median(|r| r.requests_per_sec);
        println!(
            "  {:<8} {:>10.0} {:>11} {:>11} {:>10} {:>13}  {:>16.2}",
            target.name,
            rate,
            ms(Duration::from_secs_f64(target.median(|r| r.p50.as_secs_f64()))),
            ms(Duration::from_secs_f64(target.median(|r| r.p99.as_secs_f64()))),
            requests,
            format!("{non_2xx}/{errors}"),
            rate / direct
        );
        if non_2xx > 0 || errors > 0 {
            println!(
                "  WARNING: {} ({}) had {non_2xx} non-2xx answers and {errors} socket errors: its rate is not all \
                 successes",
                target.name, target.url
            );
        }
    }
    let [_, nginx_target, gateway_target] = &targets;
    let ratios: Vec<f64> = (0..options.rounds).map(|r| gateway_target.rate(r) / nginx_target.rate(r)).collect();
    let headline = median(ratios.clone());
    let (lowest, highest) = min_max(&ratios);
    let nginx_rps = nginx_target.median(|r| r.requests_per_sec);
    let gateway_rps = gateway_target.median(|r| r.requests_per_sec);
    println!();
    println!(
        "  HEADLINE gateway / nginx = {headline:.2} (median of the rounds' ratios, range {lowest:.2}-{highest:.2}; \
         target >= {TARGET_RATIO:.2}): {}",
        verdict(headline >= TARGET_RATIO),
    );
    println!(
        "  p99: gateway {} vs nginx {} vs direct {}",
        ms(Duration::from_secs_f64(gateway_target.median(|r| r.p99.as_secs_f64()))),
        ms(Duration::from_secs_f64(nginx_target.median(|r| r.p99.as_secs_f64()))),
        ms(Duration::from_secs_f64(targets[0].median(|r| r.p99.as_secs_f64())))
    );
    let busiest = targets.iter().flat_map(|t| t.rounds.iter().map(|m| m.others)).fold(0.0, f64::max);
    if busiest > NOISY {
        println!(
            "  WARNING: other processes took up to {:.0}% of the CPUs during a measurement (a build beside the \
             benchmark?): ratios from such rounds are unreliable; rerun on a quiet machine",
            busiest * 100.0
        );
    }
    println!();

    let cpus = immilink_bench::machine::cpus() as f64;
    let budget = |rps: f64| cpus * 1e6 / rps;
    let verify = verify_cost(&http, &stack.identity_url, &token).await?;
    println!(
        "  where the time goes: every process shares {cpus} CPUs, so a request costs about {:.0} CPU-us direct, \
         {:.0} via nginx, {:.0} via the gateway:",
        budget(direct),
        budget(nginx_rps),
        budget(gateway_rps)
    );
    println!(
        "    nginx adds {:.0} us per request, the gateway {:.0} us; one token verification (EdDSA signature + \
         claims, which the gateway and then the broker each do) takes {:.1} us on one thread here",
        budget(nginx_rps) - budget(direct),
        budget(gateway_rps) - budget(direct),
        verify.as_secs_f64() * 1e6
    );
    println!();

    println!("== 2. Revocation under load: logout, then poll the gateway every 10 ms until it answers 401 ==");
    println!(
        "  (a fresh session per trial, wrk -c16 on the gateway with its token; logout through the gateway, \
         or at identity directly as through another gateway replica)"
    );
    let mut worst = Duration::ZERO;
    let mut revocation_ok = true;
    for trial in 0..REVOCATION_TRIALS {
        // Log out at a different moment of the session caches' cycle each time.
        let delay = Duration::from_millis(1000 + 137 * u64::from(trial));
        let via = if trial % 2 == 0 { LogoutVia::Gateway } else { LogoutVia::Identity };
        match revocation_trial(&http, stack, options, delay, via).await {
            Ok(r) => {
                worst = worst.max(r.refused_after);
                println!(
                    "  trial {} (logout via {:<8}): logout {} -> refused {} after the logout answer ({} after \
                     sending it); {} polls still served; wrk meanwhile {:.0} req/s, {} non-2xx",
                    trial + 1,
                    via.name(),
                    r.logout_status,
                    ms(r.refused_after),
                    ms(r.refused_after_sent),
                    r.served_after_logout,
                    r.load.requests_per_sec,
                    r.load.non_2xx
                );
                revocation_ok &= r.logout_status == 204;
            }
            Err(err) => {
                revocation_ok = false;
                println!("  trial {} (logout via {}): FAILED: {err:#}", trial + 1, via.name());
            }
        }
    }
    revocation_ok &= worst <= TARGET_REVOCATION;
    println!(
        "  worst of {REVOCATION_TRIALS}: {} (target <= {} ms): {}",
        ms(worst),
        TARGET_REVOCATION.as_millis(),
        verdict(revocation_ok)
    );
    println!();

    println!(
        "== 3. Logins (argon2id): {LOGIN_CLIENTS} clients logging {USER} in back to back for {}s ==",
        STORM.as_secs()
    );
    let storm_client = immilink_shared::tls::outbound_builder().build()?;
    let logins = clients::login_storm(&storm_client, &stack.gateway_url, USER, LOGIN_CLIENTS, STORM).await;
    print_logins(&logins);
    println!();

    println!(
        "== 4. Login storm vs lookups: {LOOKUP_CLIENTS} clients, one GET {ENDPOINT} each every {} ms via the \
         gateway ({OTHER_USER}) ==",
        LOOKUP_PERIOD.as_millis()
    );
    let lookup_token = clients::login(&http, &stack.gateway_url, OTHER_USER).await?;
    let lookup_client = immilink_shared::tls::outbound_builder().build()?;
    let lookup_url = format!("{}{ENDPOINT}", stack.gateway_url);
    let before = CpuSnapshot::take();
    let alone =
        clients::paced_gets(&lookup_client, &lookup_url, &lookup_token, LOOKUP_CLIENTS, LOOKUP_PERIOD, STORM).await;
    let between = CpuSnapshot::take();
    let (during, storm) = tokio::join!(
        clients::paced_gets(&lookup_client, &lookup_url, &lookup_token, LOOKUP_CLIENTS, LOOKUP_PERIOD, STORM),
        clients::login_storm(&storm_client, &stack.gateway_url, USER, LOGIN_CLIENTS, STORM),
    );
    let others = [between.others_since(&before), CpuSnapshot::take().others_since(&between)];
    print_lookups("alone", &alone);
    print_lookups("during storm", &during);
    println!(
        "  other processes took {:.0}% of the CPUs alone, {:.0}% during the storm{}",
        others[0] * 100.0,
        others[1] * 100.0,
        if others.iter().any(|o| *o > NOISY) { " (unreliable comparison: rerun on a quiet machine)" } else { "" }
    );
    println!(
        "  storm meanwhile: {:.1} logins/s, p99 {} ({})",
        storm.rate(200),
        ms(storm.percentile(99.0)),
        storm.describe_statuses()
    );
    let p99_ratio = during.percentile(99.0).as_secs_f64() / alone.percentile(99.0).as_secs_f64().max(1e-9);
    let p50_ratio = during.percentile(50.0).as_secs_f64() / alone.percentile(50.0).as_secs_f64().max(1e-9);
    // Starved: lookups failing, or most of them (the median) waiting behind logins. A longer tail alone
    // is reported, not judged: its cause is shown by the count of requests that took >= 40 ms.
    let not_starved = during.failures(200) == 0 && p50_ratio <= STARVED_MEDIAN;
    println!(
        "  during / alone: p50 x{p50_ratio:.2}, p99 x{p99_ratio:.2}; requests sent {:.0}% of the quiet run's",
        100.0 * during.total() as f64 / alone.total().max(1) as f64
    );
    println!(
        "  not starved (every lookup answered 200 and the median is at most x{STARVED_MEDIAN:.0} the quiet one): {}",
        verdict(not_starved)
    );
    println!();

    println!("== Summary (ratios measured in this run) ==");
    println!(
        "  gateway / nginx req/s   {headline:.2}   target >= {TARGET_RATIO:.2}   {}{}",
        verdict(headline >= TARGET_RATIO),
        if busiest > NOISY {
            format!("   (unreliable: other processes took up to {:.0}% of the CPUs)", busiest * 100.0)
        } else {
            String::new()
        }
    );
    println!("  gateway / direct req/s  {:.2}", gateway_rps / direct);
    println!("  nginx / direct req/s    {:.2}", nginx_rps / direct);
    println!(
        "  revocation (worst)      {}   target <= {} ms   {}",
        ms(worst),
        TARGET_REVOCATION.as_millis(),
        verdict(revocation_ok)
    );
    println!(
        "  logins/s                {:.1} with {LOGIN_CLIENTS} clients, p99 {} ({})",
        logins.rate(200),
        ms(logins.percentile(99.0)),
        logins.describe_statuses()
    );
    println!(
        "  lookups in a login storm p50 x{p50_ratio:.2}, p99 x{p99_ratio:.2} of quiet ({} vs {}), failures {}; \
         not starved   {}",
        ms(during.percentile(99.0)),
        ms(alone.percentile(99.0)),
        during.failures(200),
        verdict(not_starved)
    );
    Ok(())
}

struct Revocation {
    logout_status: u16,
    /// From the logout's answer to the first 401 from the gateway (its arrival).
    refused_after: Duration,
    /// From sending the logout to the first 401.
    refused_after_sent: Duration,
    /// Polls after the logout answer that the gateway still served with 200.
    served_after_logout: u32,
    load: wrk::Report,
}

#[derive(Debug, Clone, Copy)]
enum LogoutVia {
    /// Through the gateway under test (which drops its own cached answer at once).
    Gateway,
    /// At identity itself, as through another gateway replica or an administrative end: the gateway
    /// learns of it only when its cached answer expires.
    Identity,
}

impl LogoutVia {
    fn name(self) -> &'static str {
        match self {
            LogoutVia::Gateway => "gateway",
            LogoutVia::Identity => "identity",
        }
    }
}

/// A fresh session under wrk load through the gateway (16 connections); after `delay` it logs out
/// (through `via`) and polls the gateway until it refuses the token.
async fn revocation_trial(
    http: &reqwest::Client,
    stack: &RunningStack,
    options: &Options,
    delay: Duration,
    via: LogoutVia,
) -> anyhow::Result<Revocation> {
    let token = clients::login(http, &stack.gateway_url, USER).await?;
    let url = format!("{}{ENDPOINT}", stack.gateway_url);
    let status = clients::get_status(http, &url, &token).await?;
    if status != 200 {
        bail!("a fresh token answered {status}");
    }
    let load = wrk::Load {
        url: url.clone(),
        request: wrk::Request::BearerGet(token.clone()),
        threads: options.threads,
        connections: 16,
        duration: delay + Duration::from_secs(2),
    };
    let probe = async {
        tokio::time::sleep(delay).await;
        let sent = Instant::now();
        let logout = http
            .post(format!(
                "{}/v1/auth/logout",
                match via {
                    LogoutVia::Gateway => &stack.gateway_url,
                    LogoutVia::Identity => &stack.identity_url,
                }
            ))
            .bearer_auth(&token)
            .send()
            .await
            .context("POST /v1/auth/logout")?;
        let logout_status = logout.status().as_u16();
        let answered = Instant::now();
        let mut served = 0;
        loop {
            let status = clients::get_status(http, &url, &token).await?;
            match status {
                401 => {
                    let now = Instant::now();
                    return Ok::<_, anyhow::Error>((logout_status, now - answered, now - sent, served));
                }
                200 => served += 1,
                other => bail!("the gateway answered {other} while the token was being revoked"),
            }
            if answered.elapsed() > Duration::from_secs(10) {
                bail!("the token was still accepted 10 s after logout ({logout_status})");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let (load, probe) = tokio::join!(load.run(), probe);
    let (logout_status, refused_after, refused_after_sent, served_after_logout) = probe?;
    Ok(Revocation { logout_status, refused_after, refused_after_sent, served_after_logout, load: load? })
}

/// Single-thread cost of one token verification as every service does it (keys already fetched).
async fn verify_cost(http: &reqwest::Client, identity_url: &str, token: &str) -> anyhow::Result<Duration> {
    const ROUNDS: u32 = 2000;
    let verifier = immilink_shared::auth::TokenVerifier::from_identity(identity_url, http.clone());
    verifier.verify(token).await.context("verifying the token")?;
    let start = Instant::now();
    for _ in 0..ROUNDS {
        verifier.verify(token).await.context("verifying the token")?;
    }
    Ok(start.elapsed() / ROUNDS)
}

fn print_logins(samples: &Samples) {
    println!(
        "  {:.1} logins/s ({} in {:.1}s), p50 {}, p99 {}, max {}",
        samples.rate(200),
        samples.count(200),
        samples.elapsed.as_secs_f64(),
        ms(samples.percentile(50.0)),
        ms(samples.percentile(99.0)),
        ms(samples.max())
    );
    println!("  answers: {}", samples.describe_statuses());
    if samples.failures(200) > 0 {
        println!("  WARNING: {} of {} logins did not succeed", samples.failures(200), samples.total());
    }
}

fn print_lookups(label: &str, samples: &Samples) {
    println!(
        "  {label:<13} {} requests ({:.0}/s), p50 {}, p99 {}, max {}, {} took >= 40 ms; answers: {}",
        samples.total(),
        samples.total() as f64 / samples.elapsed.as_secs_f64(),
        ms(samples.percentile(50.0)),
        ms(samples.percentile(99.0)),
        ms(samples.max()),
        samples.at_least(Duration::from_millis(40)),
        samples.describe_statuses()
    );
}
