//! Which requests go through an HTTP proxy: [`ProxyPolicy`], read from the environment the
//! way Go's `net/http` reads it (and so skopeo, crane, regctl and oras), with `ALL_PROXY` as
//! the fallback curl also honours.
//!
//! - `HTTPS_PROXY` for `https://` requests, `HTTP_PROXY` for `http://` ones, else `ALL_PROXY`
//!   for both. Each is read in upper case first, then in lower case; an empty value counts as
//!   unset (so `HTTPS_PROXY=` does not hide `https_proxy`).
//! - A proxy is `http://[USER:PASSWORD@]HOST[:PORT]` (a value without scheme is `http://`; the
//!   port defaults to 80) or `https://…` (TLS to the proxy itself, port 443 by default). The
//!   user and password, percent-decoded, go to the proxy as `Proxy-Authorization: Basic`.
//!   SOCKS proxies are refused with an error, rather than silently going direct.
//! - `NO_PROXY` (then `no_proxy`): comma-separated entries, matched against the request's host
//!   and port:
//!   - `*`: no request is proxied;
//!   - `example.com`: that host and every name under it (`a.example.com`);
//!   - `.example.com` or `*.example.com`: only names under it, not `example.com` itself;
//!   - `10.1.2.3`, `::1`: that address; `10.0.0.0/8`, `fd00::/8`: addresses in the range;
//!   - `registry.example:5000`, `[fd00::1]:5000`: that host on that port only.
//! - The loopback (`localhost`, `127.0.0.0/8`, `::1`, written as such) is never proxied, as in
//!   Go. A name that only resolves to the loopback (`registry.test` in a hosts file) is.
//!
//! The proxy resolves the registry's name, not ferry: a name only the proxy can resolve works.

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use ferry_core::{Error, Result};
use http::HeaderValue;

/// The scheme ferry speaks to a proxy in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyScheme {
    /// Plain HTTP to the proxy.
    Http,
    /// TLS to the proxy.
    Https,
}

/// One proxy: where it is, its credentials, and where it was configured (for messages).
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    scheme: ProxyScheme,
    host: String,
    port: u16,
    auth: Option<HeaderValue>,
    source: String,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("url", &self.shown())
            .field("auth", &self.auth.is_some())
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for Proxy {
    /// `http://proxy.example:3128` (never the credentials).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown())
    }
}

impl Proxy {
    /// Parses `value` (`http://user:pass@proxy:3128`, `proxy:3128`, `https://proxy`);
    /// `source` names where it was given (`HTTPS_PROXY`, `` `proxy` in ferry.toml ``) in
    /// errors and messages.
    pub fn parse(value: &str, source: &str) -> Result<Self> {
        let value = value.trim();
        let with_scheme = if value.contains("://") {
            value.to_string()
        } else {
            format!("http://{value}")
        };
        let invalid =
            |reason: String| Error::invalid("proxy", value, format!("{reason} ({source})"));
        let url = url::Url::parse(&with_scheme)
            .map_err(|e| invalid(format!("not a URL like `http://proxy.example:3128` ({e})")))?;
        let scheme = match url.scheme() {
            "http" => ProxyScheme::Http,
            "https" => ProxyScheme::Https,
            other => {
                return Err(invalid(format!(
                    "ferry speaks to `http://` and `https://` proxies, not `{other}://`"
                )));
            }
        };
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
            None => return Err(invalid("it names no host".into())),
        };
        if !matches!(url.path(), "" | "/") || url.query().is_some() {
            return Err(invalid(
                "a proxy URL is `http://HOST[:PORT]`, without path or query".into(),
            ));
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let auth = if url.username().is_empty() && url.password().is_none() {
            None
        } else {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            let user = decode(url.username());
            let password = decode(url.password().unwrap_or(""));
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            let mut header = HeaderValue::from_str(&format!("Basic {token}"))
                .map_err(|_| invalid("its credentials cannot be sent in a header".into()))?;
            header.set_sensitive(true);
            Some(header)
        };
        Ok(Self {
            scheme,
            host,
            port,
            auth,
            source: source.to_string(),
        })
    }

    /// The scheme ferry speaks to the proxy in.
    pub fn scheme(&self) -> ProxyScheme {
        self.scheme
    }

    /// The proxy's host (an IPv6 address in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where the proxy was configured: `HTTPS_PROXY`, `https_proxy`, `ALL_PROXY`, or what the
    /// caller named.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether credentials go to the proxy.
    pub fn has_credentials(&self) -> bool {
        self.auth.is_some()
    }

    /// The `Proxy-Authorization` header, if credentials were given (marked sensitive).
    pub fn authorization(&self) -> Option<&HeaderValue> {
        self.auth.as_ref()
    }

    /// `http://proxy.example:3128`: the proxy as messages name it, without credentials.
    pub fn shown(&self) -> String {
        let scheme = match self.scheme {
            ProxyScheme::Http => "http",
            ProxyScheme::Https => "https",
        };
        format!("{scheme}://{}:{}", self.host, self.port)
    }

    /// `http://proxy.example:3128` as a URI to dial.
    pub(crate) fn uri(&self) -> http::Uri {
        format!("http://{}:{}/", self.host, self.port)
            .parse()
            .expect("a proxy's host and port make a URI")
    }
}

/// One `NO_PROXY` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Bypass {
    All,
    Ip(IpAddr, Option<u16>),
    Net(IpAddr, u8),
    /// A name and its subdomains; with `subdomains_only`, not the name itself.
    Domain {
        name: String,
        subdomains_only: bool,
        port: Option<u16>,
    },
}

/// The `NO_PROXY` rules: hosts reached directly even when a proxy is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    entries: Vec<Bypass>,
    /// As given, for `Debug` and messages.
    text: String,
}

impl NoProxy {
    /// Parses a `NO_PROXY` value (see the [module documentation](self)). Entries that are
    /// neither an address, a range nor a name are skipped, as Go skips them.
    pub fn parse(value: &str) -> Self {
        let mut entries = Vec::new();
        for raw in value.split(',') {
            let entry = raw.trim().to_ascii_lowercase();
            if entry.is_empty() {
                continue;
            }
            if entry == "*" {
                entries.push(Bypass::All);
                continue;
            }
            if let Some((addr, bits)) = entry.split_once('/') {
                if let (Ok(ip), Ok(bits)) = (addr.parse::<IpAddr>(), bits.parse::<u8>()) {
                    let max = if ip.is_ipv4() { 32 } else { 128 };
                    if bits <= max {
                        entries.push(Bypass::Net(ip, bits));
                    }
                }
                continue;
            }
            let (host, port) = split_host_port(&entry);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if let Ok(ip) = host.parse::<IpAddr>() {
                entries.push(Bypass::Ip(ip, port));
                continue;
            }
            let (name, subdomains_only) = match host.strip_prefix("*.") {
                Some(rest) => (rest, true),
                None => match host.strip_prefix('.') {
                    Some(rest) => (rest, true),
                    None => (host, false),
                },
            };
            if name.is_empty() {
                continue;
            }
            entries.push(Bypass::Domain {
                name: name.to_string(),
                subdomains_only,
                port,
            });
        }
        Self {
            entries,
            text: value.trim().to_string(),
        }
    }

    /// Whether `host` (a name, or an address with or without brackets) on `port` is reached
    /// directly.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let host = host.trim_end_matches('.');
        let ip = host.parse::<IpAddr>().ok();
        self.entries.iter().any(|e| match e {
            Bypass::All => true,
            Bypass::Ip(want, p) => ip == Some(*want) && p.is_none_or(|p| p == port),
            Bypass::Net(net, bits) => ip.is_some_and(|ip| in_net(ip, *net, *bits)),
            Bypass::Domain {
                name,
                subdomains_only,
                port: p,
            } => {
                ip.is_none()
                    && p.is_none_or(|p| p == port)
                    && ((!subdomains_only && host == name)
                        || host
                            .strip_suffix(name.as_str())
                            .is_some_and(|rest| rest.ends_with('.')))
            }
        })
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `host:port` split where the port is digits after the last `:` (a bare IPv6 address has
/// more than one `:` and no brackets: no port).
fn split_host_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        if let Some((host, after)) = rest.split_once(']') {
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return (host, port);
        }
        return (entry, None);
    }
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(p) => (host, Some(p)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// Which requests go through which proxy; see the [module documentation](self).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyPolicy {
    http: Option<Proxy>,
    https: Option<Proxy>,
    no_proxy: NoProxy,
}

/// The variables read, in the order each is tried.
const HTTPS_VARS: [&str; 2] = ["HTTPS_PROXY", "https_proxy"];
const HTTP_VARS: [&str; 2] = ["HTTP_PROXY", "http_proxy"];
const ALL_VARS: [&str; 2] = ["ALL_PROXY", "all_proxy"];
const NO_VARS: [&str; 2] = ["NO_PROXY", "no_proxy"];

impl ProxyPolicy {
    /// No proxy: every request goes directly.
    pub fn none() -> Self {
        Self::default()
    }

    /// The policy of the process's environment (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`,
    /// `NO_PROXY`, upper case first). A proxy variable that cannot be used is an error naming
    /// it.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// The policy the variables `get` returns describe (what [`ProxyPolicy::from_env`] reads
    /// from the environment).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let first = |names: [&'static str; 2]| -> Option<(&'static str, String)> {
            names
                .into_iter()
                .find_map(|n| get(n).filter(|v| !v.trim().is_empty()).map(|v| (n, v)))
        };
        let parse = |found: Option<(&str, String)>| {
            found
                .map(|(name, value)| Proxy::parse(&value, name))
                .transpose()
        };
        let all = parse(first(ALL_VARS))?;
        let https = parse(first(HTTPS_VARS))?.or_else(|| all.clone());
        let http = parse(first(HTTP_VARS))?.or(all);
        let no_proxy = first(NO_VARS)
            .map(|(_, v)| NoProxy::parse(&v))
            .unwrap_or_default();
        Ok(Self {
            http,
            https,
            no_proxy,
        })
    }

    /// This policy with `proxy` for both `http://` and `https://` requests (a registry's
    /// own proxy, over the environment's).
    pub fn with_proxy(mut self, proxy: Proxy) -> Self {
        self.http = Some(proxy.clone());
        self.https = Some(proxy);
        self
    }

    /// This policy with `no_proxy` in place of its `NO_PROXY` rules.
    pub fn with_no_proxy(mut self, no_proxy: NoProxy) -> Self {
        self.no_proxy = no_proxy;
        self
    }

    /// Whether any request may be proxied.
    pub fn is_direct(&self) -> bool {
        self.http.is_none() && self.https.is_none()
    }

    /// The proxy a request to `scheme://host:port` goes through, if any: none for the
    /// loopback and for hosts `NO_PROXY` names.
    pub fn proxy_for(&self, scheme: &str, host: &str, port: u16) -> Option<&Proxy> {
        let proxy = match scheme {
            "https" => self.https.as_ref(),
            "http" => self.http.as_ref(),
            _ => None,
        }?;
        if crate::is_loopback(host) || self.no_proxy.matches(host, port) {
            return None;
        }
        Some(proxy)
    }

    /// The proxy of `uri`, if any.
    pub fn proxy_for_uri(&self, uri: &http::Uri) -> Option<&Proxy> {
        let scheme = uri.scheme_str()?;
        let host = uri.host()?;
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        self.proxy_for(scheme, host, port)
    }

    /// The proxy of `url` as a URL with its credentials, for clients that take a proxy URL
    /// (reqwest's `Proxy::custom`). Keep it out of messages: it carries the password.
    pub fn proxy_url_for(&self, scheme: &str, host: &str, port: u16) -> Option<String> {
        let proxy = self.proxy_for(scheme, host, port)?;
        let scheme = match proxy.scheme {
            ProxyScheme::Http => "http",
            ProxyScheme::Https => "https",
        };
        let userinfo = proxy
            .auth
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|raw| String::from_utf8(raw).ok())
            .map(|pair| {
                let (user, password) = pair.split_once(':').unwrap_or((&pair, ""));
                let enc = |s: &str| {
                    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
                        .to_string()
                };
                format!("{}:{}@", enc(user), enc(password))
            })
            .unwrap_or_default();
        Some(format!(
            "{scheme}://{userinfo}{}:{}",
            proxy.host, proxy.port
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn upper_case_first_and_empty_is_unset() {
        let p = ProxyPolicy::from_vars(vars(&[
            ("HTTPS_PROXY", "http://upper:1"),
            ("https_proxy", "http://lower:2"),
        ]))
        .unwrap();
        let proxy = p.proxy_for("https", "registry.example", 443).unwrap();
        assert_eq!(proxy.shown(), "http://upper:1");
        assert_eq!(proxy.source(), "HTTPS_PROXY");

        let p = ProxyPolicy::from_vars(vars(&[("HTTPS_PROXY", ""), ("https_proxy", "lower:2")]))
            .unwrap();
        let proxy = p.proxy_for("https", "registry.example", 443).unwrap();
        assert_eq!(proxy.shown(), "http://lower:2");
        assert_eq!(proxy.source(), "https_proxy");
    }

    #[test]
    fn all_proxy_is_the_fallback_and_each_scheme_has_its_own() {
        let p = ProxyPolicy::from_vars(vars(&[
            ("ALL_PROXY", "http://all:1"),
            ("HTTP_PROXY", "http://plain:2"),
        ]))
        .unwrap();
        assert_eq!(
            p.proxy_for("https", "r.example", 443).unwrap().source(),
            "ALL_PROXY"
        );
        assert_eq!(
            p.proxy_for("http", "r.example", 80).unwrap().source(),
            "HTTP_PROXY"
        );
        assert!(p.proxy_for("ftp", "r.example", 21).is_none());
    }

    #[test]
    fn the_loopback_is_never_proxied() {
        let p = ProxyPolicy::from_vars(vars(&[("HTTPS_PROXY", "http://p:1")])).unwrap();
        for host in ["localhost", "127.0.0.1", "127.3.2.1", "[::1]", "::1"] {
            assert!(p.proxy_for("https", host, 5000).is_none(), "{host}");
        }
        // A name is not resolved: `registry.test` may map to 127.0.0.1 and is still proxied.
        assert!(p.proxy_for("https", "registry.test", 5000).is_some());
    }

    #[test]
    fn no_proxy_rules() {
        let n = NoProxy::parse(
            " Example.com, .sub.test,*.wild.test, 10.0.0.0/8, 192.168.1.5, fd00::/8, \
             port.test:5000, [fd00::1]:7000, ::2 ,",
        );
        let yes = [
            ("example.com", 443),
            ("a.example.com", 443),
            ("EXAMPLE.COM", 1),
            ("x.sub.test", 443),
            ("x.wild.test", 443),
            ("10.1.2.3", 443),
            ("192.168.1.5", 80),
            ("[fd12::3]", 443),
            ("port.test", 5000),
            ("[::2]", 1),
        ];
        for (h, p) in yes {
            assert!(n.matches(h, p), "{h}:{p} must go direct");
        }
        let no = [
            ("notexample.com", 443),
            ("sub.test", 443),
            ("wild.test", 443),
            ("11.0.0.1", 443),
            ("192.168.1.6", 80),
            ("port.test", 5001),
            ("fe80::1", 443),
            ("example.org", 443),
        ];
        for (h, p) in no {
            assert!(!n.matches(h, p), "{h}:{p} must be proxied");
        }
        // `[fd00::1]:7000` is inside `fd00::/8` anyway; a port-bound address alone:
        let n = NoProxy::parse("[2001:db8::1]:7000,10.9.9.9:80");
        assert!(n.matches("[2001:db8::1]", 7000));
        assert!(!n.matches("[2001:db8::1]", 7001));
        assert!(n.matches("10.9.9.9", 80));
        assert!(!n.matches("10.9.9.9", 81));
        // `*` covers names and addresses alike.
        let n = NoProxy::parse("*");
        assert!(n.matches("10.1.2.3", 1) && n.matches("[2001:db8::1]", 1) && n.matches("x", 1));
    }

    #[test]
    fn proxy_urls_and_credentials() {
        let p = Proxy::parse("http://al%40ce:s3cr%3At@proxy.example:3128/", "HTTPS_PROXY").unwrap();
        assert_eq!(p.shown(), "http://proxy.example:3128");
        assert_eq!(format!("{p}"), "http://proxy.example:3128");
        assert!(!format!("{p:?}").contains("s3cr"));
        let header = p.authorization().unwrap();
        assert!(header.is_sensitive());
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(header.to_str().unwrap().strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(decoded, b"al@ce:s3cr:t");

        assert_eq!(
            Proxy::parse("proxy:8080", "x").unwrap().shown(),
            "http://proxy:8080"
        );
        assert_eq!(Proxy::parse("http://proxy", "x").unwrap().port(), 80);
        assert_eq!(Proxy::parse("https://proxy", "x").unwrap().port(), 443);
        assert_eq!(
            Proxy::parse("http://[::1]:3128", "x").unwrap().shown(),
            "http://[::1]:3128"
        );

        let e = Proxy::parse("socks5://user:pw@p:1080", "ALL_PROXY").unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("socks5") && text.contains("ALL_PROXY"),
            "{text}"
        );
        assert!(!text.contains("pw"), "{text}");

        let policy = ProxyPolicy::none()
            .with_proxy(Proxy::parse("http://al%40ce:s3cr%3At@proxy.example:3128", "x").unwrap());
        let url = policy.proxy_url_for("https", "s3.example", 443).unwrap();
        let reparsed = Proxy::parse(&url, "x").unwrap();
        assert_eq!(reparsed.authorization(), p.authorization());
    }
}
