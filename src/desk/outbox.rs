//! The desk's side of telling people: evaluating alerts after each derivation, queueing mail in
//! the outbox with the events that record it, and recording how delivery went.
//!
//! What is owed and to whom is decided in the core ([`crate::deciding::dispatch`]); what a
//! mail says in [`crate::notify::compose`]; handing it to the server in
//! [`crate::notify::smtp`], driven by the service's courier. This module only reads what those
//! need from the store and commits what they decide, each in one transaction.

use std::collections::BTreeSet;

use time::Duration;

use super::{Desk, DeskError, index_of};
use crate::config::Config;
use lettre::Address;
use lettre::message::Mailbox;

use crate::deciding::alerts::{AlertLevel, AlertPolicy, Alerted};
use crate::deciding::canary;
use crate::deciding::cases::Case;
use crate::deciding::clock::Clock;
use crate::deciding::dispatch::{self, Route};
use crate::deciding::receipts::{ReceiptRules, receipt_decision};
use crate::domain::event::{Automation, Envelope, Event, MAIL_GIVE_UP_DAYS, MailRef};
use crate::domain::ids::{CaseId, ClockId};
use crate::domain::model::FolderRole;
use crate::domain::model::Timestamp;
use crate::notify::compose::{self, Composed};
use crate::store::{self, AlertState, NewMail, OutboxChange, OutboxRow, Tables};

/// What the configuration says about sending: present only with `[smtp]`, since without a
/// server nothing is sent, and nothing is queued to flood it later.
#[derive(Clone, Debug)]
pub(crate) struct Outbound {
    pub policy: AlertPolicy,
    /// Each route with its addresses parsed.
    pub routes: Vec<(Route, Vec<Address>)>,
    pub from: Mailbox,
    pub dashboard_url: Option<String>,
    pub receipts: ReceiptRules,
    /// `[web] public_url` and the reporter-link key: receipts then carry the link to the
    /// reporter's status page.
    pub status_pages: Option<(String, Vec<u8>)>,
}

impl Outbound {
    /// `None` without `[smtp]`. The configuration checked every address already; one that
    /// still does not parse is an error here rather than an alert never sent.
    pub(crate) fn of(config: &Config) -> Result<Option<Outbound>, DeskError> {
        let Some(smtp) = config.smtp.as_ref() else {
            return Ok(None);
        };
        let address = |a: &str, key: &str| {
            a.parse::<Address>()
                .map_err(|e| DeskError::Compose(format!("{key} {a:?} is not an address: {e}")))
        };
        let from = Mailbox::new(Some("cprwatch".into()), address(&smtp.from, "[smtp] from")?);
        let mut routes = Vec::new();
        for r in &config.alerts.routes {
            let to =
                r.to.iter()
                    .map(|a| address(a, "[[alerts.route]] to"))
                    .collect::<Result<Vec<_>, _>>()?;
            routes.push((r.clone(), to));
        }
        // Mail to or from these is the desk talking to itself: never a receipt.
        let own = std::iter::once(smtp.from.clone())
            .chain(config.canary.iter().map(|c| c.to.clone()))
            .chain(config.alerts.routes.iter().flat_map(|r| r.to.clone()))
            .chain(config.desk.staff_addresses.iter().cloned());
        let r = &config.receipts;
        Ok(Some(Outbound {
            policy: config.alerts.policy.clone(),
            routes,
            from,
            dashboard_url: config.alerts.dashboard_url.clone(),
            receipts: ReceiptRules::new(r.enabled, r.max_per_sender_per_hour, r.skip_junk, own),
            status_pages: match config.web.as_ref() {
                Some(web) => match web.public_url.clone() {
                    Some(base) => Some((
                        base,
                        crate::web::reporter::key(config, web).map_err(DeskError::Secret)?,
                    )),
                    None => None,
                },
                None => None,
            },
        }))
    }

    fn routes(&self) -> Vec<Route> {
        self.routes.iter().map(|(r, _)| r.clone()).collect()
    }
}

/// How one delivery attempt went, as the courier reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// The server took it, with this answer.
    Sent(String),
    /// Try again later (no connection, 4xx).
    Transient(String),
    /// Refused for good (5xx).
    Permanent(String),
}

/// The wait before attempt `attempts + 1` after `attempts` transient failures: 10 s doubling
/// to 10 minutes. A server back after a restart is found within seconds; an outage of hours
/// costs six attempts an hour per mail.
pub(crate) fn retry_after(attempts: u32) -> Duration {
    let secs = 10i64.saturating_mul(1i64 << attempts.saturating_sub(1).min(10));
    Duration::seconds(secs.min(600))
}

/// What one derivation changed that sending cares about.
#[derive(Debug, Default)]
pub(crate) struct Touched {
    pub clocks: BTreeSet<ClockId>,
    /// Cases opened, with the content hash of the report that opened each: owed a receipt.
    pub opened: Vec<(CaseId, String)>,
}

impl Touched {
    pub(crate) fn note(&mut self, e: &Event) {
        match e {
            Event::ClockStarted { clock, .. }
            | Event::ClockRevised { clock, .. }
            | Event::ClockStopped { clock, .. }
            | Event::ClockBreached { clock, .. }
            | Event::ClockReopened { clock, .. }
            | Event::ClockAcknowledged { clock, .. } => {
                self.clocks.insert(clock.clone());
            }
            Event::CaseOpened { case, message, .. } => {
                self.opened.push((case.clone(), message.clone()));
            }
            _ => {}
        }
    }
}

impl Desk {
    /// Evaluate the alerts owed at `now` — of the clocks `touched` changed, of those whose
    /// next stage has come, and on the first call of all open clocks — and the receipts owed
    /// to the reports that opened cases, and queue their mail. Returns the events committed
    /// (`mail_queued`).
    pub(crate) fn evaluate_alerts(
        &mut self,
        now: Timestamp,
        touched: Touched,
    ) -> Result<Vec<Envelope>, DeskError> {
        let (Some(out), Some(store)) = (self.outbound.as_ref(), self.store.tables()) else {
            return Ok(Vec::new());
        };
        let mut ids: BTreeSet<String> = touched.clocks.iter().map(ToString::to_string).collect();
        ids.extend(store.alert_clocks_due(now)?);
        if !self.swept {
            // Clocks open before this process (or before alerts were configured) are seen now.
            ids.extend(store.open_clocks_at(now)?.into_iter().map(|(id, _)| id));
        }
        let ids: Vec<String> = ids.into_iter().collect();
        let states = store.alert_states(&ids)?;
        let mut clocks = Vec::new();
        for id in &ids {
            let Some(clock) = store.clock_at(id, now)? else {
                continue;
            };
            let state = states.iter().find(|s| &s.clock == id);
            if state.is_none() && !clock.status(now).state.is_open() {
                // Never alerted and already over: nothing to say, nothing to remember.
                continue;
            }
            let alerted = Alerted {
                first_seen: state.map(|s| s.first_seen),
                last: state
                    .and_then(|s| s.last_stage.as_deref())
                    .and_then(dispatch::parse_stage),
                advisory: state.is_some_and(|s| s.advisory),
            };
            clocks.push((clock, alerted));
        }
        let plan = dispatch::plan(&out.policy, &out.routes(), clocks.clone(), now);
        let mut batch = store::Batch::default();
        let mut events = Vec::new();
        for mail in &plan.mails {
            let (route, to) = &out.routes[mail.route];
            let route_key = dispatch::route_key(route);
            let items: Vec<(AlertLevel, &Clock, Option<Case>)> = mail
                .items
                .iter()
                .filter_map(|i| {
                    let clock = &clocks.iter().find(|(c, _)| c.id == i.clock)?.0;
                    Some((i.level, clock, case_of(store, clock, now)))
                })
                .collect();
            let key = match (mail.level, mail.items.first()) {
                (AlertLevel::Digest, _) | (_, None) => {
                    let names: Vec<String> = mail
                        .items
                        .iter()
                        .map(|i| format!("{}/{}", i.clock, i.key))
                        .collect();
                    format!(
                        "digest/{route_key}/{}/{}",
                        now.unix_timestamp(),
                        &crate::store::chain::content_hash(names.join("\n").as_bytes())[..16]
                    )
                }
                (_, Some(item)) => format!("alert/{}/{}/{route_key}", item.clock, item.key),
            };
            let outgoing = compose::Outgoing {
                from: &out.from,
                to,
                key: &key,
                now,
            };
            let composed = if mail.level == AlertLevel::Digest {
                let listed: Vec<(AlertLevel, &Clock, Option<&Case>)> = items
                    .iter()
                    .map(|(l, c, case)| (*l, *c, case.as_ref()))
                    .collect();
                compose::digest(&outgoing, &listed, out.dashboard_url.as_deref())
            } else {
                let Some((level, clock, case)) = items.first() else {
                    continue;
                };
                compose::alert(
                    &outgoing,
                    *level,
                    clock,
                    case.as_ref(),
                    out.dashboard_url.as_deref(),
                )
            }
            .map_err(|e| DeskError::Compose(e.to_string()))?;
            if store.outbox_has(&key)? {
                continue;
            }
            let case = items
                .iter()
                .filter_map(|(_, c, case)| case.as_ref().map(|k| k.id.clone()).or(c.case.clone()))
                .collect::<BTreeSet<CaseId>>();
            let mail_ref = MailRef {
                message_id: composed.message_id.clone(),
                kind: mail.level.as_str().to_string(),
                to: route.to.clone(),
                case: (case.len() == 1).then(|| case.into_iter().next()).flatten(),
                clocks: mail.items.iter().map(|i| i.clock.clone()).collect(),
            };
            queue(&mut batch, &mut events, key, None, mail_ref, composed, now);
        }
        let mut receipts_to: std::collections::HashMap<String, usize> = Default::default();
        for (case, hash) in &touched.opened {
            let Some(facts) = facts_of(store, hash)? else {
                continue;
            };
            let decided = receipt_decision(
                &facts,
                true,
                &out.receipts,
                |to| {
                    let to = to.to_string().to_ascii_lowercase();
                    store
                        .outbox_queued_since(&to, now - Duration::hours(1))
                        .unwrap_or(usize::MAX)
                        + receipts_to.get(&to).copied().unwrap_or(0)
                },
                now,
            );
            let to = match decided {
                Ok(to) => to,
                Err(skip) => {
                    tracing::info!(
                        case = case.as_str(),
                        message_id = facts.message_id.as_str(),
                        skip = skip.code(),
                        reason = %skip,
                        "no receipt"
                    );
                    continue;
                }
            };
            let key = format!("receipt/{hash}");
            if store.outbox_has(&key)? {
                continue;
            }
            let rate_key = to.to_string().to_ascii_lowercase();
            *receipts_to.entry(rate_key.clone()).or_default() += 1;
            let composed = compose::receipt(
                &compose::Outgoing {
                    from: &out.from,
                    to: std::slice::from_ref(&to),
                    key: &key,
                    now,
                },
                &facts,
                case,
                out.status_pages
                    .as_ref()
                    .map(|(base, key)| {
                        crate::web::reporter::link(base, key, case.as_str(), &facts.content_hash)
                    })
                    .as_deref(),
            )
            .map_err(|e| DeskError::Compose(e.to_string()))?;
            let mail_ref = MailRef {
                message_id: composed.message_id.clone(),
                kind: "receipt".into(),
                to: vec![to.to_string()],
                case: Some(case.clone()),
                clocks: Vec::new(),
            };
            queue(
                &mut batch,
                &mut events,
                key,
                Some(rate_key),
                mail_ref,
                composed,
                now,
            );
        }
        self.check_canaries(store, out, now, &mut batch, &mut events)?;
        self.check_revocations(store, out, now, &mut batch, &mut events)?;
        for (clock, alerted, next_due) in plan.states {
            batch.outbox.push(OutboxChange::AlertState(AlertState {
                clock: clock.to_string(),
                first_seen: alerted.first_seen.unwrap_or(now),
                last_stage: alerted.last.map(|s| s.key()),
                advisory: alerted.advisory,
                next_due,
            }));
        }
        self.commit(batch)?;
        self.swept = true;
        self.rechecked.clear();
        Ok(events)
    }

    /// Queue a `canary` alert for each canary whose fate is now known to be bad (missing,
    /// in junk, bounced), once; mark those that arrived well as settled.
    fn check_canaries(
        &self,
        store: &dyn Tables,
        out: &Outbound,
        now: Timestamp,
        batch: &mut store::Batch,
        events: &mut Vec<Envelope>,
    ) -> Result<(), DeskError> {
        for row in store.canaries_unalerted()? {
            let fate = canary::Fate {
                sent_at: row.send_error.is_none().then_some(row.sent_at),
                arrived: row.arrived_at.map(|t| {
                    let role = row.folder.as_deref().and_then(FolderRole::parse);
                    (t, role.unwrap_or(FolderRole::Inbox))
                }),
                bounced: row.bounce.clone().or_else(|| row.send_error.clone()),
            };
            let max_delay = row.due_by - row.sent_at;
            let Some(problem) = canary::problem(&fate, max_delay, now) else {
                if fate.arrived.is_some() {
                    batch.outbox.push(OutboxChange::CanaryAlerted {
                        id: row.id.clone(),
                        problem: "arrived".into(),
                    });
                }
                continue;
            };
            let text = problem.describe(max_delay);
            let alert = Alert {
                level: AlertLevel::Canary,
                key: format!("canary/{}", row.id),
                case: None,
                clocks: Vec::new(),
            };
            queue_to_routes(store, out, &alert, now, batch, events, |o| {
                compose::canary_alert(o, &row.to, &row.id, row.sent_at, &text)
            })?;
            batch.outbox.push(OutboxChange::CanaryAlerted {
                id: row.id.clone(),
                problem: problem.code().to_string(),
            });
        }
        Ok(())
    }

    /// Queue a `revocation` alert, once per problem and certificate, for each certificate the
    /// responders contradict staff about (a `CPR-Revoked` unconfirmed past the grace) or
    /// disagree among themselves about (OCSP good, CRL revoked).
    ///
    /// Not every row ever answered, every time: a contradicted claim needs an open clock, and
    /// a disagreement shows only with new answers, so after the first evaluation (which looks
    /// at every row, as at every open clock) only the rows of open clocks and those answered
    /// since the last evaluation can owe an alert (the outbox keeps each once).
    fn check_revocations(
        &self,
        store: &dyn Tables,
        out: &Outbound,
        now: Timestamp,
        batch: &mut store::Batch,
        events: &mut Vec<Envelope>,
    ) -> Result<(), DeskError> {
        let rows = if self.swept {
            let rechecked: Vec<String> = self.rechecked.iter().cloned().collect();
            let rows: std::collections::BTreeMap<String, store::CheckRow> = store
                .check_rows_answered_open(now)?
                .into_iter()
                .chain(store.check_rows(&rechecked)?)
                .filter(|r| !r.latest.is_empty())
                .map(|r| (r.target.clone(), r))
                .collect();
            rows.into_values().collect()
        } else {
            store.check_rows_answered()?
        };
        for row in rows {
            let Some(clock) = store.clock_at(&format!("revocation:{}", row.target), now)? else {
                continue;
            };
            let problems =
                crate::deciding::revocation::problems(&clock, &row.latest, self.claim_grace, now);
            if problems.is_empty() {
                continue;
            }
            let case = case_of(store, &clock, now).map(|c| c.id);
            let observed = crate::deciding::revocation::observed_line(&row.latest);
            for problem in problems {
                let text = problem.describe(&row.target);
                let alert = Alert {
                    level: AlertLevel::Revocation,
                    key: format!("revocation/{}/{}", problem.code(), row.target),
                    case: case.clone(),
                    clocks: vec![clock.id.clone()],
                };
                queue_to_routes(store, out, &alert, now, batch, events, |o| {
                    compose::revocation_alert(
                        o,
                        &row.target,
                        case.as_ref(),
                        &text,
                        observed.as_deref(),
                    )
                })?;
            }
        }
        Ok(())
    }

    /// When the last canary to `to` was sent, so a restart keeps the schedule.
    pub(crate) fn canary_last_sent(&self, to: &str) -> Result<Option<Timestamp>, DeskError> {
        let Some(store) = self.store.tables() else {
            return Ok(None);
        };
        Ok(store
            .canaries_latest()?
            .into_iter()
            .find(|c| c.to.eq_ignore_ascii_case(to))
            .map(|c| c.sent_at))
    }

    /// Record a canary handed to the server (or refused, with `error`): a `canary_sent` event
    /// and its row, expected back by `now + max_delay`.
    pub(crate) fn canary_sent(
        &mut self,
        sent: CanarySent,
        now: Timestamp,
    ) -> Result<Vec<Envelope>, DeskError> {
        if self.store.tables().is_none() {
            return Ok(Vec::new());
        }
        let mut batch = store::Batch::default();
        let mut events = Vec::new();
        batch
            .outbox
            .push(OutboxChange::CanarySent(store::CanaryRow {
                id: sent.id.clone(),
                to: sent.to.clone(),
                message_id: sent.message_id.clone(),
                sent_at: now,
                due_by: now + sent.max_delay,
                send_error: sent.error.clone(),
                arrived_at: None,
                folder: None,
                bounce: None,
                alerted: None,
            }));
        push_event(
            &mut batch,
            &mut events,
            now,
            Event::CanarySent {
                canary: sent.id,
                to: sent.to,
                message_id: sent.message_id,
                error: sent.error,
            },
        );
        self.commit(batch)?;
        Ok(events)
    }

    /// Pending mail due at `now`, for the courier.
    pub(crate) fn outbox_due(
        &mut self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, DeskError> {
        let rows = match self.store.tables() {
            Some(s) => s.outbox_due(now, limit)?,
            None => return Ok(Vec::new()),
        };
        if rows.is_empty() {
            return Ok(rows);
        }
        // Claimed in one commit under the lease (fenced on PostgreSQL): a leader that lost its
        // lease is refused here and sends nothing. The claim holds nothing back: a mail its
        // predecessor was sending when it died is due for the new leader at once (sent at most
        // once more, with the same Message-Id).
        self.store.commit(store::Batch {
            outbox: rows
                .iter()
                .map(|r| OutboxChange::Claim { id: r.id, at: now })
                .collect(),
            ..Default::default()
        })?;
        Ok(rows)
    }

    /// When the courier should look again.
    pub(crate) fn outbox_next_attempt(&self) -> Result<Option<Timestamp>, DeskError> {
        match self.store.tables() {
            Some(s) => Ok(s.outbox_next_attempt()?),
            None => Ok(None),
        }
    }

    /// Record how an attempt to deliver outbox row `id` went: sent (a `mail_sent` event),
    /// retried later, or failed for good (a `mail_failed` event and a `delivery` alert to the
    /// routes other than the one that failed). Returns the events committed.
    pub(crate) fn delivered(
        &mut self,
        id: i64,
        outcome: Delivery,
        now: Timestamp,
    ) -> Result<Vec<Envelope>, DeskError> {
        let Some(store) = self.store.tables() else {
            return Ok(Vec::new());
        };
        let Some(row) = store.outbox_row(id)? else {
            return Ok(Vec::new());
        };
        if row.state != "pending" {
            return Ok(Vec::new());
        }
        let attempts = row.attempts + 1;
        let mail = mail_ref(&row);
        let mut batch = store::Batch::default();
        let mut events = Vec::new();
        let failed = match outcome {
            Delivery::Sent(response) => {
                batch.outbox.push(OutboxChange::Sent { id, at: now });
                push_event(
                    &mut batch,
                    &mut events,
                    now,
                    Event::MailSent {
                        mail: mail.clone(),
                        attempts,
                        response,
                    },
                );
                None
            }
            Delivery::Transient(error)
                if now - row.queued_at < Duration::days(MAIL_GIVE_UP_DAYS) =>
            {
                batch.outbox.push(OutboxChange::Retry {
                    id,
                    attempts,
                    next_at: now + retry_after(attempts),
                    error,
                });
                None
            }
            Delivery::Transient(error) => Some(format!(
                "not delivered in {MAIL_GIVE_UP_DAYS} days; last error: {error}"
            )),
            Delivery::Permanent(error) => Some(error),
        };
        if let Some(error) = failed {
            batch.outbox.push(OutboxChange::Failed {
                id,
                at: now,
                attempts,
                error: error.clone(),
            });
            push_event(
                &mut batch,
                &mut events,
                now,
                Event::MailFailed {
                    mail,
                    attempts,
                    error: error.clone(),
                },
            );
            // A failed delivery alert is not alerted again: that way lies a loop.
            if row.kind != AlertLevel::Delivery.as_str()
                && let Some(out) = self.outbound.as_ref()
            {
                let failed_route: BTreeSet<String> =
                    row.to.iter().map(|a| a.to_ascii_lowercase()).collect();
                let failed_to: Vec<Address> =
                    row.to.iter().filter_map(|a| a.parse().ok()).collect();
                for (route, to) in &out.routes {
                    let same: BTreeSet<String> =
                        route.to.iter().map(|a| a.to_ascii_lowercase()).collect();
                    if !route.takes(AlertLevel::Delivery) || same == failed_route {
                        continue;
                    }
                    let key = format!("delivery/{}/{}", row.id, dispatch::route_key(route));
                    if store.outbox_has(&key)? {
                        continue;
                    }
                    let composed = compose::delivery_failure(
                        &compose::Outgoing {
                            from: &out.from,
                            to,
                            key: &key,
                            now,
                        },
                        &row.message_id,
                        &failed_to,
                        &row.kind,
                        &error,
                    )
                    .map_err(|e| DeskError::Compose(e.to_string()))?;
                    let mail_ref = MailRef {
                        message_id: composed.message_id.clone(),
                        kind: AlertLevel::Delivery.as_str().to_string(),
                        to: route.to.clone(),
                        case: row.case.as_deref().map(CaseId::from_stored),
                        clocks: row.clocks.iter().map(|c| ClockId::from_stored(c)).collect(),
                    };
                    queue(&mut batch, &mut events, key, None, mail_ref, composed, now);
                }
            }
        }
        self.commit(batch)?;
        Ok(events)
    }
}

/// A canary the service handed to the server.
#[derive(Clone, Debug)]
pub(crate) struct CanarySent {
    pub id: String,
    pub to: String,
    pub message_id: String,
    pub max_delay: Duration,
    /// Refused when handed over.
    pub error: Option<String>,
}

/// What a received message says about a canary: it is one arriving, or a bounce of one.
pub(crate) fn canary_seen(f: &crate::domain::event::MessageFacts) -> Option<OutboxChange> {
    let id = f.canary.clone()?;
    let bounce = (f.automation != Automation::Canary).then(|| {
        format!(
            "a delivery report arrived in {}: {}",
            f.folder.as_str(),
            if f.subject.is_empty() {
                "(no subject)"
            } else {
                f.subject.as_str()
            }
        )
    });
    Some(OutboxChange::CanaryArrived {
        id,
        at: f.received_at,
        folder: f.folder.as_str().to_string(),
        bounce,
    })
}

/// An alert that is not a clock's stage (a canary's, a revocation problem's): sent once to
/// each route taking its level, keyed `<key>/<route>`.
struct Alert {
    level: AlertLevel,
    key: String,
    case: Option<CaseId>,
    clocks: Vec<ClockId>,
}

/// Queue `alert` to every route that takes its level and has not had it yet; `write` composes
/// the mail for one route.
fn queue_to_routes(
    store: &dyn Tables,
    out: &Outbound,
    alert: &Alert,
    now: Timestamp,
    batch: &mut store::Batch,
    events: &mut Vec<Envelope>,
    write: impl Fn(&compose::Outgoing<'_>) -> Result<Composed, compose::ComposeError>,
) -> Result<(), DeskError> {
    for (route, to) in &out.routes {
        if !route.takes(alert.level) {
            continue;
        }
        let key = format!("{}/{}", alert.key, dispatch::route_key(route));
        if store.outbox_has(&key)? {
            continue;
        }
        let composed = write(&compose::Outgoing {
            from: &out.from,
            to,
            key: &key,
            now,
        })
        .map_err(|e| DeskError::Compose(e.to_string()))?;
        let mail_ref = MailRef {
            message_id: composed.message_id.clone(),
            kind: alert.level.as_str().to_string(),
            to: route.to.clone(),
            case: alert.case.clone(),
            clocks: alert.clocks.clone(),
        };
        queue(batch, events, key, None, mail_ref, composed, now);
    }
    Ok(())
}

/// The case a clock is shown with: its own (a preliminary-report clock), else the first case
/// that lists it.
fn case_of(store: &dyn Tables, clock: &Clock, now: Timestamp) -> Option<Case> {
    let id = match &clock.case {
        Some(c) => c.to_string(),
        None => store
            .cases_of_clock(clock.id.as_str(), now)
            .ok()?
            .into_iter()
            .min()?,
    };
    store.case_at(&id, now).ok().flatten().map(|(_, c)| c)
}

/// The facts of the message with `content_hash`, from its `message_received` event.
fn facts_of(
    store: &dyn Tables,
    content_hash: &str,
) -> Result<Option<crate::domain::event::MessageFacts>, DeskError> {
    for e in store.events_naming(&[content_hash.to_string()])? {
        let env = Envelope::decode(&e.body).map_err(|err| DeskError::BadEvent {
            seq: e.seq,
            problem: err.to_string(),
        })?;
        if let Event::MessageReceived { facts } = env.event
            && facts.content_hash == content_hash
        {
            return Ok(Some(*facts));
        }
    }
    Ok(None)
}

fn mail_ref(row: &OutboxRow) -> MailRef {
    MailRef {
        message_id: row.message_id.clone(),
        kind: row.kind.clone(),
        to: row.to.clone(),
        case: row.case.as_deref().map(CaseId::from_stored),
        clocks: row.clocks.iter().map(|c| ClockId::from_stored(c)).collect(),
    }
}

pub(super) fn push_event(
    batch: &mut store::Batch,
    events: &mut Vec<Envelope>,
    now: Timestamp,
    event: Event,
) {
    let env = Envelope {
        recorded_at: now,
        event,
    };
    batch.events.push(env.encode());
    batch.event_index.push(index_of(&env.event));
    events.push(env);
}

/// Put one mail in the batch: its outbox row and its `mail_queued` event.
pub(super) fn queue(
    batch: &mut store::Batch,
    events: &mut Vec<Envelope>,
    key: String,
    rate_key: Option<String>,
    mail: MailRef,
    composed: Composed,
    now: Timestamp,
) {
    batch.outbox.push(OutboxChange::Queue(NewMail {
        key,
        kind: mail.kind.clone(),
        message_id: mail.message_id.clone(),
        to: mail.to.clone(),
        rate_key,
        case: mail.case.as_ref().map(ToString::to_string),
        clocks: mail.clocks.iter().map(ToString::to_string).collect(),
        body: composed.bytes,
        queued_at: now,
    }));
    push_event(batch, events, now, Event::MailQueued { mail });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_from_ten_seconds_to_ten_minutes() {
        let waits: Vec<i64> = (1..=9).map(|n| retry_after(n).whole_seconds()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 600, 600, 600]);
    }
}
