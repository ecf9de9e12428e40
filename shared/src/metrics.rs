//! Prometheus metrics at `/metrics` on every service: request counts and latency histograms by method,
//! route pattern and status. No client library: the text format is small and this keeps the
//! dependency graph lean. The endpoint requires the internal token (as `Authorization: Bearer …` or
//! the internal-token header), because the gateway's port is reachable from outside.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::auth::{bearer_token, MetricsToken};
use crate::problem::ApiError;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Default, Clone)]
struct Series {
    count: u64,
    sum_seconds: f64,
    /// Cumulative counts per bucket, as Prometheus expects.
    buckets: [u64; BUCKETS.len()],
}

/// A value read when Prometheus scrapes (the outbox's backlog, say), labelled with the service.
#[derive(Debug, Clone, PartialEq)]
pub struct Gauge {
    pub name: &'static str,
    pub help: &'static str,
    pub value: f64,
}

/// Something a service registers whose state is exported as gauges at every scrape.
pub trait GaugeSource: Send + Sync {
    fn gauges(&self) -> Vec<Gauge>;
}

/// The registry of one service.
pub struct Metrics {
    service: &'static str,
    series: Mutex<BTreeMap<Key, Series>>,
    gauges: Vec<std::sync::Arc<dyn GaugeSource>>,
}

impl Metrics {
    pub fn new(service: &'static str) -> Self {
        Self::with_gauges(service, Vec::new())
    }

    pub fn with_gauges(service: &'static str, gauges: Vec<std::sync::Arc<dyn GaugeSource>>) -> Self {
        Self { service, series: Mutex::new(BTreeMap::new()), gauges }
    }

    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let key = Key { method: method.to_owned(), route: route.to_owned(), status };
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let entry = series.entry(key).or_default();
        entry.count += 1;
        entry.sum_seconds += seconds;
        for (bucket, bound) in entry.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut out = String::new();
        out.push_str("# HELP immilink_http_requests_total HTTP requests answered.\n");
        out.push_str("# TYPE immilink_http_requests_total counter\n");
        for (key, s) in &series {
            let _ = writeln!(out, "immilink_http_requests_total{{{}}} {}", self.labels(key), s.count);
        }
        out.push_str("# HELP immilink_http_request_duration_seconds Time to answer HTTP requests.\n");
        out.push_str("# TYPE immilink_http_request_duration_seconds histogram\n");
        for (key, s) in &series {
            let labels = self.labels(key);
            for (bound, count) in BUCKETS.iter().zip(s.buckets) {
                let _ =
                    writeln!(out, "immilink_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(out, "immilink_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", s.count);
            let _ = writeln!(out, "immilink_http_request_duration_seconds_sum{{{labels}}} {}", s.sum_seconds);
            let _ = writeln!(out, "immilink_http_request_duration_seconds_count{{{labels}}} {}", s.count);
        }
        for gauge in self.gauges.iter().flat_map(|source| source.gauges()) {
            let _ = writeln!(out, "# HELP {} {}", gauge.name, gauge.help);
            let _ = writeln!(out, "# TYPE {} gauge", gauge.name);
            let _ = writeln!(out, "{}{{service=\"{}\"}} {}", gauge.name, escape(self.service), gauge.value);
        }
        out
    }

    fn labels(&self, key: &Key) -> String {
        format!(
            "service=\"{}\",method=\"{}\",route=\"{}\",status=\"{}\"",
            escape(self.service),
            escape(&key.method),
            escape(&key.route),
            key.status
        )
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Middleware: records every answered request. The route is the matched pattern
/// (`/v1/audit/records/{id}`), never the raw path, so label values stay few and carry no IDs.
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let method = req.method().to_string();
    let result = next.call(req).await;
    if let Some(metrics) = metrics {
        let (route, status) = match &result {
            Ok(response) => (
                response.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned()),
                response.status().as_u16(),
            ),
            Err(err) => ("unmatched".to_owned(), err.as_response_error().status_code().as_u16()),
        };
        metrics.observe(&method, &route, status, started.elapsed().as_secs_f64());
    }
    result
}

/// `GET /metrics`, for the cluster's Prometheus only.
pub async fn endpoint(req: HttpRequest, metrics: web::Data<Metrics>) -> Result<HttpResponse, ApiError> {
    let expected = req.app_data::<web::Data<MetricsToken>>().ok_or_else(|| {
        ApiError::forbidden("metrics_disabled", "this service has no metrics token, so metrics are not served")
    })?;
    let presented = bearer_token(&req).ok_or_else(|| ApiError::unauthenticated("metrics need the metrics token"))?;
    if !expected.0.matches(presented) {
        return Err(ApiError::forbidden("internal_only", "metrics are for the cluster's monitoring only"));
    }
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(metrics.render()))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Backlog(f64);

    impl GaugeSource for Backlog {
        fn gauges(&self) -> Vec<Gauge> {
            vec![Gauge { name: "immilink_test_backlog", help: "A test gauge.", value: self.0 }]
        }
    }

    #[test]
    fn registered_gauges_are_read_at_every_render_with_the_service_label() {
        let metrics = Metrics::with_gauges("broker", vec![std::sync::Arc::new(Backlog(2.5))]);
        let text = metrics.render();
        assert!(text.contains("# TYPE immilink_test_backlog gauge\n"), "{text}");
        assert!(text.contains("immilink_test_backlog{service=\"broker\"} 2.5\n"), "{text}");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_counts_add_up() {
        let metrics = Metrics::new("audit");
        metrics.observe("GET", "/v1/audit/verify", 200, 0.003);
        metrics.observe("GET", "/v1/audit/verify", 200, 0.2);
        metrics.observe("GET", "/v1/audit/verify", 401, 0.001);
        let text = metrics.render();
        let line = |needle: &str| text.lines().find(|l| l.starts_with(needle)).unwrap_or_default().to_owned();
        let base = "service=\"audit\",method=\"GET\",route=\"/v1/audit/verify\",status=\"200\"";
        assert_eq!(
            line(&format!("immilink_http_requests_total{{{base}}}")),
            format!("immilink_http_requests_total{{{base}}} 2")
        );
        assert!(line(&format!("immilink_http_request_duration_seconds_bucket{{{base},le=\"0.005\"}}")).ends_with(" 1"));
        assert!(line(&format!("immilink_http_request_duration_seconds_bucket{{{base},le=\"0.25\"}}")).ends_with(" 2"));
        assert!(line(&format!("immilink_http_request_duration_seconds_bucket{{{base},le=\"+Inf\"}}")).ends_with(" 2"));
        assert!(text.contains("status=\"401\"} 1"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
