//! The cases and clocks tables in the store: what `status`, `case` and `search` read must be
//! exactly what a full re-derivation from the log says, at every moment, however the mail
//! arrived (in order, out of order, one message at a time, folder by folder); `verify` proves
//! it and names a damaged row; `rebuild` repairs; an old store is upgraded on first use.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use common::{Desk, parse_json, text};
use cprwatch::cli::lookup;
use cprwatch::config;
use cprwatch::deciding::cases::Projection;
use cprwatch::deciding::clock::Clock;
use cprwatch::desk;
use cprwatch::domain::model::{FolderRole, SourceMeta, Timestamp};
use cprwatch::domain::timefmt::parse;
use cprwatch::pipeline;
use cprwatch::store;

/// Every scenario message with its folder, in a fixed order.
fn scenario_files() -> Vec<(PathBuf, FolderRole)> {
    let root = common::root().join("fixtures/scenarios");
    let mut out = Vec::new();
    let mut scenarios: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("inbox").is_dir())
        .collect();
    scenarios.sort();
    for s in scenarios {
        for (sub, role) in [
            ("inbox", FolderRole::Inbox),
            ("junk", FolderRole::Junk),
            ("sent", FolderRole::Sent),
        ] {
            let Ok(rd) = std::fs::read_dir(s.join(sub)) else {
                continue;
            };
            let mut files: Vec<PathBuf> = rd.map(|e| e.unwrap().path()).collect();
            files.sort();
            out.extend(files.into_iter().map(|f| (f, role)));
        }
    }
    assert!(out.len() > 50, "scenario fixtures missing");
    out
}

fn now() -> Timestamp {
    parse("2026-12-01T00:00:00Z").unwrap()
}

/// The moments worth asking about: every receipt time, a second before it, and far after.
fn moments(p: &Projection) -> Vec<Timestamp> {
    let mut set = BTreeSet::new();
    for c in &p.cases {
        for m in &c.messages {
            set.insert(m.received_at);
            set.insert(m.received_at - time::Duration::seconds(1));
        }
    }
    for c in p.clocks.values() {
        set.insert(c.deadline);
        for s in &c.stops {
            set.insert(s.at);
        }
    }
    set.insert(now());
    set.into_iter().collect()
}

fn open_at(p: &Projection, case: &cprwatch::deciding::cases::Case, at: Timestamp) -> bool {
    case.clocks
        .iter()
        .filter_map(|id| p.clocks.get(id))
        .any(|c: &Clock| c.status(at).state.is_open())
}

/// At every moment: each case read from the tables equals the case of a fresh projection of
/// every message received by then, with the same clocks; `status`'s open cases are exactly
/// those with an open clock then.
fn assert_tables_equal_projection(d: &desk::Desk, store_path: &std::path::Path) {
    let store = store::open_sqlite(store_path).unwrap();
    let full = d.projection_at(now());
    let at_all = moments(&full);
    assert!(at_all.len() > 20, "{}", at_all.len());
    for at in at_all {
        let p = d.projection_at(at);
        for case in &p.cases {
            let (t, _) = lookup::case(&store, case.id.as_str(), at)
                .unwrap()
                .unwrap_or_else(|| panic!("case {} missing from the tables at {at}", case.id));
            assert_eq!(&t.cases[0], case, "case {} at {at}", case.id);
            for id in &case.clocks {
                assert_eq!(t.clocks.get(id), p.clocks.get(id), "clock {id} at {at}");
            }
        }
        let open = lookup::open_cases(&store, at).unwrap();
        let want: Vec<&str> = p
            .cases
            .iter()
            .filter(|c| open_at(&p, c, at))
            .map(|c| c.id.as_str())
            .collect();
        let got: Vec<&str> = open.cases.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(got, want, "open cases at {at}");
    }
    assert_log_tells_the_projection(d, &full);
}

/// The log's own account, read from its events alone, says what the projection says: the
/// cases open (opened and not merged away), where every message went, what each case
/// reported, and each clock's start, deadline and state at the last tick (`now`).
fn assert_log_tells_the_projection(d: &desk::Desk, p: &Projection) {
    use cprwatch::domain::event::{ClockState, Event};
    let mut cases: BTreeSet<String> = BTreeSet::new();
    let mut placed: HashMap<String, Option<String>> = HashMap::new();
    let mut reported: BTreeSet<(String, String)> = BTreeSet::new();
    let mut clocks: HashMap<String, (Timestamp, Timestamp, ClockState)> = HashMap::new();
    let mut acknowledged: HashMap<String, (Timestamp, String, String)> = HashMap::new();
    let mut acknowledgements: HashMap<String, usize> = HashMap::new();
    for (_, env) in d.events().unwrap() {
        match env.event {
            Event::CaseOpened { case, message, .. } => {
                cases.insert(case.to_string());
                placed.insert(message, Some(case.to_string()));
            }
            Event::CaseMerged { case, .. } => {
                cases.remove(case.as_str());
            }
            Event::MessageJoined { case, message, .. } => {
                placed.insert(message, Some(case.to_string()));
            }
            Event::MessageLogged { message, .. } => {
                placed.insert(message, None);
            }
            Event::CertificateReported { case, certificate } => {
                reported.insert((case.to_string(), certificate.reference.clone()));
            }
            Event::ClockStarted {
                clock,
                started_at,
                deadline,
                ..
            } => {
                clocks.insert(
                    clock.to_string(),
                    (started_at, deadline, ClockState::Pending),
                );
            }
            Event::ClockRevised {
                clock,
                started_at,
                deadline,
                ..
            } => {
                let c = clocks
                    .get_mut(clock.as_str())
                    .expect("revised after started");
                (c.0, c.1) = (started_at, deadline);
            }
            Event::ClockStopped { clock, state, .. } | Event::ClockReopened { clock, state } => {
                clocks.get_mut(clock.as_str()).expect("after started").2 = state;
            }
            Event::ClockBreached { clock, .. } => {
                clocks.get_mut(clock.as_str()).expect("after started").2 = ClockState::Breached;
            }
            Event::ClockAcknowledged {
                clock,
                at,
                reason,
                by,
            } => {
                *acknowledgements.entry(clock.to_string()).or_default() += 1;
                acknowledged.insert(clock.to_string(), (at, reason, by));
            }
            _ => {}
        }
    }
    let want: BTreeSet<String> = p.cases.iter().map(|c| c.id.to_string()).collect();
    assert_eq!(cases, want, "cases the log opened and did not merge");
    for (hash, pl) in &p.placements {
        assert_eq!(
            placed.get(hash),
            Some(&pl.case.as_ref().map(|c| c.to_string())),
            "placement of {hash}"
        );
    }
    for c in &p.cases {
        for cert in &c.certificates {
            assert!(
                reported.contains(&(c.id.to_string(), cert.reference.clone())),
                "{} reported in {}",
                cert.reference,
                c.id
            );
        }
    }
    for (id, c) in &p.clocks {
        let got = clocks
            .get(id.as_str())
            .unwrap_or_else(|| panic!("clock {id} never started"));
        assert_eq!(
            *got,
            (c.started_at, c.deadline, c.status(now()).state),
            "clock {id} as the log tells it"
        );
        if let Some(a) = &c.acknowledged {
            assert_eq!(
                acknowledged.get(id.as_str()),
                Some(&(a.at, a.reason.clone(), a.by.clone())),
                "clock {id}'s acknowledgement as the log tells it"
            );
        }
    }
    // The scenarios acknowledge each clock once (staff-delayed): recorded once, whatever the
    // order of arrival, restarts and re-derivations.
    let acked: Vec<&str> = p
        .clocks
        .iter()
        .filter(|(_, c)| c.acknowledged.is_some())
        .map(|(id, _)| id.as_str())
        .collect();
    assert!(!acked.is_empty(), "the scenarios acknowledge clocks late");
    for id in acked {
        assert_eq!(acknowledgements.get(id), Some(&1), "{id} acknowledged once");
    }
}

fn open_desk(desk: &Desk) -> desk::Desk {
    let cfg = config::load(&desk.config()).unwrap();
    desk::Desk::open(&cfg).unwrap()
}

#[test]
fn tables_equal_a_re_derivation_when_folders_arrive_one_after_another() {
    let desk = Desk::with_store();
    let mut d = open_desk(&desk);
    // Sent first, then the inboxes, then junk: each later folder reaches back in time, so the
    // tables are re-derived from the earliest new message on, again and again.
    let files = scenario_files();
    for role in [FolderRole::Sent, FolderRole::Inbox, FolderRole::Junk] {
        let paths: Vec<(PathBuf, FolderRole)> =
            files.iter().filter(|(_, r)| *r == role).cloned().collect();
        pipeline::ingest_paths(&mut d, &paths, 3, now).unwrap();
    }
    assert_tables_equal_projection(&d, &desk.store());
}

#[test]
fn tables_equal_a_re_derivation_when_messages_arrive_one_at_a_time_in_any_order() {
    let files = scenario_files();
    for seed in [7u64, 1234] {
        let desk = Desk::with_store();
        let mut d = open_desk(&desk);
        // A fixed shuffle (xorshift), one message per commit, each followed by a tick.
        let mut order: Vec<usize> = (0..files.len()).collect();
        let mut x = seed;
        for i in (1..order.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        for (n, i) in order.into_iter().enumerate() {
            let (path, role) = &files[i];
            let raw = std::fs::read(path).unwrap();
            let meta = SourceMeta {
                folder: *role,
                position: None,
                server_time: None,
            };
            pipeline::ingest(&mut d, vec![pipeline::RawMessage { raw, meta }], now()).unwrap();
            if n % 17 == 0 {
                // A restart now and then: the tables are picked up where they are.
                drop(d);
                d = open_desk(&desk);
            }
        }
        assert_tables_equal_projection(&d, &desk.store());
    }
}

#[test]
fn tables_equal_a_re_derivation_when_batches_hold_more_than_the_engine_keeps() {
    // Batches of 25, each derived at once, in a shuffled order: more than a debug build's
    // engine holds between ticks, so it reads them back from the store, and some reach back
    // in time, so it derives again from them.
    let files = scenario_files();
    let desk = Desk::with_store();
    let mut d = open_desk(&desk);
    let mut order: Vec<usize> = (0..files.len()).collect();
    let mut x = 99u64;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    for chunk in order.chunks(25) {
        let batch = chunk
            .iter()
            .map(|&i| {
                let (path, role) = &files[i];
                pipeline::RawMessage {
                    raw: std::fs::read(path).unwrap(),
                    meta: SourceMeta {
                        folder: *role,
                        position: None,
                        server_time: None,
                    },
                }
            })
            .collect();
        pipeline::ingest(&mut d, batch, now()).unwrap();
    }
    assert_tables_equal_projection(&d, &desk.store());
}

/// Ingest every scenario through the command line.
fn ingest_all(desk: &Desk) {
    let cfg = desk.config().display().to_string();
    let mut by_role: HashMap<&str, Vec<String>> = HashMap::new();
    for (p, role) in scenario_files() {
        by_role
            .entry(role.as_str())
            .or_default()
            .push(p.display().to_string());
    }
    for role in ["inbox", "sent", "junk"] {
        let Some(files) = by_role.get(role) else {
            continue;
        };
        let mut args = vec!["ingest", "--config", &cfg, "--role", role];
        args.extend(files.iter().map(String::as_str));
        let o = desk.run(&args);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
}

#[test]
fn verify_proves_the_tables_and_names_a_damaged_row_which_rebuild_repairs() {
    let desk = Desk::with_store();
    ingest_all(&desk);
    let cfg = desk.config().display().to_string();
    let o = desk.run(&["verify", "--config", &cfg]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(out.starts_with("ok:"), "{out}");
    assert!(out.contains("equal a re-derivation from the log"), "{out}");
    // Derived a few messages at a time, forgetting what it held after each piece and reading
    // it back from the tables when touched again: the same rows.
    let config = config::load(&desk.config()).unwrap();
    for piece in [1, 2, 5, 23] {
        assert!(
            desk::tables_equal_derivation_in_pieces(&config, piece).unwrap(),
            "a derivation in pieces of {piece} differs"
        );
    }

    // A deadline quietly moved by a day in the table `status` reads.
    let c = rusqlite::Connection::open(desk.store()).unwrap();
    let changed = c
        .execute(
            "UPDATE clocks SET deadline = deadline + 86400 \
             WHERE (id, valid_from) IN (SELECT id, valid_from FROM clocks LIMIT 1)",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(c);
    let o = desk.run(&["verify", "--config", &cfg]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(out.contains("FAILED") && out.contains("clocks:"), "{out}");
    assert!(out.contains("cprwatch rebuild"), "{out}");

    let o = desk.run(&["rebuild", "--config", &cfg]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = desk.run(&["verify", "--config", &cfg]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn verify_names_damage_to_the_logs_index_which_rebuild_reindex_repairs() {
    let desk = Desk::with_store();
    ingest_all(&desk);
    let cfg = desk.config().display().to_string();
    let run = |args: &[&str]| {
        let o = desk.run(args);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).to_string(),
            text(&o),
        )
    };
    // A rebuild for a change of rules keeps the index, which depends on the events alone.
    let (code, out, all) = run(&["rebuild", "--config", &cfg]);
    assert_eq!(code, Some(0), "{all}");
    assert!(out.starts_with("rebuilt cases and clocks"), "{out}");

    // A received message dropped from the index: a derivation through it would never see
    // the report, and agree with tables derived the same way.
    let c = rusqlite::Connection::open(desk.store()).unwrap();
    let seq: i64 = c
        .query_row("SELECT MIN(seq) FROM receipts", [], |r| r.get(0))
        .unwrap();
    c.execute("DELETE FROM receipts WHERE seq = ?1", [seq])
        .unwrap();
    drop(c);
    let (code, out, all) = run(&["verify", "--config", &cfg]);
    assert_eq!(code, Some(1), "{all}");
    assert!(
        out.contains("FAILED")
            && out.contains(&format!("receipts: event {seq} received at"))
            && out.contains("missing from the store")
            && out.contains("cprwatch rebuild --reindex"),
        "{out}"
    );
    // Deriving again through the damaged index mends nothing.
    let (code, _, all) = run(&["rebuild", "--config", &cfg]);
    assert_eq!(code, Some(0), "{all}");
    let (code, _, all) = run(&["verify", "--config", &cfg]);
    assert_eq!(code, Some(1), "{all}");

    let (code, out, all) = run(&["rebuild", "--config", &cfg, "--reindex"]);
    assert_eq!(code, Some(0), "{all}");
    assert!(
        out.starts_with("indexed the log again and rebuilt"),
        "{out}"
    );
    let (code, out, all) = run(&["verify", "--config", &cfg]);
    assert_eq!(code, Some(0), "{all}");
    assert!(out.contains("equal a re-derivation from the log"), "{out}");

    // Tables last built in another format: the index is made again with them.
    let c = rusqlite::Connection::open(desk.store()).unwrap();
    c.execute(
        "UPDATE meta SET value = 'tables-3 thread_window=1209600s' WHERE key = 'tables_built_with'",
        [],
    )
    .unwrap();
    let dropped = c
        .execute(
            "DELETE FROM event_refs WHERE (ref_key, seq) IN \
             (SELECT ref_key, seq FROM event_refs LIMIT 1)",
            [],
        )
        .unwrap();
    assert_eq!(dropped, 1);
    drop(c);
    let (code, out, all) = run(&["rebuild", "--config", &cfg]);
    assert_eq!(code, Some(0), "{all}");
    assert!(
        out.starts_with("indexed the log again and rebuilt"),
        "{out}"
    );
    let (code, _, all) = run(&["verify", "--config", &cfg]);
    assert_eq!(code, Some(0), "{all}");
}

#[test]
fn search_finds_a_case_by_every_name_a_reporter_or_auditor_has() {
    let desk = Desk::with_store();
    ingest_all(&desk);
    let cfg = desk.config().display().to_string();
    let replay = {
        let cfg_d = config::load(&desk.config()).unwrap();
        let d = desk::Desk::open(&cfg_d).unwrap();
        d.projection_at(now())
    };
    // A case with a crt.sh id, one with a SHA-256, one with a key.
    let with = |f: &dyn Fn(&cprwatch::deciding::cases::Case) -> Option<String>| {
        replay
            .cases
            .iter()
            .find_map(|c| f(c).map(|name| (c.id.to_string(), name)))
            .expect("a scenario case of this kind")
    };
    let crtsh = with(&|c| {
        c.certificates
            .iter()
            .find_map(|x| x.crtsh_id.map(|i| i.to_string()))
    });
    let sha = with(&|c| c.certificates.iter().find_map(|x| x.sha256.clone()));
    let spki = with(&|c| c.keys.iter().find_map(|k| k.reference.clone()));
    let mid = with(&|c| Some(c.messages.last()?.message_id.clone()));
    let addr = with(&|c| Some(c.reporter.clone()).filter(|r| !r.is_empty()));
    let first = replay.cases[0].id.to_string();
    for (case, term) in [
        crtsh.clone(),
        (crtsh.0.clone(), format!("crtsh:{}", crtsh.1)),
        sha.clone(),
        (sha.0.clone(), format!("sha256:{}", sha.1.to_uppercase())),
        spki,
        mid.clone(),
        (mid.0.clone(), mid.1.trim_matches(['<', '>']).to_string()),
        addr,
        (first.clone(), first.to_lowercase()),
    ] {
        let o = desk.run(&["search", "--config", &cfg, &term, "--format", "json"]);
        assert_eq!(o.status.code(), Some(0), "{term}: {}", text(&o));
        let v = parse_json(&o);
        let ids = common::case_ids(&v);
        assert!(ids.contains(&case), "{term} should find {case}: {ids:?}");
        let o = desk.run(&["search", "--config", &cfg, &term]);
        assert!(
            String::from_utf8_lossy(&o.stdout).contains(&case),
            "{}",
            text(&o)
        );
    }
    let o = desk.run(&["search", "--config", &cfg, "crtsh:999999999999"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

#[test]
fn a_store_from_before_the_tables_is_upgraded_on_first_use() {
    let desk = Desk::with_store();
    ingest_all(&desk);
    let cfg = desk.config().display().to_string();
    let before = desk.run(&[
        "status",
        "--config",
        &cfg,
        "--format",
        "json",
        "--at",
        "2026-12-01T00:00:00Z",
    ]);
    // What a store of schema 3 looked like: no tables at all.
    let c = rusqlite::Connection::open(desk.store()).unwrap();
    c.execute_batch(
        "DROP TABLE cases; DROP TABLE case_items; DROP TABLE clocks; DROP TABLE case_names; DROP TABLE fold; DROP TABLE receipts; DROP TABLE case_numbers; DROP TABLE recorded; \
         DROP TABLE event_refs; DELETE FROM meta WHERE key LIKE 'tables_%'; \
         UPDATE meta SET value = '3' WHERE key = 'schema_version';",
    )
    .unwrap();
    drop(c);
    let after = desk.run(&[
        "status",
        "--config",
        &cfg,
        "--format",
        "json",
        "--at",
        "2026-12-01T00:00:00Z",
    ]);
    assert_eq!(
        after.status.code(),
        before.status.code(),
        "{}",
        text(&after)
    );
    assert_eq!(
        String::from_utf8_lossy(&after.stdout),
        String::from_utf8_lossy(&before.stdout)
    );
    assert!(
        String::from_utf8_lossy(&after.stderr).contains("rebuilt them from the log"),
        "{}",
        text(&after)
    );
    let o = desk.run(&["verify", "--config", &cfg]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}
