//! Running wrk and reading its report. A plain GET with a bearer token, or whatever a Lua script
//! sends: [`PostScript`] POSTs one JSON body and counts every answer by status, so a run that failed
//! says how and why instead of only "Non-2xx".

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};

/// wrk's own default is 2 s: a slower answer would be dropped as a "timeout" socket error and left
/// out of the latencies. With 10 s it is measured.
const TIMEOUT: &str = "10s";

/// One wrk run against one URL.
#[derive(Debug, Clone)]
pub struct Load {
    pub url: String,
    pub request: Request,
    pub threads: u32,
    pub connections: u32,
    pub duration: Duration,
}

/// What each request of a run is.
#[derive(Debug, Clone)]
pub enum Request {
    /// `GET` with `Authorization: Bearer <token>`.
    BearerGet(String),
    /// What a Lua script sends (see [`PostScript`]); the path names the script in the report.
    Script(PathBuf),
}

/// What wrk reported.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    pub requests_per_sec: f64,
    pub requests: u64,
    pub p50: Duration,
    pub p99: Duration,
    /// Responses that were not 2xx or 3xx (a refused token would show here).
    pub non_2xx: u64,
    /// connect + read + write + timeout errors.
    pub socket_errors: u64,
    /// Answers by status, when a [`PostScript`] counted them (empty otherwise).
    pub statuses: BTreeMap<u16, u64>,
    /// The start of the first body answered with each status other than 200 (from a [`PostScript`]).
    pub samples: BTreeMap<u16, String>,
}

impl Report {
    /// Answers with status 200 (all 2xx/3xx answers when the statuses were not counted).
    pub fn ok(&self) -> u64 {
        if self.statuses.is_empty() {
            self.requests.saturating_sub(self.non_2xx)
        } else {
            self.statuses.get(&200).copied().unwrap_or(0)
        }
    }

    /// Requests that did not end with 200: other answers and socket errors.
    pub fn failed(&self) -> u64 {
        self.requests.saturating_sub(self.ok()) + self.socket_errors
    }

    /// Successful answers per second: the rate wrk printed, less the failed answers' share.
    pub fn ok_per_sec(&self) -> f64 {
        if self.requests == 0 {
            return 0.0;
        }
        self.requests_per_sec * self.ok() as f64 / self.requests as f64
    }

    /// `200: 1234, 503: 2, socket errors: 1`
    pub fn describe_answers(&self) -> String {
        let mut parts: Vec<String> = if self.statuses.is_empty() {
            vec![format!("2xx/3xx: {}", self.ok()), format!("other: {}", self.non_2xx)]
        } else {
            self.statuses.iter().map(|(status, n)| format!("{status}: {n}")).collect()
        };
        if self.socket_errors > 0 {
            parts.push(format!("socket errors: {}", self.socket_errors));
        }
        parts.join(", ")
    }
}

impl Load {
    /// The command line, for the printed report (no secret: headers are in the script or redacted).
    pub fn describe(&self) -> String {
        let request = match &self.request {
            Request::BearerGet(_) => "-H 'Authorization: Bearer <token>'".to_owned(),
            Request::Script(path) => {
                format!("-s {}", path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
            }
        };
        format!(
            "wrk -t{} -c{} -d{}s --latency --timeout {TIMEOUT} {request} {}",
            self.threads,
            self.connections,
            self.duration.as_secs(),
            self.url
        )
    }

    pub async fn run(&self) -> anyhow::Result<Report> {
        let mut command = tokio::process::Command::new("wrk");
        command
            .arg(format!("-t{}", self.threads))
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{}s", self.duration.as_secs().max(1)))
            .arg("--latency")
            .arg("--timeout")
            .arg(TIMEOUT);
        match &self.request {
            Request::BearerGet(token) => command.arg("-H").arg(format!("Authorization: Bearer {token}")),
            Request::Script(path) => command.arg("-s").arg(path),
        };
        let output = command.arg(&self.url).kill_on_drop(true).output().await.context("running wrk")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!("wrk failed ({}): {}{}", output.status, stdout, String::from_utf8_lossy(&output.stderr));
        }
        parse(&stdout).with_context(|| format!("reading wrk's report:\n{stdout}"))
    }
}

/// A wrk Lua script in a temp folder (removed on drop) that POSTs one JSON body with fixed headers,
/// counts every answer by status and keeps the start of the first body of each status other than
/// 200; `done()` prints them as `status <code> <count>` and `sample <code> <body>` lines, which
/// [`parse`] reads. The `response` hook makes wrk hand each answer to Lua: a few microseconds of the
/// client's CPU per request, the same for every target it is used on.
pub struct PostScript {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl PostScript {
    /// Writes the script as `<name>.lua`.
    pub fn write(name: &str, headers: &[(&str, &str)], body: &str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("immilink-bench-wrk-").tempdir()?;
        let path = dir.path().join(format!("{name}.lua"));
        std::fs::write(&path, post_script(headers, body)).with_context(|| format!("writing {}", path.display()))?;
        Ok(Self { _dir: dir, path })
    }

    pub fn request(&self) -> Request {
        Request::Script(self.path.clone())
    }
}

/// Bytes kept of the first body of each failing status.
const SAMPLE_BYTES: usize = 400;

fn post_script(headers: &[(&str, &str)], body: &str) -> String {
    let mut script = String::from("-- Written by immilink-bench: POST one JSON body, count answers by status.\n");
    script.push_str("wrk.method = \"POST\"\n");
    let _ = writeln!(script, "wrk.body = {}", lua_string(body));
    script.push_str("wrk.headers[\"Content-Type\"] = \"application/json\"\n");
    for (name, value) in headers {
        let _ = writeln!(script, "wrk.headers[{}] = {}", lua_string(name), lua_string(value));
    }
    let _ = write!(
        script,
        r#"
local threads = {{}}

function setup(thread)
  table.insert(threads, thread)
end

-- Globals, so that done() can read them from each thread.
function init(args)
  statuses = {{}}
  samples = {{}}
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status ~= 200 and samples[status] == nil then
    samples[status] = string.sub(body or "", 1, {SAMPLE_BYTES})
  end
end

function done(summary, latency, requests)
  local counts, firsts = {{}}, {{}}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses") or {{}}) do
      counts[status] = (counts[status] or 0) + n
    end
    for status, text in pairs(thread:get("samples") or {{}}) do
      if firsts[status] == nil then firsts[status] = text end
    end
  end
  for status, n in pairs(counts) do
    io.write(string.format("status %d %d\n", status, n))
  end
  for status, text in pairs(firsts) do
    io.write(string.format("sample %d %s\n", status, (string.gsub(text, "%s+", " "))))
  end
end
"#
    );
    script
}

/// A Lua string literal of `text`: quotes, backslashes and every byte outside printable ASCII
/// escaped as `\ddd`.
fn lua_string(text: &str) -> String {
    let mut literal = String::with_capacity(text.len() + 2);
    literal.push('"');
    for byte in text.bytes() {
        match byte {
            b'"' => literal.push_str("\\\""),
            b'\\' => literal.push_str("\\\\"),
            0x20..=0x7e => literal.push(byte as char),
            _ => {
                let _ = write!(literal, "\\{byte:03}");
            }
        }
    }
    literal.push('"');
    literal
}

/// Reads `Requests/sec`, the 50% and 99% lines of `--latency`, the request count and the error lines.
pub fn parse(report: &str) -> anyhow::Result<Report> {
    let (mut rps, mut p50, mut p99, mut requests) = (None, None, None, None);
    let (mut non_2xx, mut socket_errors) = (0, 0);
    let (mut statuses, mut samples) = (BTreeMap::new(), BTreeMap::new());
    for line in report.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("status ") {
            let mut fields = rest.split_whitespace().map(str::parse::<u64>);
            if let (Some(Ok(status)), Some(Ok(count))) = (fields.next(), fields.next()) {
                statuses.insert(u16::try_from(status).context("status code")?, count);
            }
        } else if let Some(rest) = line.strip_prefix("sample ") {
            let (status, text) = rest.split_once(' ').unwrap_or((rest, ""));
            if let Ok(status) = status.parse::<u16>() {
                samples.insert(status, text.to_owned());
            }
        } else if let Some(rest) = line.strip_prefix("Requests/sec:") {
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
        statuses,
        samples,
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
    fn reads_the_statuses_and_samples_a_post_script_prints() {
        let report =
            parse(&format!("{REPORT}status 200 200118\nstatus 503 5\nsample 503 {{\"code\":\"audit_unavailable\"}}\n"))
                .unwrap();
        assert_eq!(report.statuses, BTreeMap::from([(200, 200118), (503, 5)]));
        assert_eq!(report.samples[&503], "{\"code\":\"audit_unavailable\"}");
        assert_eq!((report.ok(), report.failed()), (200118, 10));
        assert_eq!(report.describe_answers(), "200: 200118, 503: 5, socket errors: 5");
    }

    #[test]
    fn without_counted_statuses_non_2xx_answers_are_the_failures() {
        let report = parse(REPORT).unwrap();
        assert_eq!((report.ok(), report.failed()), (200118, 10));
    }

    #[test]
    fn lua_strings_escape_quotes_backslashes_and_other_bytes() {
        assert_eq!(lua_string(r#"{"a":"b\c"}"#), r#""{\"a\":\"b\\c\"}""#);
        assert_eq!(lua_string("x\ny é"), r#""x\010y \195\169""#);
    }

    #[test]
    fn the_post_script_sets_method_body_and_headers() {
        let script = post_script(&[("Authorization", "Bearer t")], r#"{"k":1}"#);
        assert!(script.contains(r#"wrk.method = "POST""#));
        assert!(script.contains(r#"wrk.body = "{\"k\":1}""#));
        assert!(script.contains(r#"wrk.headers["Authorization"] = "Bearer t""#));
        assert!(script.contains("function done("));
    }

    #[test]
    fn a_report_without_latency_distribution_is_an_error() {
        let without: String = REPORT.lines().filter(|l| !l.contains('%')).collect::<Vec<_>>().join("\n");
        assert!(parse(&without).is_err());
    }
}
