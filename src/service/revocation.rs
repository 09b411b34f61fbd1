//! The revocation checker: asks OCSP responders and CRLs about every certificate with an open
//! revocation clock, on the schedule the core sets, and hands the answers to the desk.
//!
//! It decides nothing: the desk says which certificates are due (`ChecksDue`), the core's
//! verdicts ([`crate::reading::revocation`]) say what a fetched answer means, the core's
//! schedule ([`crate::deciding::revocation`]) what to say of an expired certificate and how
//! long a CRL may be kept ([`CRL_KEEP`]), and the desk records it (`RecordChecks`), which is
//! where the next check is scheduled. What it keeps in memory is only politeness: CRLs until
//! they go stale (one CRL serves many certificates), and the spacing of requests to the
//! crt.sh-style endpoint.

use std::collections::HashMap;
use std::time::{Duration as StdDuration, Instant};

use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::{EnrichConfig, RevocationConfig};
use crate::deciding::revocation::{self as policy, CRL_KEEP};
use crate::desk::{CheckJob, CheckOutcome};
use crate::domain::event::{Observation, ObservedStatus, RevocationSource};
use crate::domain::model::Timestamp;
use crate::domain::timefmt;
use crate::escape::text as escape;
use crate::fetch::crtsh::{self, RateLimit};
use crate::fetch::http::{FetchError, FetchSettings, Fetched, HttpClient};
use crate::fetch::responders;
use crate::reading::revocation::{
    self as verdicts, CrlStatus, OcspStatus, certificate_facts, check_crl, check_ocsp,
};
use crate::service::folder_sync::Request;
use crate::service::shutdown::Shutdown;

/// At most this many certificates are checked in one round.
const ROUND: usize = 20;
/// With nothing due, the desk is asked again after this long.
const IDLE_LOOK: StdDuration = StdDuration::from_secs(30);
/// At most this many certificates of one key are fetched in one lookup.
const KEY_LOOKUP_MAX: usize = 100;

pub(crate) struct Checker {
    pub revocation: RevocationConfig,
    pub enrich: EnrichConfig,
    pub desk: mpsc::Sender<Request>,
    /// Poked by the service loop when clocks or staff mail changed.
    pub wake: std::sync::Arc<tokio::sync::Notify>,
    pub shutdown: Shutdown,
}

/// What the checker keeps between rounds.
struct Session {
    client: HttpClient,
    crtsh: Option<HttpClient>,
    issuers: Vec<Vec<u8>>,
    crls: HashMap<String, (Vec<u8>, Timestamp)>,
    rate: RateLimit,
}

impl Checker {
    pub(crate) async fn run(mut self) {
        let session = match self.session() {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "revocation checks are off: cannot set up fetching");
                return;
            }
        };
        let mut session = session;
        loop {
            let jobs = match super::request(&self.desk, |reply| Request::ChecksDue {
                limit: ROUND,
                reply,
            })
            .await
            {
                Some(Ok(jobs)) => jobs,
                Some(Err(e)) => {
                    warn!(error = %e, "cannot read the certificates due a check; will retry");
                    Vec::new()
                }
                None => return,
            };
            let busy = jobs.len() == ROUND;
            // Each certificate's answers are recorded as soon as they are in: a round can take
            // minutes (crt.sh is asked at most `requests_per_minute`), and a clock must not
            // wait for the others' checks to stop.
            for job in jobs {
                if self.shutdown.is_shutdown() {
                    return;
                }
                let mut stop = self.shutdown.clone();
                let outcome = tokio::select! {
                    biased;
                    _ = stop.recv() => return,
                    o = self.check(&mut session, job) => o,
                };
                let target = escape(&outcome.target).into_owned();
                let answers: Vec<&'static str> = outcome
                    .observations
                    .iter()
                    .map(|o| o.status.as_str())
                    .collect();
                let note = outcome.note.as_deref().map(|n| escape(n).into_owned());
                match super::request(&self.desk, |reply| Request::RecordChecks {
                    outcomes: vec![outcome],
                    reply,
                })
                .await
                {
                    Some(Ok(_)) => info!(
                        certificate = target.as_str(),
                        answers = ?answers,
                        note = note.as_deref().unwrap_or(""),
                        "revocation checked"
                    ),
                    Some(Err(e)) => warn!(error = %e, "cannot record a revocation check"),
                    None => return,
                }
            }
            let wait = if busy { StdDuration::ZERO } else { IDLE_LOOK };
            tokio::select! {
                biased;
                _ = self.shutdown.recv() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn session(&self) -> Result<Session, String> {
        let settings = |timeout: time::Duration, allow_private| FetchSettings {
            timeout: StdDuration::try_from(timeout).unwrap_or(StdDuration::from_secs(10)),
            ca_file: self.revocation.ca_file.clone(),
            allow_private,
        };
        // Responder URLs come from reported certificates: public addresses only, unless the
        // desk allows its own. The crt.sh endpoint is the operator's choice.
        let client = HttpClient::new(&settings(
            self.revocation.timeout,
            self.revocation.allow_private_addresses,
        ))
        .map_err(|e| e.to_string())?;
        let crtsh = if self.enrich.enabled {
            Some(HttpClient::new(&settings(self.enrich.timeout, true)).map_err(|e| e.to_string())?)
        } else {
            None
        };
        let mut issuers = Vec::new();
        for path in &self.revocation.issuers {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "[revocation] issuers: cannot read {}: {e}",
                    escape(&path.display().to_string())
                )
            })?;
            for b in crate::reading::extract::pem::blocks(&text) {
                if b.label == "CERTIFICATE"
                    && let Some(der) = b.der
                {
                    issuers.push(der);
                }
            }
        }
        Ok(Session {
            client,
            crtsh,
            issuers,
            crls: HashMap::new(),
            rate: RateLimit::new(self.enrich.requests_per_minute),
        })
    }

    /// Check one certificate: find it and its issuer, then ask its OCSP responder and its CRL.
    async fn check(&self, s: &mut Session, job: CheckJob) -> CheckOutcome {
        let mut out = CheckOutcome {
            target: job.target.clone(),
            ..CheckOutcome::default()
        };
        if let Some(key) = job.target.strip_prefix("spki:") {
            match self.lookup_key(s, key).await {
                Ok((found, note)) => {
                    out.found = found;
                    out.note = note;
                }
                Err(note) => out.note = Some(note),
            }
            return out;
        }
        let der = match job.row.certificate.clone() {
            Some(der) => {
                out.certificate = Some(der.clone());
                der
            }
            None => match self.fetch_certificate(s, &job).await {
                Ok(der) => {
                    out.certificate = Some(der.clone());
                    out.fetched = true;
                    der
                }
                Err(note) => {
                    out.note = Some(format!("not checked: {note}"));
                    return out;
                }
            },
        };
        let facts = match certificate_facts(&der) {
            Ok(f) => f,
            Err(e) => {
                out.note = Some(format!("not checked: the certificate cannot be read: {e}"));
                return out;
            }
        };
        // An expired certificate needs no revocation: say so, and check it all the same.
        let now = timefmt::now();
        if let Some(note) = policy::expired_note(&job.target, facts.certificate.not_after, now) {
            out.note = Some(note);
        }
        let issuer = match job.row.issuer.clone() {
            Some(i) => i,
            None => match self.find_issuer(s, &der, &facts.ca_issuers_urls).await {
                Ok(i) => {
                    out.issuer = Some(i.clone());
                    i
                }
                Err(note) => {
                    out.note = Some(format!("not checked: {note}"));
                    return out;
                }
            },
        };
        let now = timefmt::now();
        let mut fresh: Vec<Timestamp> = Vec::new();
        if let Some(url) = facts.ocsp_urls.first() {
            let obs = self
                .ask_ocsp(s, &job.target, url, &der, &issuer, &mut out, &mut fresh)
                .await;
            out.observations.push(obs);
        }
        if let Some(url) = facts.crl_urls.first() {
            if job.claim {
                s.crls.remove(url);
            }
            let obs = self
                .ask_crl(
                    s,
                    &job.target,
                    url,
                    &facts.serial,
                    &issuer,
                    &mut out,
                    &mut fresh,
                )
                .await;
            out.observations.push(obs);
        }
        if out.observations.is_empty() {
            out.note = Some(
                "not checked: the certificate names no OCSP responder and no CRL, so nothing can \
                 verify its revocation"
                    .into(),
            );
        }
        out.fresh_until = fresh.into_iter().min().filter(|f| *f > now);
        out
    }

    /// The certificate from the crt.sh-style endpoint, by crt.sh id or SHA-256.
    async fn fetch_certificate(&self, s: &mut Session, job: &CheckJob) -> Result<Vec<u8>, String> {
        let Some(client) = &s.crtsh else {
            return Err(
                "the reports name this certificate only by id and [enrich] is off: no copy to \
                 check"
                    .into(),
            );
        };
        let key = job
            .details
            .as_ref()
            .and_then(|d| d.crtsh_id.map(|i| i.to_string()).or(d.sha256.clone()))
            .or_else(|| {
                job.target
                    .strip_prefix("crtsh:")
                    .or(job.target.strip_prefix("sha256:"))
                    .map(str::to_string)
            })
            .ok_or_else(|| "no crt.sh id or SHA-256 to fetch the certificate by".to_string())?;
        while let Some(wait) = s.rate.wait(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        match crtsh::certificate(client, &self.enrich.base_url, &key).await {
            Ok(Some(der)) => Ok(der),
            Ok(None) => Err(format!(
                "{} does not know certificate {}",
                self.enrich.base_url,
                escape(&key)
            )),
            Err(e) => {
                if let Some(pause) = e.retry_after() {
                    s.rate.back_off(Instant::now(), pause);
                }
                Err(format!("cannot fetch the certificate: {e}"))
            }
        }
    }

    /// The other unexpired certificates with the key whose SPKI has SHA-256 `key`, fetched
    /// from the crt.sh-style endpoint (at most [`KEY_LOOKUP_MAX`]; a note says when more).
    async fn lookup_key(
        &self,
        s: &mut Session,
        key: &str,
    ) -> Result<(Vec<(u64, Vec<u8>)>, Option<String>), String> {
        let Some(client) = &s.crtsh else {
            return Err("[enrich] is off: the key's other certificates are not looked up".into());
        };
        while let Some(wait) = s.rate.wait(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let entries = crtsh::by_key(client, &self.enrich.base_url, key)
            .await
            .map_err(|e| {
                if let Some(pause) = e.retry_after() {
                    s.rate.back_off(Instant::now(), pause);
                }
                format!("cannot look up the key's certificates: {e}")
            })?;
        let now = timefmt::now();
        let mut live: Vec<u64> = entries
            .iter()
            .filter(|e| e.not_after > now)
            .map(|e| e.id)
            .collect();
        live.sort_unstable();
        live.dedup();
        let note = (live.len() > KEY_LOOKUP_MAX).then(|| {
            format!(
                "{} unexpired certificates with this key; the first {KEY_LOOKUP_MAX} were fetched",
                live.len()
            )
        });
        let mut found = Vec::new();
        for id in live.into_iter().take(KEY_LOOKUP_MAX) {
            while let Some(wait) = s.rate.wait(Instant::now()) {
                tokio::time::sleep(wait).await;
            }
            match crtsh::certificate(client, &self.enrich.base_url, &id.to_string()).await {
                Ok(Some(der)) => found.push((id, der)),
                Ok(None) => {}
                Err(e) => {
                    if let Some(pause) = e.retry_after() {
                        s.rate.back_off(Instant::now(), pause);
                    }
                    return Err(format!("cannot fetch certificate {id} of the key: {e}"));
                }
            }
        }
        Ok((found, note))
    }

    /// The issuer: from `[revocation] issuers` (by name), else from a caIssuers URL.
    async fn find_issuer(
        &self,
        s: &mut Session,
        der: &[u8],
        ca_issuers: &[String],
    ) -> Result<Vec<u8>, String> {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let (_, leaf) = X509Certificate::from_der(der)
            .map_err(|_| "the certificate cannot be read".to_string())?;
        let wanted = leaf.issuer().as_raw().to_vec();
        for i in &s.issuers {
            if let Ok((_, c)) = X509Certificate::from_der(i)
                && c.subject().as_raw() == wanted.as_slice()
            {
                return Ok(i.clone());
            }
        }
        let mut last = "the certificate names no caIssuers URL and no configured issuer \
                        ([revocation] issuers) matches it"
            .to_string();
        for url in ca_issuers {
            match responders::issuer(&s.client, url).await {
                Ok(i) => return Ok(i),
                Err(e) => last = format!("cannot fetch the issuer: {e}"),
            }
        }
        Err(last)
    }

    #[allow(clippy::too_many_arguments)]
    async fn ask_ocsp(
        &self,
        s: &mut Session,
        target: &str,
        url: &str,
        der: &[u8],
        issuer: &[u8],
        out: &mut CheckOutcome,
        fresh: &mut Vec<Timestamp>,
    ) -> Observation {
        let now = timefmt::now();
        let mut obs = observation(target, RevocationSource::Ocsp, url, now);
        // No nonce: responders behind CDNs serve pre-signed answers (RFC 5019) and ignore or
        // refuse one; freshness is judged by thisUpdate and nextUpdate instead.
        let request = match verdicts::ocsp_request(der, issuer, None) {
            Ok(r) => r,
            Err(e) => return failed(obs, e.to_string()),
        };
        let fetched = match responders::ocsp(&s.client, url, &request).await {
            Ok(f) => f,
            Err(e) => return fetch_failed(obs, e, out),
        };
        let now = timefmt::now();
        obs.at = now;
        match check_ocsp(&fetched.body, der, issuer, None, now) {
            Ok(v) => {
                obs.this_update = Some(v.this_update);
                obs.next_update = v.next_update;
                fresh.extend(v.next_update);
                fresh.extend(max_age(&fetched, now));
                match v.status {
                    OcspStatus::Good => obs.status = ObservedStatus::Good,
                    OcspStatus::Unknown => obs.status = ObservedStatus::Unknown,
                    OcspStatus::Revoked {
                        revocation_time,
                        reason,
                    } => {
                        mark_revoked(&mut obs, revocation_time, reason);
                        out.evidence = Some(fetched.body.clone());
                    }
                }
                obs
            }
            Err(e) => failed(obs, e.to_string()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn ask_crl(
        &self,
        s: &mut Session,
        target: &str,
        url: &str,
        serial: &[u8],
        issuer: &[u8],
        out: &mut CheckOutcome,
        fresh: &mut Vec<Timestamp>,
    ) -> Observation {
        let now = timefmt::now();
        let mut obs = observation(target, RevocationSource::Crl, url, now);
        let crl = match s.crls.get(url).filter(|(_, until)| *until > now) {
            Some((crl, _)) => crl.clone(),
            None => match responders::crl(&s.client, url, responders::CRL_MAX_BYTES).await {
                Ok(f) => {
                    let keep = max_age(&f, now)
                        .unwrap_or(now + CRL_KEEP)
                        .min(now + CRL_KEEP);
                    s.crls.insert(url.to_string(), (f.body.clone(), keep));
                    f.body
                }
                Err(e) => return fetch_failed(obs, e, out),
            },
        };
        match check_crl(&crl, serial, issuer, now) {
            Ok(v) => {
                obs.this_update = Some(v.this_update);
                obs.next_update = v.next_update;
                fresh.extend(v.next_update);
                match v.status {
                    CrlStatus::NotListed => obs.status = ObservedStatus::Good,
                    CrlStatus::Revoked {
                        revocation_time,
                        reason,
                    } => mark_revoked(&mut obs, revocation_time, reason),
                }
                obs
            }
            Err(e) => {
                // A stale or bad CRL is fetched again next time, not kept.
                s.crls.remove(url);
                failed(obs, e.to_string())
            }
        }
    }
}

fn observation(target: &str, source: RevocationSource, url: &str, at: Timestamp) -> Observation {
    Observation {
        target: target.to_string(),
        source,
        url: escape(url).into_owned(),
        status: ObservedStatus::Failed,
        at,
        revocation_time: None,
        reason: None,
        this_update: None,
        next_update: None,
        problem: None,
    }
}

/// The source shows the certificate revoked at `at`, for `reason` (its CRLReason name).
fn mark_revoked(obs: &mut Observation, at: Timestamp, reason: Option<&str>) {
    obs.status = ObservedStatus::Revoked;
    obs.revocation_time = Some(at);
    obs.reason = reason.map(str::to_string);
}

fn failed(mut obs: Observation, problem: String) -> Observation {
    obs.status = ObservedStatus::Failed;
    obs.problem = Some(escape(&problem).into_owned());
    obs
}

fn fetch_failed(obs: Observation, e: FetchError, out: &mut CheckOutcome) -> Observation {
    if let Some(pause) = e.retry_after() {
        let until = timefmt::now() + time::Duration::try_from(pause).unwrap_or_default();
        out.retry_after = Some(out.retry_after.map_or(until, |r| r.max(until)));
    }
    failed(obs, e.to_string())
}

/// When a fetched answer stops being fresh by its `Cache-Control: max-age`.
fn max_age(f: &Fetched, now: Timestamp) -> Option<Timestamp> {
    f.max_age
        .and_then(|d| time::Duration::try_from(d).ok())
        .map(|d| now + d)
}
