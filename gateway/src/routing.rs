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
    /// Public routes need no token (login and the signing keys).
    pub public: bool,
}

/// (path prefix, backend, public). A prefix ending in `/` matches below it; otherwise it matches the
/// exact path and anything below it. Public entries match their exact path only, so nothing below a
/// public path is ever forwarded without a token.
const TABLE: &[(&str, Backend, bool)] = &[
    ("/v1/auth/login", Backend::Identity, true),
    ("/.well-known/jwks.json", Backend::Identity, true),
    ("/v1/auth/", Backend::Identity, false),
    ("/v1/me", Backend::Identity, false),
    ("/v1/lookups", Backend::Broker, false),
    ("/v1/batches", Backend::Broker, false),
    ("/v1/catalogue/", Backend::Broker, false),
    ("/v1/audit/", Backend::Audit, false),
    ("/v1/vendors", Backend::Vendors, false),
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

pub fn route(path: &str) -> Option<Route> {
    TABLE.iter().find_map(|&(prefix, backend, public)| {
        let matches = if public {
            path == prefix
        } else if prefix.ends_with('/') {
            path.starts_with(prefix)
        } else {
            path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
        };
        matches.then_some(Route { backend, public })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_prefix() {
        assert_eq!(route("/v1/auth/login"), Some(Route { backend: Backend::Identity, public: true }));
        assert_eq!(route("/v1/auth/logout"), Some(Route { backend: Backend::Identity, public: false }));
        assert_eq!(route("/v1/lookups"), Some(Route { backend: Backend::Broker, public: false }));
        assert_eq!(route("/v1/batches/123/results").map(|r| r.backend), Some(Backend::Broker));
        assert_eq!(route("/v1/audit/verify").map(|r| r.backend), Some(Backend::Audit));
        assert_eq!(route("/v1/vendors").map(|r| r.backend), Some(Backend::Vendors));
    }

    #[test]
    fn public_routes_match_exactly() {
        assert_eq!(route("/v1/auth/login/extra"), Some(Route { backend: Backend::Identity, public: false }));
        assert_eq!(route("/.well-known/jwks.json/x"), None);
    }

    #[test]
    fn internal_and_lookalike_paths_are_not_routed() {
        assert_eq!(route("/internal/v1/events"), None);
        assert_eq!(route("/v1/lookupsX"), None);
        assert_eq!(route("/v1/meta"), None);
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
