//! Who the client is when the gateway sits behind a reverse proxy (an ingress controller, a load
//! balancer). Sessions are bound to the caller's IP (R-ACC-11), but behind a proxy the TCP peer is
//! the proxy. The proxy states the address it was connected from in `Forwarded` (RFC 7239 `for=`)
//! or `X-Forwarded-For`, and the scheme in `X-Forwarded-Proto` (or `proto=`).
//!
//! Those headers are believed only when the TCP peer is inside one of the configured trusted proxy
//! CIDRs ([`TrustedProxies`], the gateway's `IMMILINK_TRUSTED_PROXIES`, empty by default): from
//! anyone else they are ignored and the peer is the client. From a trusted peer the list is read
//! from the right (the entry the peer itself wrote) and the client is the right-most address that
//! is not itself a trusted proxy; entries further left were written by the client or by proxies we
//! do not know and are never read. An entry that must be read but is not an address, or the two
//! headers naming different clients, is refused ([`ForwardedError`], a 400 naming the header):
//! falling back to the peer would bind every session behind the proxy to the proxy's address.

use std::net::{IpAddr, SocketAddr};

use actix_web::http::header::{HeaderMap, HeaderName};
use actix_web::http::StatusCode;
use ipnet::IpNet;

use crate::problem::ApiError;

pub const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The networks whose forwarding headers are believed. Empty: nobody's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Trust nobody: the TCP peer is always the client.
    pub fn none() -> Self {
        Self(Vec::new())
    }

    /// A comma-separated list of CIDRs (`10.0.0.0/8`, `fd00::/8`) or single addresses
    /// (`192.0.2.7`, taken as `/32` or `/128`). Blank: nobody.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut networks = Vec::new();
        for item in list.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            let network = match item.parse::<IpNet>() {
                Ok(network) => network.trunc(),
                Err(_) => match item.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(canonical(ip)),
                    Err(_) => return Err(format!("{item:?} is neither a CIDR (10.0.0.0/8) nor an IP address")),
                },
            };
            networks.push(network);
        }
        Ok(Self(networks))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|network| network.contains(&ip))
    }
}

/// The client of `req` by [`resolve`], believing the proxies the app holds as
/// `web::Data<TrustedProxies>` (none held: nobody).
pub fn client_origin(req: &actix_web::HttpRequest) -> Result<ClientOrigin, ApiError> {
    let peer = req.peer_addr().ok_or_else(|| ApiError::internal("no peer address"))?.ip();
    let trusted = req.app_data::<actix_web::web::Data<TrustedProxies>>();
    let none = TrustedProxies::none();
    let trusted = trusted.map_or(&none, |data| data.get_ref());
    Ok(resolve(peer, req.headers(), trusted, req.app_config().secure())?)
}

/// An IPv4 client of a dual-stack listener appears as `::ffff:a.b.c.d`: it is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The client as the gateway sees it: its address and whether it reached us over TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOrigin {
    pub ip: IpAddr,
    pub https: bool,
}

/// Why a trusted proxy's forwarding headers cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardedError {
    /// An entry that had to be read is not an address (a syntax error, `unknown`, an obfuscated node).
    #[error("the {header} header from a trusted proxy is malformed: {reason}")]
    Malformed { header: &'static str, reason: String },
    /// `Forwarded` and `X-Forwarded-For` both arrived and name different clients: one of them was
    /// passed through from the client unchecked, and which one cannot be told.
    #[error("Forwarded names {forwarded} and X-Forwarded-For names {x_forwarded_for} as the client")]
    Conflict { forwarded: IpAddr, x_forwarded_for: IpAddr },
}

impl From<ForwardedError> for ApiError {
    fn from(err: ForwardedError) -> Self {
        let field = match &err {
            ForwardedError::Malformed { header, .. } => *header,
            ForwardedError::Conflict { .. } => "Forwarded",
        };
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_forwarding_header",
            "The proxy's forwarding headers cannot be used",
            "代理伺服器轉送的來源位址無法判讀",
        )
        .detail(err.to_string())
        .field(field)
    }
}

/// The client of a request that arrived from `peer` with `headers` (`tls`: the connection itself
/// was TLS). See the module documentation for the rules.
pub fn resolve(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
    tls: bool,
) -> Result<ClientOrigin, ForwardedError> {
    let peer = canonical(peer);
    if !trusted.contains(peer) {
        return Ok(ClientOrigin { ip: peer, https: tls });
    }
    let forwarded = joined(headers, &FORWARDED);
    let x_forwarded_for = joined(headers, &X_FORWARDED_FOR);
    let by_forwarded = forwarded.as_deref().map(|value| from_forwarded(value, trusted)).transpose()?;
    let by_x_forwarded_for =
        x_forwarded_for.as_deref().map(|value| from_x_forwarded_for(value, trusted)).transpose()?;
    let (ip, forwarded_https) = match (by_forwarded, by_x_forwarded_for) {
        (Some((a, _)), Some(b)) if a != b => return Err(ForwardedError::Conflict { forwarded: a, x_forwarded_for: b }),
        (Some((ip, https)), _) => (ip, https),
        (None, Some(ip)) => (ip, false),
        (None, None) => (peer, false),
    };
    let proto_https = joined(headers, &X_FORWARDED_PROTO)
        .as_deref()
        .and_then(|value| value.split(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
    Ok(ClientOrigin { ip, https: tls || forwarded_https || proto_https })
}

/// Every line of a header joined as one list (RFC 9110 §5.3); `None` when absent. A value that is
/// not visible ASCII is kept as nothing a parser accepts, so it is refused if it must be read.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let values: Vec<String> = headers
        .get_all(name)
        .map(|value| value.to_str().map(str::to_owned).unwrap_or_else(|_| "\u{fffd}".to_owned()))
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// The right-most address of an `X-Forwarded-For` list that is not a trusted proxy (the left-most
/// when all are).
fn from_x_forwarded_for(value: &str, trusted: &TrustedProxies) -> Result<IpAddr, ForwardedError> {
    let malformed = |reason: String| ForwardedError::Malformed { header: "X-Forwarded-For", reason };
    let mut last = None;
    for entry in value.rsplit(',').map(str::trim) {
        let ip = node_address(entry).ok_or_else(|| malformed(format!("{entry:?} is not an IP address")))?;
        if !trusted.contains(ip) {
            return Ok(ip);
        }
        last = Some(ip);
    }
    last.ok_or_else(|| malformed("no address".into()))
}

/// As [`from_x_forwarded_for`] over the `for=` of each `Forwarded` element, with whether the chosen
/// element says the client spoke `proto=https`.
fn from_forwarded(value: &str, trusted: &TrustedProxies) -> Result<(IpAddr, bool), ForwardedError> {
    let malformed = |reason: String| ForwardedError::Malformed { header: "Forwarded", reason };
    let elements = split_outside_quotes(value, ',').ok_or_else(|| malformed("an unterminated quoted string".into()))?;
    let mut last = None;
    for element in elements.iter().rev() {
        let (node, https) = forwarded_element(element).map_err(malformed)?;
        if !trusted.contains(node) {
            return Ok((node, https));
        }
        last = Some((node, https));
    }
    last.ok_or_else(|| malformed("no element".into()))
}

/// One `Forwarded` element (`for=192.0.2.60;proto=https;by=203.0.113.43`): its `for` address and
/// whether its `proto` is https.
fn forwarded_element(element: &str) -> Result<(IpAddr, bool), String> {
    let pairs = split_outside_quotes(element, ';').ok_or("an unterminated quoted string")?;
    let (mut node, mut https) = (None, false);
    for pair in pairs.iter().map(|pair| pair.trim()).filter(|pair| !pair.is_empty()) {
        let (name, raw) = pair.split_once('=').ok_or_else(|| format!("{pair:?} is not name=value"))?;
        let value = unquote(raw.trim()).ok_or_else(|| format!("{raw:?} is not a token or a quoted string"))?;
        match name.trim().to_ascii_lowercase().as_str() {
            "for" if node.is_some() => return Err("an element names for= twice".into()),
            "for" => {
                node = Some(node_address(&value).ok_or_else(|| format!("for={value:?} is not an IP address"))?);
            }
            "proto" => https = value.eq_ignore_ascii_case("https"),
            _ => {}
        }
    }
    node.map(|ip| (ip, https)).ok_or_else(|| format!("{:?} has no for=", element.trim()))
}

/// Splits on `separator` where it is not inside a quoted string; `None` for an unterminated quote.
fn split_outside_quotes(value: &str, separator: char) -> Option<Vec<String>> {
    let (mut parts, mut current, mut quoted, mut escaped) = (Vec::new(), String::new(), false, false);
    for c in value.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == separator && !quoted => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if quoted {
        return None;
    }
    parts.push(current);
    Some(parts)
}

/// A token as is, a quoted string without its quotes (and escapes); `None` for anything else.
fn unquote(raw: &str) -> Option<String> {
    if let Some(inner) = raw.strip_prefix('"') {
        let inner = inner.strip_suffix('"')?;
        let mut value = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            value.push(if c == '\\' { chars.next()? } else { c });
        }
        return Some(value);
    }
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~:[]".contains(c);
    (!raw.is_empty() && raw.chars().all(token)).then(|| raw.to_owned())
}

/// A node as forwarding headers write it: `192.0.2.7`, `192.0.2.7:4711`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`. `unknown` and obfuscated nodes (`_hidden`) are no address.
fn node_address(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    let ip =
        node.parse::<IpAddr>().ok().or_else(|| node.parse::<SocketAddr>().ok().map(|addr| addr.ip())).or_else(
            || node.strip_prefix('[')?.strip_suffix(']')?.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        )?;
    Some(canonical(ip))
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn ingress() -> TrustedProxies {
        TrustedProxies::parse("10.0.0.0/8, 192.0.2.1").unwrap()
    }

    fn client(peer: &str, pairs: &[(&str, &str)]) -> Result<ClientOrigin, ForwardedError> {
        resolve(ip(peer), &headers(pairs), &ingress(), false)
    }

    #[test]
    fn trusted_proxies_are_cidrs_or_addresses_and_blank_is_nobody() {
        let trusted = TrustedProxies::parse(" 10.0.0.0/8 ,192.0.2.1, fd00::/8,").unwrap();
        assert!(
            trusted.contains(ip("10.200.3.4")) && trusted.contains(ip("192.0.2.1")) && trusted.contains(ip("fd12::9"))
        );
        assert!(!trusted.contains(ip("192.0.2.2")) && !trusted.contains(ip("11.0.0.1")));
        assert!(trusted.contains(ip("::ffff:10.1.2.3")), "an IPv4 peer of a dual-stack listener");
        // Host bits set are the network they fall in.
        assert!(TrustedProxies::parse("10.1.2.3/8").unwrap().contains(ip("10.9.9.9")));
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert!(TrustedProxies::parse("  ").unwrap().is_empty());
        for bad in ["10.0.0.0/33", "ingress", "10.0.0/8", "*"] {
            assert!(TrustedProxies::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let spoofed = [
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=203.0.113.9;proto=https"),
            ("x-forwarded-proto", "https"),
        ];
        assert_eq!(client("198.51.100.4", &spoofed), Ok(ClientOrigin { ip: ip("198.51.100.4"), https: false }));
        // Nothing is parsed: garbage from an untrusted peer is not even an error.
        assert_eq!(
            client("198.51.100.4", &[("forwarded", "for=\"unterminated")]).map(|o| o.ip),
            Ok(ip("198.51.100.4"))
        );
        // With nobody trusted, not even a private peer is believed.
        let nobody = resolve(ip("10.0.0.5"), &headers(&spoofed), &TrustedProxies::none(), false).unwrap();
        assert_eq!(nobody, ClientOrigin { ip: ip("10.0.0.5"), https: false });
        // A TLS connection is https whoever the peer is.
        assert!(resolve(ip("198.51.100.4"), &HeaderMap::new(), &ingress(), true).unwrap().https);
    }

    #[test]
    fn from_a_trusted_peer_the_right_most_untrusted_address_is_the_client() {
        let of = |pairs: &[(&str, &str)]| client("10.0.0.7", pairs).map(|origin| origin.ip);
        assert_eq!(of(&[("x-forwarded-for", "203.0.113.9")]), Ok(ip("203.0.113.9")));
        // What the client put to the left is never read; trusted hops on the right are skipped.
        assert_eq!(of(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.3.3.3")]), Ok(ip("203.0.113.9")));
        assert_eq!(of(&[("x-forwarded-for", "not-an-ip, 203.0.113.9")]), Ok(ip("203.0.113.9")));
        // Several header lines are one list, in order.
        assert_eq!(of(&[("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "203.0.113.9")]), Ok(ip("203.0.113.9")));
        // Ports and IPv6 forms.
        assert_eq!(of(&[("x-forwarded-for", "203.0.113.9:4711")]), Ok(ip("203.0.113.9")));
        assert_eq!(of(&[("x-forwarded-for", "[2001:db8::7]:4711")]), Ok(ip("2001:db8::7")));
        assert_eq!(of(&[("x-forwarded-for", "2001:db8::7")]), Ok(ip("2001:db8::7")));
        // Every hop trusted: the first one is the client.
        assert_eq!(of(&[("x-forwarded-for", "10.1.1.1, 192.0.2.1")]), Ok(ip("10.1.1.1")));
        // No header: the trusted peer itself is the client (a probe, a health check).
        assert_eq!(of(&[]), Ok(ip("10.0.0.7")));
        // RFC 7239.
        assert_eq!(of(&[("forwarded", "for=203.0.113.9")]), Ok(ip("203.0.113.9")));
        assert_eq!(
            of(&[(
                "forwarded",
                r#"for=1.1.1.1, For="[2001:db8:cafe::17]:4711";proto=https;by=10.0.0.7, for=10.4.4.4"#
            )]),
            Ok(ip("2001:db8:cafe::17"))
        );
        assert_eq!(of(&[("forwarded", "for=unknown, for=203.0.113.9;by=_ingress")]), Ok(ip("203.0.113.9")));
    }

    #[test]
    fn an_entry_that_must_be_read_and_is_no_address_is_refused_naming_its_header() {
        let refused = |pairs: &[(&str, &str)]| match client("10.0.0.7", pairs) {
            Err(ForwardedError::Malformed { header, .. }) => header,
            other => panic!("{pairs:?} gave {other:?}"),
        };
        for bad in ["unknown", "203.0.113.9, ", "203.0.113.999", "", "203.0.113.9 10.0.0.1", "::1::"] {
            assert_eq!(refused(&[("x-forwarded-for", bad)]), "X-Forwarded-For", "{bad:?}");
        }
        for bad in [
            "for=unknown",
            "for=_hidden",
            "proto=https",
            "for=\"203.0.113.9",
            "for",
            "for=203.0.113.9;for=198.51.100.1",
            "for=\"203.0.113.9\" junk",
        ] {
            assert_eq!(refused(&[("forwarded", bad)]), "Forwarded", "{bad:?}");
        }
        let problem = ApiError::from(ForwardedError::Malformed { header: "X-Forwarded-For", reason: "x".into() });
        assert_eq!(
            (problem.status().as_u16(), problem.code(), problem.field_name()),
            (400, "malformed_forwarding_header", Some("X-Forwarded-For"))
        );
    }

    #[test]
    fn both_headers_must_name_the_same_client() {
        let both =
            |forwarded: &str, xff: &str| client("10.0.0.7", &[("forwarded", forwarded), ("x-forwarded-for", xff)]);
        assert_eq!(both("for=203.0.113.9", "203.0.113.9").map(|o| o.ip), Ok(ip("203.0.113.9")));
        assert_eq!(
            both("for=198.51.100.1", "203.0.113.9"),
            Err(ForwardedError::Conflict { forwarded: ip("198.51.100.1"), x_forwarded_for: ip("203.0.113.9") })
        );
        assert_eq!(ApiError::from(both("for=1.1.1.1", "2.2.2.2").unwrap_err()).field_name(), Some("Forwarded"));
    }

    #[test]
    fn https_is_believed_from_a_trusted_peer_only() {
        let https = |peer: &str, pairs: &[(&str, &str)]| client(peer, pairs).unwrap().https;
        assert!(https("10.0.0.7", &[("x-forwarded-proto", "https")]));
        assert!(https("10.0.0.7", &[("x-forwarded-proto", "HTTPS, http")]));
        assert!(!https("10.0.0.7", &[("x-forwarded-proto", "http")]));
        assert!(https("10.0.0.7", &[("forwarded", "for=203.0.113.9;proto=https")]));
        assert!(!https("10.0.0.7", &[]));
        assert!(!https("198.51.100.4", &[("x-forwarded-proto", "https")]));
    }
}
