//! `/metrics`: Prometheus (OpenMetrics) text, computed from the store on each scrape with the
//! `prometheus-client` crate, so what Prometheus sees is what `status` would print now.
//!
//! | metric | what |
//! |---|---|
//! | `cprwatch_open_clocks{kind,state}` | running clocks (`pending`) and breached ones not yet stopped |
//! | `cprwatch_next_deadline_seconds{kind}` | seconds to the soonest deadline of a running clock (absent when none) |
//! | `cprwatch_clock_breaches_total{kind}` | clocks whose deadline passed before they stopped |
//! | `cprwatch_messages_total{folder,role}` | messages recorded per folder read |
//! | `cprwatch_folder_last_sync_timestamp_seconds{mailbox,folder}` | last completed IMAP sync |
//! | `cprwatch_outbox_pending` | mail waiting to be sent |
//! | `cprwatch_deliveries_failed_total` | mail refused for good or given up, ever |
//! | `cprwatch_canary_last_arrival_timestamp_seconds{to}` | when each canary last arrived |
//! | `cprwatch_last_tick_timestamp_seconds` | when this process last evaluated the clocks |

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::AppState;
use super::auth::ApiCaller;
use crate::config::Config;
use crate::domain::event::ClockState;
use crate::domain::model::Timestamp;
use crate::domain::timefmt;
use crate::store::Tables;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindState {
    kind: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FolderRoleLabels {
    folder: String,
    role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MailboxFolder {
    mailbox: String,
    folder: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Instance {
    instance: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct To {
    to: String,
}

/// The folder a recorded position's place names, and its role as configured (`unknown` for a
/// place no longer configured or read by `ingest`).
fn folder_of(config: &Config, place: &str) -> (String, String) {
    let trimmed = place.trim_end_matches('/');
    if let Some(rest) = trimmed.strip_prefix("imap:") {
        // `<mailbox>/<folder>/<uidvalidity>`: the UIDVALIDITY is not part of the folder.
        let label = rest.rsplit_once('/').map_or(rest, |(f, _)| f);
        let role = config
            .mailbox
            .iter()
            .flat_map(|m| m.folders.iter().map(move |f| (m, f)))
            .find(|(m, f)| format!("{}/{}", m.name, f.name) == label)
            .map_or("unknown", |(_, f)| f.role.as_str());
        return (format!("imap:{label}"), role.to_string());
    }
    if let Some(rest) = trimmed.strip_prefix("maildir:") {
        let name = rest.rsplit_once('/').map_or(rest, |(_, n)| n);
        let root = rest.rsplit_once('/').map_or("", |(r, _)| r);
        let configured = config.maildir.iter().find(|m| {
            m.path.display().to_string() == root
                || m.path
                    .canonicalize()
                    .is_ok_and(|p| p.display().to_string() == root)
        });
        let role = match configured.and_then(|m| m.folders.as_ref()) {
            Some(fs) => fs
                .iter()
                .find(|f| f.name == name)
                .map_or("unknown", |f| f.role.as_str()),
            None if name.eq_ignore_ascii_case("INBOX") => "inbox",
            None => crate::source::maildir::auto_role(name).map_or("unknown", |r| r.as_str()),
        };
        return (place.to_string(), role.to_string());
    }
    (place.to_string(), "unknown".to_string())
}

/// Every metric, as OpenMetrics text.
pub(crate) fn render(
    store: &dyn Tables,
    config: &Config,
    at: Timestamp,
    last_tick: Option<Timestamp>,
) -> Result<String, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let mut reg = Registry::default();

    let open = Family::<KindState, Gauge>::default();
    let next = Family::<Kind, Gauge>::default();
    let mut soonest: BTreeMap<&'static str, i64> = BTreeMap::new();
    for c in store.open_clocks_now(at).map_err(|e| err(&e))? {
        let state = c.status(at).state;
        if !state.is_open() {
            continue;
        }
        open.get_or_create(&KindState {
            kind: c.kind.as_str().to_string(),
            state: state.as_str().to_string(),
        })
        .inc();
        if state == ClockState::Pending {
            let left = (c.deadline - at).whole_seconds();
            let e = soonest.entry(c.kind.as_str()).or_insert(left);
            *e = (*e).min(left);
        }
    }
    // Zero rather than absent for the usual combinations, so an alert rule sees the series.
    for kind in ["preliminary_report", "revocation"] {
        for state in ["pending", "breached"] {
            let _ = open.get_or_create(&KindState {
                kind: kind.into(),
                state: state.into(),
            });
        }
    }
    for (kind, left) in soonest {
        next.get_or_create(&Kind { kind: kind.into() }).set(left);
    }
    reg.register(
        "cprwatch_open_clocks",
        "Clocks open now, by kind and state",
        open,
    );
    reg.register(
        "cprwatch_next_deadline_seconds",
        "Seconds to the soonest deadline of a running clock",
        next,
    );

    let breaches = Family::<Kind, Counter>::default();
    for kind in ["preliminary_report", "revocation"] {
        let _ = breaches.get_or_create(&Kind { kind: kind.into() });
    }
    for (kind, n) in store.breaches_by_kind(at).map_err(|e| err(&e))? {
        breaches.get_or_create(&Kind { kind }).inc_by(n);
    }
    reg.register(
        "cprwatch_clock_breaches",
        "Clocks whose deadline passed before they stopped",
        breaches,
    );

    let messages = Family::<FolderRoleLabels, Counter>::default();
    for (place, n) in store.positions_per_place().map_err(|e| err(&e))? {
        let (folder, role) = folder_of(config, &place);
        messages
            .get_or_create(&FolderRoleLabels { folder, role })
            .inc_by(n);
    }
    reg.register(
        "cprwatch_messages",
        "Messages recorded, by folder read",
        messages,
    );

    let synced = Family::<MailboxFolder, Gauge>::default();
    let states = crate::store::Store::folder_states(store).map_err(|e| err(&e))?;
    for s in states {
        if let Some(t) = s
            .last_sync_at
            .as_deref()
            .and_then(|t| timefmt::parse(t).ok())
        {
            synced
                .get_or_create(&MailboxFolder {
                    mailbox: s.mailbox,
                    folder: s.folder,
                })
                .set(t.unix_timestamp());
        }
    }
    reg.register(
        "cprwatch_folder_last_sync_timestamp_seconds",
        "When each watched IMAP folder last completed a sync",
        synced,
    );

    let pending = Gauge::<i64>::default();
    let summary = store
        .outbox_summary(at - time::Duration::days(7))
        .map_err(|e| err(&e))?;
    pending.set(summary.pending as i64);
    reg.register(
        "cprwatch_outbox_pending",
        "Mail waiting to be sent",
        pending,
    );

    let failed = Counter::<u64>::default();
    failed.inc_by(store.outbox_failed_count().map_err(|e| err(&e))?);
    reg.register(
        "cprwatch_deliveries_failed",
        "Mail refused for good or given up",
        failed,
    );

    let canary = Family::<To, Gauge>::default();
    for c in &config.canary {
        if let Some((t, _)) = store.canary_last_arrival(&c.to).map_err(|e| err(&e))? {
            canary
                .get_or_create(&To { to: c.to.clone() })
                .set(t.unix_timestamp());
        }
    }
    reg.register(
        "cprwatch_canary_last_arrival_timestamp_seconds",
        "When each canary last arrived in a watched folder",
        canary,
    );

    // Instances sharing a PostgreSQL store: which one leads (1), this one if it does not (0).
    if let Some(pg) = &config.store.postgres {
        let leader = Family::<Instance, Gauge>::default();
        let me = pg.instance.to_string();
        let _ = leader.get_or_create(&Instance {
            instance: me.clone(),
        });
        if let Some(l) = store.leader().map_err(|e| err(&e))?
            && l.live
        {
            leader
                .get_or_create(&Instance {
                    instance: l.holder.to_string(),
                })
                .set(1);
        }
        reg.register(
            "cprwatch_leader",
            "Which of the instances sharing the store leads (1); this instance if not (0)",
            leader,
        );
    }

    if let Some(t) = last_tick {
        let g = Gauge::<i64>::default();
        g.set(t.unix_timestamp());
        reg.register(
            "cprwatch_last_tick_timestamp_seconds",
            "When this process last evaluated the clocks",
            g,
        );
    }

    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg).map_err(|e| err(&e))?;
    Ok(out)
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<AppState>, _: ApiCaller) -> Response {
    let at = timefmt::now();
    let last_tick = state.health.last_tick();
    match state.read(move |s, c| render(s, c, at, last_tick)).await {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(r) => r,
    }
}
