//! `[revocation]` and `[enrich]`: checking reported certificates over OCSP and CRL, and
//! fetching the certificates a report names only by id (README "Revocation verified").
//!
//! Both are on by default: a desk that trusts what staff type repeats the public failure this
//! exists for (a "revoked" answer about a different certificate). A test or an air-gapped desk
//! turns them off explicitly, and must then also say `require_verified = false`, so turning
//! the checks off can never quietly make a claim count as proof.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use time::Duration;

use crate::domain::timefmt::parse_span;

/// `[revocation]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationConfig {
    /// Check certificates with an open revocation clock over OCSP and CRL.
    pub enabled: bool,
    /// A revocation clock is met only when OCSP or CRL shows the certificate revoked (its stop
    /// is the revocationTime the CA published); a `CPR-Revoked` alone is a claim.
    pub require_verified: bool,
    /// How long a `CPR-Revoked` claim may go unconfirmed before it is an alert.
    pub claim_grace: Duration,
    /// PEM bundles of issuing CA certificates (resolved), tried before a caIssuers URL.
    pub issuers: Vec<PathBuf>,
    /// One request to a responder, CRL or caIssuers server, at most.
    pub timeout: Duration,
    /// Extra trust anchors (PEM) for https responders, beside the system's (resolved).
    pub ca_file: Option<PathBuf>,
    /// Fetch from loopback, private and link-local addresses too. Off: the URLs come from
    /// reported certificates, and a stranger's certificate must not make cprwatch send
    /// requests inside the CA's network.
    pub allow_private_addresses: bool,
}

impl Default for RevocationConfig {
    fn default() -> Self {
        RevocationConfig {
            enabled: true,
            require_verified: true,
            claim_grace: Duration::hours(1),
            issuers: Vec::new(),
            timeout: Duration::seconds(10),
            ca_file: None,
            allow_private_addresses: false,
        }
    }
}

/// `[enrich]`, validated: where certificates named only by crt.sh id or SHA-256 are fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrichConfig {
    pub enabled: bool,
    /// A crt.sh-style endpoint (`?d=<id or sha256>`, `?spkisha256=<hex>&output=json`), ending
    /// in `/`.
    pub base_url: String,
    pub timeout: Duration,
    /// Requests to `base_url` per minute, at most (crt.sh asks for restraint).
    pub requests_per_minute: u32,
}

impl Default for EnrichConfig {
    fn default() -> Self {
        EnrichConfig {
            enabled: true,
            base_url: "https://crt.sh/".into(),
            timeout: Duration::seconds(20),
            requests_per_minute: 10,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRevocation {
    enabled: Option<bool>,
    require_verified: Option<bool>,
    claim_grace: Option<String>,
    #[serde(default)]
    issuers: Vec<PathBuf>,
    timeout: Option<String>,
    ca_file: Option<PathBuf>,
    allow_private_addresses: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEnrich {
    enabled: Option<bool>,
    base_url: Option<String>,
    timeout: Option<String>,
    requests_per_minute: Option<u32>,
}

fn span(key: &str, text: &str) -> Result<Duration, (String, String)> {
    match parse_span(text) {
        Some(d) if d.is_positive() => Ok(d),
        _ => Err((
            key.into(),
            format!(
                "{text:?} is not a span; write a whole number with s, m, h or d, like \"10s\" or \"1h\""
            ),
        )),
    }
}

/// Validate `[revocation]`; an error is `(key, problem)`.
pub(super) fn revocation(
    raw: Option<RawRevocation>,
    resolve: impl Fn(&Path) -> PathBuf,
) -> Result<RevocationConfig, (String, String)> {
    let d = RevocationConfig::default();
    let Some(raw) = raw else {
        return Ok(d);
    };
    let enabled = raw.enabled.unwrap_or(d.enabled);
    let require_verified = raw.require_verified.unwrap_or(d.require_verified);
    if require_verified && !enabled {
        return Err((
            "revocation.require_verified".into(),
            "is true (the default) but [revocation] enabled = false: nothing could verify a \
             revocation and every revocation clock would breach; turn the checks on, or set \
             require_verified = false to let a CPR-Revoked claim stop a clock"
                .into(),
        ));
    }
    let timeout = match raw.timeout.as_deref() {
        Some(t) => span("revocation.timeout", t)?,
        None => d.timeout,
    };
    let claim_grace = match raw.claim_grace.as_deref() {
        Some(t) => span("revocation.claim_grace", t)?,
        None => d.claim_grace,
    };
    Ok(RevocationConfig {
        enabled,
        require_verified,
        claim_grace,
        issuers: raw.issuers.iter().map(|p| resolve(p)).collect(),
        timeout,
        ca_file: raw.ca_file.as_deref().map(resolve),
        allow_private_addresses: raw
            .allow_private_addresses
            .unwrap_or(d.allow_private_addresses),
    })
}

/// Validate `[enrich]`; an error is `(key, problem)`.
pub(super) fn enrich(raw: Option<RawEnrich>) -> Result<EnrichConfig, (String, String)> {
    let d = EnrichConfig::default();
    let Some(raw) = raw else {
        return Ok(d);
    };
    let mut base_url = raw
        .base_url
        .map(|u| u.trim().to_string())
        .unwrap_or(d.base_url);
    if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
        return Err((
            "enrich.base_url".into(),
            format!("{base_url:?} is not an http(s) URL; write it like \"https://crt.sh/\""),
        ));
    }
    if !base_url.ends_with('/') {
        base_url.push('/');
    }
    let requests_per_minute = raw.requests_per_minute.unwrap_or(d.requests_per_minute);
    if requests_per_minute == 0 {
        return Err((
            "enrich.requests_per_minute".into(),
            "must be at least 1; set enabled = false to fetch nothing".into(),
        ));
    }
    Ok(EnrichConfig {
        enabled: raw.enabled.unwrap_or(d.enabled),
        base_url,
        timeout: match raw.timeout.as_deref() {
            Some(t) => span("enrich.timeout", t)?,
            None => d.timeout,
        },
        requests_per_minute,
    })
}
