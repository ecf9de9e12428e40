//! Which service answers which path. Anything not listed is a 404 here: in particular `/internal/`
//! is never routed, so internal endpoints are unreachable from outside.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Identity,
    Broker,
    Audit,
    Vendors,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub backend: Backend,
    /// Public routes need no token (login, the signing keys, submitting an account application).
    pub public: bool,
}

/// Who may call an entry of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// A valid token of a live session.
    Token,
    /// Anyone, with this method on this exact path.
    Public(&'static str),
}

use Access::{Public, Token};

/// (path prefix, backend, access). A prefix ending in `/` matches below it; otherwise it matches the
/// exact path and anything below it. Public entries match their exact path and method only, so
/// nothing below or beside a public route is ever forwarded without a token.
const TABLE: &[(&str, Backend, Access)] = &[
    ("/v1/auth/login", Backend::Identity, Public("POST")),
    ("/.well-known/jwks.json", Backend::Identity, Public("GET")),
    ("/v1/account-applications", Backend::Identity, Public("POST")),
    ("/v1/agencies", Backend::Identity, Public("GET")),
    ("/v1/auth/", Backend::Identity, Token),
    ("/v1/me", Backend::Identity, Token),
    ("/v1/account-applications", Backend::Identity, Token),
    ("/v1/accounts", Backend::Identity, Token),
    ("/v1/account-manager-handovers", Backend::Identity, Token),
    ("/v1/lending-flags", Backend::Identity, Token),
    ("/v1/agency-links", Backend::Identity, Token),
    ("/v1/anomaly-notices", Backend::Identity, Token),
    ("/v1/lookups", Backend::Broker, Token),
    ("/v1/batches", Backend::Broker, Token),
    ("/v1/proxy-authorizations", Backend::Broker, Token),
    ("/v1/purpose-approvals", Backend::Broker, Token),
    ("/v1/doubt-queries", Backend::Broker, Token),
    ("/v1/catalogue/", Backend::Broker, Token),
    ("/v1/audit/", Backend::Audit, Token),
    ("/v1/compliance/", Backend::Audit, Token),
    ("/v1/vendors", Backend::Vendors, Token),
    ("/v1/vendor-devices", Backend::Vendors, Token),
    ("/v1/vendor-findings", Backend::Vendors, Token),
];

/// Whether a path is in canonical form: no `.`/`..` or empty segments and no encoded dots, slashes or
/// backslashes. Anything else is refused before routing: HTTP clients (reqwest included) resolve dot
/// segments, so `/v1/auth/login/../../internal/…` would match a public prefix here and then reach an
/// internal endpoint there, carrying the internal token the gateway adds.
pub fn is_canonical(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let lowered = path.to_ascii_lowercase();
    let encoded_separator = ["%2e", "%2f", "%5c"].iter().any(|e| lowered.contains(e));
    let dot_segment = rest.split('/').any(|segment| segment == "." || segment == "..");
    !encoded_separator && !dot_segment && !path.contains("//") && !path.contains('\\')
}

pub fn route(method: &str, path: &str) -> Option<Route> {
    TABLE.iter().find_map(|&(prefix, backend, access)| {
        let matches = match access {
            Public(public_method) => path == prefix && method == public_method,
            Token if prefix.ends_with('/') => path.starts_with(prefix),
            Token => path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/')),
        };
        matches.then_some(Route { backend, public: access != Token })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_prefix() {
        assert_eq!(route("POST", "/v1/auth/login"), Some(Route { backend: Backend::Identity, public: true }));
        assert_eq!(route("POST", "/v1/auth/logout"), Some(Route { backend: Backend::Identity, public: false }));
        assert_eq!(route("POST", "/v1/lookups"), Some(Route { backend: Backend::Broker, public: false }));
        assert_eq!(route("GET", "/v1/batches/123/results").map(|r| r.backend), Some(Backend::Broker));
        assert_eq!(route("GET", "/v1/audit/verify").map(|r| r.backend), Some(Backend::Audit));
        assert_eq!(route("GET", "/v1/vendors").map(|r| r.backend), Some(Backend::Vendors));
        assert_eq!(route("PUT", "/v1/accounts/u1/ips").map(|r| r.backend), Some(Backend::Identity));
    }

    #[test]
    fn public_routes_match_exactly_by_path_and_method() {
        assert_eq!(route("POST", "/v1/auth/login/extra"), Some(Route { backend: Backend::Identity, public: false }));
        assert_eq!(route("GET", "/.well-known/jwks.json/x"), None);
        // Submitting an application needs no token; listing and reviewing them does.
        assert_eq!(route("POST", "/v1/account-applications").map(|r| r.public), Some(true));
        assert_eq!(route("GET", "/v1/account-applications").map(|r| r.public), Some(false));
        assert_eq!(route("POST", "/v1/account-applications/a1/reviews").map(|r| r.public), Some(false));
    }

    #[test]
    fn internal_and_lookalike_paths_are_not_routed() {
        assert_eq!(route("POST", "/internal/v1/events"), None);
        assert_eq!(route("POST", "/v1/lookupsX"), None);
        assert_eq!(route("GET", "/v1/meta"), None);
        assert_eq!(route("GET", "/v1/accountsX"), None);
    }

    #[test]
    fn dot_segments_and_encoded_separators_are_not_canonical() {
        for bad in [
            "/v1/auth/login/../../internal/v1/events",
            "/v1/audit/../internal/v1/events",
            "/v1/audit/./verify",
            "/v1/audit/%2e%2e/internal",
            "/v1/audit/..%2F..%2Finternal",
            "/v1/audit/%5c..",
            "/v1//audit/verify",
            "//internal/v1/events",
            "/v1/audit\\..\\internal",
            "v1/me",
        ] {
            assert!(!is_canonical(bad), "{bad}");
        }
        for good in ["/v1/audit/verify", "/v1/audit/records/01a2-x", "/docs/", "/", "/v1/me"] {
            assert!(is_canonical(good), "{good}");
        }
    }
}
