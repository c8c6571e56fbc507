//! Client configuration: where the relay is, how to authenticate, and how patient to be.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};

/// The relay's documented default decision TTL: 10 minutes.
pub const DEFAULT_DECISION_TTL_SECONDS: u32 = 600;
/// Default time allowed to establish the TCP connection and the TLS session.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default deadline of every single RPC attempt.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time budget of the retries of one call.
pub const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(30);
/// Default bound on the RPCs one client has in flight on its connection at once.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: u32 = 100;
/// The largest accepted value of [`ClientConfig::max_concurrent_requests`].
pub const MAX_CONCURRENT_REQUESTS_LIMIT: u32 = 10_000;
/// The longest duration any setting accepts (365 days). Longer values, such as `UINT64_MAX`
/// milliseconds used in C for "forever", are refused by name instead of overflowing a clock.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// The default user agent, sent as the `user-agent` prefix of every call.
pub const DEFAULT_USER_AGENT: &str = concat!("libnoxy/", env!("CARGO_PKG_VERSION"));

/// Checks that a duration setting is at most [`MAX_DURATION`] (and, with `non_zero`, longer
/// than zero); the error names `field`.
pub(crate) fn check_duration(field: &str, value: Duration, non_zero: bool) -> Result<()> {
    if non_zero && value.is_zero() {
        return Err(Error::invalid_argument(field, "must be longer than zero"));
    }
    if value > MAX_DURATION {
        return Err(Error::invalid_argument(
            field,
            format!(
                "must be at most {} ms (365 days), got {} ms",
                MAX_DURATION.as_millis(),
                value.as_millis()
            ),
        ));
    }
    Ok(())
}

/// Checks that a multiplier is finite and at least 1; the error names `field`.
pub(crate) fn check_multiplier(field: &str, value: f64) -> Result<()> {
    if !value.is_finite() || value < 1.0 {
        return Err(Error::invalid_argument(
            field,
            "must be a finite number of at least 1",
        ));
    }
    Ok(())
}

/// Checks that a jitter fraction lies in `[0, 1]`; the error names `field`.
pub(crate) fn check_jitter(field: &str, value: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&value) {
        return Err(Error::invalid_argument(field, "must be between 0 and 1"));
    }
    Ok(())
}

/// Retry policy for transient relay failures (UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,
/// UNAVAILABLE, a lost connection, and the relay's ERROR delivery status). A retried
/// `RouteDecision` keeps its `request_id`, so the relay's idempotency holds.
///
/// Retries are bounded by time: a transient failure is retried, with capped exponential
/// backoff and jitter, as long as the next attempt would start within `budget` of the call's
/// first attempt. `max_attempts` is an optional cap on top.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// No retry starts later than this after the call's first attempt. At most
    /// [`MAX_DURATION`]; zero disables retries.
    pub budget: Duration,
    /// Attempts in total, including the first, when set; `Some(1)` disables retries. `None`
    /// (the default): only the budget bounds the retries.
    pub max_attempts: Option<u32>,
    /// The pause before the second attempt. Longer than zero.
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
            budget: DEFAULT_RETRY_BUDGET,
            max_attempts: None,
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
            max_attempts: Some(1),
            ..RetryPolicy::default()
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        check_duration("retry.budget", self.budget, false)?;
        if self.max_attempts == Some(0) {
            return Err(Error::invalid_argument(
                "retry.max_attempts",
                "must be at least 1 when set",
            ));
        }
        check_duration("retry.initial_backoff", self.initial_backoff, true)?;
        check_multiplier("retry.multiplier", self.multiplier)?;
        check_jitter("retry.jitter", self.jitter)?;
        check_duration("retry.max_backoff", self.max_backoff, false)?;
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
    /// The app's bearer token. Sent as `authorization: Bearer <token>`; never logged, and never
    /// an input of derived ids.
    pub app_token: String,
    /// How long the relay keeps a decision open before marking it EXPIRED. At least 1.
    pub decision_ttl_seconds: u32,
    /// Extra root certificate(s) to trust, PEM, for a private or local relay (the development
    /// relay writes its CA as PEM). When set, only these roots are trusted.
    pub ca_pem: Option<String>,
    /// Time allowed to connect: DNS, TCP and the TLS handshake together. The HTTP/2 preface
    /// is written without waiting for the relay, so the first call's deadline covers the rest.
    pub connect_timeout: Duration,
    /// The deadline of every single RPC attempt.
    pub request_timeout: Duration,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// At most this many RPCs are in flight on the connection at once (1 to
    /// [`MAX_CONCURRENT_REQUESTS_LIMIT`]); further calls wait for a free slot, so a host with
    /// thousands of waiting decisions never floods the relay. The relay's own
    /// MAX_CONCURRENT_STREAMS is honoured as well.
    pub max_concurrent_requests: u32,
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
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
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
        check_duration("connect_timeout", self.connect_timeout, true)?;
        check_duration("request_timeout", self.request_timeout, true)?;
        if !(1..=MAX_CONCURRENT_REQUESTS_LIMIT).contains(&self.max_concurrent_requests) {
            return Err(Error::invalid_argument(
                "max_concurrent_requests",
                format!("must be 1 to {MAX_CONCURRENT_REQUESTS_LIMIT}"),
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
            .field("max_concurrent_requests", &self.max_concurrent_requests)
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
        assert_eq!(RetryPolicy::default().max_attempts, None);
        assert_eq!(RetryPolicy::default().budget, DEFAULT_RETRY_BUDGET);
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
            (
                "request_timeout",
                Box::new(|c| c.request_timeout = Duration::from_millis(u64::MAX)),
            ),
            (
                "connect_timeout",
                Box::new(|c| c.connect_timeout = MAX_DURATION + Duration::from_millis(1)),
            ),
            (
                "retry.budget",
                Box::new(|c| c.retry.budget = Duration::from_millis(u64::MAX)),
            ),
            (
                "retry.max_attempts",
                Box::new(|c| c.retry.max_attempts = Some(0)),
            ),
            (
                "retry.initial_backoff",
                Box::new(|c| c.retry.initial_backoff = Duration::ZERO),
            ),
            (
                "max_concurrent_requests",
                Box::new(|c| c.max_concurrent_requests = 0),
            ),
            (
                "max_concurrent_requests",
                Box::new(|c| c.max_concurrent_requests = MAX_CONCURRENT_REQUESTS_LIMIT + 1),
            ),
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
