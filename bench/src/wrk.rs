//! Running wrk and reading its report.

use std::time::Duration;

use anyhow::{bail, Context};

/// One wrk run against one URL with a bearer token.
#[derive(Debug, Clone)]
pub struct Load {
    pub url: String,
    pub token: String,
    pub threads: u32,
    pub connections: u32,
    pub duration: Duration,
}

/// What wrk reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub requests_per_sec: f64,
    pub requests: u64,
    pub p50: Duration,
    pub p99: Duration,
    /// Responses that were not 2xx or 3xx (a refused token would show here).
    pub non_2xx: u64,
    /// connect + read + write + timeout errors.
    pub socket_errors: u64,
}

impl Load {
    /// The command line, for the printed report.
    pub fn describe(&self) -> String {
        format!(
            "wrk -t{} -c{} -d{}s --latency -H 'Authorization: Bearer <token>' {}",
            self.threads,
            self.connections,
            self.duration.as_secs(),
            self.url
        )
    }

    pub async fn run(&self) -> anyhow::Result<Report> {
        let output = tokio::process::Command::new("wrk")
            .arg(format!("-t{}", self.threads))
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{}s", self.duration.as_secs().max(1)))
            .arg("--latency")
            .arg("-H")
            .arg(format!("Authorization: Bearer {}", self.token))
            .arg(&self.url)
            .kill_on_drop(true)
            .output()
            .await
            .context("running wrk")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!("wrk failed ({}): {}{}", output.status, stdout, String::from_utf8_lossy(&output.stderr));
        }
        parse(&stdout).with_context(|| format!("reading wrk's report:\n{stdout}"))
    }
}

/// Reads `Requests/sec`, the 50% and 99% lines of `--latency`, the request count and the error lines.
pub fn parse(report: &str) -> anyhow::Result<Report> {
    let (mut rps, mut p50, mut p99, mut requests) = (None, None, None, None);
    let (mut non_2xx, mut socket_errors) = (0, 0);
    for line in report.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            rps = rest.trim().parse::<f64>().ok();
        } else if let Some(rest) = line.strip_prefix("50%") {
            p50 = latency(rest.trim());
        } else if let Some(rest) = line.strip_prefix("99%") {
            p99 = latency(rest.trim());
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = rest.trim().parse().context("Non-2xx count")?;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            socket_errors =
                rest.split(',').filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok()).sum();
        } else if line.contains(" requests in ") {
            requests = line.split_whitespace().next().and_then(|n| n.parse().ok());
        }
    }
    Ok(Report {
        requests_per_sec: rps.context("no Requests/sec line")?,
        requests: requests.context("no 'N requests in' line")?,
        p50: p50.context("no 50% latency line (was --latency given?)")?,
        p99: p99.context("no 99% latency line (was --latency given?)")?,
        non_2xx,
        socket_errors,
    })
}

/// wrk prints latencies as a number and a unit: `812.00us`, `3.21ms`, `1.02s`, `1.50m`.
fn latency(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let value: f64 = text[..split].parse().ok()?;
    let seconds = match &text[split..] {
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 10s test @ http://127.0.0.1:40000/v1/catalogue/purposes
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.20ms    1.10ms  20.00ms   80.00%
    Req/Sec    10.01k     1.00k   12.00k    70.00%
  Latency Distribution
     50%  812.00us
     75%    3.50ms
     90%    4.00ms
     99%    1.02s
  200123 requests in 10.00s, 100.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 5
Requests/sec:  20012.30
Transfer/sec:     10.00MB
";

    #[test]
    fn reads_rate_percentiles_and_errors() {
        let report = parse(REPORT).unwrap();
        assert_eq!(report.requests_per_sec, 20012.30);
        assert_eq!(report.requests, 200123);
        assert_eq!(report.p50, Duration::from_micros(812));
        assert_eq!(report.p99, Duration::from_millis(1020));
        assert_eq!(report.non_2xx, 5);
        assert_eq!(report.socket_errors, 5);
    }

    #[test]
    fn a_report_without_latency_distribution_is_an_error() {
        let without: String = REPORT.lines().filter(|l| !l.contains('%')).collect::<Vec<_>>().join("\n");
        assert!(parse(&without).is_err());
    }
}
