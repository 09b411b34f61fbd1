//! Reading cases and clocks from the store's tables, for `status`, `case` and `search`.
//!
//! Each answer costs what it shows: the open clocks come from an index, a case from its own
//! rows, a search from the names index. Nothing here re-derives or decides; it assembles a
//! [`Projection`] holding just the cases asked for, which the views render exactly as they
//! render a full one.

use std::collections::{BTreeMap, HashSet};

use crate::config::Config;
use crate::deciding::cases::{Case, Projection};
use crate::desk::{self, DeskError};
use crate::domain::event::Envelope;
use crate::domain::model::Timestamp;
use crate::store::Tables;

/// The store with its tables ready to read: built from the log first if they never were, or
/// were built by another version or with other settings (once; `note` says so).
pub fn open(config: &Config, note: &mut Vec<String>) -> Result<Box<dyn Tables>, DeskError> {
    let mut store = desk::open_store(config)?;
    let settings = desk::settings(config);
    if desk::ensure_tables(store.as_mut(), &settings)? {
        note.push(
            "the cases and clocks tables are out of date (a new cprwatch version or changed \
             settings): rebuilt them from the log"
                .into(),
        );
    } else {
        let st = store.tables_state()?;
        if let Some(through) = st.through
            && through < st.head
        {
            note.push(format!(
                "the log has {} events the cases and clocks do not show yet (the service or an \
                 ingest is still deriving them)",
                st.head - through
            ));
        }
    }
    Ok(store)
}

/// Load cases by id as they were at `at`, in the order cases are listed, with their clocks.
fn cases_with_clocks(
    store: &dyn Tables,
    ids: impl IntoIterator<Item = String>,
    at: Timestamp,
) -> Result<Projection, DeskError> {
    let mut cases: Vec<(i64, Case)> = Vec::new();
    let mut seen = HashSet::new();
    for id in ids {
        if !seen.insert(id.clone()) {
            continue;
        }
        if let Some(c) = store.case_at(&id, at)? {
            cases.push(c);
        }
    }
    cases.sort_by_key(|(ord, _)| *ord);
    let mut clocks = BTreeMap::new();
    for (_, c) in &cases {
        for id in &c.clocks {
            if !clocks.contains_key(id)
                && let Some(clock) = store.clock_at(id.as_str(), at)?
            {
                clocks.insert(id.clone(), clock);
            }
        }
    }
    let targets: Vec<String> = clocks.values().filter_map(|c| c.target.clone()).collect();
    let rows = store.check_rows(&targets)?;
    let unchecked = rows
        .iter()
        .filter_map(|r| Some((r.target.clone(), r.note.clone()?)))
        .collect();
    let observed = rows
        .into_iter()
        .filter(|r| !r.latest.is_empty())
        .map(|r| (r.target, r.latest))
        .collect();
    Ok(Projection {
        cases: cases.into_iter().map(|(_, c)| c).collect(),
        clocks,
        observed,
        unchecked,
        ..Projection::default()
    })
}

/// The cases with a clock open at `at`, with all their clocks.
pub fn open_cases(store: &dyn Tables, at: Timestamp) -> Result<Projection, DeskError> {
    let open = store.open_clocks_at(at)?;
    cases_with_clocks(store, open.into_iter().flat_map(|(_, cases)| cases), at)
}

/// A case's events with their seqs, in log order.
pub(crate) type CaseEvents = Vec<(u64, Envelope)>;

/// One case as it was at `at`, with its clocks, and the events that concern it.
pub fn case(
    store: &dyn Tables,
    id: &str,
    at: Timestamp,
) -> Result<Option<(Projection, CaseEvents)>, DeskError> {
    let p = cases_with_clocks(store, [id.to_string()], at)?;
    let Some(case) = p.cases.first() else {
        return Ok(None);
    };
    let events = events_of(store, case)?
        .into_iter()
        .map(|e| (e.seq, e.envelope))
        .collect();
    Ok(Some((p, events)))
}

/// One event of the log, decoded, with its place in the chain.
#[derive(Clone, Debug)]
pub struct LoggedEvent {
    pub seq: u64,
    /// Its hash in the chain (hex), as `verify` recomputes it.
    pub hash: String,
    pub envelope: Envelope,
}

/// The events that concern `case` (its own, its messages', its clocks'), in log order.
pub fn events_of(store: &dyn Tables, case: &Case) -> Result<Vec<LoggedEvent>, DeskError> {
    Ok(events_of_cases(store, std::slice::from_ref(case))?
        .pop()
        .unwrap_or_default())
}

/// The events that concern each of `cases`, in log order, one list per case. The log is read
/// once for all of them, in seq order: an event two cases share is read once.
pub fn events_of_cases(
    store: &dyn Tables,
    cases: &[Case],
) -> Result<Vec<Vec<LoggedEvent>>, DeskError> {
    let mut wanted = Vec::with_capacity(cases.len());
    let mut all = std::collections::BTreeSet::new();
    for case in cases {
        let mut refs: Vec<String> = vec![case.id.to_string()];
        refs.extend(case.messages.iter().map(|m| m.content_hash.clone()));
        refs.extend(case.clocks.iter().map(ToString::to_string));
        let seqs = store.event_seqs_naming(&refs)?;
        all.extend(seqs.iter().copied());
        wanted.push(seqs);
    }
    let mut read = BTreeMap::new();
    for e in store.events_at(&all)? {
        let envelope = Envelope::decode(&e.body).map_err(|err| DeskError::BadEvent {
            seq: e.seq,
            problem: err.to_string(),
        })?;
        read.insert(
            e.seq,
            LoggedEvent {
                seq: e.seq,
                hash: e.hash,
                envelope,
            },
        );
    }
    let mut out = Vec::with_capacity(cases.len());
    for (case, seqs) in cases.iter().zip(wanted) {
        let messages: HashSet<&str> = case
            .messages
            .iter()
            .map(|m| m.content_hash.as_str())
            .collect();
        let clocks: HashSet<&str> = case.clocks.iter().map(|c| c.as_str()).collect();
        out.push(
            seqs.iter()
                .filter_map(|s| read.get(s))
                .filter(|e| {
                    e.envelope
                        .event
                        .concerns(case.id.as_str(), &clocks, &messages)
                })
                .cloned()
                .collect(),
        );
    }
    Ok(out)
}

/// The cases opened in `period` as they are at `at`, in case order, with all their clocks
/// (a case since merged into another is left out: its messages are in that one).
pub fn cases_opened(
    store: &dyn Tables,
    period: crate::deciding::sla::Period,
    at: Timestamp,
) -> Result<Projection, DeskError> {
    let ids = store.cases_opened_between(period.from, period.to)?;
    let mut p = cases_with_clocks(store, ids, at)?;
    p.cases.retain(|c| !c.messages.is_empty());
    Ok(p)
}

/// The names a search term may stand for: a crt.sh id, a certificate or key hash, a
/// Message-Id, an address or a case id, each in the form the tables index.
pub(crate) fn search_names(term: &str) -> Vec<String> {
    let t = term.trim();
    let lower = t.to_ascii_lowercase();
    let mut out = Vec::new();
    if let Ok(id) = t.parse::<u64>() {
        out.push(crate::domain::ids::crtsh_name(id));
    }
    let hex = lower.replace(':', "");
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        out.push(crate::domain::ids::sha256_name(&hex));
        out.push(crate::domain::ids::spki_name(&hex));
    }
    for prefix in ["crtsh:", "sha256:", "spki:"] {
        if let Some(rest) = lower.strip_prefix(prefix) {
            out.push(format!("{prefix}{}", rest.trim()));
        }
    }
    if lower.starts_with("cpr-") {
        out.push(t.to_ascii_uppercase());
    }
    if t.starts_with('<') && t.ends_with('>') {
        out.push(t.to_string());
    } else if t.contains('@') {
        out.push(format!("<{t}>"));
        out.push(lower.clone());
    }
    out.push(t.to_string());
    out.dedup();
    out
}

/// The cases `term` names, as they are at `at`, in case order.
pub fn search(store: &dyn Tables, term: &str, at: Timestamp) -> Result<Projection, DeskError> {
    let names = search_names(term);
    let mut ids = Vec::new();
    for n in &names {
        ids.extend(store.cases_named(n)?);
    }
    let mut p = cases_with_clocks(store, ids, at)?;
    // The names index may hold a stray match (a shared index key): keep what truly names it.
    p.cases.retain(|c| names.iter().any(|n| case_names(c, n)));
    Ok(p)
}

/// Whether a case names `n` (what the names index says, checked).
fn case_names(c: &Case, n: &str) -> bool {
    c.id == n
        || c.messages.iter().any(|m| m.message_id == n || m.from == n)
        || c.certificates.iter().any(|cert| {
            cert.names().iter().any(|x| x == n) || cert.key_name().is_some_and(|k| k == n)
        })
        || c.keys.iter().any(|k| k.reference.as_deref() == Some(n))
}
