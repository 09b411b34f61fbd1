//! Revocation checks at the desk: which certificates are due a check, and recording what the
//! checks found (README "Revocation verified").
//!
//! The service's checker (`service/revocation.rs`) fetches; the core
//! ([`crate::deciding::revocation`]) decides when to look next and what is a problem; this
//! records. Every answer is a `revocation_observed` event, written in one batch with the
//! certificate's check row. The first answer that shows a certificate revoked is also kept as
//! a message in the case's thread, from the checker: `CPR-Revoked: <certificate> <the
//! revocationTime the CA published>`, with the responder's signed answer attached. Its position
//! ([`Position::revocation_check`]) is the checker's alone, so the projector takes it as
//! verified, the case timeline shows it with the mail, and `verify` and `rebuild` derive the
//! stop again from the log. Its position is made from the certificate, the source and the
//! revocation time, so a second sighting of the same revocation is a position already read.

use std::time::SystemTime;

use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};

use super::{Derive, Desk, DeskError, outbox};
use crate::deciding::revocation::{self as policy, CheckState};
use crate::domain::event::{Envelope, Event, Observation, ObservedStatus, RevocationSource};
use crate::domain::ids::{CaseId, Position};
use crate::domain::model::{CertificateRef, FolderRole, SourceMeta, Timestamp};
use crate::pipeline::{RawMessage, prepare};
use crate::store::{self, CheckRow, Tables};

/// One certificate the checker is to look at now.
#[derive(Clone, Debug)]
pub(crate) struct CheckJob {
    pub target: String,
    /// What the reports say about it (its crt.sh id, SHA-256, serial, issuer).
    pub details: Option<CertificateRef>,
    /// Its state, with the certificate's DER from a report that carried it when the row had
    /// none yet.
    pub row: CheckRow,
    /// Staff claimed it revoked since the last check: ask the sources themselves, not a copy
    /// kept from before (a CRL cached an hour ago cannot confirm a revocation made since).
    pub claim: bool,
}

/// What the checker found for one certificate.
#[derive(Clone, Debug, Default)]
pub(crate) struct CheckOutcome {
    pub target: String,
    /// The certificate and its issuer, when found (kept for the next check).
    pub certificate: Option<Vec<u8>>,
    /// The certificate was fetched (the reports named it only by id): its details are kept
    /// in the case too.
    pub fetched: bool,
    pub issuer: Option<Vec<u8>>,
    /// One answer per source asked.
    pub observations: Vec<Observation>,
    /// For a key (`spki:…`): the other unexpired certificates with it, each with its crt.sh
    /// id and DER, found at the crt.sh-style endpoint.
    pub found: Vec<(u64, Vec<u8>)>,
    /// The signed answer that showed it revoked (an OCSP response), kept with the record.
    pub evidence: Option<Vec<u8>>,
    /// The earliest of the answers' `max-age` and `nextUpdate`.
    pub fresh_until: Option<Timestamp>,
    /// A server asked to wait until then.
    pub retry_after: Option<Timestamp>,
    /// Why it could not be checked at all (no certificate, no issuer, no responder).
    pub note: Option<String>,
}

impl Desk {
    /// The certificates (and keys) due a check at `now`, at most `limit`: those whose next
    /// check has come (a claim since the last check makes it now), and those with an open
    /// revocation clock never checked. One indexed query, not a look at every open clock: the
    /// checker asks every half minute, on the thread that commits the mail.
    pub(crate) fn checks_due(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<CheckJob>, DeskError> {
        let Some(store) = self.store.tables() else {
            return Ok(Vec::new());
        };
        let mut jobs = Vec::new();
        for target in store.checks_due(now, limit)? {
            let id = format!("revocation:{target}");
            let Some(clock) = store.clock_at(&id, now)? else {
                continue;
            };
            let row = store.check_rows(std::slice::from_ref(&target))?.pop();
            if target.starts_with("spki:") {
                // A key: its other certificates are looked up, now and then.
                if clock.status(now).state.is_open() {
                    jobs.push(CheckJob {
                        target: target.clone(),
                        claim: false,
                        details: None,
                        row: row.unwrap_or_else(|| CheckRow {
                            target,
                            ..CheckRow::default()
                        }),
                    });
                }
                continue;
            }
            // A claim made since the last check: the sources themselves are asked.
            let claim = policy::claim_unchecked(&clock, row.as_ref().map_or(&[], |r| &r.latest));
            let cases = store.cases_of_clock(&id, now)?;
            let mut job = self.job(store, &target, &cases, row, now)?;
            job.claim = claim;
            jobs.push(job);
        }
        Ok(jobs)
    }

    /// A `CPR-Revoked` claim among the clocks `touched` changed: its certificate is due a
    /// check now (staff said it is done; the checker, woken by the staff mail, looks at once).
    pub(crate) fn claims_due(
        &mut self,
        touched: &[crate::domain::ids::ClockId],
        now: Timestamp,
    ) -> Result<(), DeskError> {
        let Some(store) = self.store.tables() else {
            return Ok(());
        };
        let mut batch = store::Batch::default();
        for id in touched {
            let Some(target) = id.as_str().strip_prefix("revocation:") else {
                continue;
            };
            let Some(clock) = store.clock_at(id.as_str(), now)? else {
                continue;
            };
            if clock.claimed.is_none() {
                continue;
            }
            // No row yet: never checked, so due anyway.
            let Some(mut row) = store.check_rows(&[target.to_string()])?.pop() else {
                continue;
            };
            if policy::claim_unchecked(&clock, &row.latest) && row.next_due.is_none_or(|d| d > now)
            {
                row.next_due = Some(now);
                batch.checks.push(row);
            }
        }
        if !batch.checks.is_empty() {
            self.commit(batch)?;
        }
        Ok(())
    }

    fn job(
        &self,
        store: &dyn Tables,
        target: &str,
        cases: &[String],
        row: Option<CheckRow>,
        now: Timestamp,
    ) -> Result<CheckJob, DeskError> {
        let mut row = row.unwrap_or_else(|| CheckRow {
            target: target.to_string(),
            ..CheckRow::default()
        });
        let mut details = None;
        for case in cases {
            let Some((_, c)) = store.case_at(case, now)? else {
                continue;
            };
            if details.is_none() {
                details = c
                    .certificates
                    .iter()
                    .find(|r| r.reference == target)
                    .cloned();
            }
            if row.certificate.is_none()
                && let Some(sha) = details.as_ref().and_then(|d| d.sha256.clone())
            {
                for m in c.messages.iter().filter(|m| !m.staff) {
                    let Some(raw) = self.store.message(&m.content_hash)? else {
                        continue;
                    };
                    let mail = crate::reading::parse::parse_limited(&raw, &self.policy.limits);
                    if let Some(der) = crate::reading::extract::certificate_der(&mail, &sha) {
                        row.certificate = Some(der);
                        break;
                    }
                }
            }
        }
        Ok(CheckJob {
            target: target.to_string(),
            claim: false,
            details,
            row,
        })
    }

    /// Record what the checks found at `now`: a `revocation_observed` event per answer and
    /// each certificate's next check, in one batch; then, for a certificate an answer shows
    /// revoked, the checker's record in its case (derived at once, so its clock stops).
    /// Returns the events committed.
    pub(crate) fn record_checks(
        &mut self,
        outcomes: Vec<CheckOutcome>,
        now: Timestamp,
    ) -> Result<Vec<Envelope>, DeskError> {
        let Some(store) = self.store.tables() else {
            return Ok(Vec::new());
        };
        let mut batch = store::Batch::default();
        let mut events = Vec::new();
        let mut verified = Vec::new();
        let mut lookups = Vec::new();
        let mut fetched = Vec::new();
        let targets: Vec<String> = outcomes.iter().map(|o| o.target.clone()).collect();
        let rows = store.check_rows(&targets)?;
        for o in outcomes {
            if o.target.starts_with("spki:") {
                let clock = store.clock_at(&format!("revocation:{}", o.target), now)?;
                batch.checks.push(CheckRow {
                    target: o.target.clone(),
                    next_due: policy::next_key_lookup(clock.as_ref(), now),
                    failures: 0,
                    note: o.note.clone(),
                    ..CheckRow::default()
                });
                if !o.found.is_empty() {
                    lookups.push((o.target.clone(), o.found));
                }
                continue;
            }
            let id = format!("revocation:{}", o.target);
            let Some(clock) = store.clock_at(&id, now)? else {
                continue;
            };
            let before = rows.iter().find(|r| r.target == o.target);
            let mut row = before.cloned().unwrap_or_else(|| CheckRow {
                target: o.target.clone(),
                ..CheckRow::default()
            });
            if o.fetched
                && let Some(der) = &o.certificate
            {
                fetched.push((o.target.clone(), der.clone()));
            }
            row.certificate = o.certificate.clone().or(row.certificate);
            row.issuer = o.issuer.clone().or(row.issuer);
            row.note = o.note.clone();
            for obs in &o.observations {
                outbox::push_event(
                    &mut batch,
                    &mut events,
                    now,
                    Event::RevocationObserved {
                        observation: obs.clone(),
                    },
                );
                row.latest.retain(|l| l.source != obs.source);
                row.latest.push(obs.clone());
            }
            row.latest.sort_by_key(|l| l.source);
            let answered = o
                .observations
                .iter()
                .any(|x| x.status != ObservedStatus::Failed);
            row.failures = if answered { 0 } else { row.failures + 1 };
            row.fresh_until = o.fresh_until;
            row.retry_after = o.retry_after;
            let state = CheckState {
                failures: row.failures,
                fresh_until: row.fresh_until,
                retry_after: row.retry_after,
            };
            row.next_due = policy::next_due(&clock, &row.latest, &state, self.claim_grace, now);
            if let Some(r) = policy::revoked(&row.latest).cloned() {
                verified.push((r, o.evidence.clone()));
            }
            batch.checks.push(row);
        }
        self.commit(batch)?;
        if self.outbound.is_some() {
            self.rechecked.extend(targets);
        }
        for (r, evidence) in verified {
            events.extend(self.record_verified(&r, evidence.as_deref(), now)?);
        }
        for (key, found) in lookups {
            events.extend(self.record_key_lookup(&key, &found, now)?);
        }
        for (target, der) in fetched {
            events.extend(self.record_fetched(&target, der, now)?);
        }
        Ok(events)
    }

    /// Keep a certificate the reports named only by id, as fetched, in the first case that
    /// names it: the projector learns its issuer, serial, notAfter, key and precertificate
    /// flag as if the report had carried it (an expired one's clock closes, a precertificate
    /// joins its final certificate), and the case shows them.
    fn record_fetched(
        &mut self,
        target: &str,
        der: Vec<u8>,
        now: Timestamp,
    ) -> Result<Vec<Envelope>, DeskError> {
        let own = Own {
            kind: OwnKind::Lookup,
            clock_target: target,
            identity: format!("fetched\n{target}"),
        };
        let id = target
            .strip_prefix("crtsh:")
            .and_then(|n| n.parse::<u64>().ok());
        let intro = format!(
            "cprwatch fetched {target}, which the report named only by id, from the \
             certificate search endpoint: attached.\r\n\r\n"
        );
        self.record_own(&own, now, |head| lookup_message(head, &intro, &[(id, der)]))
    }

    /// Keep the certificates found with a reported key as a message in the first case that
    /// reports the key, each attached as PEM: the projector adds them to the case like a
    /// report's, and each gets its own revocation clock, counted from the key's report (its
    /// key clock's 24 hours). The same set found again is a position already read.
    fn record_key_lookup(
        &mut self,
        key: &str,
        found: &[(u64, Vec<u8>)],
        now: Timestamp,
    ) -> Result<Vec<Envelope>, DeskError> {
        let mut ids: Vec<u64> = found.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        let own = Own {
            kind: OwnKind::Lookup,
            clock_target: key,
            identity: format!("{key}\n{ids:?}"),
        };
        let intro = format!(
            "cprwatch looked up the certificates issued for {key} at the certificate search \
             endpoint: {} unexpired, attached. Each has a revocation clock of its own, due with \
             the key's.\r\n\r\n",
            found.len()
        );
        let found: Vec<(Option<u64>, Vec<u8>)> = found
            .iter()
            .map(|(id, der)| (Some(*id), der.clone()))
            .collect();
        self.record_own(&own, now, |head| lookup_message(head, &intro, &found))
    }

    /// Keep the checker's record that `r` shows its certificate revoked, as a message in the
    /// first case that names it; a record of the same revocation kept before is skipped by
    /// its position.
    fn record_verified(
        &mut self,
        r: &Observation,
        evidence: Option<&[u8]>,
        now: Timestamp,
    ) -> Result<Vec<Envelope>, DeskError> {
        let Some(revoked_at) = r.revocation_time else {
            return Ok(Vec::new());
        };
        let own = Own {
            kind: OwnKind::Check,
            clock_target: &r.target,
            identity: format!(
                "{}\n{}\n{}",
                r.target,
                r.source.as_str(),
                revoked_at.unix_timestamp()
            ),
        };
        self.record_own(&own, now, |head| verified_message(head, r, evidence))
    }

    /// Record a message of cprwatch's own (`write` makes it, given its head) in the thread of
    /// the first case that shows `own`'s clock, and derive what it changes; nothing when that
    /// message was recorded before (its position is made from `own.identity`).
    fn record_own(
        &mut self,
        own: &Own<'_>,
        now: Timestamp,
        write: impl FnOnce(Head<'_>) -> Result<Vec<u8>, DeskError>,
    ) -> Result<Vec<Envelope>, DeskError> {
        let Some(store) = self.store.tables() else {
            return Ok(Vec::new());
        };
        let clock = format!("revocation:{}", own.clock_target);
        let Some(case) = store.cases_of_clock(&clock, now)?.into_iter().min() else {
            return Ok(Vec::new());
        };
        let Some((_, c)) = store.case_at(&case, now)? else {
            return Ok(Vec::new());
        };
        let founder = c
            .messages
            .iter()
            .find(|m| m.content_hash == c.founder)
            .map(|m| m.message_id.clone());
        let digest = crate::store::chain::content_hash(own.identity.as_bytes());
        let id = &digest[..32];
        let (position, folder) = match own.kind {
            OwnKind::Check => (Position::revocation_check(id), FolderRole::Sent),
            OwnKind::Lookup => (Position::key_lookup(id), FolderRole::Inbox),
        };
        if self.store.position(position.as_str())?.is_some() {
            return Ok(Vec::new());
        }
        let bytes = write(Head {
            kind: own.kind,
            id,
            case: &CaseId::from_stored(&case),
            founder: founder.as_deref(),
            subject: &c.subject,
            now,
        })?;
        let prepared = prepare(
            RawMessage {
                raw: bytes,
                meta: SourceMeta {
                    folder,
                    position: Some(position),
                    server_time: Some(now),
                },
            },
            &self.policy,
            now,
            true,
        );
        let mut events = Vec::new();
        self.record(
            vec![prepared],
            Vec::new(),
            now,
            Derive::Now,
            Some(&mut events),
        )?;
        Ok(events)
    }
}

/// Which of cprwatch's own messages: the checker's record of a revocation (staff, by its
/// position) or a key lookup's certificates (a report's, not staff).
#[derive(Clone, Copy)]
enum OwnKind {
    Check,
    Lookup,
}

/// A message of cprwatch's own to keep in a case: about which clock, and what makes it the
/// same message when made again.
struct Own<'a> {
    kind: OwnKind,
    clock_target: &'a str,
    identity: String,
}

/// Where one of cprwatch's own messages goes: its id, and the case's thread.
struct Head<'a> {
    kind: OwnKind,
    id: &'a str,
    case: &'a CaseId,
    founder: Option<&'a str>,
    subject: &'a str,
    now: Timestamp,
}

impl Head<'_> {
    /// The message's headers: from cprwatch (the checker or the lookup) to itself, a reply in
    /// the case's thread with the case tag, and for a lookup `Auto-Submitted` (RFC 3834: a
    /// machine wrote it; it still brings certificates, as a report does).
    fn builder(&self) -> Result<lettre::message::MessageBuilder, DeskError> {
        let (name, address, prefix) = match self.kind {
            OwnKind::Check => (
                "cprwatch revocation check",
                "revocation-check@cprwatch.invalid",
                "check",
            ),
            OwnKind::Lookup => (
                "cprwatch key lookup",
                "key-lookup@cprwatch.invalid",
                "lookup",
            ),
        };
        let from = Mailbox::new(
            Some(name.into()),
            address
                .parse()
                .map_err(|e| DeskError::Action(format!("cprwatch's own address: {e}")))?,
        );
        let subject: String = self
            .subject
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(120)
            .collect();
        let mut b = Message::builder()
            .from(from.clone())
            .to(from)
            .subject(format!("Re: {} [{}]", subject.trim(), self.case))
            .date(SystemTime::from(self.now))
            .message_id(Some(format!("<{prefix}-{}@cprwatch.invalid>", self.id)));
        if let OwnKind::Lookup = self.kind {
            b = b.raw_header(lettre::message::header::HeaderValue::new(
                lettre::message::header::HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-generated".into(),
            ));
        }
        if let Some(f) = self.founder {
            b = b.in_reply_to(f.to_string()).references(f.to_string());
        }
        Ok(b)
    }
}

/// The lookup's record: an automatic message in the case's thread with each certificate found
/// as a PEM attachment, and a line per certificate saying where it was found.
fn lookup_message(
    head: Head<'_>,
    intro: &str,
    found: &[(Option<u64>, Vec<u8>)],
) -> Result<Vec<u8>, DeskError> {
    use base64::Engine;
    let b = head.builder()?;
    let mut text = intro.to_string();
    let mut parts = Vec::new();
    for (crtsh, der) in found {
        // Each by its own fingerprint, the name its attachment gives it: a bare crt.sh id here
        // would be read as a second, detail-less reference to the same certificate.
        text.push_str(&format!(
            "sha256:{}\r\n",
            crate::reading::extract::key::sha256_hex(der)
        ));
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\r\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            pem.push_str("\r\n");
        }
        pem.push_str("-----END CERTIFICATE-----\r\n");
        parts.push(
            // Named for its crt.sh id: `reading/facts.rs` gives the certificate that name too.
            Attachment::new(match crtsh {
                Some(id) => format!("certificate-{id}.pem"),
                None => "certificate.pem".to_string(),
            })
            .body(
                pem,
                ContentType::parse("application/x-pem-file")
                    .map_err(|e| DeskError::Action(format!("content type: {e}")))?,
            ),
        );
    }
    let mut mp = MultiPart::mixed().singlepart(
        SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(text),
    );
    for p in parts {
        mp = mp.singlepart(p);
    }
    let m = b
        .multipart(mp)
        .map_err(|e| DeskError::Action(format!("cannot write the lookup record: {e}")))?;
    Ok(m.formatted())
}

/// The checker's record: a reply in the case's thread holding the one `CPR-Revoked` line with
/// the revocation time the CA published, what showed it, and the signed answer attached.
fn verified_message(
    head: Head<'_>,
    r: &Observation,
    evidence: Option<&[u8]>,
) -> Result<Vec<u8>, DeskError> {
    use crate::domain::timefmt::format as t;
    let b = head.builder()?;
    // Nothing from the responder goes into the text but what was verified and typed: times,
    // a reason name, and the URL cprwatch itself asked.
    let mut text = format!(
        "Verified by cprwatch: {} {} shows {} revoked.\r\n\r\n\
         revocationTime: {}\r\n",
        r.source.as_str().to_uppercase(),
        r.url,
        r.target,
        r.revocation_time.map(t).unwrap_or_default(),
    );
    if let Some(reason) = &r.reason {
        text.push_str(&format!("reason: {reason}\r\n"));
    }
    if let Some(u) = r.this_update {
        text.push_str(&format!("thisUpdate: {}\r\n", t(u)));
    }
    if let Some(u) = r.next_update {
        text.push_str(&format!("nextUpdate: {}\r\n", t(u)));
    }
    text.push_str(&format!("checked: {}\r\n\r\n", t(r.at)));
    text.push_str(&format!(
        "CPR-Revoked: {} {}\r\n",
        r.target,
        r.revocation_time.map(t).unwrap_or_default()
    ));
    let body = SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .body(text);
    let m = match (evidence, r.source) {
        (Some(der), RevocationSource::Ocsp) => b.multipart(
            MultiPart::mixed().singlepart(body).singlepart(
                Attachment::new("ocsp-response.der".into()).body(
                    der.to_vec(),
                    ContentType::parse("application/ocsp-response")
                        .map_err(|e| DeskError::Action(format!("content type: {e}")))?,
                ),
            ),
        ),
        _ => b.singlepart(body),
    }
    .map_err(|e| DeskError::Action(format!("cannot write the check record: {e}")))?;
    Ok(m.formatted())
}
