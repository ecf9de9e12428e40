//! The compliance matrix (R-GOV-01): every rule of ../shared/SPEC.md with its status, the endpoints
//! that enforce it and the tests that prove it.
//!
//! It is derived from the code so it cannot drift. A handler that enforces a rule declares it in its
//! `#[utoipa::path]` attribute as `extensions(("x-immilink-rules" = json!(["R-…"])))`, so the
//! declaration sits on the route and reaches the generated OpenAPI documents; a test that proves a
//! rule carries its id in its name (`r_aud_06_…`). [`generate`] joins the SPEC's rules, the merged
//! OpenAPI document and the tests found in the source tree; the result is committed as
//! `compliance/rules.json`, compiled into the binaries ([`committed`]) and served. The stack's tests
//! fail when the committed file differs from what the code generates, when a rule has no test, and
//! when code names a rule the SPEC does not have.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// The OpenAPI extension through which an operation declares the rules it enforces.
pub const RULES_EXTENSION: &str = "x-immilink-rules";

/// The matrix as committed in `compliance/rules.json`.
const COMMITTED: &str = include_str!("../../compliance/rules.json");

/// Every rule of the SPEC, in the SPEC's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ComplianceMatrix {
    pub rules: Vec<RuleEntry>,
}

/// One rule: what the SPEC says, where it is enforced and which tests prove it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RuleEntry {
    /// The SPEC's id, e.g. `R-AUD-06`.
    pub id: String,
    /// The rule as the SPEC words it.
    pub title: String,
    pub status: RuleStatus,
    /// The operations that declare they enforce it, as `METHOD /path`.
    pub endpoints: Vec<String>,
    pub tests: Vec<TestRef>,
}

/// A test that carries a rule's id in its name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct TestRef {
    pub name: String,
    /// The source file, relative to the repository root.
    pub file: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleStatus {
    /// Endpoints declare it and tests prove it.
    Enforced,
    /// Tests prove it, and no endpoint declares it: it is enforced by background work (sweeps,
    /// relays, the audit pipeline) or on every request (sessions, IP binding).
    EnforcedInBackground,
    /// No test proves it (CI fails on this status).
    Untested,
}

impl RuleStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleStatus::Enforced => "enforced",
            RuleStatus::EnforcedInBackground => "enforced_in_background",
            RuleStatus::Untested => "untested",
        }
    }
}

/// The committed matrix, parsed once. A file that does not parse is a build defect the stack's
/// tests catch; the served matrix is then empty rather than wrong.
pub fn committed() -> &'static ComplianceMatrix {
    static MATRIX: LazyLock<ComplianceMatrix> = LazyLock::new(|| {
        serde_json::from_str(COMMITTED).unwrap_or_else(|err| {
            tracing::error!(error = %err, "compliance/rules.json does not parse");
            ComplianceMatrix { rules: Vec::new() }
        })
    });
    &MATRIX
}

/// The committed form of a matrix: pretty JSON with a trailing newline.
pub fn render(matrix: &ComplianceMatrix) -> String {
    let mut text = serde_json::to_string_pretty(matrix).unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"));
    text.push('\n');
    text
}

/// A rule as the SPEC lists it (`- R-XXX-NN text`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecRule {
    pub id: String,
    pub title: String,
}

/// The rules of SPEC.md, in order: every line that starts with `- R-`.
pub fn spec_rules(spec: &str) -> Vec<SpecRule> {
    spec.lines()
        .filter_map(|line| line.strip_prefix("- "))
        .filter_map(|rest| {
            let (id, title) = rest.split_once(' ')?;
            is_rule_id(id).then(|| SpecRule { id: id.to_owned(), title: title.trim().to_owned() })
        })
        .collect()
}

/// `R-`, an upper-case area, `-`, two or more digits.
fn is_rule_id(text: &str) -> bool {
    let mut parts = text.split('-');
    let (Some("R"), Some(area), Some(number), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !area.is_empty()
        && area.chars().all(|c| c.is_ascii_uppercase())
        && number.len() >= 2
        && number.chars().all(|c| c.is_ascii_digit())
}

/// The rules each operation of an OpenAPI document declares: rule id → `METHOD /path`.
pub fn declared_endpoints(openapi: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut declared: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let Some(paths) = openapi.get("paths").and_then(Value::as_object) else {
        return declared;
    };
    for (path, item) in paths {
        let Some(operations) = item.as_object() else { continue };
        for (method, operation) in operations {
            let rules = operation.get(RULES_EXTENSION).and_then(Value::as_array).into_iter().flatten();
            for rule in rules.filter_map(Value::as_str) {
                declared.entry(rule.to_owned()).or_default().insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    declared
}

/// A test function found in the source tree, with the rule ids its name carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundTest {
    pub test: TestRef,
    pub rules: Vec<String>,
}

/// Every test function under `root` (its `.rs` files, outside `target/` and hidden directories).
pub fn find_tests(root: &Path) -> std::io::Result<Vec<FoundTest>> {
    let mut files = Vec::new();
    collect_rust_files(root, &mut files)?;
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        let relative = file.strip_prefix(root).unwrap_or(&file).to_string_lossy().replace('\\', "/");
        found.extend(
            tests_in(&text).into_iter().map(|name| FoundTest {
                rules: rule_ids_in_name(&name),
                test: TestRef { name, file: relative.clone() },
            }),
        );
    }
    Ok(found)
}

fn collect_rust_files(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_dir() {
            if !name.starts_with('.') && name != "target" && name != "node_modules" {
                collect_rust_files(&path, files)?;
            }
        } else if name.ends_with(".rs") {
            files.push(path);
        }
    }
    Ok(())
}

/// The names of the test functions in one source file: a `fn` whose attributes (the lines right
/// above it) include a test attribute (`#[test]`, `#[actix_web::test]`, `#[tokio::test(…)]`).
fn tests_in(source: &str) -> Vec<String> {
    let lines: Vec<&str> = source.lines().collect();
    let mut names = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let Some(name) = fn_name(line) else { continue };
        let attributes = lines[..index]
            .iter()
            .rev()
            .map(|line| line.trim())
            .take_while(|line| line.starts_with("#[") || line.starts_with("//"))
            .filter(|line| line.starts_with("#["));
        if attributes.into_iter().any(is_test_attribute) {
            names.push(name.to_owned());
        }
    }
    names
}

fn fn_name(line: &str) -> Option<&str> {
    let rest = line.trim_start();
    let rest = rest.strip_prefix("pub ").unwrap_or(rest);
    let rest = rest.strip_prefix("async ").unwrap_or(rest);
    let rest = rest.strip_prefix("fn ")?;
    let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
    (end > 0).then(|| &rest[..end])
}

fn is_test_attribute(attribute: &str) -> bool {
    let path = attribute.trim_start_matches("#[").split(['(', ']']).next().unwrap_or_default();
    path == "test" || path.ends_with("::test")
}

/// The rule ids a test's name carries: each `r_<area>_<digits>` in it (`r_qry_10_r_qry_11_…` carries
/// two).
pub fn rule_ids_in_name(name: &str) -> Vec<String> {
    let words: Vec<&str> = name.split('_').collect();
    let mut ids = Vec::new();
    for window in words.windows(3) {
        let [r, area, number] = window else { continue };
        let is_area = !area.is_empty() && area.chars().all(|c| c.is_ascii_lowercase());
        let is_number = number.len() >= 2 && number.chars().all(|c| c.is_ascii_digit());
        if *r == "r" && is_area && is_number {
            ids.push(format!("R-{}-{number}", area.to_uppercase()));
        }
    }
    ids
}

/// Joins the SPEC's rules with the endpoints that declare them and the tests that name them. The
/// errors list every id the code names that the SPEC does not have (a typo would otherwise prove
/// nothing), and every rule no test proves.
pub fn generate(
    spec: &[SpecRule],
    endpoints: &BTreeMap<String, BTreeSet<String>>,
    tests: &[FoundTest],
) -> Result<ComplianceMatrix, Vec<String>> {
    let known: BTreeSet<&str> = spec.iter().map(|rule| rule.id.as_str()).collect();
    let mut errors = Vec::new();
    for (rule, operations) in endpoints {
        if !known.contains(rule.as_str()) {
            errors.push(format!("{rule}, declared by {operations:?}, is not a rule of SPEC.md"));
        }
    }
    let mut tests_of: BTreeMap<&str, BTreeSet<TestRef>> = BTreeMap::new();
    for found in tests {
        for rule in &found.rules {
            match known.get(rule.as_str()) {
                Some(id) => {
                    tests_of.entry(id).or_default().insert(found.test.clone());
                }
                None => errors.push(format!(
                    "test {} ({}) names {rule}, which is not a rule of SPEC.md",
                    found.test.name, found.test.file
                )),
            }
        }
    }
    let rules: Vec<RuleEntry> = spec
        .iter()
        .map(|rule| {
            let endpoints: Vec<String> = endpoints.get(&rule.id).into_iter().flatten().cloned().collect();
            let tests: Vec<TestRef> = tests_of.remove(rule.id.as_str()).into_iter().flatten().collect();
            let status = match (tests.is_empty(), endpoints.is_empty()) {
                (true, _) => RuleStatus::Untested,
                (false, false) => RuleStatus::Enforced,
                (false, true) => RuleStatus::EnforcedInBackground,
            };
            RuleEntry { id: rule.id.clone(), title: rule.title.clone(), status, endpoints, tests }
        })
        .collect();
    errors.extend(rules.iter().filter(|rule| rule.status == RuleStatus::Untested).map(|rule| {
        format!(
            "{} has no test: name one `{}_…` and make it exercise the rule",
            rule.id,
            rule.id.to_lowercase().replace('-', "_")
        )
    }));
    match errors.is_empty() {
        true => Ok(ComplianceMatrix { rules }),
        false => Err(errors),
    }
}

/// The tests a matrix lists that the source tree does not hold.
pub fn missing_tests<'a>(matrix: &'a ComplianceMatrix, found: &[FoundTest]) -> Vec<&'a TestRef> {
    let present: BTreeSet<&TestRef> = found.iter().map(|found| &found.test).collect();
    matrix.rules.iter().flat_map(|rule| &rule.tests).filter(|test| !present.contains(test)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_rules_are_the_lines_that_start_with_an_id() {
        let spec =
            "# title\n- R-AUD-06 Sampling: at least 1/1000.\n- not a rule\n- R-GOV-01 The matrix.\n  - R-X-1 no\n";
        let rules = spec_rules(spec);
        let ids: Vec<&str> = rules.iter().map(|rule| rule.id.as_str()).collect();
        assert_eq!(ids, ["R-AUD-06", "R-GOV-01"]);
        assert_eq!(rules[0].title, "Sampling: at least 1/1000.");
    }

    #[test]
    fn a_test_name_carries_every_rule_id_in_it() {
        assert_eq!(rule_ids_in_name("r_qry_10_r_qry_11_catalogues_are_served"), ["R-QRY-10", "R-QRY-11"]);
        assert_eq!(rule_ids_in_name("r_aud_06_ratio_below_1_in_1000"), ["R-AUD-06"]);
        assert!(rule_ids_in_name("a_plain_test_r_2").is_empty());
    }

    #[test]
    fn only_functions_under_a_test_attribute_are_tests() {
        let source = "#[test]\nfn r_acc_01_one() {}\n\n#[actix_web::test]\n/// doc\nasync fn r_acc_02_two() {}\n\
                      fn r_acc_03_helper() {}\n#[tokio::test(flavor = \"multi_thread\")]\npub async fn three() {}\n\
                      #[derive(Debug)]\nfn not_a_test() {}\n";
        assert_eq!(tests_in(source), ["r_acc_01_one", "r_acc_02_two", "three"]);
    }

    #[test]
    fn endpoints_are_read_from_the_rules_extension() {
        let doc = serde_json::json!({ "paths": {
            "/v1/audit/samples": { "post": { RULES_EXTENSION: ["R-AUD-06"] }, "get": {} },
            "/v1/lookups": { "post": { RULES_EXTENSION: ["R-QRY-01", "R-AUD-06"] } },
        }});
        let declared = declared_endpoints(&doc);
        let sampling: Vec<&String> = declared["R-AUD-06"].iter().collect();
        assert_eq!(sampling, ["POST /v1/audit/samples", "POST /v1/lookups"]);
        assert_eq!(declared.len(), 2);
    }

    fn found(name: &str) -> FoundTest {
        FoundTest { test: TestRef { name: name.into(), file: "tests/x.rs".into() }, rules: rule_ids_in_name(name) }
    }

    #[test]
    fn generation_sets_each_status_and_refuses_untested_and_unknown_rules() {
        let spec = spec_rules("- R-AUD-01 kept.\n- R-AUD-02 chained.\n- R-AUD-03 table.\n");
        let mut endpoints = BTreeMap::new();
        endpoints.insert("R-AUD-01".to_owned(), BTreeSet::from(["POST /v1/audit/holds".to_owned()]));
        let tests = [found("r_aud_01_holds"), found("r_aud_02_chain")];
        let matrix = generate(&spec, &endpoints, &tests[..2]);
        let errors = matrix.expect_err("R-AUD-03 has no test");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("R-AUD-03 has no test"), "{errors:?}");

        let spec = spec_rules("- R-AUD-01 kept.\n- R-AUD-02 chained.\n");
        let matrix = generate(&spec, &endpoints, &tests).expect("every rule is proven");
        assert_eq!(matrix.rules[0].status, RuleStatus::Enforced);
        assert_eq!(matrix.rules[0].endpoints, ["POST /v1/audit/holds"]);
        assert_eq!(matrix.rules[1].status, RuleStatus::EnforcedInBackground);
        assert_eq!(matrix.rules[1].tests[0].name, "r_aud_02_chain");

        let typo =
            generate(&spec, &endpoints, &[found("r_aud_01_holds"), found("r_aud_02_chain"), found("r_aud_99_typo")]);
        assert!(typo.expect_err("R-AUD-99 is unknown").iter().any(|e| e.contains("R-AUD-99")));
    }

    #[test]
    fn status_names_are_the_wire_names() {
        for status in [RuleStatus::Enforced, RuleStatus::EnforcedInBackground, RuleStatus::Untested] {
            assert_eq!(serde_json::to_value(status).expect("serialises"), status.as_str());
        }
    }

    #[test]
    fn a_listed_test_the_source_does_not_hold_is_reported() {
        let spec = spec_rules("- R-AUD-01 kept.\n");
        let matrix = generate(&spec, &BTreeMap::new(), &[found("r_aud_01_holds")]).expect("proven");
        assert!(missing_tests(&matrix, &[found("r_aud_01_holds")]).is_empty());
        let missing = missing_tests(&matrix, &[found("r_aud_01_renamed")]);
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].name, "r_aud_01_holds");
    }
}
