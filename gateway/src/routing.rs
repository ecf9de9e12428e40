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
/// exact path and anything below it.
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

pub fn route(path: &str) -> Option<Route> {
    TABLE.iter().find_map(|&(prefix, backend, public)| {
        let matches = if prefix.ends_with('/') {
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
    fn internal_and_lookalike_paths_are_not_routed() {
        assert_eq!(route("/internal/v1/events"), None);
        assert_eq!(route("/v1/lookupsX"), None);
        assert_eq!(route("/v1/meta"), None);
        assert_eq!(route("/v1/auth/login/../../internal"), Some(Route { backend: Backend::Identity, public: true }));
    }
}
