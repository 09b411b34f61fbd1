//! Hostile and huge input (issue 13 §4): each kind, generated here (never committed), is
//! recorded whole (its bytes stored, a `message_received` event), opens a case with its clocks,
//! and where a `[limits]` bound cut the search a note on the message says so — which
//! `cprwatch case` shows.
//!
//! The sizes are the issue's, and the limits the defaults; `cargo bench --bench hostile` times
//! the same messages in a release build.

mod common;

#[path = "../benches/support/hostile_mail.rs"]
mod hostile_mail;

use cprwatch::config;
use cprwatch::desk::Desk;
use cprwatch::domain::event::{ClockKind, Event};
use cprwatch::domain::model::FolderRole;
use cprwatch::pipeline;
use cprwatch::reading::limits::TRUNCATED;
use hostile_mail::{CSV_FIRST_ID, LINKED_ID, Scale};

const SCALE: Scale = Scale::FULL;

struct Outcome {
    /// The message's notes.
    problems: Vec<String>,
    /// Revocation clock targets, and how many preliminary-report clocks.
    revocations: Vec<String>,
    preliminary: usize,
    cases: usize,
    dir: tempfile::TempDir,
    case_id: String,
}

/// Ingest one message into a fresh SQLite desk; check it is recorded whole.
fn ingest(kind: &str, raw: &[u8]) -> Outcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(format!("{kind}.eml"));
    std::fs::write(&file, raw).expect("write message");
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!("{}\n[store]\npath = \"s.sqlite\"\n", common::CONFIG),
    )
    .expect("config");
    let config = config::load(&cfg).expect("config");
    let mut desk = Desk::open(&config).expect("desk");
    let now = || cprwatch::domain::timefmt::parse("2026-11-02T12:00:00Z").expect("time");
    let summary =
        pipeline::ingest_paths(&mut desk, &[(file, FolderRole::Inbox)], 500, now).expect("ingest");
    assert_eq!(
        (summary.read, summary.new_messages),
        (1, 1),
        "{kind}: {summary:?}"
    );

    let events = desk.events().expect("events");
    let facts = events
        .iter()
        .find_map(|(_, e)| match &e.event {
            Event::MessageReceived { facts } => Some(facts.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{kind}: no message_received event"));
    let stored = desk
        .store()
        .message(&facts.content_hash)
        .expect("store reads")
        .unwrap_or_else(|| panic!("{kind}: message not stored"));
    assert!(
        stored == raw,
        "{kind}: stored bytes differ from the message"
    );
    assert_eq!(facts.size, raw.len() as u64);

    let p = desk.projection_at(now());
    let case = p
        .cases
        .iter()
        .find(|c| {
            c.messages
                .iter()
                .any(|m| m.content_hash == facts.content_hash)
        })
        .unwrap_or_else(|| panic!("{kind}: no case opened; problems {:?}", facts.problems));
    let mut revocations = Vec::new();
    let mut preliminary = 0;
    for id in &case.clocks {
        let c = &p.clocks[id];
        match c.kind {
            ClockKind::PreliminaryReport => preliminary += 1,
            ClockKind::Revocation => revocations.push(c.target.clone().unwrap_or_default()),
        }
    }
    Outcome {
        problems: facts.problems.clone(),
        revocations,
        preliminary,
        cases: p.cases.len(),
        case_id: case.id.to_string(),
        dir,
    }
}

fn truncated(o: &Outcome, limit: &str) -> bool {
    o.problems
        .iter()
        .any(|p| p.starts_with(TRUNCATED) && p.contains(limit))
}

/// A report: one case, its preliminary-report clock and the linked certificate's clock.
fn assert_report(kind: &str, o: &Outcome) {
    assert_eq!((o.cases, o.preliminary), (1, 1), "{kind}: {:?}", o.problems);
    let linked = format!("crtsh:{LINKED_ID}");
    assert!(
        o.revocations.contains(&linked),
        "{kind}: no clock for {linked}: {:?}",
        o.revocations
    );
}

#[test]
fn a_huge_message_is_searched_up_to_the_text_limit() {
    let o = ingest("big", &hostile_mail::message("big", &SCALE));
    assert_report("big", &o);
    assert!(truncated(&o, "limits.text_bytes"), "{:?}", o.problems);
    assert!(truncated(&o, "limits.classify_bytes"), "{:?}", o.problems);
    // The link at the very end lies past the limit.
    assert_eq!(o.revocations.len(), 1, "{:?}", o.revocations);
}

#[test]
fn ten_thousand_parts_are_walked_up_to_the_parts_limit_and_case_says_so() {
    let o = ingest("parts", &hostile_mail::message("parts", &SCALE));
    assert_report("parts", &o);
    assert!(truncated(&o, "limits.parts"), "{:?}", o.problems);

    let cfg = o.dir.path().join("c.toml");
    let out = std::process::Command::new(common::bin())
        .args(["case", "--config"])
        .arg(&cfg)
        .arg(&o.case_id)
        .env_remove("CPRWATCH_CONFIG")
        .output()
        .expect("run case");
    let text = common::text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("truncated for search") && text.contains("limits.parts"),
        "{text}"
    );
}

#[test]
fn mime_nested_200_levels_is_walked_to_the_depth_limit_then_read_as_text() {
    let o = ingest("nested", &hostile_mail::message("nested", &SCALE));
    assert_report("nested", &o);
    assert!(
        o.problems.iter().any(|p| p.contains("limits.depth")),
        "{:?}",
        o.problems
    );
    // The innermost link is still found, in the raw text of what lies below the limit.
    assert!(
        o.revocations.contains(&"crtsh:1777593998".to_string()),
        "{:?}",
        o.revocations
    );
}

#[test]
fn a_ten_megabyte_header_line_is_cut_to_the_header_limit() {
    let o = ingest("header", &hostile_mail::message("header", &SCALE));
    assert_report("header", &o);
    assert!(truncated(&o, "limits.header_bytes"), "{:?}", o.problems);
}

#[test]
fn a_large_base64_attachment_is_searched_up_to_the_attachment_limit() {
    let o = ingest("base64", &hostile_mail::message("base64", &SCALE));
    assert_report("base64", &o);
    assert!(truncated(&o, "limits.attachment_bytes"), "{:?}", o.problems);
}

#[test]
fn a_csv_of_100000_crtsh_ids_gives_every_certificate_its_clock() {
    let o = ingest("csv", &hostile_mail::message("csv", &SCALE));
    assert_eq!((o.cases, o.preliminary), (1, 1), "{:?}", o.problems);
    assert_eq!(o.revocations.len(), SCALE.csv_ids, "{:?}", o.problems);
    let all: std::collections::HashSet<&str> = o.revocations.iter().map(String::as_str).collect();
    for i in [0, 1, SCALE.csv_ids as u64 / 2, SCALE.csv_ids as u64 - 1] {
        assert!(all.contains(format!("crtsh:{}", CSV_FIRST_ID + i).as_str()));
    }
    // Every id was searched (the rules read only the start of the listing's text).
    assert!(
        !o.problems
            .iter()
            .any(|p| p.starts_with(TRUNCATED) && !p.contains("limits.classify_bytes")),
        "{:?}",
        o.problems
    );
}

#[test]
fn a_message_of_nul_bytes_is_recorded_and_opens_a_case() {
    let o = ingest("nul", &hostile_mail::message("nul", &SCALE));
    assert_eq!((o.cases, o.preliminary), (1, 1), "{:?}", o.problems);
    assert!(o.revocations.is_empty());
    assert!(
        o.problems
            .iter()
            .any(|p| p.contains("not an RFC 5322 message")),
        "{:?}",
        o.problems
    );
}

/// 20 000 keys named in one report (`spki:` references, one a line): each gets its clock, and
/// listing the case's clocks does not search the list once per key.
#[test]
fn a_report_naming_20000_keys_gives_each_its_clock() {
    let mut body = String::new();
    for i in 0..20_000u64 {
        body.push_str(&format!("spki:{:064x}\r\n", 0xABCD_0000_0000 + i));
    }
    let raw = format!(
        "Received: from relay.research.test by mx.example-ca.test; Mon, 2 Nov 2026 10:00:00 +0000\r\n\
         From: reporter@research.test\r\nTo: cpr@example-ca.test\r\nSubject: Compromised keys\r\n\
         Message-ID: <keys@research.test>\r\n\r\nThe private keys of these were published:\r\n{body}"
    );
    let o = ingest("keys", raw.as_bytes());
    assert_eq!((o.cases, o.preliminary), (1, 1), "{:?}", o.problems);
    assert_eq!(o.revocations.len(), 20_000);
}

/// The reference limit: beyond it, sightings are dropped with a note, and the case still opens.
#[test]
fn references_beyond_the_limit_are_noted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!("{}\n[limits]\nreferences = 100\n", common::CONFIG),
    )
    .expect("config");
    let config = config::load(&cfg).expect("config");
    let mut desk = Desk::in_memory(&config).expect("desk");
    let small = Scale {
        csv_ids: 500,
        ..Scale::SMALL
    };
    let now = cprwatch::domain::timefmt::parse("2026-11-02T12:00:00Z").expect("time");
    pipeline::ingest(
        &mut desk,
        vec![pipeline::RawMessage {
            raw: hostile_mail::message("csv", &small),
            meta: cprwatch::domain::model::SourceMeta {
                folder: FolderRole::Inbox,
                position: None,
                server_time: None,
            },
        }],
        now,
    )
    .expect("ingest");
    let facts = &desk.engine().facts()[0];
    assert_eq!(facts.certificates.len(), 100);
    assert!(
        facts
            .problems
            .iter()
            .any(|p| p.starts_with(TRUNCATED) && p.contains("limits.references")),
        "{:?}",
        facts.problems
    );
}
