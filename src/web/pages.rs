//! The desk's pages (`/`, `/case/<ID>`, `/search`) and the JSON API beside them
//! (`/api/status`, `/api/case/<ID>`, `/api/search`), plus `/healthz`. The pages show what
//! `status`, `case` and `search` print, read the same way ([`crate::cli::lookup`],
//! [`crate::cli::commands::StatusParts`]); the API answers with those commands' JSON documents.

use std::fmt::Write;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::auth::{ApiCaller, Staff, url_encode};
use super::html::{e, error_page, page, reference_link, width_class};
use crate::cli::commands::{StatusParts, case_document};
use crate::cli::{lookup, view};
use crate::deciding::cases::Case;
use crate::deciding::clock::Clock;
use crate::domain::event::{ClockState, Event};
use crate::domain::model::{KeyEvidence, Timestamp};
use crate::domain::timefmt;

/// Rows shown at most on the dashboard unless `limit` asks for more.
const DEFAULT_LIMIT: usize = 500;
const MAX_LIMIT: usize = 100_000;

/// The dashboard's query: `kind`, `state`, `q` (text in the case id, subject, reporter or
/// certificate), `sort` (`deadline`, `case`, `opened`), `limit`.
#[derive(Deserialize, Default)]
pub(crate) struct Filter {
    kind: Option<String>,
    state: Option<String>,
    q: Option<String>,
    sort: Option<String>,
    limit: Option<usize>,
}

/// One open clock on the dashboard, listed under the first case that shows it.
pub(crate) struct Row {
    pub(crate) case: String,
    pub(crate) subject: String,
    pub(crate) reporter: String,
    pub(crate) opened: Timestamp,
    pub(crate) kind: &'static str,
    pub(crate) target: Option<String>,
    pub(crate) state: ClockState,
    pub(crate) started: Timestamp,
    pub(crate) deadline: Timestamp,
    pub(crate) acknowledged: bool,
    /// Staff claimed it revoked (`CPR-Revoked`) and no check has confirmed it.
    pub(crate) claimed: bool,
}

/// Every open clock at `at`, under the first case that lists it, soonest deadline first (so
/// breached ones, longest overdue first, are on top).
pub(crate) fn open_rows(pairs: Vec<(Clock, Case)>, at: Timestamp) -> Vec<Row> {
    let mut rows: Vec<Row> = pairs
        .into_iter()
        .filter_map(|(c, case)| {
            let s = c.status(at);
            s.state.is_open().then(|| Row {
                case: case.id.to_string(),
                subject: case.subject,
                reporter: case.reporter,
                opened: case.opened_at,
                kind: c.kind.as_str(),
                target: c.target.clone(),
                state: s.state,
                started: c.started_at,
                deadline: c.deadline,
                acknowledged: c.acknowledged.as_ref().is_some_and(|a| a.at <= at),
                claimed: c.claimed.as_ref().is_some_and(|a| a.at <= at),
            })
        })
        .collect();
    rows.sort_by(|a, b| a.deadline.cmp(&b.deadline).then(a.case.cmp(&b.case)));
    rows
}

fn filtered(rows: Vec<Row>, f: &Filter) -> Vec<Row> {
    fn want(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
    let (kind, state) = (want(&f.kind), want(&f.state));
    let q = want(&f.q).map(str::to_lowercase);
    let mut rows: Vec<Row> = rows
        .into_iter()
        .filter(|r| kind.is_none_or(|k| k == r.kind))
        .filter(|r| state.is_none_or(|s| s == r.state.as_str()))
        .filter(|r| {
            q.as_deref().is_none_or(|q| {
                [
                    r.case.as_str(),
                    r.subject.as_str(),
                    r.reporter.as_str(),
                    r.target.as_deref().unwrap_or(""),
                ]
                .iter()
                .any(|h| h.to_lowercase().contains(q))
            })
        })
        .collect();
    match f.sort.as_deref() {
        Some("case") => rows.sort_by(|a, b| a.case.cmp(&b.case).then(a.deadline.cmp(&b.deadline))),
        Some("opened") => {
            rows.sort_by(|a, b| b.opened.cmp(&a.opened).then(a.deadline.cmp(&b.deadline)))
        }
        _ => {}
    }
    rows
}

/// The header strip: each watched folder, the outbox, each canary; problems stand out.
fn strip(parts: &StatusParts, config: &crate::config::Config, at: Timestamp) -> String {
    let mut o = String::from("<div class=\"strip\">");
    if !config.maildir.is_empty() {
        let _ = write!(o, "<div>{} Maildir(s) watched</div>", config.maildir.len());
    }
    if parts.sources.is_empty() {
        o.push_str("<div class=\"muted\">no IMAP folders watched</div>");
    }
    for s in &parts.sources {
        let ago = s
            .state
            .last_sync_at
            .as_deref()
            .and_then(|t| timefmt::parse(t).ok())
            .map(|t| {
                format!(
                    "synced {} ago",
                    timefmt::human_span((at - t).whole_seconds())
                )
            })
            .unwrap_or_else(|| "never synced".into());
        let (class, verdict) = match (&s.state.last_error, s.stale) {
            (Some(err), _) => ("bad", format!("FAILING: {}", e(err))),
            (None, true) => ("bad", "STALE".into()),
            (None, false) => ("", "ok".into()),
        };
        let _ = write!(
            o,
            "<div class=\"{class}\">{}/{} ({}): {ago}, {verdict}</div>",
            e(&s.state.mailbox),
            e(&s.state.folder),
            e(&s.state.role)
        );
    }
    let ob = &parts.outbox;
    let _ = write!(
        o,
        "<div class=\"{}\">outbox: {} pending{}, {} retrying, {} failed (7 days)</div>",
        if ob.problems(at) > 0 { "bad" } else { "" },
        ob.pending,
        ob.oldest_pending
            .as_deref()
            .map(|t| format!(" (oldest {})", e(t)))
            .unwrap_or_default(),
        ob.retrying.len(),
        ob.failed.len()
    );
    for c in &parts.canaries {
        let _ = write!(
            o,
            "<div class=\"{}\">canary {}: {}, last arrival {}</div>",
            if c.is_problem() { "bad" } else { "" },
            e(&c.to),
            e(&c.state),
            e(c.last_arrived_at.as_deref().unwrap_or("never"))
        );
    }
    o.push_str("</div>");
    o
}

fn select(name: &str, current: Option<&str>, options: &[(&str, &str)]) -> String {
    let mut o = format!("<select name=\"{name}\">");
    for (v, label) in options {
        let _ = write!(
            o,
            "<option value=\"{v}\"{}>{label}</option>",
            if current == Some(*v) { " selected" } else { "" }
        );
    }
    o.push_str("</select>");
    o
}

/// `/`: the open clocks as countdown bars, with filters.
pub(crate) async fn dashboard(
    State(state): State<AppState>,
    staff: Staff,
    Query(f): Query<Filter>,
) -> Response {
    let at = timefmt::now();
    let (parts, pairs) = match state
        .read(move |s, c| {
            let parts = StatusParts::health(c, s, at).map_err(|e| e.to_string())?;
            let pairs = s.open_clocks_with_case(at).map_err(|e| e.to_string())?;
            Ok((parts, pairs))
        })
        .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let all = open_rows(pairs, at);
    let total = all.len();
    let breached = all
        .iter()
        .filter(|r| r.state == ClockState::Breached)
        .count();
    let rows = filtered(all, &f);
    let limit = f.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    // What the responders said last, for the certificates shown: beside a claim, the answer.
    let targets: Vec<String> = rows
        .iter()
        .take(limit)
        .filter_map(|r| r.target.clone())
        .filter(|t| !t.starts_with("spki:"))
        .collect();
    let observed: std::collections::HashMap<String, String> = state
        .read(move |s, _| s.check_rows(&targets).map_err(|e| e.to_string()))
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| {
            let line = crate::deciding::revocation::observed_line(&r.latest)?;
            Some((r.target, line))
        })
        .collect();
    let mut o = strip(&parts, &state.config, at);
    let _ = write!(
        o,
        "<h1>Open clocks: {total} ({breached} breached)</h1>\
         <form method=\"get\" action=\"/\" class=\"filters\">{}{}\
         <input name=\"q\" value=\"{}\" placeholder=\"case, subject, reporter, certificate\">\
         {}<button>Filter</button> <a href=\"/\">clear</a></form>",
        select(
            "kind",
            f.kind.as_deref(),
            &[
                ("", "any kind"),
                ("preliminary_report", "preliminary report"),
                ("revocation", "revocation")
            ]
        ),
        select(
            "state",
            f.state.as_deref(),
            &[
                ("", "any state"),
                ("pending", "running"),
                ("breached", "breached")
            ]
        ),
        e(f.q.as_deref().unwrap_or("")),
        select(
            "sort",
            f.sort.as_deref(),
            &[
                ("deadline", "soonest deadline"),
                ("case", "case"),
                ("opened", "newest case")
            ]
        ),
    );
    if rows.len() > limit {
        let _ = write!(
            o,
            "<p class=\"muted\">showing the first {limit} of {} matching; narrow the filter or \
             add <code>&amp;limit=</code></p>",
            rows.len()
        );
    } else {
        let _ = write!(o, "<p class=\"muted\">{} matching</p>", rows.len());
    }
    // Triage in bulk: tick the cases, or all those shown (filter a spam wave first), give one
    // reason, dismiss them at once.
    let mut shown: Vec<&str> = rows.iter().take(limit).map(|r| r.case.as_str()).collect();
    shown.sort_unstable();
    shown.dedup();
    let _ = write!(
        o,
        "<form method=\"post\" action=\"/triage/dismiss\" id=\"bulk\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <input type=\"hidden\" name=\"shown\" value=\"{}\">\
         <p class=\"triage\">Dismiss as not problem reports: the ticked cases, or \
         <label><input type=\"checkbox\" name=\"all_shown\"> all {} cases shown</label>, because \
         <input name=\"reason\" size=\"40\" placeholder=\"reason (e.g. spam wave)\" required> \
         <button>Dismiss</button></p>",
        e(&staff.csrf),
        e(&shown.join(" ")),
        shown.len()
    );
    o.push_str(
        "<table><thead><tr><th></th><th>time left</th><th></th><th>case</th><th>clock</th>\
         <th>certificate / key</th><th>deadline (UTC)</th><th>reporter</th><th>subject</th>\
         </tr></thead><tbody>",
    );
    for r in rows.iter().take(limit) {
        let window = (r.deadline - r.started).whole_seconds().max(1) as f64;
        let left = (r.deadline - at).whole_seconds();
        let fraction = left as f64 / window;
        let colour = match r.state {
            ClockState::Breached => "b",
            _ if left < 3600 || fraction < 0.1 => "r",
            _ if fraction < 0.33 => "a",
            _ => "g",
        };
        let label = if r.state == ClockState::Breached {
            format!("BREACHED {} ago", timefmt::human_span(-left))
        } else {
            format!("{} left", timefmt::human_span(left))
        };
        let marks = format!(
            "{}{}{}",
            if r.acknowledged {
                " <em>(acknowledged)</em>"
            } else {
                ""
            },
            if r.claimed {
                " <em class=\"problem\">(claimed revoked, unverified)</em>"
            } else {
                ""
            },
            r.target
                .as_ref()
                .and_then(|t| observed.get(t))
                .map(|o| format!("<br><small>{}</small>", e(o)))
                .unwrap_or_default()
        );
        let _ = write!(
            o,
            "<tr class=\"{}\"><td><input type=\"checkbox\" name=\"pick_{}\" \
             aria-label=\"tick {}\"></td><td class=\"nw\"><span data-deadline=\"{}\">{label}</span>{}</td>\
             <td><div class=\"bar {colour}\"><span class=\"{}\"></span></div></td>\
             <td class=\"nw\"><a href=\"/case/{}\">{}</a></td><td>{}</td><td class=\"mono\">{}</td>\
             <td class=\"nw\">{}</td><td>{}</td><td>{}</td></tr>",
            r.state.as_str(),
            e(&r.case),
            e(&r.case),
            r.deadline.unix_timestamp(),
            marks,
            width_class(if r.state == ClockState::Breached {
                1.0
            } else {
                fraction
            }),
            e(&url_encode(&r.case)),
            e(&r.case),
            r.kind,
            r.target.as_deref().map(reference_link).unwrap_or_default(),
            timefmt::format(r.deadline),
            e(&r.reporter),
            e(&r.subject)
        );
    }
    o.push_str("</tbody></table></form>");
    page("Open clocks", Some(&staff), &o).into_response()
}

/// `/case/<ID>`: the case in full.
pub(crate) async fn case(
    State(state): State<AppState>,
    staff: Staff,
    Path(id): Path<String>,
) -> Response {
    let at = timefmt::now();
    let wanted = id.trim().to_ascii_uppercase();
    let w = wanted.clone();
    let found = match state
        .read(move |s, _| {
            let Some((p, events)) = lookup::case(s, &w, at).map_err(|e| e.to_string())? else {
                return Ok(None);
            };
            let mut texts = std::collections::HashMap::new();
            for m in &p.cases[0].messages {
                let private = events.iter().any(|(_, env)| match &env.event {
                    Event::MessageReceived { facts } if facts.content_hash == m.content_hash => {
                        facts.keys.iter().any(|k| {
                            matches!(
                                k.evidence,
                                KeyEvidence::PrivateKey | KeyEvidence::EncryptedPrivateKey
                            )
                        })
                    }
                    _ => false,
                });
                let raw =
                    crate::store::Store::message(s, &m.content_hash).map_err(|e| e.to_string())?;
                if let Some(raw) = raw {
                    texts.insert(m.content_hash.clone(), message_text(&raw, private));
                }
            }
            Ok(Some((p, events, texts)))
        })
        .await
    {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Some((p, events, texts)) = found else {
        return error_page(
            StatusCode::NOT_FOUND,
            &format!(
                "No case {wanted}. Search finds a case by certificate, key, Message-Id or address."
            ),
        );
    };
    let case = &p.cases[0];
    let j = view::case_json(&p, case, at);
    let mut o = String::new();
    let _ = write!(
        o,
        "<h1>{}</h1><p>opened {} · reporter {} · subject <strong>{}</strong></p>",
        e(&j.id),
        j.opened_at,
        if j.reporter.is_empty() {
            "(unknown)".into()
        } else {
            e(&j.reporter)
        },
        e(&j.subject)
    );
    let link = format!(
        "{}/r/{}",
        state.web.public_url.as_deref().unwrap_or(""),
        super::reporter::token(&state.link_key, case)
    );
    let _ = write!(
        o,
        "<p>reporter's status page (no login; give it only to the reporter): \
         <a href=\"{}\" class=\"mono\" rel=\"noreferrer\">{}</a></p>",
        e(&link),
        e(&link)
    );
    if let Some((t, why)) = &case.dismissed {
        let _ = write!(
            o,
            "<p class=\"problem\">dismissed {}: {}</p>",
            timefmt::format(*t),
            e(why)
        );
    }
    o.push_str(
        "<section><h2>Clocks</h2><table><thead><tr><th>clock</th><th>certificate / key</th>\
         <th>state</th><th>started</th><th>deadline</th><th>stopped</th><th>basis</th>\
         <th>matched phrase</th></tr></thead><tbody>",
    );
    for c in &j.clocks {
        let marks = format!(
            "{}{}{}{}",
            c.acknowledged
                .as_ref()
                .map(|a| format!(" (acknowledged {}: {})", e(&a.at), e(&a.reason)))
                .unwrap_or_default(),
            c.claimed
                .as_ref()
                .map(|cl| format!(
                    "<br><span class=\"problem\">claimed revoked {} in {}, unverified</span>",
                    e(&cl.revoked_at),
                    e(&cl.by)
                ))
                .unwrap_or_default(),
            crate::deciding::revocation::observed_line(&c.observed)
                .map(|o| format!("<br><small>observed: {}</small>", e(&o)))
                .unwrap_or_default(),
            c.notes
                .iter()
                .map(|n| format!("<br><small>note: {}</small>", e(n)))
                .collect::<String>()
        );
        let _ = write!(
            o,
            "<tr class=\"{}\"><td>{}</td><td class=\"mono\">{}</td><td>{}{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            c.state,
            c.kind,
            c.certificate
                .as_deref()
                .map(reference_link)
                .unwrap_or_default(),
            c.state,
            marks,
            c.started_at,
            c.deadline,
            c.stopped_at.as_deref().unwrap_or(""),
            e(&c.basis),
            c.matched
                .as_deref()
                .map(|m| format!("“{}”", e(m)))
                .unwrap_or_default()
        );
    }
    o.push_str("</tbody></table></section>");
    let _ = write!(
        o,
        "<section><h2>Certificates ({})</h2><table><thead><tr><th>reference</th><th>serial</th>\
         <th>issuer</th><th>not after</th><th></th></tr></thead><tbody>",
        j.certificates.len()
    );
    for c in &j.certificates {
        let _ = write!(
            o,
            "<tr><td class=\"mono\">{}{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td>\
             <td>{}{}</td></tr>",
            reference_link(&c.reference),
            c.sha256
                .as_deref()
                .filter(|h| !c.reference.ends_with(*h))
                .map(|h| format!("<br>{}", reference_link(&format!("sha256:{h}"))))
                .unwrap_or_default(),
            e(c.serial.as_deref().unwrap_or("")),
            e(c.issuer.as_deref().unwrap_or("")),
            c.not_after.as_deref().unwrap_or(""),
            if c.is_ca == Some(true) { "CA " } else { "" },
            if c.precertificate == Some(true) {
                "precertificate"
            } else {
                ""
            }
        );
    }
    o.push_str("</tbody></table></section>");
    let _ = write!(
        o,
        "<section><h2>Keys ({})</h2><table><thead><tr><th>reference</th><th>evidence</th></tr>\
         </thead><tbody>",
        j.keys.len()
    );
    for k in &j.keys {
        let _ = write!(
            o,
            "<tr><td class=\"mono\">{}</td><td>{}</td></tr>",
            k.reference
                .as_deref()
                .map(reference_link)
                .unwrap_or_else(|| "(no public key: encrypted)".into()),
            k.evidence
        );
    }
    o.push_str("</tbody></table></section>");
    let _ = write!(o, "<section><h2>Messages ({})</h2>", case.messages.len());
    for m in &case.messages {
        let facts = events.iter().find_map(|(_, env)| match &env.event {
            Event::MessageReceived { facts } if facts.content_hash == m.content_hash => Some(facts),
            _ => None,
        });
        let _ = write!(
            o,
            "<table class=\"message\"><tbody><tr><th>received</th><td>{} ({}{}, {})</td></tr>\
             <tr><th>From</th><td>{}</td></tr><tr><th>Message-Id</th><td class=\"mono\">{}</td></tr>",
            timefmt::format(m.received_at),
            m.folder.as_str(),
            if m.staff { ", staff" } else { "" },
            e(m.via),
            e(&m.from),
            e(&m.message_id)
        );
        if let Some(f) = facts {
            for (name, v) in [
                ("Subject", f.subject.clone()),
                ("To", f.to.join(", ")),
                ("Cc", f.cc.join(", ")),
                ("Reply-To", f.reply_to.join(", ")),
                (
                    "Date",
                    f.date_header.map(timefmt::format).unwrap_or_default(),
                ),
            ] {
                if !v.is_empty() {
                    let _ = write!(o, "<tr><th>{name}</th><td>{}</td></tr>", e(&v));
                }
            }
            for p in &f.problems {
                let _ = write!(o, "<tr><th>note</th><td class=\"muted\">{}</td></tr>", e(p));
            }
        }
        o.push_str("</tbody></table>");
        if let Some(t) = texts.get(&m.content_hash) {
            let _ = write!(o, "<pre class=\"body\">{}</pre>", e(t));
        }
        o.push_str("<br>");
    }
    o.push_str("</section>");
    o.push_str(
        "<section><h2>Alerts and receipts</h2><table><thead><tr><th>time (UTC)</th><th>what</th>\
         <th>kind</th><th>to</th><th>Message-Id</th><th>detail</th></tr></thead><tbody>",
    );
    for (_, env) in &events {
        let (what, mail, detail) = match &env.event {
            Event::MailQueued { mail } => ("queued", mail, String::new()),
            Event::MailSent { mail, attempts, .. } => {
                ("sent", mail, format!("after {attempts} attempt(s)"))
            }
            Event::MailFailed { mail, error, .. } => ("FAILED", mail, error.clone()),
            _ => continue,
        };
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{what}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td>\
             <td>{}</td></tr>",
            timefmt::format(env.recorded_at),
            e(&mail.kind),
            e(&mail.to.join(", ")),
            e(&mail.message_id),
            e(&detail)
        );
    }
    o.push_str("</tbody></table></section>");
    let targets: Vec<String> = j
        .clocks
        .iter()
        .filter_map(|c| c.certificate.clone())
        .collect();
    o.push_str(&super::triage::case_form(&staff.csrf, &j.id, &targets));
    let _ = write!(
        o,
        "<section><h2>Timeline ({} events)</h2><table><thead><tr><th>#</th><th>recorded (UTC)</th>\
         <th>event</th><th>what it says</th></tr></thead><tbody>",
        events.len()
    );
    for (seq, env) in &events {
        let summary = env.event.summary();
        let _ = write!(
            o,
            "<tr><td>{seq}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            timefmt::format(env.recorded_at),
            env.event.kind(),
            e(summary
                .strip_prefix(env.event.kind())
                .unwrap_or(&summary)
                .trim_start())
        );
    }
    o.push_str("</tbody></table></section>");
    page(&j.id, Some(&staff), &o).into_response()
}

#[derive(Deserialize)]
pub(crate) struct SearchQuery {
    q: Option<String>,
}

/// `/search?q=`: what `cprwatch search` finds.
pub(crate) async fn search(
    State(state): State<AppState>,
    staff: Staff,
    Query(sq): Query<SearchQuery>,
) -> Response {
    let term = sq.q.unwrap_or_default().trim().to_string();
    let mut o = format!(
        "<h1>Search</h1><form method=\"get\" action=\"/search\"><input name=\"q\" value=\"{}\" \
         size=\"60\" autofocus> <button>Search</button></form>",
        e(&term)
    );
    if term.is_empty() {
        o.push_str(
            "<p class=\"muted\">A crt.sh id (12345), a certificate's SHA-256, spki:…, a \
             Message-Id, a reporter's address or a case id.</p>",
        );
        return page("Search", Some(&staff), &o).into_response();
    }
    let at = timefmt::now();
    let t = term.clone();
    let p = match state
        .read(move |s, _| lookup::search(s, &t, at).map_err(|e| e.to_string()))
        .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let _ = write!(
        o,
        "<p>{} case(s) naming <strong>{}</strong></p><table><thead><tr><th>case</th>\
         <th>opened (UTC)</th><th>messages</th><th>open clocks</th><th>reporter</th>\
         <th>subject</th></tr></thead><tbody>",
        p.cases.len(),
        e(&term)
    );
    for c in &p.cases {
        let open = c
            .clocks
            .iter()
            .filter_map(|id| p.clocks.get(id))
            .filter(|k| k.status(at).state.is_open())
            .count();
        let _ = write!(
            o,
            "<tr><td><a href=\"/case/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td></tr>",
            e(&url_encode(c.id.as_str())),
            e(c.id.as_str()),
            timefmt::format(c.opened_at),
            c.messages.len(),
            open,
            e(&c.reporter),
            e(&c.subject)
        );
    }
    o.push_str("</tbody></table>");
    page("Search", Some(&staff), &o).into_response()
}

/// JSON as the CLI prints it: serde's escaping plus every hazardous character as `\uXXXX`.
fn json_response<T: serde::Serialize>(status: StatusCode, v: &T) -> Response {
    json_text_response(status, &serde_json::to_string(v).unwrap_or_default())
}

fn json_text_response(status: StatusCode, json: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        crate::escape::json_text(json).into_owned(),
    )
        .into_response()
}

fn api_error(status: StatusCode, why: &str) -> Response {
    json_response(status, &serde_json::json!({ "error": why }))
}

/// `/api/status`: the `status --format json` document.
pub(crate) async fn api_status(State(state): State<AppState>, _: ApiCaller) -> Response {
    let at = timefmt::now();
    match state
        .read(move |s, c| {
            let parts = StatusParts::read(c, s, at).map_err(|e| e.to_string())?;
            serde_json::to_string(&parts.json(at)).map_err(|e| e.to_string())
        })
        .await
    {
        Ok(v) => json_text_response(StatusCode::OK, &v),
        Err(_) => api_error(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the store"),
    }
}

/// `/api/case/<ID>`: the `case --format json` document.
pub(crate) async fn api_case(
    State(state): State<AppState>,
    _: ApiCaller,
    Path(id): Path<String>,
) -> Response {
    let at = timefmt::now();
    let wanted = id.trim().to_ascii_uppercase();
    match state
        .read(move |s, _| {
            Ok(lookup::case(s, &wanted, at)
                .map_err(|e| e.to_string())?
                .map(|(p, events)| case_document(&p, &p.cases[0], at, &events)))
        })
        .await
    {
        Ok(Some(v)) => json_response(StatusCode::OK, &v),
        Ok(None) => api_error(StatusCode::NOT_FOUND, "no such case"),
        Err(_) => api_error(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the store"),
    }
}

/// `/api/search?q=`: `{"at", "cases"}` as `search --format json`.
pub(crate) async fn api_search(
    State(state): State<AppState>,
    _: ApiCaller,
    Query(sq): Query<SearchQuery>,
) -> Response {
    let at = timefmt::now();
    let term = sq.q.unwrap_or_default();
    if term.trim().is_empty() {
        return api_error(StatusCode::BAD_REQUEST, "give the term as ?q=");
    }
    match state
        .read(move |s, _| {
            let p = lookup::search(s, &term, at).map_err(|e| e.to_string())?;
            serde_json::to_value(view::report(&p, at, false)).map_err(|e| e.to_string())
        })
        .await
    {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(_) => api_error(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the store"),
    }
}

/// `/healthz` (no login): the store answers, and when the clocks were last evaluated.
pub(crate) async fn healthz(State(state): State<AppState>) -> Response {
    let readable = state
        .read(|s, _| s.tables_state().map_err(|e| e.to_string()))
        .await;
    let last_tick = state.health.last_tick().map(timefmt::format);
    let answering = state
        .ask_desk(std::time::Duration::from_secs(2), |reply| {
            crate::service::folder_sync::Request::Ping { reply }
        })
        .await
        .is_some_and(|r| r.is_ok());
    let (status, behind) = match &readable {
        Ok(t) => (
            StatusCode::OK,
            t.through.map_or(t.head, |th| t.head.saturating_sub(th)),
        ),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, 0),
    };
    json_response(
        status,
        &serde_json::json!({
            "store_readable": readable.is_ok(),
            // The loop that commits mail answered within 2 s (false while it derives a large
            // batch, or when it is stuck).
            "desk_answering": answering,
            "last_tick": last_tick,
            "events_not_derived": behind,
        }),
    )
}

/// Text shown of one message on its case page.
const TEXT_SHOWN: usize = 64 * 1024;

/// What a message says, as text (HTML parts as the parser renders them to text, never as
/// markup), for staff reading the case. Key material is never shown: a message in which the
/// extractor found a private key is withheld whole, and any PEM private-key block left in
/// another is cut out.
fn message_text(raw: &[u8], private_key: bool) -> String {
    if private_key {
        return "[text not shown: this message holds a private key, and cprwatch never shows key \
                material; the certificates and keys above are what it names]"
            .into();
    }
    let parsed = crate::reading::parse::parse(raw);
    let mut text = parsed.texts.join("\n\n");
    let mut from = 0;
    while let Some(found) = text[from..].find("-----BEGIN") {
        let start = from + found;
        let header_end = text[start..].find('\n').map_or(text.len(), |n| start + n);
        if !text[start..header_end].contains("PRIVATE KEY") {
            from = start + 10;
            continue;
        }
        // Up to the END line's closing dashes, or (no END) the end of the text.
        let end = text[header_end..]
            .find("-----END")
            .and_then(|n| {
                let e = header_end + n + 8;
                text[e..].find("-----").map(|m| e + m + 5)
            })
            .unwrap_or(text.len());
        text.replace_range(start..end, "[private key removed]");
        from = start;
    }
    if text.len() > TEXT_SHOWN {
        let mut cut = TEXT_SHOWN;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("\n[… cut here: the rest is in the stored message]");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(case: &str, kind: &'static str, state: ClockState, deadline: &str) -> Row {
        let t = |s: &str| timefmt::parse(s).unwrap();
        Row {
            case: case.into(),
            subject: format!("subject of {case}"),
            reporter: "r@reporter.test".into(),
            opened: t("2026-03-01T00:00:00Z"),
            kind,
            target: (kind == "revocation").then(|| format!("crtsh:{}", case.len())),
            state,
            started: t("2026-03-01T00:00:00Z"),
            deadline: t(deadline),
            acknowledged: false,
            claimed: false,
        }
    }

    #[test]
    fn filters_keep_what_they_name_and_sort_as_asked() {
        let rows = || {
            vec![
                row(
                    "CPR-2026-0002",
                    "revocation",
                    ClockState::Breached,
                    "2026-03-01T12:00:00Z",
                ),
                row(
                    "CPR-2026-0001",
                    "preliminary_report",
                    ClockState::Pending,
                    "2026-03-02T00:00:00Z",
                ),
                row(
                    "CPR-2026-0003",
                    "revocation",
                    ClockState::Pending,
                    "2026-03-03T00:00:00Z",
                ),
            ]
        };
        let ids = |f: Filter| -> Vec<String> {
            filtered(rows(), &f).into_iter().map(|r| r.case).collect()
        };
        let all = ids(Filter::default());
        assert_eq!(all, ["CPR-2026-0002", "CPR-2026-0001", "CPR-2026-0003"]);
        let f = |kind: &str, state: &str, q: &str, sort: &str| Filter {
            kind: Some(kind.into()),
            state: Some(state.into()),
            q: Some(q.into()),
            sort: Some(sort.into()),
            limit: None,
        };
        assert_eq!(
            ids(f("revocation", "", "", "")),
            ["CPR-2026-0002", "CPR-2026-0003"]
        );
        assert_eq!(ids(f("", "breached", "", "")), ["CPR-2026-0002"]);
        assert_eq!(ids(f("", "", "OF cpr-2026-0003", "")), ["CPR-2026-0003"]);
        assert_eq!(
            ids(f("", "", "", "case")),
            ["CPR-2026-0001", "CPR-2026-0002", "CPR-2026-0003"]
        );
    }

    #[test]
    fn bars_are_as_full_as_the_time_left() {
        assert_eq!(width_class(1.0), "w20");
        assert_eq!(width_class(0.5), "w10");
        assert_eq!(width_class(-3.0), "w0");
        assert_eq!(width_class(7.0), "w20");
    }

    #[test]
    fn message_text_never_shows_a_private_key() {
        let raw = b"From: a@b.test\r\nSubject: k\r\n\r\nhere:\r\n-----BEGIN PRIVATE KEY-----\r\nMIIEv\r\n-----END PRIVATE KEY-----\r\nbye\r\n-----BEGIN RSA PRIVATE KEY-----\r\nMIIC\r\n";
        let t = message_text(raw, false);
        assert!(t.contains("here:") && t.contains("bye"), "{t}");
        assert!(!t.contains("MII") && !t.contains("BEGIN"), "{t}");
        assert_eq!(t.matches("[private key removed]").count(), 2, "{t}");
        assert!(message_text(raw, true).starts_with("[text not shown"));
    }
}
