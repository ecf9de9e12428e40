//! Spawning a stack and talking to it like a client.
//!
//! Every wait is bounded: the harness's HTTP client times out ([`REQUEST_TIMEOUT`]), the test
//! databases drop within a bound (`TestDb`), and [`within`] / [`step`] bound a whole test body or
//! one await of it, so a test that gets stuck fails with a message naming the wait instead of
//! holding CI. [`TestStack::shutdown`] stops the stack whatever the body did.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use immilink_shared::clock::{system_clock, ManualClock, SharedClock};
use immilink_shared::testing::TestDb;
use immilink_shared::tls::test_pki::TestPki;
use immilink_stack::{start, RunningStack, StackConfig};
use serde_json::{json, Value};

pub const DEMO_PASSWORD: &str = "immilink-demo";

/// The longest one request of a test may take (a loaded CI machine included).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a test waits for the broker's relay to get a record to the audit service.
pub const AUDIT_DELIVERY_WITHIN: Duration = Duration::from_secs(30);

/// Tracing and W3C propagation as the binaries set them up, once per test process.
fn init_telemetry() {
    static TELEMETRY: std::sync::OnceLock<immilink_shared::telemetry::Telemetry> = std::sync::OnceLock::new();
    TELEMETRY.get_or_init(|| {
        immilink_shared::telemetry::init_with_provider("immilink-e2e", "warn", |builder| {
            builder.with_simple_exporter(finished_spans().clone())
        })
    });
}

/// Every span the stacks of this test process finished, as an OTLP exporter would receive them
/// (every test's: select by trace id).
pub fn finished_spans() -> &'static opentelemetry_sdk::trace::InMemorySpanExporter {
    static SPANS: std::sync::OnceLock<opentelemetry_sdk::trace::InMemorySpanExporter> = std::sync::OnceLock::new();
    SPANS.get_or_init(opentelemetry_sdk::trace::InMemorySpanExporter::default)
}

pub struct TestStack {
    pub stack: RunningStack,
    metrics_token: immilink_shared::config::Secret,
    /// The broker's own service credential, to act as the broker in tests of internal endpoints.
    pub broker_secret: immilink_shared::config::Secret,
    pub http: reqwest::Client,
    /// The client the harness reaches nia-mock's admin endpoints with: over mutual TLS, as the
    /// agency, when nia-mock serves TLS.
    nia_http: reqwest::Client,
    pub broker_db_url: String,
    nia_admin_key: Option<String>,
    /// The databases the test may cut, by service.
    db_cuts: Vec<(&'static str, DbCut)>,
    _databases: [TestDb; 4],
    _keys: tempfile::TempDir,
}

pub struct Options {
    pub clock: SharedClock,
    pub upstream_override: Option<String>,
    /// Changes to the generated configuration (shorter bounds for the fault tests).
    pub adjust: fn(&mut StackConfig),
    /// The services whose database the test may cut (`broker`, `identity`, `vendors`; see
    /// [`TestStack::cut_db`]).
    pub cuttable_dbs: &'static [&'static str],
    /// Serve nia-mock over mutual TLS with certificates made for this test: the broker, identity
    /// and audit trust its CA and present the agency's client certificate. The function then
    /// changes what the test needs (a broker trusting another CA…).
    pub nia_tls: Option<fn(&mut StackConfig, &NiaPki)>,
}

/// The certificates of a test with nia-mock over TLS: the immigration agency's CA, which issued
/// nia-mock's server certificate and the agency's client certificate, and an unrelated impostor CA
/// with its own certificates.
pub struct NiaPki {
    pub agency: TestPki,
    pub impostor: TestPki,
}

impl Default for Options {
    fn default() -> Self {
        Self { clock: system_clock(), upstream_override: None, adjust: |_| {}, cuttable_dbs: &[], nia_tls: None }
    }
}

/// The services with a database of their own, in the order of the test databases.
const DATABASES: [&str; 4] = ["identity", "broker", "audit", "vendors"];

impl TestStack {
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(options: Options) -> Self {
        init_telemetry();
        let databases = [TestDb::new(), TestDb::new(), TestDb::new(), TestDb::new()];
        let keys = tempfile::tempdir().expect("temp dir for keys");
        let urls = [databases[0].url(), databases[1].url(), databases[2].url(), databases[3].url()];
        let mut config = StackConfig::for_tests(urls, keys.path());
        config.upstream_override = options.upstream_override;
        (options.adjust)(&mut config);
        let nia_pki = options.nia_tls.map(|adjust| {
            let pki = NiaPki {
                agency: TestPki::issue(keys.path(), "nia"),
                impostor: TestPki::issue(keys.path(), "impostor"),
            };
            config.nia.tls = Some(pki.agency.server());
            config.broker.nia_tls = pki.agency.client();
            config.identity.nia_tls = pki.agency.client();
            config.audit.log.witness_tls = pki.agency.client();
            adjust(&mut config, &pki);
            pki
        });
        let db_cuts = options
            .cuttable_dbs
            .iter()
            .map(|&service| {
                let url = match service {
                    "broker" => &mut config.broker.service.database.url,
                    "identity" => &mut config.identity.service.database.url,
                    "vendors" => &mut config.vendors.service.database.url,
                    other => panic!("the harness cannot cut {other}'s database"),
                };
                (service, DbCut::install(url))
            })
            .collect();
        let metrics_token = config.gateway.metrics_token.clone().expect("the launcher sets a metrics token");
        let broker_secret = config.broker.service.secrets.service.clone();
        let broker_db_url = databases[1].url().to_owned();
        let nia_admin_key = config.nia.admin_key.as_ref().map(|key| key.expose().to_owned());
        let stack = start(config, Arc::clone(&options.clock)).await.expect("the stack starts");
        let nia_http = match &nia_pki {
            Some(pki) => pki.agency.client().client("NIA_URL", &stack.nia_url).expect("the harness's TLS client"),
            None => client(None),
        };
        Self {
            stack,
            metrics_token,
            broker_secret,
            http: client(None),
            nia_http,
            broker_db_url,
            nia_admin_key,
            db_cuts,
            _databases: databases,
            _keys: keys,
        }
    }

    /// What Prometheus presents at `/metrics`.
    pub fn metrics_token(&self) -> String {
        self.metrics_token.expose().to_owned()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.stack.gateway_url, path)
    }

    /// Identity's token signing key (PKCS#8 DER), to sign tokens as identity would: the token-attack
    /// tests need genuinely signed tokens whose claims identity never issues (expired, wrong issuer…).
    pub fn signing_key_der(&self) -> Vec<u8> {
        std::fs::read(self._keys.path().join("signing.pk8")).expect("identity's signing key file")
    }

    /// Logs a demo user in; returns the access token.
    pub async fn login(&self, username: &str) -> String {
        let response = self.login_response(&self.http, username, DEMO_PASSWORD, &format!("DEMO-{username}")).await;
        assert_eq!(response.status(), 200, "login of {username}");
        let body: Value = response.json().await.expect("login body");
        body["access_token"].as_str().expect("access_token").to_owned()
    }

    pub async fn login_response(
        &self,
        http: &reqwest::Client,
        username: &str,
        password: &str,
        certificate: &str,
    ) -> reqwest::Response {
        http.post(self.url("/v1/auth/login"))
            .json(&json!({ "username": username, "password": password, "certificate_serial": certificate }))
            .send()
            .await
            .expect("gateway answers")
    }

    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).bearer_auth(token).send().await.expect("gateway answers")
    }

    pub async fn post(&self, token: &str, path: &str, body: &Value) -> reqwest::Response {
        self.http.post(self.url(path)).bearer_auth(token).json(body).send().await.expect("gateway answers")
    }

    /// Sets how nia-mock decides account reviews (`approve` or `reject`) through its admin endpoint.
    pub async fn set_nia_account_review(&self, decision: &str) {
        let response = self
            .nia_http
            .put(format!("{}/admin/v1/account-review-policy", self.stack.nia_url))
            .header("x-nia-admin-key", self.nia_admin_key.as_deref().expect("nia admin key"))
            .json(&json!({ "decision": decision, "reason": "test policy" }))
            .send()
            .await
            .expect("nia-mock answers");
        assert!(response.status().is_success(), "setting the review policy: {}", response.status());
    }

    /// nia-mock's admin endpoints (the test harness's own door into the upstream stand-in).
    async fn nia_admin(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> reqwest::Response {
        let mut request = self
            .nia_http
            .request(method, format!("{}/admin/v1/{path}", self.stack.nia_url))
            .header("x-nia-admin-key", self.nia_admin_key.as_deref().expect("nia admin key"));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("nia-mock answers");
        assert!(response.status().is_success(), "nia-mock admin {path}: {}", response.status());
        response
    }

    /// Sets nia-mock's faults (latency, error rate, timeouts, outage, rate limit).
    pub async fn set_nia_faults(&self, faults: Value) {
        self.nia_admin(reqwest::Method::PUT, "faults", Some(&faults)).await;
    }

    /// Every query call nia-mock has received, in order.
    pub async fn nia_calls(&self) -> Vec<Value> {
        let calls: Value = self.nia_admin(reqwest::Method::GET, "calls", None).await.json().await.expect("call log");
        calls.as_array().cloned().unwrap_or_default()
    }

    /// The URL of `service`'s own database (`identity`, `broker`, `audit`, `vendors`), straight,
    /// not through a cut: for tests that read what a service stored.
    pub fn db_url(&self, service: &str) -> &str {
        let index = DATABASES.iter().position(|s| *s == service).expect("a service with a database");
        self._databases[index].url()
    }

    fn db_cut(&self, service: &str) -> &DbCut {
        let cut = self.db_cuts.iter().find(|(s, _)| *s == service);
        &cut.unwrap_or_else(|| panic!("spawned without {service} in cuttable_dbs")).1
    }

    /// Whether the broker's database is PostgreSQL (reached through the harness's proxy).
    pub fn broker_db_is_postgres(&self) -> bool {
        self.db_is_postgres("broker")
    }

    /// Whether `service`'s cuttable database is PostgreSQL (reached through the harness's proxy).
    pub fn db_is_postgres(&self, service: &str) -> bool {
        self.db_cut(service).is_postgres()
    }

    /// Cuts `service` off its database: PostgreSQL connections through the harness's proxy are
    /// dropped and new ones refused; an SQLite database is locked by another writer.
    pub async fn cut_db(&self, service: &str) {
        self.db_cut(service).cut().await;
    }

    pub async fn restore_db(&self, service: &str) {
        self.db_cut(service).restore().await;
    }

    /// Cuts the broker off its database (see [`TestStack::cut_db`]).
    pub async fn cut_broker_db(&self) {
        self.cut_db("broker").await;
    }

    /// PostgreSQL only: the broker's connections stop getting answers (packets dropped, nothing
    /// closed), as in a network partition.
    pub async fn cut_broker_db_silently(&self) {
        self.db_cut("broker").cut_silently().await;
    }

    pub async fn restore_broker_db(&self) {
        self.restore_db("broker").await;
    }

    /// Stops the stack (bounded), then drops the proxy and the test databases (bounded too). Fault
    /// tests call it whether their body passed, failed or timed out (see [`within`]).
    pub async fn shutdown(self) {
        let TestStack { stack, db_cuts, _databases, .. } = self;
        if tokio::time::timeout(Duration::from_secs(20), stack.stop()).await.is_err() {
            eprintln!("the stack did not stop within 20 s; its databases are dropped anyway");
        }
        drop(db_cuts);
        drop(_databases);
    }

    /// Every audit record of `kind`, read page by page as `token`'s holder may.
    pub async fn audit_records(&self, token: &str, kind: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let path = format!("/v1/audit/records?kind={kind}&limit=500&after_sequence={after}");
            let response = self.get(token, &path).await;
            assert_eq!(response.status(), 200, "reading audit records");
            let page: Value = response.json().await.expect("records");
            let page = page.as_array().cloned().unwrap_or_default();
            let Some(last) = page.last().and_then(|r| r["sequence"].as_i64()) else {
                return all;
            };
            after = last;
            all.extend(page);
        }
    }

    /// Logs a user in with their own password and certificate; returns the token.
    pub async fn login_with(&self, username: &str, password: &str, certificate: &str) -> String {
        let response = self.login_response(&self.http, username, password, certificate).await;
        assert_eq!(response.status(), 200, "login of {username}");
        let body: Value = response.json().await.expect("login body");
        body["access_token"].as_str().expect("access_token").to_owned()
    }

    /// The user id of a logged-in user.
    pub async fn user_id(&self, token: &str) -> String {
        let me: Value = self.get(token, "/v1/me").await.json().await.expect("me");
        me["user_id"].as_str().expect("user_id").to_owned()
    }

    /// Waits (bounded by a deadline, not a count of tries: a loaded machine relays more slowly) until
    /// the audit service holds a record with this id.
    pub async fn wait_for_audit_record(&self, token: &str, id: &str) -> Value {
        let deadline = std::time::Instant::now() + AUDIT_DELIVERY_WITHIN;
        loop {
            let response = self.get(token, &format!("/v1/audit/records/{id}")).await;
            if response.status() == 200 {
                return response.json().await.expect("record body");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "audit record {id} did not arrive within {AUDIT_DELIVERY_WITHIN:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl TestStack {
    /// Waits (bounded by [`AUDIT_DELIVERY_WITHIN`]) until the audit service holds a record of `kind`
    /// that `wanted` accepts, read as `token`'s holder may; returns it.
    pub async fn wait_for_audit_record_of(&self, token: &str, kind: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + AUDIT_DELIVERY_WITHIN;
        loop {
            if let Some(record) = self.audit_records(token, kind).await.into_iter().find(|r| wanted(r)) {
                return record;
            }
            assert!(std::time::Instant::now() < deadline, "no {kind} record arrived within {AUDIT_DELIVERY_WITHIN:?}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// The eight items a link's management rules must cover (seed 003 pt 4), in order, each with its
/// section (第1點…); a test drops items to make the coverage incomplete.
pub fn rules_coverage() -> Vec<Value> {
    [
        "purpose_scope",
        "audit_procedure",
        "query_procedure",
        "security_measures",
        "contractor_procedure",
        "agency_liability",
        "user_liability",
        "account_permission_changes",
    ]
    .iter()
    .enumerate()
    .map(|(n, item)| json!({ "item": item, "section": format!("第{}點", n + 1) }))
    .collect()
}

/// A stack on a manual clock of its own (returned, for the test to move), whose oversight job runs
/// every 200 ms: opening last month's review reports and flagging what is overdue follow the clock.
pub async fn spawn_with_oversight_clock() -> (TestStack, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::starting_at(chrono::Utc::now()));
    let shared: SharedClock = clock.clone();
    let t = TestStack::spawn_with(Options {
        clock: shared,
        adjust: |config| config.audit.log.oversight_interval = Some(Duration::from_millis(200)),
        ..Options::default()
    })
    .await;
    (t, clock)
}

/// A client, optionally bound to a local address (another loopback IP, for the IP-binding tests).
/// Its requests time out after [`REQUEST_TIMEOUT`]. An idle connection is not reused after 3 s:
/// the services close theirs after 5 s (actix's keep-alive), and a request sent on a connection the
/// server is closing that moment fails (`IncompleteMessage`) instead of being answered.
pub fn client(local: Option<IpAddr>) -> reqwest::Client {
    immilink_shared::tls::install_crypto_provider();
    reqwest::Client::builder()
        .local_address(local)
        .timeout(REQUEST_TIMEOUT)
        .pool_idle_timeout(Duration::from_secs(3))
        .build()
        .expect("a client")
}

/// How a bounded test body ended.
pub enum Ended {
    Passed,
    Failed(Box<dyn std::any::Any + Send>),
    TimedOut(Duration),
}

impl Ended {
    /// Passes, or fails the test as the body did (its own panic message), or with the time limit.
    pub fn conclude(self) {
        match self {
            Ended::Passed => {}
            Ended::Failed(panic) => std::panic::resume_unwind(panic),
            Ended::TimedOut(limit) => {
                panic!("the test did not finish within {limit:?}: one of its waits is stuck (the log says where)")
            }
        }
    }
}

/// Runs a test body with a time limit, catching its panic, so the caller can stop the stack and
/// drop the databases before failing: `let ended = within(limit, async { … }).await;
/// t.shutdown().await; ended.conclude();`.
pub async fn within(limit: Duration, body: impl Future<Output = ()>) -> Ended {
    match tokio::time::timeout(limit, CatchUnwind(Box::pin(body))).await {
        Ok(Ok(())) => Ended::Passed,
        Ok(Err(panic)) => Ended::Failed(panic),
        Err(_) => Ended::TimedOut(limit),
    }
}

/// Awaits one step of a test, failing with `what` if it takes longer than `limit`.
pub async fn step<T>(what: &str, limit: Duration, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: still waiting after {limit:?}"),
    }
}

/// A future whose panic is returned instead of unwinding through the caller.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future<Output = ()>> Future for CatchUnwind<F> {
    type Output = Result<(), Box<dyn std::any::Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(())) => Poll::Ready(Ok(())),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// A lookup the demo caseworker of TPE-SW is permitted to run.
pub fn permitted_lookup() -> Value {
    json!({
        "query_type": "entry_exit_last_year",
        "subject_id": "A123456789",
        "legal_basis": "social_assistance_act",
        "purpose_code": "sw_statutory_business",
        "case_number": "TPE-SW-2026-000123"
    })
}

/// Asserts a problem+json response and returns its body.
pub async fn problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem body");
    for member in ["type", "title", "status", "detail", "code", "request_id"] {
        assert!(body.get(member).is_some(), "problem lacks {member}: {body}");
    }
    assert_eq!(body["status"], status);
    body
}

/// How a test cuts the broker's database.
pub enum DbCut {
    /// PostgreSQL, reached through a TCP proxy the test can cut.
    Proxy(crate::tcp_proxy::TcpProxy),
    /// SQLite: another connection holds the write lock, so the broker's writes wait and then fail.
    SqliteLock { path: String, held: std::sync::Mutex<Option<diesel::SqliteConnection>> },
}

impl DbCut {
    /// Routes a PostgreSQL URL through a new proxy (rewriting `url`), or remembers the SQLite file.
    pub fn install(url: &mut String) -> Self {
        if let Some(path) = url.strip_prefix("sqlite://") {
            return DbCut::SqliteLock { path: path.to_owned(), held: std::sync::Mutex::new(None) };
        }
        let at = url.find('@').expect("a PostgreSQL URL with a user") + 1;
        let end = url[at..].find('/').map_or(url.len(), |i| at + i);
        let target: std::net::SocketAddr = url[at..end].parse().expect("host:port as an IP address");
        let proxy = crate::tcp_proxy::TcpProxy::start(target);
        url.replace_range(at..end, &format!("127.0.0.1:{}", proxy.port));
        DbCut::Proxy(proxy)
    }

    pub async fn cut(&self) {
        match self {
            DbCut::Proxy(proxy) => proxy.cut().await,
            DbCut::SqliteLock { path, held } => {
                use diesel::connection::SimpleConnection;
                use diesel::Connection;
                let mut conn = diesel::SqliteConnection::establish(path).expect("open the broker's SQLite file");
                conn.batch_execute("PRAGMA busy_timeout = 10000; BEGIN EXCLUSIVE").expect("take the write lock");
                *held.lock().expect("lock slot") = Some(conn);
            }
        }
    }

    /// PostgreSQL only: packets dropped, nothing closed (see [`crate::tcp_proxy::TcpProxy::cut_silently`]).
    pub async fn cut_silently(&self) {
        match self {
            DbCut::Proxy(proxy) => proxy.cut_silently().await,
            DbCut::SqliteLock { .. } => panic!("a silent cut needs the PostgreSQL proxy"),
        }
    }

    pub async fn restore(&self) {
        match self {
            DbCut::Proxy(proxy) => proxy.restore(),
            DbCut::SqliteLock { held, .. } => {
                use diesel::connection::SimpleConnection;
                if let Some(mut conn) = held.lock().expect("lock slot").take() {
                    conn.batch_execute("COMMIT").expect("release the write lock");
                }
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, DbCut::Proxy(_))
    }
}
