//! Client configuration: where the relay is, how to authenticate, and how patient to be.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};

/// The relay's documented default decision TTL: 10 minutes.
pub const DEFAULT_DECISION_TTL_SECONDS: u32 = 600;
/// Default time allowed to establish the TCP + TLS + HTTP/2 connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default deadline of every single RPC attempt.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The default user agent, sent as the `user-agent` prefix of every call.
pub const DEFAULT_USER_AGENT: &str = concat!("libnoxy/", env!("CARGO_PKG_VERSION"));

/// Retry policy for transient relay failures (UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,
/// UNAVAILABLE, and transport errors). A retried `RouteDecision` keeps its `request_id`.
///
/// The defaults match the relay's SDKs (3 attempts, 100 ms then 200 ms apart) and add jitter.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, including the first; `1` disables retries. Must be at least 1.
    pub max_attempts: u32,
    /// The pause before the second attempt.
    pub initial_backoff: Duration,
    /// The pause is multiplied by this after each retry. Must be at least 1.
    pub multiplier: f64,
    /// No pause is longer than this.
    pub max_backoff: Duration,
    /// Fraction in `[0, 1]` of each pause that is randomised ("equal jitter": a pause `p`
    /// becomes a uniform value in `[p·(1−jitter), p]`), so that many clients do not retry in step.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            multiplier: 2.0,
            max_backoff: Duration::from_secs(2),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// No retries: every call is attempted once.
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_attempts == 0 {
            return Err(Error::invalid_argument(
                "retry.max_attempts",
                "must be at least 1",
            ));
        }
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err(Error::invalid_argument(
                "retry.multiplier",
                "must be a finite number of at least 1",
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(Error::invalid_argument(
                "retry.jitter",
                "must be between 0 and 1",
            ));
        }
        if self.max_backoff < self.initial_backoff {
            return Err(Error::invalid_argument(
                "retry.max_backoff",
                "must not be shorter than retry.initial_backoff",
            ));
        }
        Ok(())
    }
}

/// Everything a [`Client`](crate::Client) needs. Build it with [`ClientConfig::new`] and adjust
/// the public fields; [`Client::new`](crate::Client::new) validates it and names the field of
/// any invalid value.
#[derive(Clone, PartialEq)]
pub struct ClientConfig {
    /// The relay: `https://relay.noxy.network`, `relay.example:8443`, `127.0.0.1:50051`. A
    /// leading `https://` or `http://` and trailing `/` are stripped; port 443 is assumed when
    /// none is given. The connection is always TLS.
    pub endpoint: String,
    /// The app's bearer token. Sent as `authorization: Bearer <token>`; never logged.
    pub app_token: String,
    /// How long the relay keeps a decision open before marking it EXPIRED. At least 1.
    pub decision_ttl_seconds: u32,
    /// Extra root certificate(s) to trust, PEM, for a private or local relay (the development
    /// relay writes its CA as PEM). When set, only these roots are trusted.
    pub ca_pem: Option<String>,
    /// Time allowed to connect (TCP + TLS + HTTP/2).
    pub connect_timeout: Duration,
    /// The deadline of every single RPC attempt.
    pub request_timeout: Duration,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// The `user-agent` sent with every call.
    pub user_agent: String,
}

impl ClientConfig {
    /// A configuration with the library's defaults for everything but the relay and the token.
    pub fn new(endpoint: impl Into<String>, app_token: impl Into<String>) -> ClientConfig {
        ClientConfig {
            endpoint: endpoint.into(),
            app_token: app_token.into(),
            decision_ttl_seconds: DEFAULT_DECISION_TTL_SECONDS,
            ca_pem: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            retry: RetryPolicy::default(),
            user_agent: DEFAULT_USER_AGENT.to_owned(),
        }
    }

    /// Checks every field; the error names the first invalid one.
    pub fn validate(&self) -> Result<()> {
        normalize_endpoint(&self.endpoint)?;
        validate_token(&self.app_token)?;
        if self.decision_ttl_seconds == 0 {
            return Err(Error::invalid_argument(
                "decision_ttl_seconds",
                "must be at least 1",
            ));
        }
        if let Some(pem) = &self.ca_pem {
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(Error::invalid_argument(
                    "ca_pem",
                    "contains no PEM certificate (-----BEGIN CERTIFICATE-----)",
                ));
            }
        }
        if self.connect_timeout.is_zero() {
            return Err(Error::invalid_argument(
                "connect_timeout",
                "must be longer than zero",
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(Error::invalid_argument(
                "request_timeout",
                "must be longer than zero",
            ));
        }
        if http::HeaderValue::from_str(&self.user_agent).is_err() {
            return Err(Error::invalid_argument(
                "user_agent",
                "must be visible ASCII (it is sent as an HTTP header)",
            ));
        }
        self.retry.validate()
    }
}

impl fmt::Debug for ClientConfig {
    // The token is a secret: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("endpoint", &self.endpoint)
            .field("app_token", &"<redacted>")
            .field("decision_ttl_seconds", &self.decision_ttl_seconds)
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<pem>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

/// A relay address after normalisation: host and port, always TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayAddress {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// TCP port (443 when the endpoint gave none).
    pub port: u16,
}

impl RelayAddress {
    /// The URI tonic connects to: `https://host:port` (IPv6 hosts bracketed).
    pub fn uri(&self) -> String {
        if self.host.contains(':') {
            format!("https://[{}]:{}", self.host, self.port)
        } else {
            format!("https://{}:{}", self.host, self.port)
        }
    }
}

/// Normalises an endpoint the way the relay's SDKs do: strip a leading `https://` or `http://`
/// and trailing `/`, and default the port to 443. Rejects anything that is not `host[:port]`.
pub fn normalize_endpoint(endpoint: &str) -> Result<RelayAddress> {
    let field = "endpoint";
    let trimmed = endpoint.trim();
    let lower = trimmed.to_ascii_lowercase();
    let without_scheme = if lower.starts_with("https://") {
        &trimmed["https://".len()..]
    } else if lower.starts_with("http://") {
        &trimmed["http://".len()..]
    } else {
        trimmed
    };
    let authority = without_scheme.trim_end_matches('/');
    if authority.is_empty() {
        return Err(Error::invalid_argument(field, "is empty"));
    }
    if authority.contains(['/', '?', '#', '@', ' ']) || authority.contains("://") {
        return Err(Error::invalid_argument(
            field,
            format!("expected host[:port], got {endpoint:?}"),
        ));
    }
    let (host, port) = split_host_port(authority).ok_or_else(|| {
        Error::invalid_argument(field, format!("bad host or port in {endpoint:?}"))
    })?;
    if host.is_empty() {
        return Err(Error::invalid_argument(field, "has no host"));
    }
    Ok(RelayAddress {
        host: host.to_owned(),
        port,
    })
}

fn split_host_port(authority: &str) -> Option<(&str, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        // [v6]:port or [v6]
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        return match after {
            "" => Some((host, 443)),
            _ => Some((host, parse_port(after.strip_prefix(':')?)?)),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => None, // an unbracketed IPv6 literal
        Some((host, port)) => Some((host, parse_port(port)?)),
        None => Some((authority, 443)),
    }
}

fn parse_port(port: &str) -> Option<u16> {
    match port.parse::<u16>() {
        Ok(0) | Err(_) => None,
        Ok(port) => Some(port),
    }
}

fn validate_token(token: &str) -> Result<()> {
    if token.is_empty() {
        return Err(Error::invalid_argument("app_token", "is empty"));
    }
    // The token travels as an HTTP/2 header value; reject what would be refused or smuggle
    // a header break (the relay's Rust SDK panics here instead).
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid_argument(
            "app_token",
            "must be visible ASCII without spaces",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn address(endpoint: &str) -> (String, u16) {
        let a = normalize_endpoint(endpoint).unwrap();
        (a.host, a.port)
    }

    #[test]
    fn endpoint_normalisation_matches_the_sdks() {
        let relay = ("relay.noxy.network".to_owned(), 443);
        assert_eq!(address("https://relay.noxy.network"), relay);
        assert_eq!(address("https://relay.noxy.network/"), relay);
        assert_eq!(address("http://relay.noxy.network//"), relay);
        assert_eq!(address("HTTPS://relay.noxy.network"), relay);
        assert_eq!(address("relay.noxy.network"), relay);
        assert_eq!(address("  relay.noxy.network  "), relay);
        assert_eq!(
            address("relay.noxy.network:8443"),
            ("relay.noxy.network".into(), 8443)
        );
        assert_eq!(
            address("https://127.0.0.1:50051/"),
            ("127.0.0.1".into(), 50051)
        );
        assert_eq!(address("[::1]:7000"), ("::1".into(), 7000));
        assert_eq!(address("https://[::1]"), ("::1".into(), 443));
    }

    #[test]
    fn endpoint_uri_brackets_ipv6() {
        assert_eq!(
            normalize_endpoint("[::1]:7000").unwrap().uri(),
            "https://[::1]:7000"
        );
        assert_eq!(normalize_endpoint("a.b").unwrap().uri(), "https://a.b:443");
    }

    #[test]
    fn bad_endpoints_are_rejected_naming_the_field() {
        for bad in [
            "",
            "https://",
            "/",
            "host:0",
            "host:70000",
            "host:port",
            "::1",
            "[nothex]:1",
            "https://relay/path",
            "user@relay",
            "ftp://relay",
            ":443",
        ] {
            let err = normalize_endpoint(bad).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidArgument, "{bad:?}");
            assert!(err.message().starts_with("endpoint"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn defaults_are_valid() {
        ClientConfig::new("relay.example", "tok")
            .validate()
            .unwrap();
        assert_eq!(RetryPolicy::default().max_attempts, 3);
    }

    #[test]
    fn each_invalid_field_is_named() {
        let base = ClientConfig::new("relay.example", "tok");
        type Mutation = Box<dyn Fn(&mut ClientConfig)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("app_token", Box::new(|c| c.app_token.clear())),
            ("app_token", Box::new(|c| c.app_token = "a b".into())),
            ("app_token", Box::new(|c| c.app_token = "a\r\nx: y".into())),
            (
                "decision_ttl_seconds",
                Box::new(|c| c.decision_ttl_seconds = 0),
            ),
            ("ca_pem", Box::new(|c| c.ca_pem = Some("not pem".into()))),
            (
                "connect_timeout",
                Box::new(|c| c.connect_timeout = Duration::ZERO),
            ),
            (
                "request_timeout",
                Box::new(|c| c.request_timeout = Duration::ZERO),
            ),
            (
                "user_agent",
                Box::new(|c| c.user_agent = "bad\nagent".into()),
            ),
            ("retry.max_attempts", Box::new(|c| c.retry.max_attempts = 0)),
            ("retry.multiplier", Box::new(|c| c.retry.multiplier = 0.5)),
            (
                "retry.multiplier",
                Box::new(|c| c.retry.multiplier = f64::NAN),
            ),
            ("retry.jitter", Box::new(|c| c.retry.jitter = 1.5)),
            (
                "retry.max_backoff",
                Box::new(|c| c.retry.max_backoff = Duration::from_millis(1)),
            ),
            ("endpoint", Box::new(|c| c.endpoint = "x:y".into())),
        ];
        for (field, mutate) in cases {
            let mut config = base.clone();
            mutate(&mut config);
            let err = config.validate().unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidArgument);
            assert!(
                err.message().starts_with(field),
                "expected {field}, got {err}"
            );
        }
    }

    #[test]
    fn debug_never_prints_the_token() {
        let config = ClientConfig::new("relay.example", "super-secret-token");
        assert!(!format!("{config:?}").contains("super-secret-token"));
    }
}
