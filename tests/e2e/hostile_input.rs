//! Hostile input against every operation of the merged OpenAPI document (issue 15, item 2), through
//! the gateway, each operation as a demo user allowed to reach it ([`actor`]).
//!
//! The operations, their parameters and their bodies' schemas are read from `openapi/immilink.json`
//! at test time, so a new endpoint is covered the day it is documented. Each case is a well-formed
//! request ([`Fixtures`]: real ids of a vendor, contract, person, machine, link, account and audit
//! record, plausible values elsewhere) with one hostile part: malformed, truncated, deeply nested,
//! duplicated or oversized JSON, another content type or charset, a property of the wrong type, a
//! text no field can hold (NUL, lone surrogates, 70,000 characters, one past `maxLength`), an odd
//! but possibly acceptable text (SQL, paths, full-width digits, combining marks, a right-to-left
//! override…) sent where the body is refused for another reason, hostile query values, and invalid
//! identifiers in the path (not a UUID, overlong, Unicode, NUL, encoded slashes, dot segments).
//!
//! Every answer is judged ([`judge`]): never a 5xx; every refusal a problem+json; a 400, 415 or 422
//! names the `field` (the very property, where the case makes one property wrong). And nothing is
//! written: every table of every service database is read before and after each operation's cases
//! ([`Databases`], row counts and contents), allowing only the audit records some acts are audited
//! with ([`AUDITED`]) and two columns a refused request touches ([`VOLATILE_COLUMNS`]). Failures are
//! collected and listed at the end with the figures of the run.
//!
//! `HOSTILE_VERBOSE=1` prints each operation's answers by status; `HOSTILE_TRACE=<part of an
//! operation's name>` prints each of its cases as answered.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, RunQueryDsl};
use serde_json::{json, Value};

use crate::harness::TestStack;

// --- the services' tables, before and after ------------------------------------------------------

/// One text column of a query's rows.
#[derive(diesel::QueryableByName)]
struct TextRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    v: Option<String>,
}

enum Conn {
    Sqlite(diesel::SqliteConnection),
    Pg(diesel::PgConnection),
}

impl Conn {
    fn open(url: &str) -> Self {
        match url.strip_prefix("sqlite://") {
            Some(path) => {
                let mut conn = diesel::SqliteConnection::establish(path).expect("open a service's SQLite file");
                conn.batch_execute("PRAGMA busy_timeout = 10000").expect("a busy timeout");
                Conn::Sqlite(conn)
            }
            None => Conn::Pg(diesel::PgConnection::establish(url).expect("connect to a service's schema")),
        }
    }

    /// The `v` column of every row `sql` returns.
    fn texts(&mut self, sql: &str) -> Vec<Option<String>> {
        let rows: Vec<TextRow> = match self {
            Conn::Sqlite(conn) => diesel::sql_query(sql).load(conn),
            Conn::Pg(conn) => diesel::sql_query(sql).load(conn),
        }
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
        rows.into_iter().map(|row| row.v).collect()
    }
}

/// Columns a request may legitimately change without writing anything of its own: excluded from
/// the content compared before and after (the row counts still are).
const VOLATILE_COLUMNS: &[(&str, &str, &str)] = &[
    // Every authenticated request asks identity whether its session is live, and the answer records
    // activity for the idle timeout (R-ACC-10): a refused request still touches its session.
    ("identity", "sessions", "last_seen_at"),
    // A lookup's permission check notes the agency's use of its link, once a Taipei day (R-LINK-10),
    // whether the lookup is then refused or not.
    ("identity", "agency_links", "last_used_at"),
];

/// One service's database, with the query that reads each of its tables as text.
struct ServiceDb {
    service: &'static str,
    conn: Conn,
    /// (table, the query reading each row as one text)
    tables: Vec<(String, String)>,
}

impl ServiceDb {
    fn open(service: &'static str, url: &str) -> Self {
        let mut conn = Conn::open(url);
        let is_pg = matches!(conn, Conn::Pg(_));
        let list = if is_pg {
            "SELECT table_name::text AS v FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1"
        } else {
            "SELECT name AS v FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1"
        };
        let names: Vec<String> = conn.texts(list).into_iter().flatten().collect();
        assert!(!names.is_empty(), "{service} has tables");
        let tables = names
            .into_iter()
            .map(|table| {
                let columns_sql = if is_pg {
                    format!(
                        "SELECT column_name::text AS v FROM information_schema.columns \
                         WHERE table_schema = current_schema() AND table_name = '{table}' ORDER BY ordinal_position"
                    )
                } else {
                    format!("SELECT name AS v FROM pragma_table_info('{table}') ORDER BY cid")
                };
                let columns: Vec<String> = conn
                    .texts(&columns_sql)
                    .into_iter()
                    .flatten()
                    .filter(|column| !VOLATILE_COLUMNS.contains(&(service, table.as_str(), column.as_str())))
                    .collect();
                let quoted: Vec<String> = columns
                    .iter()
                    .map(|c| if is_pg { format!("quote_nullable(\"{c}\")") } else { format!("quote(\"{c}\")") })
                    .collect();
                let row =
                    if is_pg { format!("concat_ws('|', {})", quoted.join(", ")) } else { quoted.join(" || '|' || ") };
                let sql = format!("SELECT {row} AS v FROM \"{table}\"");
                (table, sql)
            })
            .collect();
        Self { service, conn, tables }
    }
}

/// A table's state: its rows, and a digest of their contents (less the volatile columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TableState {
    rows: usize,
    digest: u64,
}

/// Every table of every service database, by `service.table`.
type Snapshot = BTreeMap<String, TableState>;

/// The four service databases, read directly.
struct Databases(Vec<ServiceDb>);

impl Databases {
    fn open(t: &TestStack) -> Self {
        Self(
            ["identity", "broker", "audit", "vendors"]
                .map(|service| ServiceDb::open(service, t.db_url(service)))
                .into(),
        )
    }

    fn snapshot_now(&mut self) -> Snapshot {
        use std::hash::{Hash, Hasher};
        let mut snapshot = Snapshot::new();
        for db in &mut self.0 {
            for (table, sql) in &db.tables {
                let mut rows = db.conn.texts(sql);
                rows.sort();
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                rows.hash(&mut hasher);
                snapshot.insert(
                    format!("{}.{table}", db.service),
                    TableState { rows: rows.len(), digest: hasher.finish() },
                );
            }
        }
        snapshot
    }

    /// Runs `work` on the databases off the async thread (diesel blocks).
    async fn with<T: Send + 'static>(self, work: impl FnOnce(&mut Self) -> T + Send + 'static) -> (Self, T) {
        tokio::task::spawn_blocking(move || {
            let mut dbs = self;
            let out = work(&mut dbs);
            (dbs, out)
        })
        .await
        .expect("the database work ran")
    }

    async fn snapshot(self) -> (Self, Snapshot) {
        self.with(Self::snapshot_now).await
    }

    /// The kinds of the audit records after the first `sequence` ones.
    fn audit_kinds_after(&mut self, sequence: usize) -> Vec<String> {
        let audit = self.0.iter_mut().find(|db| db.service == "audit").expect("the audit database");
        let sql = format!("SELECT kind AS v FROM audit_records WHERE sequence > {sequence} ORDER BY sequence");
        audit.conn.texts(&sql).into_iter().flatten().collect()
    }

    /// A snapshot once the tables have stopped changing: the outboxes relayed what they hold and
    /// the audit log signed its checkpoint over the records (once a second in tests, while the log
    /// grows), so nothing changed for [`QUIET`]; within 30 s.
    async fn settled(self) -> (Self, Snapshot) {
        const QUIET: Duration = Duration::from_millis(1200);
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut dbs, mut last) = self.snapshot().await;
        let mut quiet_since = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let (next_dbs, next) = dbs.snapshot().await;
            dbs = next_dbs;
            if next != last {
                assert!(Instant::now() < deadline, "the tables kept changing for 30 s: {:?}", changes(&last, &next));
                last = next;
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= QUIET {
                return (dbs, next);
            }
        }
    }
}

/// The tables that carry the audit trail: the log and what is derived from its records (the Merkle
/// tree, the chain head, checkpoints, the oversight projections), and each service's outbox that
/// carries its events there.
fn is_audit_trail(table: &str) -> bool {
    const TRAIL: &[&str] = &[
        "audit.audit_records",
        "audit.audit_tree_hashes",
        "audit.audit_chain_head",
        "audit.audit_checkpoints",
        "audit.oversight_head",
        "audit.oversight_lookups",
        "audit.oversight_sessions",
    ];
    table.ends_with(".outbox") || TRAIL.contains(&table)
}

/// Which answers an audited act is recorded for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Recorded {
    /// A read of the audit trail that was served is itself recorded (who read whose accesses).
    Served,
    /// A refused lookup is recorded, naming the rule that refused it (R-QRY-01, R-QRY-02).
    Refused,
}

/// What an operation writes, legitimately, while it answers hostile input: the audit record of the
/// act, of these kinds, one per answer of that sort at most, and nothing beyond the audit trail.
const AUDITED: &[(&str, &[&str], Recorded)] = &[
    ("GET /v1/audit/export", &["audit.exported"], Recorded::Served),
    ("GET /v1/audit/query-records", &["audit.query_records_read"], Recorded::Served),
    ("GET /v1/audit/subjects/{subject_id}/accesses", &["audit.subject_accesses_reported"], Recorded::Served),
    ("POST /v1/lookups", &["lookup.refused"], Recorded::Refused),
    ("POST /v1/batches", &["lookup.refused"], Recorded::Refused),
];

/// What differs between two snapshots, one line per table.
fn changes(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let mut lines = Vec::new();
    for (table, after_state) in after {
        match before.get(table) {
            Some(before_state) if before_state == after_state => {}
            Some(before_state) if before_state.rows != after_state.rows => {
                lines.push(format!("{table}: {} → {} rows", before_state.rows, after_state.rows));
            }
            Some(_) => lines.push(format!("{table}: contents changed ({} rows)", after_state.rows)),
            None => lines.push(format!("{table}: appeared")),
        }
    }
    lines
}

// --- the document ---------------------------------------------------------------------------------

/// The merged document as committed (the stack's `openapi` test fails when it drifts from the code).
fn merged_document() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/immilink.json");
    let text = std::fs::read_to_string(&path).expect("openapi/immilink.json");
    serde_json::from_str(&text).expect("the merged document is JSON")
}

/// One operation of the document.
struct Operation<'d> {
    method: &'static str,
    template: &'d str,
    op: &'d Value,
}

impl Operation<'_> {
    fn name(&self) -> String {
        format!("{} {}", self.method, self.template)
    }

    fn parameters(&self, location: &str) -> Vec<(&str, &Value)> {
        let all = self.op["parameters"].as_array().map(Vec::as_slice).unwrap_or_default();
        all.iter().filter(|p| p["in"] == location).filter_map(|p| Some((p["name"].as_str()?, &p["schema"]))).collect()
    }

    fn json_body(&self) -> Option<&Value> {
        self.op["requestBody"]["content"].get("application/json").map(|c| &c["schema"])
    }

    fn takes_csv(&self) -> bool {
        self.op["requestBody"]["content"].get("text/csv").is_some()
    }

    /// An operation without parameters or body: nothing of it can be hostile but the request itself.
    fn takes_no_input(&self) -> bool {
        self.op["requestBody"].is_null() && self.parameters("path").is_empty() && self.parameters("query").is_empty()
    }
}

fn operations(doc: &Value) -> Vec<Operation<'_>> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut all = Vec::new();
    for (template, item) in paths {
        for method in ["GET", "PUT", "POST", "PATCH", "DELETE"] {
            if let Some(op) = item.get(method.to_ascii_lowercase()) {
                all.push(Operation { method, template, op });
            }
        }
    }
    all
}

/// A schema with its `$ref` followed and a nullable `oneOf` reduced to its other variant.
fn resolve<'d>(doc: &'d Value, schema: &'d Value) -> &'d Value {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or_default();
        return resolve(doc, &doc["components"]["schemas"][name]);
    }
    for combinator in ["oneOf", "anyOf", "allOf"] {
        if let Some(variants) = schema.get(combinator).and_then(Value::as_array) {
            if let Some(inner) = variants.iter().find(|v| v["type"] != "null") {
                return resolve(doc, inner);
            }
        }
    }
    schema
}

/// The JSON type a schema asks for (its non-null one).
fn type_of(schema: &Value) -> &str {
    match &schema["type"] {
        Value::String(kind) => kind,
        Value::Array(kinds) => kinds.iter().filter_map(Value::as_str).find(|k| *k != "null").unwrap_or(""),
        _ if schema.get("properties").is_some() => "object",
        _ => "",
    }
}

fn is_nullable(schema: &Value) -> bool {
    let typed = schema["type"].as_array().is_some_and(|kinds| kinds.iter().any(|k| k == "null"));
    let variant = schema["oneOf"].as_array().is_some_and(|variants| variants.iter().any(|v| v["type"] == "null"));
    typed || variant
}

/// The properties of an object schema, in the document's order, and which are required.
fn properties<'d>(doc: &'d Value, schema: &'d Value) -> Vec<(&'d str, &'d Value, bool)> {
    let schema = resolve(doc, schema);
    let required: Vec<&str> =
        schema["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let Some(props) = schema["properties"].as_object() else {
        return Vec::new();
    };
    props.iter().map(|(name, prop)| (name.as_str(), prop, required.contains(&name.as_str()))).collect()
}

// --- well-formed requests to start from ----------------------------------------------------------

/// What the well-formed part of a request is made of: real ids where the stack has the resource
/// (so the hostile part meets the service's own checks, not a 404), fresh ones elsewhere.
struct Fixtures {
    ids: BTreeMap<&'static str, String>,
    today: chrono::NaiveDate,
    now: chrono::DateTime<chrono::Utc>,
}

/// A fresh id nothing in the stack has.
fn unknown_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl Fixtures {
    fn id(&self, name: &str) -> String {
        let key = match name {
            "user_id" | "grantee_user_id" | "to_user_id" => "user_id",
            "from_user_id" => "manager_user_id",
            "link_id" => "id_of_link",
            other => other,
        };
        self.ids.get(key).cloned().unwrap_or_else(unknown_id)
    }

    /// A path parameter's well-formed value: the id of an existing resource where there is one.
    fn path_value(&self, template: &str, name: &str) -> String {
        let id_of = match name {
            "id" if template.starts_with("/v1/agency-links/") => "id_of_link",
            "id" if template.starts_with("/v1/audit/records/") => "id_of_record",
            other => other,
        };
        self.id(id_of)
    }

    fn path(&self, template: &str, hostile: Option<(&str, &str)>) -> String {
        let mut path = template.to_owned();
        for segment in template.split('/').filter(|s| s.starts_with('{')) {
            let name = segment.trim_matches(|c| c == '{' || c == '}');
            let value = match hostile {
                Some((param, raw)) if param == name => raw.to_owned(),
                _ => self.path_value(template, name),
            };
            path = path.replacen(segment, &value, 1);
        }
        path
    }

    /// A plausible value for a property: the example where the document gives one, a real id for an
    /// id, a date the rules accept.
    fn value(&self, doc: &Value, name: &str, schema: &Value) -> Value {
        let schema = resolve(doc, schema);
        let later_dates = ["deadline", "termination_date", "ends_on", "until", "valid_until"];
        match (type_of(schema), schema["format"].as_str()) {
            ("string", Some("date")) if later_dates.contains(&name) => {
                return json!((self.today + chrono::Duration::days(60)).to_string());
            }
            ("string", Some("date")) => return json!(self.today.to_string()),
            ("string", Some("date-time")) if later_dates.contains(&name) => {
                return json!((self.now + chrono::Duration::days(30)).to_rfc3339());
            }
            ("string", Some("date-time")) => return json!((self.now - chrono::Duration::hours(1)).to_rfc3339()),
            _ => {}
        }
        if let Some(known) = self.known(name) {
            return known;
        }
        if let Some(example) = schema.get("example") {
            return example.clone();
        }
        if let Some(first) = schema["enum"].get(0) {
            return first.clone();
        }
        match type_of(schema) {
            "string" if name.ends_with("_id") => json!(self.id(name)),
            "string" => json!("hostile-input probe"),
            "integer" => schema.get("minimum").cloned().unwrap_or(json!(1)),
            "number" => json!(0.5),
            "boolean" => json!(true),
            "array" => json!([self.value(doc, name, &schema["items"])]),
            "object" => Value::Object(
                properties(doc, schema)
                    .into_iter()
                    .filter(|(_, _, required)| *required)
                    .map(|(prop, prop_schema, _)| (prop.to_owned(), self.value(doc, prop, prop_schema)))
                    .collect(),
            ),
            _ => json!("hostile-input probe"),
        }
    }

    /// Well-formed values of fields the services check closely, where the document gives no example
    /// or one that names nothing in this stack.
    fn known(&self, name: &str) -> Option<Value> {
        Some(match name {
            "email" => json!("probe@example.gov.tw"),
            "phone" | "requester_phone" => json!("(02)2388-9393"),
            "national_id" | "subject_national_id" => json!("A123456789"),
            "ips" => json!(["127.0.0.1"]),
            "agency" | "agency_code" => json!("TPE-SW"),
            "unit_id" => json!(self.id("unit_id")),
            "legal_bases" => json!(["social_assistance_act"]),
            "username" => json!("hostile.probe"),
            "password" => json!("hostile-input-probe-1"),
            "certificate_serial" => json!("HOSTILE-PROBE-1"),
            _ => return None,
        })
    }

    /// A well-formed body, in the document's order, as raw JSON texts: the required properties and
    /// those of the schema's own example (some a service requires without the document saying so).
    fn skeleton(&self, doc: &Value, op: &Operation, schema: &Value) -> Body {
        let example = &resolve(doc, schema)["example"];
        let pairs = properties(doc, schema)
            .into_iter()
            .filter(|(name, _, required)| *required || example.get(name).is_some())
            .map(|(name, prop, _)| {
                let value = match (op.template, name) {
                    // A login's well-formed part names a bystander: a hostile attempt that got as
                    // far as counting a failure must not lock an account the run acts as.
                    ("/v1/auth/login", "username") => json!("tpe.ethics"),
                    ("/v1/auth/login", "certificate_serial") => json!("DEMO-tpe.ethics"),
                    _ => self.known(name).unwrap_or_else(|| {
                        let dated = resolve(doc, prop).get("format").is_some();
                        match &example[name] {
                            Value::Null => self.value(doc, name, prop),
                            _ if dated => self.value(doc, name, prop),
                            given => given.clone(),
                        }
                    }),
                };
                (name.to_owned(), value.to_string())
            })
            .collect();
        Body(pairs)
    }
}

/// A JSON object body as raw texts per property, so a value can be any text (a lone surrogate
/// escape is not a JSON value serde can hold) and a key can appear twice.
#[derive(Clone)]
struct Body(Vec<(String, String)>);

impl Body {
    fn render(&self) -> String {
        let members: Vec<String> = self.0.iter().map(|(key, raw)| format!("{}:{raw}", json!(key))).collect();
        format!("{{{}}}", members.join(","))
    }

    /// With `name` set to `raw` (in its place, or added last).
    fn with(&self, name: &str, raw: &str) -> Self {
        let mut pairs = self.0.clone();
        match pairs.iter_mut().find(|(key, _)| key == name) {
            Some(pair) => pair.1 = raw.to_owned(),
            None => pairs.push((name.to_owned(), raw.to_owned())),
        }
        Self(pairs)
    }

    fn without(&self, name: &str) -> Self {
        Self(self.0.iter().filter(|(key, _)| key != name).cloned().collect())
    }

    fn first_name(&self) -> Option<String> {
        self.0.first().map(|(key, _)| key.clone())
    }
}

// --- the hostile values ----------------------------------------------------------------------------

/// Values of the wrong JSON type for a schema, as raw JSON texts.
fn wrong_types(doc: &Value, schema: &Value) -> Vec<(&'static str, String)> {
    let schema = resolve(doc, schema);
    let texts: &[(&str, &str)] = match type_of(schema) {
        "string" => &[("a number", "12345"), ("a boolean", "true"), ("an array", "[\"x\"]"), ("an object", "{}")],
        "integer" => &[
            ("a string", "\"12\""),
            ("a fraction", "1.5"),
            ("a boolean", "true"),
            ("beyond i64", "99999999999999999999"),
            ("beyond f64", "1e400"),
        ],
        "number" => &[("a string", "\"0.5\""), ("a boolean", "false"), ("an array", "[]")],
        "boolean" => &[("a string", "\"true\""), ("a number", "1"), ("an object", "{}")],
        "array" => &[("a string", "\"x\""), ("an object", "{}"), ("a number", "7")],
        "object" => &[("a string", "\"x\""), ("an array", "[]"), ("a number", "7")],
        _ => &[],
    };
    let mut all: Vec<(&str, String)> = texts.iter().map(|(label, raw)| (*label, (*raw).to_owned())).collect();
    if type_of(schema) == "array" {
        let items = resolve(doc, &schema["items"]);
        let wrong_item = match type_of(items) {
            "string" => Some("[12345]"),
            "integer" | "number" | "boolean" => Some("[\"x\"]"),
            "object" => Some("[\"x\"]"),
            _ => None,
        };
        if let Some(raw) = wrong_item {
            all.push(("an item of the wrong type", raw.to_owned()));
        }
        all.push(("a null item", "[null]".to_owned()));
    }
    all
}

/// Text values no field of ours can hold, as raw JSON texts: refused wherever they are put.
fn refused_texts(schema: &Value) -> Vec<(String, String)> {
    let mut all = vec![
        ("NUL".to_owned(), r#""before\u0000after""#.to_owned()),
        ("a lone leading surrogate".to_owned(), r#""\ud800""#.to_owned()),
        ("a lone trailing surrogate".to_owned(), r#""x\udc00y""#.to_owned()),
        ("70,000 characters".to_owned(), json!("x".repeat(70_000)).to_string()),
    ];
    if let Some(max) = schema["maxLength"].as_u64() {
        all.push((format!("maxLength + 1 ({})", max + 1), json!("é".repeat(max as usize + 1)).to_string()));
    }
    all
}

/// Odd-looking text a free-text field may hold: refused where the field has a format or a list of
/// values, otherwise sent where the body is refused for another reason (so nothing is written).
const ODD_TEXTS: &[(&str, &str)] = &[
    ("SQL", "' OR 1=1 --"),
    ("SQL statement", "'); DROP TABLE users; --"),
    ("a path", "../../etc/passwd"),
    ("an encoded path", "%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
    ("full-width digits", "１２３４５６７８９０"),
    ("combining marks", "Z\u{0351}\u{0352}\u{0357}\u{0358}a\u{0300}\u{0301}\u{0302}l\u{0303}\u{0304}g\u{0305}o"),
    ("a right-to-left override", "\u{202E}fdp.exe"),
    ("zero-width characters", "\u{FEFF}\u{200B}\u{200D}x"),
    ("an emoji", "😀"),
    ("an ANSI escape", "\u{1b}[31mred\u{1b}[0m"),
    ("empty", ""),
    ("blank", " \u{3000}\t"),
];

/// Path parameter values, as written in the request line.
const PATH_VALUES: &[(&str, &str)] = &[
    ("not a UUID", "not-a-uuid"),
    ("overlong", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
    ("full-width digits", "%EF%BC%91%EF%BC%92%EF%BC%93"),
    ("combining marks", "e%CC%81%CC%81%CC%81"),
    ("a right-to-left override", "%E2%80%AEfdp.exe"),
    ("NUL", "a%00b"),
    ("invalid UTF-8", "%FF%FE"),
    ("SQL", "%27%20OR%201%3D1%20--"),
    ("an encoded slash", "a%2Fb"),
    ("an encoded dot-dot-slash", "%2e%2e%2f%2e%2e%2f"),
    ("a dot-dot segment", ".."),
    ("a path", "..%5C..%5Cetc"),
];

/// Percent-encodes everything but the unreserved characters.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Query parameter values for a parameter's schema, each with what must come of it.
fn query_values(doc: &Value, name: &str, schema: &Value) -> Vec<(String, String, Expect)> {
    let schema = resolve(doc, schema);
    let refused = || Expect::Naming(name.to_owned());
    let mut all: Vec<(String, String, Expect)> = Vec::new();
    let mut add = |label: &str, value: &str, expect: Expect| all.push((label.to_owned(), encode(value), expect));
    let constrained = schema.get("enum").is_some() || schema.get("format").is_some();
    match type_of(schema) {
        "integer" => {
            for (label, value) in [("a word", "ten"), ("a fraction", "1.5"), ("beyond i64", "99999999999999999999")] {
                add(label, value, refused());
            }
            add("empty", "", refused());
            add("full-width digits", "１２", refused());
            let below = schema["minimum"].as_i64().is_some_and(|min| min >= 0);
            add("negative", "-1", if below { refused() } else { Expect::Tolerated });
        }
        "boolean" => {
            for (label, value) in [("a word", "maybe"), ("a number", "2"), ("empty", "")] {
                add(label, value, refused());
            }
        }
        _ => {
            for (label, value) in ODD_TEXTS {
                add(label, value, if constrained { refused() } else { Expect::Tolerated });
            }
            add("NUL", "a\u{0}b", if constrained { refused() } else { Expect::Tolerated });
            add("4,000 characters", &"x".repeat(4000), if constrained { refused() } else { Expect::Tolerated });
        }
    }
    all
}

// --- the cases -----------------------------------------------------------------------------------

/// What must come of a case.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// Refused; a 400, 415 or 422 names this field (or a path below it).
    Naming(String),
    /// Refused; a 400, 415 or 422 names a field.
    Refused,
    /// May be served (a read with an odd filter); a 400, 415 or 422 names a field.
    Tolerated,
    /// Over the body limit: 413 `body_too_large`.
    TooLarge,
}

struct Case {
    label: String,
    /// Path and query, as written in the request line.
    target: String,
    /// Send over a plain socket exactly as written (an HTTP client would resolve `..` and re-encode).
    raw: bool,
    content_type: Option<String>,
    body: Option<Vec<u8>>,
    expect: Expect,
}

const JSON: &str = "application/json";

fn cases(doc: &Value, fixtures: &Fixtures, op: &Operation) -> Vec<Case> {
    let mut all = Vec::new();
    let path = fixtures.path(op.template, None);
    let skeleton = op.json_body().map(|schema| fixtures.skeleton(doc, op, schema));
    // The body that goes with a path or query case: well-formed, so only the hostile part is wrong.
    let (content_type, body) = match (&skeleton, op.takes_csv()) {
        // A bulk job's declaration travels in the query with a CSV body; the CSV holds an ID that
        // is refused, so no hostile declaration can start a job.
        (_, true) => (Some("text/csv".to_owned()), Some(b"subject_id\r\nNOT-AN-ID\r\n".to_vec())),
        (Some(skeleton), false) => (Some(JSON.to_owned()), Some(skeleton.render().into_bytes())),
        (None, false) => (None, None),
    };
    let case = |label: String, target: String, raw: bool, expect: Expect| Case {
        label,
        target,
        raw,
        content_type: content_type.clone(),
        body: body.clone(),
        expect,
    };

    for (param, _) in op.parameters("path") {
        for (label, raw) in PATH_VALUES {
            let target = fixtures.path(op.template, Some((param, raw)));
            all.push(case(format!("path {param}: {label}"), target, true, Expect::Refused));
        }
    }
    for (param, schema) in op.parameters("query") {
        for (label, value, expect) in query_values(doc, param, schema) {
            all.push(case(format!("query {param}: {label}"), format!("{path}?{param}={value}"), false, expect));
        }
        all.push(case(
            format!("query {param}: twice"),
            format!("{path}?{param}=1&{param}=2"),
            false,
            Expect::Tolerated,
        ));
    }
    if op.method == "GET" {
        let target = format!("{path}?unknown=1&%27%20OR%201%3D1=..%2F..%2F");
        all.push(case("query: unknown parameters".to_owned(), target, false, Expect::Tolerated));
    }
    if let (Some(schema), Some(skeleton)) = (op.json_body(), &skeleton) {
        body_cases(doc, fixtures, op, schema, skeleton, &path, &mut all);
    }
    all
}

fn body_case(label: String, target: &str, content_type: Option<&str>, body: Vec<u8>, expect: Expect) -> Case {
    Case {
        label,
        target: target.to_owned(),
        raw: false,
        content_type: content_type.map(str::to_owned),
        body: Some(body),
        expect,
    }
}

fn body_cases(
    doc: &Value,
    fixtures: &Fixtures,
    op: &Operation,
    schema: &Value,
    skeleton: &Body,
    path: &str,
    all: &mut Vec<Case>,
) {
    let json_case =
        |label: String, text: String, expect: Expect| body_case(label, path, Some(JSON), text.into_bytes(), expect);
    let text = skeleton.render();
    let first =
        skeleton.first_name().or_else(|| properties(doc, schema).first().map(|(name, _, _)| (*name).to_owned()));
    let nested_arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let nested_objects = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let nested_arrays_in_objects = format!("{}{}", "[{\"a\":".repeat(5_000), "}]".repeat(5_000));
    let half = text.char_indices().nth(text.chars().count() / 2).map_or(0, |(at, _)| at);
    for (label, body) in [
        ("not JSON", "{not json".to_owned()),
        ("truncated", text[..half].to_owned()),
        ("empty", String::new()),
        ("null", "null".to_owned()),
        ("an array", "[]".to_owned()),
        ("a string", "\"x\"".to_owned()),
        ("10,000 nested arrays", nested_arrays.clone()),
        ("10,000 arrays and objects nested", nested_arrays_in_objects),
        ("trailing garbage", format!("{text}}}}}")),
        ("two documents", format!("{text}{text}")),
        ("a byte order mark first", format!("\u{FEFF}{text}")),
    ] {
        all.push(json_case(format!("body: {label}"), body, Expect::Refused));
    }
    let mut invalid_utf8 = text.clone().into_bytes();
    invalid_utf8.splice(1..1, b"\"\xff\xfe\":1,".iter().copied());
    all.push(body_case("body: invalid UTF-8".into(), path, Some(JSON), invalid_utf8, Expect::Refused));
    if let Some(first) = &first {
        for (label, nested) in [("arrays", &nested_arrays), ("objects", &nested_objects)] {
            let body = skeleton.with(first, nested).render();
            all.push(json_case(format!("body: 10,000 nested {label} in {first}"), body, Expect::Naming(first.clone())));
        }
        let value = skeleton.0.iter().find(|(key, _)| key == first).map_or("\"x\"".to_owned(), |(_, raw)| raw.clone());
        let mut twice = skeleton.with(first, &value);
        twice.0.push((first.clone(), value));
        all.push(json_case(format!("body: {first} twice"), twice.render(), Expect::Naming(first.clone())));
        let huge = skeleton.with(first, &json!("x".repeat(4 * 1024 * 1024 + 16)).to_string()).render();
        all.push(json_case("body: over 4 MiB".into(), huge, Expect::TooLarge));
    }
    // Content types and charsets: a well-formed body, so nothing but the type is wrong.
    let content_type = || Expect::Naming("Content-Type".to_owned());
    for (label, mime) in [
        ("text/plain", Some("text/plain")),
        ("no content type", None),
        ("multipart", Some("multipart/form-data; boundary=hostile")),
        ("a form", Some("application/x-www-form-urlencoded")),
        ("XML", Some("application/xml")),
    ] {
        all.push(body_case(format!("content type: {label}"), path, mime, text.clone().into_bytes(), content_type()));
    }
    let latin1: Vec<u8> =
        skeleton.with(first.as_deref().unwrap_or("x"), "\"café\"").render().chars().map(|c| c as u32 as u8).collect();
    all.push(body_case(
        "charset: latin1".into(),
        path,
        Some("application/json; charset=latin1"),
        latin1,
        content_type(),
    ));
    let utf16: Vec<u8> = [0xFF, 0xFE].into_iter().chain(text.encode_utf16().flat_map(u16::to_le_bytes)).collect();
    all.push(body_case(
        "charset: utf-16".into(),
        path,
        Some("application/json; charset=utf-16"),
        utf16,
        content_type(),
    ));

    for (name, prop, required) in properties(doc, schema) {
        property_cases(doc, fixtures, op, skeleton, path, name, prop, required, all);
    }
}

#[allow(clippy::too_many_arguments)]
fn property_cases(
    doc: &Value,
    fixtures: &Fixtures,
    op: &Operation,
    skeleton: &Body,
    path: &str,
    name: &str,
    prop: &Value,
    required: bool,
    all: &mut Vec<Case>,
) {
    let json_case = |label: String, body: Body, target: &str, expect: Expect| {
        body_case(label, target, Some(JSON), body.render().into_bytes(), expect)
    };
    let naming = || Expect::Naming(name.to_owned());
    let schema = resolve(doc, prop);
    let skeleton = &alone_of_its_kind(op, skeleton, name);
    for (label, raw) in wrong_types(doc, prop) {
        all.push(json_case(format!("{name}: {label}"), skeleton.with(name, &raw), path, naming()));
    }
    if required && !is_nullable(prop) {
        all.push(json_case(format!("{name}: null"), skeleton.with(name, "null"), path, naming()));
    }
    // One level down: a nested property of the wrong type is named with its path.
    let nested_of = |object: &Value| -> Vec<(String, String)> {
        properties(doc, object)
            .into_iter()
            .filter_map(|(inner, inner_schema, _)| {
                let (_, raw) = wrong_types(doc, inner_schema).into_iter().next()?;
                let mut value = fixtures.value(doc, name, object);
                value[inner] = serde_json::from_str(&raw).ok()?;
                Some((inner.to_owned(), value.to_string()))
            })
            .collect()
    };
    match type_of(schema) {
        "object" => {
            for (inner, raw) in nested_of(schema) {
                let field = format!("{name}.{inner}");
                all.push(json_case(
                    format!("{field}: wrong type"),
                    skeleton.with(name, &raw),
                    path,
                    Expect::Naming(field),
                ));
            }
        }
        "array" if type_of(resolve(doc, &schema["items"])) == "object" => {
            for (inner, raw) in nested_of(&schema["items"]) {
                let field = format!("{name}[0].{inner}");
                let raw = format!("[{raw}]");
                all.push(json_case(
                    format!("{field}: wrong type"),
                    skeleton.with(name, &raw),
                    path,
                    Expect::Naming(field),
                ));
            }
        }
        "string" => {
            for (label, raw) in refused_texts(schema) {
                all.push(json_case(format!("{name}: {label}"), skeleton.with(name, &raw), path, naming()));
            }
            let constrained = schema.get("enum").is_some() || schema.get("format").is_some();
            for (label, text) in ODD_TEXTS {
                let raw = json!(text).to_string();
                let blank = text.trim().is_empty();
                if constrained || (blank && required) {
                    all.push(json_case(format!("{name}: {label}"), skeleton.with(name, &raw), path, naming()));
                } else if let Some((body, target)) = refused_elsewhere(doc, fixtures, op, skeleton, path, name, &raw) {
                    all.push(json_case(
                        format!("{name}: {label} (body refused elsewhere)"),
                        body,
                        &target,
                        Expect::Refused,
                    ));
                }
            }
        }
        _ => {}
    }
}

/// Properties of which a body names one alternative: a case about one leaves the others out (the
/// service would rightly refuse the body for naming several first).
const ALTERNATIVES: &[(&str, &[&[&str]])] =
    &[("/v1/audit/holds", &[&["subject_id"], &["case_number"], &["from_sequence", "to_sequence"]])];

fn alone_of_its_kind(op: &Operation, skeleton: &Body, name: &str) -> Body {
    let groups = ALTERNATIVES.iter().filter(|(template, _)| *template == op.template).flat_map(|(_, groups)| *groups);
    let mut body = skeleton.clone();
    for group in groups.filter(|group| !group.contains(&name)) {
        for other in *group {
            body = body.without(other);
        }
    }
    body
}

/// A body holding `raw` in `name` that is refused for another reason, so an odd but acceptable text
/// is read and checked without being stored: another required property left out, or another
/// property of the wrong type after it, or else the resource addressed does not exist.
fn refused_elsewhere(
    doc: &Value,
    fixtures: &Fixtures,
    op: &Operation,
    skeleton: &Body,
    path: &str,
    name: &str,
    raw: &str,
) -> Option<(Body, String)> {
    let with = skeleton.with(name, raw);
    let schema = op.json_body()?;
    let present = |key: &str| skeleton.0.iter().any(|(k, _)| k == key);
    let mut required = properties(doc, schema).into_iter().rev();
    if let Some((other, _, _)) = required.find(|(key, _, required)| *required && *key != name && present(key)) {
        return Some((with.without(other), path.to_owned()));
    }
    if let Some((other, other_schema, _)) = properties(doc, schema).into_iter().find(|(key, _, _)| *key != name) {
        let (_, wrong) = wrong_types(doc, other_schema).into_iter().next()?;
        return Some((with.without(other).with(other, &wrong), path.to_owned()));
    }
    let (param, _) = op.parameters("path").into_iter().next()?;
    Some((with, fixtures.path(op.template, Some((param, &unknown_id())))))
}

// --- sending and judging -------------------------------------------------------------------------

/// What came back.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

async fn send(
    t: &TestStack,
    http: &reqwest::Client,
    method: &str,
    case: &Case,
    token: Option<&str>,
) -> Result<Answer, String> {
    if case.raw {
        return send_raw(&t.stack.gateway_url, method, case, token).await;
    }
    let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    let mut request = http.request(method, t.url(&case.target));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(content_type) = &case.content_type {
        request = request.header("content-type", content_type);
    }
    if let Some(body) = &case.body {
        request = request.body(body.clone());
    }
    let response = request.send().await.map_err(|err| format!("no answer: {err}"))?;
    let status = response.status().as_u16();
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let body = response.text().await.map_err(|err| format!("no body: {err}"))?;
    Ok(Answer { status, content_type, body })
}

/// A request written on a socket as it is (the request line byte for byte), read to its end.
async fn send_raw(base: &str, method: &str, case: &Case, token: Option<&str>) -> Result<Answer, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address).await.map_err(|e| e.to_string())?;
        let mut head = format!("{method} {} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n", case.target);
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if let Some(content_type) = &case.content_type {
            head.push_str(&format!("Content-Type: {content_type}\r\n"));
        }
        let body = case.body.as_deref().unwrap_or_default();
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        stream.write_all(head.as_bytes()).await.map_err(|e| e.to_string())?;
        stream.write_all(body).await.map_err(|e| e.to_string())?;
        // Read until the answer is complete (by its length, or its last chunk): a server that
        // refused the request early may keep the connection open a while.
        let mut response = Vec::new();
        let mut buffer = [0u8; 16 * 1024];
        loop {
            let read = stream.read(&mut buffer).await.map_err(|e| e.to_string())?;
            response.extend_from_slice(&buffer[..read]);
            if read == 0 || answer_is_complete(&response) {
                return Ok::<_, String>(response);
            }
        }
    };
    let response = tokio::time::timeout(crate::harness::REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| "no answer in time".to_owned())??;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no response head")?;
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let mut lines = head.lines();
    let status =
        lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).ok_or("no status")?;
    let header = |name: &str| {
        head.lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(key, _)| key.trim().eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim().to_owned())
            .unwrap_or_default()
    };
    let mut body = response[split + 4..].to_vec();
    if header("transfer-encoding").eq_ignore_ascii_case("chunked") {
        body = dechunk(&body);
    }
    Ok(Answer { status, content_type: header("content-type"), body: String::from_utf8_lossy(&body).into_owned() })
}

fn answer_is_complete(response: &[u8]) -> bool {
    let Some(split) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let body = &response[split + 4..];
    if head.contains("transfer-encoding: chunked") {
        return body.ends_with(b"0\r\n\r\n");
    }
    let length = head.lines().find_map(|line| line.strip_prefix("content-length:")?.trim().parse::<usize>().ok());
    length.is_some_and(|length| body.len() >= length)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 || data.len() < end + 2 + size {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[(end + 4 + size).min(data.len())..];
    }
    out
}

/// The statuses that refuse a request's input: they must name what was wrong.
const INPUT_REFUSALS: [u16; 3] = [400, 415, 422];

/// Whether the answer is what the case must get; `Err` says why not.
fn judge(case: &Case, answer: &Answer, authenticated: bool) -> Result<(), String> {
    let status = answer.status;
    if status >= 500 {
        return Err("a server error".into());
    }
    if status < 400 {
        return match case.expect {
            Expect::Tolerated => Ok(()),
            _ => Err("accepted; it must be refused".into()),
        };
    }
    if !answer.content_type.starts_with("application/problem+json") {
        return Err(format!("a refusal as {:?}, not application/problem+json", answer.content_type));
    }
    let problem: Value = serde_json::from_str(&answer.body).map_err(|_| "a problem that is not JSON".to_owned())?;
    for member in ["type", "title", "status", "detail", "code", "request_id"] {
        if problem.get(member).is_none() {
            return Err(format!("a problem without `{member}`"));
        }
    }
    if problem["status"] != status {
        return Err("a problem whose status is not the response's".into());
    }
    if status == 401 && authenticated {
        return Err("401: the hostile request cost the caller their session".into());
    }
    if status == 405 {
        return Err("405: the document and the routes disagree".into());
    }
    if case.expect == Expect::TooLarge {
        return match (status, problem["code"].as_str()) {
            (413, Some("body_too_large")) => Ok(()),
            _ => Err("not 413 body_too_large".into()),
        };
    }
    if INPUT_REFUSALS.contains(&status) {
        let field = problem["field"].as_str().unwrap_or_default();
        if field.is_empty() {
            return Err("a refusal of the input that names no field".into());
        }
        if let Expect::Naming(wanted) = &case.expect {
            let below = field.strip_prefix(wanted.as_str()).is_some_and(|rest| rest.starts_with(['.', '[']));
            if field != wanted && !below {
                return Err(format!("names `{field}`, not `{wanted}`"));
            }
        }
    }
    Ok(())
}

/// Who each operation is tried as: a user allowed to reach it (None: a public operation).
fn actor(op: &Operation) -> Option<&'static str> {
    let (method, path) = (op.method, op.template);
    let public = [
        ("POST", "/v1/auth/login"),
        ("POST", "/v1/account-applications"),
        ("GET", "/v1/agencies"),
        ("GET", "/.well-known/jwks.json"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/openapi.json"),
    ];
    if public.contains(&(method, path)) {
        return None;
    }
    let nia = path.ends_with("/item-decisions")
        || path.ends_with("/suspension") && path.starts_with("/v1/agency-links")
        || path.ends_with("/decision") && path.starts_with("/v1/agency-links")
        || (method, path) == ("POST", "/v1/anomaly-notices");
    Some(match path {
        _ if nia => "nia.reviewer",
        "/v1/account-manager-handovers" => "tpe.head",
        _ if path.starts_with("/v1/purpose-approvals") && path.ends_with("/decision") => "hln.supervisor",
        _ if path.starts_with("/v1/purpose-approvals") => "hln.clerk",
        _ if path.starts_with("/v1/audit/reviews") => "tpe.supervisor",
        // Exports for spot checks are the account managers' (R-AUD-08), and so is a finding's
        // remediation, which the audited agency reports.
        "/v1/audit/query-records/export" | "/v1/audit/findings/{id}/remediation" => "tpe.manager",
        _ if path.starts_with("/v1/compliance") => "tpe.auditor",
        _ if path.starts_with("/v1/audit/") => "tpe.auditor",
        _ if path.starts_with("/v1/account")
            || path.starts_with("/v1/lending-flags")
            || path.starts_with("/v1/agency-links")
            || path.starts_with("/v1/anomaly-notices") =>
        {
            "tpe.manager"
        }
        _ if path.starts_with("/v1/vendor") => "tpe.vendors",
        _ => "tpe.caseworker",
    })
}

// --- the run -----------------------------------------------------------------------------------------

/// The demo users the operations are tried as.
const ACTORS: &[&str] = &[
    "tpe.caseworker",
    "tpe.supervisor",
    "tpe.manager",
    "tpe.head",
    "tpe.auditor",
    "tpe.vendors",
    "hln.clerk",
    "hln.supervisor",
    "nia.reviewer",
];

async fn created(t: &TestStack, token: &str, path: &str, body: Value) -> String {
    let response = t.post(token, path, &body).await;
    let status = response.status().as_u16();
    let answer: Value = response.json().await.expect("a JSON answer");
    assert_eq!(status, 201, "creating {path}: {answer}");
    answer["id"].as_str().expect("an id").to_owned()
}

/// Real resources for the path parameters: the demo link and a bystander's account, an audit record,
/// and a vendor with an active contract, a person and a machine.
async fn fixtures(t: &TestStack, tokens: &BTreeMap<&str, String>) -> Fixtures {
    let now = chrono::Utc::now();
    let today = immilink_shared::clock::business_date(now);
    let mut ids = BTreeMap::new();
    let manager = &tokens["tpe.manager"];
    let accounts: Value = t.get(manager, "/v1/accounts?limit=500").await.json().await.expect("accounts");
    let account_of = |username: &str| {
        let account = accounts.as_array().into_iter().flatten().find(|a| a["username"] == username);
        account.and_then(|a| a["user_id"].as_str()).expect("a demo account").to_owned()
    };
    ids.insert("user_id", account_of("tpe.ethics"));
    ids.insert("manager_user_id", account_of("tpe.manager"));
    let agencies: Value = t.http.get(t.url("/v1/agencies")).send().await.expect("agencies").json().await.expect("JSON");
    let taipei = agencies.as_array().into_iter().flatten().find(|a| a["code"] == "TPE-SW").expect("TPE-SW");
    ids.insert("unit_id", taipei["units"][0]["id"].as_str().expect("a unit of TPE-SW").to_owned());
    let links: Value = t.get(manager, "/v1/agency-links").await.json().await.expect("links");
    ids.insert("id_of_link", links[0]["id"].as_str().expect("the demo link").to_owned());
    ids.insert("subject_id", "A123456789".to_owned());
    let auditor = &tokens["tpe.auditor"];
    let deadline = Instant::now() + crate::harness::AUDIT_DELIVERY_WITHIN;
    let record = loop {
        let page: Value = t.get(auditor, "/v1/audit/records?limit=1").await.json().await.expect("records");
        if let Some(id) = page[0]["id"].as_str() {
            break id.to_owned();
        }
        assert!(Instant::now() < deadline, "no audit record arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    ids.insert("id_of_record", record);

    let vendors = &tokens["tpe.vendors"];
    let vendor =
        created(t, vendors, "/v1/vendors", json!({"name": "敵意測試資訊", "business_number": "22099131"})).await;
    let contracts = format!("/v1/vendors/{vendor}/contracts");
    let contract = json!({ "title": "維運", "scope": "系統維護", "starts_on": today.to_string(),
        "ends_on": (today + chrono::Duration::days(365)).to_string(), "custom_development": false });
    let contract = created(t, vendors, &contracts, contract).await;
    let activation = t.post(vendors, &format!("{contracts}/{contract}/activation"), &json!({})).await;
    assert_eq!(activation.status(), 200, "the contract is activated");
    let person = json!({ "national_id": "F131104093", "name": "林測試", "contract_id": contract });
    let person = created(t, vendors, &format!("/v1/vendors/{vendor}/personnel"), person).await;
    let device = json!({ "asset_tag": "TPE-HOSTILE-1", "serial_number": "SN-HOSTILE-1", "description": "測試機" });
    let device = created(t, vendors, &format!("{contracts}/{contract}/devices"), device).await;
    ids.extend([("vendor_id", vendor), ("contract_id", contract), ("person_id", person), ("device_id", device)]);
    Fixtures { ids, today, now }
}

/// How the answers fell.
#[derive(Default)]
struct Tally {
    cases: usize,
    accepted: usize,
    refused: usize,
    server_errors: usize,
    by_status: BTreeMap<u16, usize>,
}

impl Tally {
    fn count(&mut self, status: u16) {
        *self.by_status.entry(status).or_default() += 1;
        match status {
            200..=299 => self.accepted += 1,
            400..=499 => self.refused += 1,
            500.. => self.server_errors += 1,
            _ => {}
        }
    }
}

fn excerpt(body: &str) -> String {
    let flat: String = body.chars().filter(|c| !c.is_control()).take(240).collect();
    flat
}

/// Every operation of the merged document, hostile input of every kind the issue names, through the
/// gateway as a user allowed to reach it: never a 5xx; every refusal a problem, naming the field
/// when one is at fault; and no table of any service written by a refused request.
#[actix_web::test]
async fn hostile_input_to_every_operation_is_refused_naming_the_field_and_writes_nothing() {
    // The lookup rate limits (tested in lookups.rs) would answer 429 before the input is read.
    let adjust: fn(&mut immilink_stack::StackConfig) = |config| {
        config.broker.lookups_per_user_per_minute = 1_000_000;
        config.broker.lookups_per_agency_per_minute = 1_000_000;
    };
    let t = TestStack::spawn_with(crate::harness::Options { adjust, ..Default::default() }).await;
    let ended = crate::harness::within(Duration::from_secs(400), every_operation(&t)).await;
    t.shutdown().await;
    ended.conclude();
}

async fn every_operation(t: &TestStack) {
    let started = Instant::now();
    let doc = merged_document();
    let ops = operations(&doc);
    let mut tokens = BTreeMap::new();
    for user in ACTORS {
        tokens.insert(*user, t.login(user).await);
    }
    let fixtures = fixtures(t, &tokens).await;
    let applicants: Vec<reqwest::Client> =
        (2..=41).map(|host| crate::harness::client(Some(std::net::Ipv4Addr::new(127, 0, 0, host).into()))).collect();
    let (mut dbs, mut before) = Databases::open(t).settled().await;
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    let mut inputless = Vec::new();
    // HOSTILE_TRACE=<part of an operation's name> prints each of its cases as answered.
    let trace = std::env::var("HOSTILE_TRACE").ok();
    let verbose = std::env::var_os("HOSTILE_VERBOSE").is_some();
    let mut audited_records = 0;
    for op in &ops {
        if op.method != "GET" && op.takes_no_input() {
            // Logging out and signing a checkpoint take no input: they are tried last, and they
            // write by design.
            inputless.push(op);
            continue;
        }
        let user = actor(op);
        let token = user.map(|u| tokens[u].as_str());
        let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
        let mut named_a_field = false;
        for (index, case) in cases(&doc, &fixtures, op).into_iter().enumerate() {
            tally.cases += 1;
            // Account applications are limited per address (10 an hour) before they are read: each
            // case comes from its own loopback address, so each is read.
            let http = match (op.method, op.template) {
                ("POST", "/v1/account-applications") => &applicants[index % applicants.len()],
                _ => &t.http,
            };
            match send(t, http, op.method, &case, token).await {
                Err(err) => failures.push(format!("{} — {}: {err}", op.name(), case.label)),
                Ok(answer) => {
                    tally.count(answer.status);
                    *statuses.entry(answer.status).or_default() += 1;
                    if trace.as_deref().is_some_and(|wanted| op.name().contains(wanted)) {
                        println!("{} — {}: {} {}", op.name(), case.label, answer.status, excerpt(&answer.body));
                    }
                    named_a_field |= INPUT_REFUSALS.contains(&answer.status) && answer.body.contains("\"field\"");
                    if let Err(why) = judge(&case, &answer, token.is_some()) {
                        let body = excerpt(&answer.body);
                        failures.push(format!("{} — {}: {} {why}: {body}", op.name(), case.label, answer.status));
                    }
                }
            }
        }
        // The hostile input was read: a run that met only 404s or 403s would prove nothing.
        let has_input = op.json_body().is_some() || !op.parameters("query").is_empty();
        if has_input && !named_a_field {
            failures.push(format!("{}: no refusal named a field: the input was never read ({statuses:?})", op.name()));
        }
        if verbose {
            println!("{} as {}: {statuses:?}", op.name(), user.unwrap_or("nobody"));
        }
        let (next_dbs, after) = dbs.snapshot().await;
        dbs = next_dbs;
        if after != before {
            let (next_dbs, settled) = dbs.settled().await;
            let records_before = before["audit.audit_records"].rows;
            let (next_dbs, kinds) = next_dbs.with(move |dbs| dbs.audit_kinds_after(records_before)).await;
            dbs = next_dbs;
            let audited = AUDITED.iter().find(|(name, _, _)| *name == op.name());
            let answers = |recorded: &Recorded| {
                let sort = |status: &u16| match recorded {
                    Recorded::Served => (200..300).contains(status),
                    Recorded::Refused => (400..500).contains(status),
                };
                statuses.iter().filter(|(status, _)| sort(status)).map(|(_, n)| n).sum::<usize>()
            };
            let explained = audited.is_some_and(|(_, allowed, recorded)| {
                kinds.iter().all(|kind| allowed.contains(&kind.as_str()))
                    && kinds.len() <= answers(recorded)
                    && settled.iter().all(|(table, state)| before.get(table) == Some(state) || is_audit_trail(table))
            });
            if explained {
                audited_records += kinds.len();
                if verbose {
                    println!("{} recorded {} audit records: {:?}", op.name(), kinds.len(), kinds.first());
                }
            } else {
                let lines = changes(&before, &settled);
                failures.extend(lines.into_iter().map(|line| format!("{} wrote {line}", op.name())));
                if !kinds.is_empty() {
                    failures.push(format!("{} recorded {kinds:?}", op.name()));
                }
            }
            before = settled;
        }
    }
    for op in inputless {
        let token = actor(op).map(|u| tokens[u].as_str());
        let case = Case {
            label: "an unexpected body and query".into(),
            target: format!("{}?%00=%00", op.template),
            raw: false,
            content_type: Some("text/plain".into()),
            body: Some(b"{not json".to_vec()),
            expect: Expect::Tolerated,
        };
        tally.cases += 1;
        match send(t, &t.http, op.method, &case, token).await {
            Err(err) => failures.push(format!("{} — {}: {err}", op.name(), case.label)),
            Ok(answer) => {
                tally.count(answer.status);
                if let Err(why) = judge(&case, &answer, false) {
                    failures.push(format!(
                        "{} — {}: {} {why}: {}",
                        op.name(),
                        case.label,
                        answer.status,
                        excerpt(&answer.body)
                    ));
                }
            }
        }
    }
    println!(
        "hostile input: {} operations, {} cases tried: {} refused (4xx), {} accepted (2xx), {} server errors (5xx); \
         by status {:?}; {} audit records of audited acts written; {} failures; {:.1} s",
        ops.len(),
        tally.cases,
        tally.refused,
        tally.accepted,
        tally.server_errors,
        tally.by_status,
        audited_records,
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}
