//! One HTTP(S) client for every revocation fetch: OCSP responders, CRLs, caIssuers and the
//! crt.sh-style endpoint.
//!
//! What it guarantees, whoever calls it:
//! - only `http://` and `https://` URLs with a host are fetched;
//! - TLS is always verified ([`crate::tls`]: ring, the system's roots plus `ca_file`); there is
//!   no switch to turn that off;
//! - one total timeout covers a request from connecting to the last byte, redirects included;
//! - a body larger than the cap the caller gives is refused, by `Content-Length` before
//!   reading, else as soon as it grows past the cap (a CRL can be hundreds of megabytes);
//! - at most [`MAX_REDIRECTS`] redirects are followed, and never from `https` to `http`;
//! - every request says who it is (`User-Agent: cprwatch/<version>`), so a responder's
//!   operator can tell cprwatch from a flood.
//!
//! It decides nothing: a non-2xx answer is [`FetchError::Status`] with the `Retry-After` the
//! server gave, and a 2xx answer is returned with the freshness the server gave
//! (`Cache-Control: max-age`), for the scheduler to weigh.
//!
//! Everything a server or a certificate supplied (a URL from a reported certificate's AIA, an
//! error text, a `Content-Type`) is escaped ([`crate::escape::text`]) in [`FetchError`]'s
//! fields and messages, so it can go to a log or a terminal as it is.

use super::guard::{GuardedResolver, check_literal};
use crate::escape;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::path::PathBuf;
use std::time::Duration;

/// Redirects followed at most; the fourth is an error (a loop, or a misconfigured CDN).
pub const MAX_REDIRECTS: usize = 3;

/// What the caller's configuration decides about fetching (`[revocation]` and `[enrich]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSettings {
    /// The total time one request may take, redirects and body included.
    pub timeout: Duration,
    /// An extra trusted root (PEM) beside the system's, for a private responder or a local
    /// crt.sh mirror. TLS is always verified.
    pub ca_file: Option<PathBuf>,
    /// Connect to loopback, private and link-local addresses too ([`super::guard`]). Off for
    /// URLs taken from reported certificates unless the desk allows it; on for a base URL the
    /// operator configured.
    pub allow_private: bool,
}

impl Default for FetchSettings {
    fn default() -> Self {
        FetchSettings {
            timeout: Duration::from_secs(30),
            ca_file: None,
            allow_private: false,
        }
    }
}

/// A successful (2xx) answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub status: u16,
    pub body: Vec<u8>,
    /// The `Content-Type` as sent (escaped), when there was one.
    pub content_type: Option<String>,
    /// `Cache-Control: max-age` (seconds form): how long the server says the body stays fresh.
    pub max_age: Option<Duration>,
    /// `Retry-After` in its seconds form (an HTTP-date is not read).
    pub retry_after: Option<Duration>,
    /// The URL that answered, after redirects (escaped).
    pub url: String,
}

impl Fetched {
    /// The media type of `Content-Type` in lower case, without parameters (`; charset=...`).
    pub fn media_type(&self) -> Option<String> {
        self.content_type.as_deref().map(media_type)
    }
}

/// The media type of a `Content-Type` value, lower case, parameters dropped.
pub(crate) fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Why a fetch failed. Every string field is escaped for text output already.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The client could not be set up: the configured `ca_file` is unusable.
    #[error("cannot set up HTTPS for revocation checks: {0}")]
    Setup(String),
    #[error(
        "cannot fetch \"{url}\": {reason}. Only http:// and https:// URLs with a host name are \
         fetched"
    )]
    BadUrl { url: String, reason: String },
    /// No answer at all: connection refused, the name does not resolve, TLS failed (with the
    /// cause), or the connection broke.
    #[error("cannot reach {url}: {cause}")]
    Unreachable { url: String, cause: String },
    #[error(
        "{url} did not answer within {}s (the configured timeout); it may be overloaded or \
         unreachable from here, try again later",
        after.as_secs_f64()
    )]
    Timeout { url: String, after: Duration },
    /// The server answered with a non-2xx status. `retry_after` is its `Retry-After` (seconds
    /// form), which a 429 or 503 usually carries and a polite client honours.
    #[error("{url} answered HTTP {status}{}", retry_text(*retry_after))]
    Status {
        url: String,
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error(
        "{url} sent more than {limit} bytes, more than cprwatch accepts for this document; \
         the fetch was stopped"
    )]
    TooLarge { url: String, limit: usize },
    #[error("{url}: {reason}")]
    Redirect { url: String, reason: String },
    /// The answer is not the kind of document asked for (an HTML error page instead of an OCSP
    /// response, say).
    #[error("{url} answered with Content-Type \"{content_type}\", not {expected}")]
    WrongType {
        url: String,
        content_type: String,
        expected: &'static str,
    },
    /// The body is not what the URL should serve (not a certificate, a PKCS#7 bundle, JSON
    /// that does not parse).
    #[error("{url}: {reason}")]
    BadBody { url: String, reason: String },
    /// The caller's input cannot make a request (a crt.sh id that is not a number).
    #[error("{0}")]
    BadQuery(String),
}

fn retry_text(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!("; it asks to retry after {}s", d.as_secs()),
        None => String::new(),
    }
}

impl FetchError {
    /// The wait the server asked for (`Retry-After` of a non-2xx answer).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status of a non-2xx answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            FetchError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The HTTP(S) client. Cheap to clone (one connection pool shared); needs a tokio runtime to
/// send.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>,
    timeout: Duration,
    allow_private: bool,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("cprwatch/", env!("CARGO_PKG_VERSION"));

impl HttpClient {
    /// A client for `settings`. Reads `ca_file` now, so a bad file is an error at start.
    pub fn new(settings: &FetchSettings) -> Result<HttpClient, FetchError> {
        let tls = crate::tls::client_config(settings.ca_file.as_deref())
            .map_err(|e| FetchError::Setup(escape::text(&e.to_string()).into_owned()))?;
        let mut http = HttpConnector::new_with_resolver(GuardedResolver {
            allow_private: settings.allow_private,
        });
        // hyper-rustls decides between TLS and plain by the scheme; the inner connector must
        // let https through.
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(settings.timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            .build(connector);
        Ok(HttpClient {
            client,
            timeout: settings.timeout,
            allow_private: settings.allow_private,
        })
    }

    /// GET `url`, accepting `accept`, refusing a body over `max_body` bytes.
    pub async fn get(
        &self,
        url: &str,
        accept: &str,
        max_body: usize,
    ) -> Result<Fetched, FetchError> {
        self.fetch(Method::GET, url, None, accept, max_body).await
    }

    /// POST `body` as `content_type` to `url`, accepting `accept`, refusing an answer over
    /// `max_body` bytes. A 307 or 308 redirect is followed with the same POST; a 301, 302 or
    /// 303 answering a POST is returned as [`FetchError::Status`] (turning it into a GET
    /// without the body would ask something else).
    pub async fn post(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
        accept: &str,
        max_body: usize,
    ) -> Result<Fetched, FetchError> {
        self.fetch(
            Method::POST,
            url,
            Some((content_type, Bytes::from(body))),
            accept,
            max_body,
        )
        .await
    }

    async fn fetch(
        &self,
        method: Method,
        url: &str,
        body: Option<(&str, Bytes)>,
        accept: &str,
        max_body: usize,
    ) -> Result<Fetched, FetchError> {
        let shown = escape::text(url).into_owned();
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(
            self.timeout,
            self.follow(method.clone(), url, body, accept, max_body),
        )
        .await
        .unwrap_or(Err(FetchError::Timeout {
            url: shown.clone(),
            after: self.timeout,
        }));
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(f) => tracing::debug!(
                method = %method,
                url = %escape::log_value(&shown),
                status = f.status,
                bytes = f.body.len(),
                elapsed_ms,
                "fetched"
            ),
            Err(e) => tracing::debug!(
                method = %method,
                url = %escape::log_value(&shown),
                error = %escape::log_value(&e.to_string()),
                elapsed_ms,
                "fetch failed"
            ),
        }
        result
    }

    /// The request and the redirects after it (within the caller's timeout).
    async fn follow(
        &self,
        method: Method,
        url: &str,
        body: Option<(&str, Bytes)>,
        accept: &str,
        max_body: usize,
    ) -> Result<Fetched, FetchError> {
        let mut uri = parse_url(url)?;
        let mut redirects = 0;
        loop {
            let shown = escape::text(&uri.to_string()).into_owned();
            if let Err(reason) = check_literal(uri.host().unwrap_or_default(), self.allow_private) {
                return Err(FetchError::Unreachable {
                    url: shown,
                    cause: reason,
                });
            }
            let mut request = hyper::Request::builder()
                .method(method.clone())
                .uri(uri.clone())
                .header(header::USER_AGENT, USER_AGENT)
                .header(header::ACCEPT, accept);
            let payload = match &body {
                Some((content_type, bytes)) => {
                    request = request.header(header::CONTENT_TYPE, *content_type);
                    bytes.clone()
                }
                None => Bytes::new(),
            };
            let request = request
                .body(Full::new(payload))
                .map_err(|e| FetchError::BadUrl {
                    url: shown.clone(),
                    reason: escape::text(&e.to_string()).into_owned(),
                })?;
            let response =
                self.client
                    .request(request)
                    .await
                    .map_err(|e| FetchError::Unreachable {
                        url: shown.clone(),
                        cause: describe(&e),
                    })?;
            let status = response.status();
            let headers = response.headers().clone();
            if status.is_redirection() && is_followed(status) {
                if method == Method::POST
                    && !matches!(
                        status,
                        StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
                    )
                {
                    return Err(status_error(&shown, status, &headers));
                }
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(FetchError::Redirect {
                        url: escape::text(url).into_owned(),
                        reason: format!(
                            "more than {MAX_REDIRECTS} redirects; ask the server's operator, \
                             or use the final URL"
                        ),
                    });
                }
                let next =
                    redirect_target(&uri, &headers).map_err(|reason| FetchError::Redirect {
                        url: shown.clone(),
                        reason,
                    })?;
                if uri.scheme_str() == Some("https") && next.scheme_str() == Some("http") {
                    return Err(FetchError::Redirect {
                        url: shown.clone(),
                        reason: format!(
                            "redirects from https to http ({}), which cprwatch does not follow",
                            escape::text(&next.to_string())
                        ),
                    });
                }
                uri = next;
                continue;
            }
            if !status.is_success() {
                return Err(status_error(&shown, status, &headers));
            }
            let body = read_body(response.into_body(), &headers, max_body, &shown).await?;
            return Ok(Fetched {
                status: status.as_u16(),
                body,
                content_type: headers
                    .get(header::CONTENT_TYPE)
                    .map(|v| escape::text(&String::from_utf8_lossy(v.as_bytes())).into_owned()),
                max_age: max_age(&headers),
                retry_after: retry_after(&headers),
                url: shown,
            });
        }
    }
}

fn is_followed(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    )
}

fn status_error(url: &str, status: StatusCode, headers: &HeaderMap) -> FetchError {
    FetchError::Status {
        url: url.to_string(),
        status: status.as_u16(),
        retry_after: retry_after(headers),
    }
}

/// The body, refused as soon as it is known to exceed `max_body`.
async fn read_body(
    mut body: hyper::body::Incoming,
    headers: &HeaderMap,
    max_body: usize,
    url: &str,
) -> Result<Vec<u8>, FetchError> {
    let too_large = || FetchError::TooLarge {
        url: url.to_string(),
        limit: max_body,
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body as u64) {
        return Err(too_large());
    }
    let mut out = Vec::with_capacity(declared.unwrap_or(0) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| FetchError::Unreachable {
            url: url.to_string(),
            cause: format!(
                "the connection broke while reading the answer: {}",
                describe(&e)
            ),
        })?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > max_body {
                return Err(too_large());
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// `url` as a URI cprwatch fetches: http or https, with a host.
pub(crate) fn parse_url(url: &str) -> Result<Uri, FetchError> {
    let bad = |reason: &str| FetchError::BadUrl {
        url: escape::text(url).into_owned(),
        reason: reason.to_string(),
    };
    let uri: Uri = url
        .trim()
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        Some(_) => return Err(bad("not an http or https URL")),
        None => return Err(bad("not an absolute URL")),
    }
    let Some(authority) = uri.authority() else {
        return Err(bad("no host"));
    };
    if authority.host().is_empty() {
        return Err(bad("no host"));
    }
    if authority.as_str().contains('@') {
        return Err(bad("user names and passwords in URLs are not sent"));
    }
    Ok(uri)
}

/// Where a redirect points, resolved against the URL that answered.
fn redirect_target(base: &Uri, headers: &HeaderMap) -> Result<Uri, String> {
    let location = headers
        .get(header::LOCATION)
        .ok_or_else(|| "a redirect without a Location".to_string())?;
    let location = location
        .to_str()
        .map_err(|_| "a redirect to a Location that is not ASCII".to_string())?
        .trim();
    let scheme = base.scheme_str().unwrap_or("https");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or_default();
    let lower = location.to_ascii_lowercase();
    let absolute = if lower.starts_with("http://") || lower.starts_with("https://") {
        location.to_string()
    } else if location.starts_with("//") {
        format!("{scheme}:{location}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else if location.contains(':') && !location.contains('/') || lower.contains("://") {
        return Err(format!(
            "a redirect to {}, not an http or https URL",
            escape::text(location)
        ));
    } else {
        let path = base.path();
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        let dir = if dir.is_empty() { "/" } else { dir };
        format!("{scheme}://{authority}{dir}{location}")
    };
    parse_url(&absolute).map_err(|e| format!("a redirect that cannot be followed: {e}"))
}

/// `Cache-Control: max-age=N` (every `Cache-Control` field; the directive name in any case,
/// the value bare or quoted).
pub(crate) fn max_age(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|directive| {
            let (name, value) = directive.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("max-age") {
                return None;
            }
            seconds(value.trim().trim_matches('"'))
        })
}

/// `Retry-After` in its delay-seconds form.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .and_then(|v| seconds(v.trim()))
}

fn seconds(s: &str) -> Option<Duration> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // A value too large for u64 is "a very long time".
    Some(Duration::from_secs(s.parse().unwrap_or(u64::MAX)))
}

/// What went wrong below HTTP, from the error's whole chain (hyper's own top-level text,
/// "client error (Connect)", says nothing), with advice for a TLS failure. Escaped.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut tls: Option<&rustls::Error> = None;
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if tls.is_none() {
            tls = rustls_error(err);
        }
        let text = err.to_string();
        if !text.starts_with("client error (") && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    let mut cause = if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    };
    if let Some(tls) = tls {
        cause = format!("TLS failed ({tls}); {}", tls_advice(tls));
    } else if cause.contains("dns error") {
        cause.push_str("; check the host name");
    } else if cause.to_ascii_lowercase().contains("connection refused") {
        cause.push_str("; nothing listens there (the server is down?)");
    }
    escape::text(&cause).into_owned()
}

/// The rustls error inside `err`, also where I/O errors wrap it (hyper-rustls wraps
/// tokio-rustls's `io::Error` in another, and `io::Error::source` skips the wrapped error).
fn rustls_error<'e>(err: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    if let Some(tls) = err.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let io = err.downcast_ref::<std::io::Error>()?;
    let inner: &(dyn std::error::Error + 'static) = io.get_ref()?;
    rustls_error(inner)
}

fn tls_advice(tls: &rustls::Error) -> &'static str {
    use rustls::CertificateError as C;
    match tls {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            "the server's certificate is not from a CA this machine trusts: set ca_file for a \
             private CA"
        }
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => "the server's certificate is not valid for this host name",
        rustls::Error::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => {
            "the server's certificate is outside its validity period, or this machine's clock is wrong"
        }
        _ => "check the server's TLS setup",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn max_age_is_read_from_any_cache_control_field() {
        let secs = |pairs: &[(&str, &str)]| max_age(&headers(pairs)).map(|d| d.as_secs());
        assert_eq!(secs(&[("cache-control", "max-age=3600")]), Some(3600));
        assert_eq!(
            secs(&[(
                "cache-control",
                "public, no-transform, MAX-AGE = 86400 ,must-revalidate"
            )]),
            Some(86400)
        );
        assert_eq!(
            secs(&[
                ("cache-control", "public"),
                ("cache-control", "max-age=\"60\"")
            ]),
            Some(60)
        );
        // s-maxage is for shared caches; a negative or garbled value is not a freshness.
        assert_eq!(secs(&[("cache-control", "s-maxage=60")]), None);
        assert_eq!(secs(&[("cache-control", "max-age=-1")]), None);
        assert_eq!(secs(&[("cache-control", "max-age=1h")]), None);
        assert_eq!(secs(&[("cache-control", "no-cache")]), None);
        assert_eq!(secs(&[]), None);
    }

    #[test]
    fn retry_after_reads_seconds_only() {
        let secs = |v: &str| retry_after(&headers(&[("retry-after", v)])).map(|d| d.as_secs());
        assert_eq!(secs("120"), Some(120));
        assert_eq!(secs(" 5 "), Some(5));
        assert_eq!(secs("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(secs("-3"), None);
        assert_eq!(secs("99999999999999999999999"), Some(u64::MAX));
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn only_http_and_https_urls_with_a_host_are_fetched() {
        assert!(parse_url("http://ocsp.example-ca.test").is_ok());
        assert!(parse_url("https://crt.sh/?d=1").is_ok());
        assert!(parse_url("HTTP://ocsp.example-ca.test/x").is_ok());
        for bad in [
            "ldap://ldap.example-ca.test/cn=CA?certificateRevocationList",
            "file:///etc/passwd",
            "ftp://example.test/x.crl",
            "/intermediate.crl",
            "http://",
            "http://user:pw@example.test/",
            "not a url",
        ] {
            let err = parse_url(bad).expect_err(bad);
            assert!(matches!(err, FetchError::BadUrl { .. }), "{bad}: {err:?}");
            assert!(err.to_string().contains("http"), "{err}");
        }
    }

    #[test]
    fn a_hostile_url_is_escaped_in_the_error() {
        let err = parse_url("ldap://x\u{1b}[2J\u{202e}/").expect_err("bad");
        let text = err.to_string();
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{202e}'),
            "{text}"
        );
        assert!(text.contains("\\x1b"), "{text}");
    }

    #[test]
    fn redirects_resolve_against_the_url_that_answered() {
        let base: Uri = "https://a.example.test/dir/file.crl".parse().unwrap();
        let to = |loc: &str| {
            redirect_target(&base, &headers(&[("location", loc)])).map(|u| u.to_string())
        };
        assert_eq!(
            to("https://b.example.test/x").unwrap(),
            "https://b.example.test/x"
        );
        assert_eq!(
            to("//c.example.test/y").unwrap(),
            "https://c.example.test/y"
        );
        assert_eq!(to("/root.crl").unwrap(), "https://a.example.test/root.crl");
        assert_eq!(
            to("other.crl").unwrap(),
            "https://a.example.test/dir/other.crl"
        );
        assert!(to("ldap://x.example.test/").is_err());
        assert!(to("javascript:alert(1)").is_err());
        assert!(redirect_target(&base, &HeaderMap::new()).is_err());
    }

    #[test]
    fn media_types_drop_parameters_and_case() {
        assert_eq!(
            media_type("Application/OCSP-Response; charset=binary"),
            "application/ocsp-response"
        );
        assert_eq!(media_type(""), "");
    }

    #[test]
    fn the_user_agent_names_cprwatch_and_its_version() {
        assert_eq!(
            USER_AGENT,
            format!("cprwatch/{}", env!("CARGO_PKG_VERSION"))
        );
    }
}
