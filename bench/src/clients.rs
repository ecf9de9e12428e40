//! In-process clients: logins, a login storm, and a small paced load of lookups, with latencies and
//! the count of every status (failures are reported, never dropped).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::task::JoinSet;

pub const DEMO_PASSWORD: &str = "immilink-demo";

/// Latencies of completed requests and how each request ended.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    /// Latency of every request that got an answer, whatever its status.
    pub latencies: Vec<Duration>,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer (connection error, timeout).
    pub transport_errors: u64,
    /// Wall time the load ran.
    pub elapsed: Duration,
}

impl Samples {
    fn record(&mut self, status: u16, latency: Duration) {
        self.latencies.push(latency);
        *self.statuses.entry(status).or_default() += 1;
    }

    fn merge(&mut self, other: Samples) {
        self.latencies.extend(other.latencies);
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        self.transport_errors += other.transport_errors;
    }

    pub fn count(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.transport_errors
    }

    /// Requests that did not end with `ok`.
    pub fn failures(&self, ok: u16) -> u64 {
        self.total() - self.count(ok)
    }

    pub fn rate(&self, status: u16) -> f64 {
        self.count(status) as f64 / self.elapsed.as_secs_f64()
    }

    /// Nearest-rank percentile of the answered requests' latencies.
    pub fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        percentile(&sorted, p)
    }

    /// Answered requests that took at least `latency` (e.g. 40 ms: a delayed-ACK stall).
    pub fn at_least(&self, latency: Duration) -> usize {
        self.latencies.iter().filter(|l| **l >= latency).count()
    }

    pub fn max(&self) -> Duration {
        self.latencies.iter().copied().max().unwrap_or_default()
    }

    /// `200: 1234, 401: 2, no answer: 1`
    pub fn describe_statuses(&self) -> String {
        let mut parts: Vec<String> = self.statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
        if self.transport_errors > 0 {
            parts.push(format!("no answer: {}", self.transport_errors));
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Nearest-rank percentile of latencies sorted in ascending order (zero when there are none).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn login_body(username: &str) -> Value {
    json!({ "username": username, "password": DEMO_PASSWORD, "certificate_serial": format!("DEMO-{username}") })
}

/// Logs a demo user in through the gateway; the access token.
pub async fn login(http: &reqwest::Client, gateway: &str, username: &str) -> anyhow::Result<String> {
    let response = http
        .post(format!("{gateway}/v1/auth/login"))
        .json(&login_body(username))
        .send()
        .await
        .context("POST /v1/auth/login")?;
    let status = response.status();
    let body: Value = response.json().await.context("login body")?;
    if status != 200 {
        bail!("login of {username} answered {status}: {body}");
    }
    Ok(body["access_token"].as_str().context("no access_token in the login answer")?.to_owned())
}

/// The status of one authenticated GET (body read to the end).
pub async fn get_status(http: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<u16> {
    let response = http.get(url).bearer_auth(token).send().await.with_context(|| format!("GET {url}"))?;
    let status = response.status().as_u16();
    response.bytes().await?;
    Ok(status)
}

/// `clients` concurrent clients each logging `username` in back to back through the gateway for
/// `duration`.
pub async fn login_storm(
    http: &reqwest::Client,
    gateway: &str,
    username: &str,
    clients: usize,
    duration: Duration,
) -> Samples {
    let started = Instant::now();
    let deadline = started + duration;
    let url = format!("{gateway}/v1/auth/login");
    let body = login_body(username);
    let mut set = JoinSet::new();
    for _ in 0..clients {
        let (http, url, body) = (http.clone(), url.clone(), body.clone());
        set.spawn(async move {
            let mut samples = Samples::default();
            while Instant::now() < deadline {
                let start = Instant::now();
                match http.post(&url).json(&body).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        samples.record(status, start.elapsed());
                    }
                    Err(_) => samples.transport_errors += 1,
                }
            }
            samples
        });
    }
    let mut all = Samples::default();
    while let Some(samples) = set.join_next().await {
        all.merge(samples.unwrap_or_default());
    }
    all.elapsed = started.elapsed();
    all
}

/// A small fixed load: `clients` clients, each sending one authenticated GET every `period` (a
/// request still running delays the next one) for `duration`.
pub async fn paced_gets(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    clients: usize,
    period: Duration,
    duration: Duration,
) -> Samples {
    let started = Instant::now();
    let deadline = started + duration;
    let mut set = JoinSet::new();
    for client in 0..clients {
        let (http, url, token) = (http.clone(), url.to_owned(), token.to_owned());
        set.spawn(async move {
            // Spread the clients over one period instead of sending in lock-step.
            tokio::time::sleep(period.mul_f64(client as f64 / clients as f64)).await;
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut samples = Samples::default();
            loop {
                ticker.tick().await;
                if Instant::now() >= deadline {
                    break;
                }
                let start = Instant::now();
                match http.get(&url).bearer_auth(&token).timeout(Duration::from_secs(10)).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        samples.record(status, start.elapsed());
                    }
                    Err(_) => samples.transport_errors += 1,
                }
            }
            samples
        });
    }
    let mut all = Samples::default();
    while let Some(samples) = set.join_next().await {
        all.merge(samples.unwrap_or_default());
    }
    all.elapsed = started.elapsed();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples = Samples::default();
        for ms in 1..=100 {
            samples.record(200, Duration::from_millis(ms));
        }
        samples.record(503, Duration::from_millis(1000));
        assert_eq!(samples.percentile(50.0), Duration::from_millis(51));
        assert_eq!(samples.percentile(99.0), Duration::from_millis(100));
        assert_eq!(samples.max(), Duration::from_millis(1000));
        assert_eq!(samples.at_least(Duration::from_millis(100)), 2);
        assert_eq!(samples.failures(200), 1);
        assert_eq!(samples.describe_statuses(), "200: 100, 503: 1");
    }
}
