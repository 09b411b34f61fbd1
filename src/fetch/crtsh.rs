//! A crt.sh-style endpoint (`[enrich] base_url`, by default [`DEFAULT_BASE_URL`]): a
//! certificate by crt.sh id or SHA-256 (`?d=`), and the certificates of one key
//! (`?spkisha256=<hex>&output=json`).
//!
//! crt.sh is a free public service that rate-limits and answers 429 or 503 when pressed:
//! callers space their requests with a [`RateLimit`] and honour the `Retry-After` of a
//! [`FetchError::Status`].

use super::http::{FetchError, HttpClient};
use crate::domain::model::Timestamp;
use crate::escape;
use serde::Deserialize;
use std::time::{Duration, Instant};

/// crt.sh itself.
pub const DEFAULT_BASE_URL: &str = "https://crt.sh/";
/// A certificate larger than this is refused.
pub const CERTIFICATE_MAX_BYTES: usize = 256 * 1024;
/// A key's certificate list larger than this is refused (about 20 000 entries).
pub const LIST_MAX_BYTES: usize = 8 * 1024 * 1024;

/// The certificate crt.sh knows as `id_or_sha256` (a crt.sh id, or a certificate's SHA-256 in
/// hex, colons allowed), as DER. crt.sh's `?d=` serves PEM; DER is accepted too. `Ok(None)`
/// when the endpoint does not know it (crt.sh answers 404).
pub async fn certificate(
    client: &HttpClient,
    base_url: &str,
    id_or_sha256: &str,
) -> Result<Option<Vec<u8>>, FetchError> {
    let key = lookup_key(id_or_sha256)?;
    let url = format!("{}?d={key}", base(base_url)?);
    match client
        .get(
            &url,
            "application/x-pem-file, application/pkix-cert, */*",
            CERTIFICATE_MAX_BYTES,
        )
        .await
    {
        Ok(fetched) => super::responders::certificate_der(&fetched)
            .map(Some)
            .map_err(|reason| FetchError::BadBody {
                url: fetched.url.clone(),
                reason,
            }),
        Err(FetchError::Status { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// One certificate of crt.sh's JSON list. Names are as the endpoint sent them: escape them
/// ([`crate::escape`]) before they reach a terminal or a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrtshEntry {
    /// The crt.sh id.
    pub id: u64,
    /// Lower-case hex, no leading zero bytes (as [`crate::reading::revocation::CertIdentity`]).
    pub serial: String,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    pub issuer_name: String,
    pub issuer_ca_id: Option<u64>,
    pub common_name: Option<String>,
    /// The names (SANs and CN), one per line, as crt.sh gives them.
    pub name_value: Option<String>,
    /// When the entry was logged (a precertificate's is usually before its final
    /// certificate's).
    pub entry_timestamp: Option<Timestamp>,
}

/// crt.sh's JSON field names.
#[derive(Deserialize)]
struct RawEntry {
    id: u64,
    serial_number: String,
    not_before: String,
    not_after: String,
    issuer_name: String,
    #[serde(default)]
    issuer_ca_id: Option<u64>,
    #[serde(default)]
    common_name: Option<String>,
    #[serde(default)]
    name_value: Option<String>,
    #[serde(default)]
    entry_timestamp: Option<String>,
}

/// Every certificate crt.sh lists with the key whose SubjectPublicKeyInfo has SHA-256
/// `spki_sha256_hex` (colons allowed). Expired ones and precertificates are listed too (a
/// precertificate and its final certificate are two entries with one serial): choosing is
/// the caller's business.
pub async fn by_key(
    client: &HttpClient,
    base_url: &str,
    spki_sha256_hex: &str,
) -> Result<Vec<CrtshEntry>, FetchError> {
    let hex = sha256_hex(spki_sha256_hex).ok_or_else(|| {
        FetchError::BadQuery(format!(
            "\"{}\" is not a SHA-256 in hex (64 hex digits) of a public key",
            escape::text(spki_sha256_hex)
        ))
    })?;
    let url = format!("{}?spkisha256={hex}&output=json", base(base_url)?);
    let fetched = client.get(&url, "application/json", LIST_MAX_BYTES).await?;
    parse_list(&fetched.body).map_err(|reason| FetchError::BadBody {
        url: fetched.url,
        reason,
    })
}

/// The JSON list, each entry checked.
pub(crate) fn parse_list(body: &[u8]) -> Result<Vec<CrtshEntry>, String> {
    let raw: Vec<RawEntry> = serde_json::from_slice(body).map_err(|e| {
        format!(
            "not crt.sh's JSON list of certificates ({})",
            escape::text(&e.to_string())
        )
    })?;
    raw.into_iter()
        .map(|r| {
            let time = |field: &str, value: &str| {
                crtsh_time(value).ok_or_else(|| {
                    format!(
                        "entry {}: {field} \"{}\" is not a crt.sh time",
                        r.id,
                        escape::text(value)
                    )
                })
            };
            let serial = serial_hex(&r.serial_number).ok_or_else(|| {
                format!(
                    "entry {}: serial_number \"{}\" is not hex",
                    r.id,
                    escape::text(&r.serial_number)
                )
            })?;
            Ok(CrtshEntry {
                id: r.id,
                serial,
                not_before: time("not_before", &r.not_before)?,
                not_after: time("not_after", &r.not_after)?,
                entry_timestamp: match &r.entry_timestamp {
                    Some(t) => Some(time("entry_timestamp", t)?),
                    None => None,
                },
                issuer_name: r.issuer_name,
                issuer_ca_id: r.issuer_ca_id,
                common_name: r.common_name,
                name_value: r.name_value,
            })
        })
        .collect()
}

/// crt.sh's times: UTC without a zone, `2026-01-31T12:00:00`, sometimes with a fraction.
fn crtsh_time(s: &str) -> Option<Timestamp> {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    let s = s.trim().trim_end_matches('Z');
    time::PrimitiveDateTime::parse(s, format)
        .ok()
        .map(|t| t.assume_utc())
}

/// A serial as hex, lower case, colons and leading zero bytes dropped (`00:F1` is `f1`).
fn serial_hex(s: &str) -> Option<String> {
    let hex: String = s
        .trim()
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let hex = if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex
    };
    let trimmed = hex.trim_start_matches("00");
    Some(if trimmed.is_empty() {
        "00".into()
    } else {
        trimmed.to_string()
    })
}

/// 64 hex digits (colons and spaces allowed), lower case.
fn sha256_hex(s: &str) -> Option<String> {
    let hex: String = s
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// What goes after `?d=`: a crt.sh id (decimal) or a SHA-256.
fn lookup_key(id_or_sha256: &str) -> Result<String, FetchError> {
    let s = id_or_sha256.trim();
    let s = s.strip_prefix("crtsh:").unwrap_or(s);
    let s = s.strip_prefix("sha256:").unwrap_or(s);
    if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(s.trim_start_matches('0').to_string())
            .map(|id| if id.is_empty() { "0".into() } else { id });
    }
    sha256_hex(s).ok_or_else(|| {
        FetchError::BadQuery(format!(
            "\"{}\" is neither a crt.sh id (a number) nor a certificate's SHA-256 (64 hex digits)",
            escape::text(id_or_sha256)
        ))
    })
}

/// The base URL checked (http/https, a host, no query of its own), with a path.
fn base(base_url: &str) -> Result<String, FetchError> {
    let uri = super::http::parse_url(base_url)?;
    if uri.query().is_some() {
        return Err(FetchError::BadUrl {
            url: escape::text(base_url).into_owned(),
            reason: "the crt.sh base URL must not have a query (cprwatch adds ?d= and \
                     ?spkisha256=)"
                .into(),
        });
    }
    let scheme = uri.scheme_str().unwrap_or("https");
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    Ok(format!("{scheme}://{authority}{}", uri.path()))
}

/// At most `per_minute` requests a minute, evenly spaced (crt.sh is shared by everyone; a
/// burst is what gets a client refused). Time is an argument: [`RateLimit::wait`] says how long
/// to wait before the next request, and counts it when the answer is "now".
#[derive(Debug, Clone)]
pub struct RateLimit {
    interval: Duration,
    /// When the next request may go; `None` before the first.
    next: Option<Instant>,
}

impl RateLimit {
    /// `per_minute` requests a minute; 0 is taken as 1 (never is not a rate).
    pub fn new(per_minute: u32) -> RateLimit {
        RateLimit {
            interval: Duration::from_secs(60) / per_minute.max(1),
            next: None,
        }
    }

    /// `None`: send now (the request is counted). `Some(d)`: wait `d`, then ask again.
    pub fn wait(&mut self, now: Instant) -> Option<Duration> {
        match self.next {
            Some(next) if now < next => Some(next - now),
            _ => {
                self.next = Some(now + self.interval);
                None
            }
        }
    }

    /// The server asked for a pause (`Retry-After` of a 429 or 503): no request before
    /// `now + pause`, and never sooner than the usual spacing.
    pub fn back_off(&mut self, now: Instant, pause: Duration) {
        let until = now + pause.max(self.interval);
        if self.next.is_none_or(|next| next < until) {
            self.next = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_spaced_evenly() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(30); // one every 2 s
        assert_eq!(limit.wait(t0), None);
        assert_eq!(limit.wait(t0), Some(Duration::from_secs(2)));
        assert_eq!(
            limit.wait(t0 + Duration::from_millis(500)),
            Some(Duration::from_millis(1500))
        );
        // Asking again does not count a request.
        assert_eq!(
            limit.wait(t0 + Duration::from_millis(500)),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(limit.wait(t0 + Duration::from_secs(2)), None);
        assert_eq!(
            limit.wait(t0 + Duration::from_secs(3)),
            Some(Duration::from_secs(1))
        );
        // After a long pause, no burst is owed.
        assert_eq!(limit.wait(t0 + Duration::from_secs(100)), None);
        assert!(limit.wait(t0 + Duration::from_secs(100)).is_some());
    }

    #[test]
    fn sixty_a_minute_is_one_a_second_and_zero_is_one_a_minute() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(60);
        assert_eq!(limit.wait(t0), None);
        assert_eq!(limit.wait(t0), Some(Duration::from_secs(1)));
        let mut limit = RateLimit::new(0);
        assert_eq!(limit.wait(t0), None);
        assert_eq!(limit.wait(t0), Some(Duration::from_secs(60)));
    }

    #[test]
    fn a_retry_after_pushes_the_next_request_back() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(60);
        assert_eq!(limit.wait(t0), None);
        limit.back_off(t0, Duration::from_secs(120));
        assert_eq!(
            limit.wait(t0 + Duration::from_secs(1)),
            Some(Duration::from_secs(119))
        );
        assert_eq!(limit.wait(t0 + Duration::from_secs(120)), None);
        // A shorter pause never shortens the spacing already due.
        limit.back_off(t0 + Duration::from_secs(120), Duration::ZERO);
        assert_eq!(
            limit.wait(t0 + Duration::from_secs(120)),
            Some(Duration::from_secs(1))
        );
    }

    const JSON: &str = r#"[
      {"issuer_ca_id":183267,"issuer_name":"C=US, O=Let's Encrypt, CN=R3",
       "common_name":"example.com","name_value":"example.com\nwww.example.com",
       "id":4242424242,"entry_timestamp":"2023-05-01T10:11:12.345",
       "not_before":"2023-05-01T09:11:12","not_after":"2023-07-30T09:11:11",
       "serial_number":"03f1a2b3c4d5e6f708","result_count":2},
      {"issuer_ca_id":null,"issuer_name":"CN=Test CA","common_name":null,"name_value":null,
       "id":7,"entry_timestamp":null,"not_before":"2026-01-01T00:00:00",
       "not_after":"2027-01-01T00:00:00","serial_number":"00:F1"}
    ]"#;

    #[test]
    fn crtsh_json_is_read_with_its_field_names() {
        let list = parse_list(JSON.as_bytes()).expect("parses");
        assert_eq!(list.len(), 2);
        let e = &list[0];
        assert_eq!(e.id, 4242424242);
        assert_eq!(e.serial, "03f1a2b3c4d5e6f708");
        assert_eq!(e.issuer_name, "C=US, O=Let's Encrypt, CN=R3");
        assert_eq!(e.issuer_ca_id, Some(183267));
        assert_eq!(e.common_name.as_deref(), Some("example.com"));
        assert_eq!(
            e.name_value.as_deref(),
            Some("example.com\nwww.example.com")
        );
        assert_eq!(
            e.not_before,
            time::macros::datetime!(2023-05-01 09:11:12 UTC)
        );
        assert_eq!(
            e.not_after,
            time::macros::datetime!(2023-07-30 09:11:11 UTC)
        );
        assert_eq!(
            e.entry_timestamp,
            Some(time::macros::datetime!(2023-05-01 10:11:12.345 UTC))
        );
        let e = &list[1];
        assert_eq!(e.serial, "f1");
        assert_eq!((e.common_name.clone(), e.issuer_ca_id), (None, None));
        assert_eq!(parse_list(b"[]"), Ok(vec![]));
    }

    #[test]
    fn bad_json_is_named() {
        for (body, says) in [
            (&b"<html>busy</html>"[..], "not crt.sh's JSON"),
            (br#"[{"id":1}]"#, "not crt.sh's JSON"),
            (
                br#"[{"id":1,"issuer_name":"x","serial_number":"zz","not_before":"2026-01-01T00:00:00","not_after":"2026-01-01T00:00:00"}]"#,
                "serial_number",
            ),
            (
                br#"[{"id":1,"issuer_name":"x","serial_number":"01","not_before":"yesterday","not_after":"2026-01-01T00:00:00"}]"#,
                "not_before",
            ),
        ] {
            let err = parse_list(body).expect_err("bad");
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn lookup_keys_are_ids_or_sha256() {
        let sha = "AB".repeat(32);
        assert_eq!(lookup_key("12345").unwrap(), "12345");
        assert_eq!(lookup_key(" crtsh:0012345 ").unwrap(), "12345");
        assert_eq!(lookup_key(&sha).unwrap(), "ab".repeat(32));
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(
            lookup_key(&format!("sha256:{colons}")).unwrap(),
            "ab".repeat(32)
        );
        for bad in ["", "12x", "abcd", "1&output=json", &"a".repeat(63)] {
            assert!(
                matches!(lookup_key(bad), Err(FetchError::BadQuery(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_base_url_gets_a_path_and_no_query() {
        assert_eq!(base("https://crt.sh").unwrap(), "https://crt.sh/");
        assert_eq!(base("https://crt.sh/").unwrap(), "https://crt.sh/");
        assert_eq!(
            base("http://127.0.0.1:8080/mirror/").unwrap(),
            "http://127.0.0.1:8080/mirror/"
        );
        assert!(base("https://crt.sh/?q=x").is_err());
        assert!(base("ftp://crt.sh/").is_err());
    }
}
