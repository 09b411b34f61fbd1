//! End-to-end: `cprwatch audit export` and `cprwatch audit report` over a store made with
//! `cprwatch ingest` from the demo Maildir (`fixtures/maildir`, its story in
//! fixtures/README.md), the `staff-delayed` scenario (a case of 2025: outside the year) and a
//! hostile report written here, whose subject carries Markdown, HTML, a spreadsheet formula
//! and terminal escapes. Every expected figure was worked out by hand from the fixtures'
//! receipt times (tests/maildir.rs pins the same clocks):
//!
//! | case | preliminary report | revocation |
//! |---|---|---|
//! | 0001 | 07:12:40 → 10:05:00 met (2h 52m 20s) | spki: 07:12:40 → 09:58 met (2h 45m 20s) |
//! | 0002 | 03-04 13:30 → 03-05 16:45 late (27h 15m) | two crt.sh: → 03-06 10:00 met (44h 30m each) |
//! | 0003 | breached (junk) | breached |
//! | 0004 | → 03-10 08:30 met (15h 30m) | intermediate: breached |
//! | 0005 | breached | breached |
//! | 0006 | 08:00 → 09:15 met (1h 15m) | 08:00 → 09:10 met (1h 10m) |
//! | 0007 (hostile) | breached, acknowledged | breached, acknowledged |
//!
//! Preliminary reports met or late: 1h 15m, 2h 52m 20s, 15h 30m, 27h 15m: median (2h 52m 20s +
//! 15h 30m) / 2 = 9h 11m 10s = 33 070 s; p90 the ⌈0.9 × 4⌉ = 4th = 98 100 s. Revocations met:
//! 1h 10m, 2h 45m 20s, 44h 30m, 44h 30m: median (9 920 + 160 200) / 2 = 85 060 s; p90 and max
//! 160 200 s. Reports: 0001 two, 0002 two (its out-of-office is no report), one each for
//! 0003–0007: 9.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// When every state is evaluated: after everything in the fixtures, so the answers do not
/// depend on the day the test runs.
const AT: &str = "2026-04-10T00:00:00Z";

/// The hostile subject: a Markdown link, an HTML image with a handler, a spreadsheet formula,
/// a table cell break, and an ESC colour sequence (RFC 2047-encoded, so it survives parsing).
const SUBJECT: &str = "[click me](https://evil.example/x) <img src=x onerror=alert(1)> \
                       =HYPERLINK(\"https://evil.example\") |cell| \u{1b}[31mred";

/// What staff wrote as the reason of a `CPR-Delayed`: a formula again, for the CSV.
const FORMULA: &str = "=HYPERLINK(\"https://evil.example\",\"click\")";

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The hostile report (CPR-2026-0007: after the demo's six) and staff's note acknowledging
/// both its clocks late, in folders of their own.
fn hostile(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let inbox = dir.join("hostile-inbox");
    let sent = dir.join("hostile-sent");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::create_dir_all(&sent).unwrap();
    let report = format!(
        "Received: from mail.evil.example (mail.evil.example [198.51.100.66])\r\n\
         \tby mx.example-ca.test (Postfix) with ESMTPS id 9F00AA\r\n\
         \tfor <cpr@example-ca.test>; Wed, 01 Apr 2026 10:00:00 +0000\r\n\
         Message-ID: <hostile-1@evil.example>\r\n\
         Date: Wed, 01 Apr 2026 10:00:00 +0000\r\n\
         From: mallory@evil.example\r\n\
         To: cpr@example-ca.test\r\n\
         Subject: =?utf-8?b?{}?=\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         The private key of https://crt.sh/?id=7777 has been compromised.\r\n",
        b64(SUBJECT)
    );
    std::fs::write(inbox.join("01-hostile.eml"), report).unwrap();
    let note = format!(
        "Message-ID: <hostile-1a@example-ca.test>\r\n\
         Date: Thu, 02 Apr 2026 12:00:00 +0000\r\n\
         From: \"Nina Okafor\" <nina.okafor@example-ca.test>\r\n\
         To: cpr@example-ca.test\r\n\
         Subject: Re: the hostile one\r\n\
         In-Reply-To: <hostile-1@evil.example>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         CPR-Delayed: CPR-2026-0007 {FORMULA}\r\n\
         CPR-Delayed: https://crt.sh/?id=7777 https://bugzilla.example/7\r\n"
    );
    std::fs::write(sent.join("01a-note.eml"), note).unwrap();
    (inbox, sent)
}

/// A store holding the demo Maildir, `staff-delayed` and the hostile case.
fn store() -> Desk {
    let desk = Desk::with_store();
    let cfg = desk.config().display().to_string();
    let (h_inbox, h_sent) = hostile(desk.dir.path());
    let md = root().join("fixtures/maildir");
    let delayed = scenario("staff-delayed");
    for (role, path) in [
        ("inbox", md),
        ("inbox", delayed.join("inbox")),
        ("sent", delayed.join("sent")),
        ("inbox", h_inbox),
        ("sent", h_sent),
    ] {
        let p = path.display().to_string();
        let o = desk.run(&["ingest", "--config", &cfg, "--role", role, &p]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    desk
}

fn audit(desk: &Desk, args: &[&str]) -> String {
    let cfg = desk.config().display().to_string();
    let mut a = vec!["audit"];
    a.extend_from_slice(args);
    a.extend(["--config", &cfg, "--at", AT]);
    let o = desk.run(&a);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8(o.stdout).expect("UTF-8");
    assert!(
        !out.chars()
            .any(|c| c != '\n' && c != '\r' && c.is_control()),
        "raw control character in:\n{out}"
    );
    out
}

const YEAR: [&str; 4] = ["--from", "2026-01-01", "--to", "2027-01-01"];

#[test]
fn sla_report_of_a_year_has_the_known_answers() {
    let desk = store();
    let mut args = vec!["report"];
    args.extend(YEAR);
    args.extend(["--format", "json"]);
    let v: Value = serde_json::from_str(&audit(&desk, &args)).unwrap();
    assert_eq!(v["from"], "2026-01-01T00:00:00Z");
    assert_eq!(v["to"], "2027-01-01T00:00:00Z");
    assert_eq!(v["at"], AT);
    // CPR-2025-0001 (staff-delayed) is outside the year.
    assert_eq!(
        (&v["cases"], &v["reports"], &v["certificates"], &v["keys"]),
        (
            &Value::from(7),
            &Value::from(9),
            &Value::from(7),
            &Value::from(1)
        )
    );
    let counts = |k: &Value| -> Vec<u64> {
        [
            "total",
            "met",
            "late",
            "breached",
            "open",
            "dismissed",
            "not_required",
        ]
        .iter()
        .map(|f| k[f].as_u64().unwrap())
        .collect()
    };
    let prelim = &v["clocks"][0];
    assert_eq!(prelim["kind"], "preliminary_report");
    assert_eq!(counts(prelim), [7, 3, 1, 3, 0, 0, 0]);
    assert_eq!(
        prelim["time_to_stop"],
        serde_json::json!({"count": 4, "median_seconds": 33070, "p90_seconds": 98100,
                           "max_seconds": 98100})
    );
    let rev = &v["clocks"][1];
    assert_eq!(rev["kind"], "revocation");
    assert_eq!(counts(rev), [8, 4, 0, 4, 0, 0, 0]);
    assert_eq!(
        rev["time_to_stop"],
        serde_json::json!({"count": 4, "median_seconds": 85060, "p90_seconds": 160200,
                           "max_seconds": 160200})
    );
    let ex: Vec<(String, String, String)> = v["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (s(&e["case"]), s(&e["kind"]), s(&e["state"])))
        .collect();
    let e = |c: &str, k: &str, st: &str| (c.to_string(), k.to_string(), st.to_string());
    assert_eq!(
        ex,
        [
            e("CPR-2026-0002", "preliminary_report", "late"),
            e("CPR-2026-0003", "preliminary_report", "breached"),
            e("CPR-2026-0003", "revocation", "breached"),
            e("CPR-2026-0004", "revocation", "breached"),
            e("CPR-2026-0005", "preliminary_report", "breached"),
            e("CPR-2026-0005", "revocation", "breached"),
            e("CPR-2026-0007", "preliminary_report", "breached"),
            e("CPR-2026-0007", "revocation", "breached"),
        ]
    );
    let late = &v["exceptions"][0];
    assert_eq!(late["stopped_at"], "2026-03-05T16:45:00Z");
    // Due 03-05 13:30, answered 16:45.
    assert_eq!(late["overdue_seconds"], 3 * 3600 + 15 * 60);
    // Due 03-08 22:10, still running at 04-10 00:00: 32 days 1 h 50 min.
    assert_eq!(v["exceptions"][1]["overdue_seconds"], 32 * 86400 + 6600);
    assert_eq!(v["exceptions"][6]["acknowledged"]["reason"], FORMULA);
    assert_eq!(
        v["exceptions"][7]["acknowledged"]["reason"],
        "https://bugzilla.example/7"
    );

    // The same figures as text and Markdown.
    let mut args = vec!["report"];
    args.extend(YEAR);
    let t = audit(&desk, &args);
    assert!(
        t.contains("reports 9  cases 7  certificates 7  keys 1"),
        "{t}"
    );
    let row = |kind: &str| {
        t.lines()
            .find(|l| l.starts_with(kind))
            .unwrap_or_else(|| panic!("no {kind} row in\n{t}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        row("preliminary_report"),
        "preliminary_report 7 3 1 3 0 0 0 9h 11m 1d 3h 15m 1d 3h 15m"
    );
    assert_eq!(
        row("revocation"),
        "revocation 8 4 0 4 0 0 0 23h 37m 1d 20h 30m 1d 20h 30m"
    );
    assert!(t.contains("late or breached: 8"), "{t}");
    assert!(
        t.contains(&format!("(acknowledged: {FORMULA}, 2026-04-02T12:00:00Z)")),
        "{t}"
    );
    args.extend(["--format", "md"]);
    let m = audit(&desk, &args);
    assert!(
        m.contains(
            "| preliminary report | 7 | 3 | 1 | 3 | 0 | 0 | 0 | 9h 11m | 1d 3h 15m | 1d 3h 15m |"
        ),
        "{m}"
    );
    assert!(
        m.contains(
            r#"| CPR-2026-0007 | preliminary report | breached | 2026-04-02 10:00 UTC | - | 7d 14h 0m | 2026-04-02 12:00 UTC: \=HYPERLINK\("https\://evil\.example","click"\) |"#
        ),
        "{m}"
    );
}

#[test]
fn markdown_export_is_a_timeline_per_case_with_report_text_escaped() {
    let desk = store();
    let mut args = vec!["export"];
    args.extend(YEAR);
    let md = audit(&desk, &args);
    let cases: Vec<&str> = md.lines().filter(|l| l.starts_with("## ")).collect();
    assert_eq!(
        cases,
        (1..=7)
            .map(|n| format!("## CPR-2026-{n:04}"))
            .collect::<Vec<_>>()
    );
    // CCADB style: UTC, to the minute; who did what.
    for line in [
        r"- 2026-03-04 13:30 UTC — Report received (case opened) from m\.santos\@linting\.example, Message-Id \<20260304133000\.GA1209\@linting\.example\>, folder inbox",
        r"- 2026-03-05 13:30 UTC — Deadline passed: preliminary report not done by then",
        r"- 2026-03-05 16:45 UTC — Staff action by tomas\.lindqvist\@example-ca\.test: CPR-Revoked\: crtsh\:9500000001 2026-03-06T10\:00\:00Z",
        r"- 2026-03-05 16:45 UTC — Preliminary report given (late): \<cpr-20260305-0002\@example-ca\.test\> from tomas\.lindqvist\@example-ca\.test",
        r"- 2026-03-05 16:46 UTC — Automatic reply received (joined by case-tag) from j\.oliveira\@linting\.example, Message-Id \<ooo-20260305\@linting\.example\>, folder inbox",
        r"- 2026-03-06 10:00 UTC — Revocation of crtsh\:9500000002 recorded (met): CPR-Revoked in \<cpr-20260305-0002\@example-ca\.test\>",
        r"- 2026-03-07 22:10 UTC — Report received (case opened) from secure\.notice\.4471\@freemail\.example, Message-Id \<a7f3e9\.4471\@freemail\.example\>, folder junk",
        r"- 2026-03-10 08:30 UTC — Preliminary report given (met): CPR-Answered\: Bugzilla comment 1",
        r"- 2026-04-02 12:00 UTC — Breach acknowledged (CPR-Delayed) for preliminary report in \<hostile-1a\@example-ca\.test\> from nina\.okafor\@example-ca\.test: \=HYPERLINK\(",
        "| Preliminary report | 2026-03-04 13:30 UTC | 2026-03-05 13:30 UTC | late | 2026-03-05 16:45 UTC | br-4\\.9\\.5-24h |",
        "crtsh\\:9500000001 ([crt.sh](https://crt.sh/?id=9500000001))",
    ] {
        // Whole lines, but for a line's start or a piece of one.
        let found = if line.ends_with(r"\(") || !line.starts_with(['-', '|']) {
            md.contains(line)
        } else {
            md.lines().any(|l| l == line)
        };
        assert!(found, "missing {line}\nin\n{md}");
    }
    // The hostile subject: every piece of markup shows as text.
    let subject = md
        .lines()
        .skip_while(|l| *l != "## CPR-2026-0007")
        .find(|l| l.starts_with("- Subject: "))
        .unwrap();
    assert_eq!(
        subject,
        r#"- Subject: \[click me\]\(https\://evil\.example/x\) \<img src\=x onerror\=alert\(1\)\> \=HYPERLINK\("https\://evil\.example"\) \|cell\| \\x1b\[31mred"#
    );
    for raw in ["](https://evil", "https://evil", "|cell|", "\u{1b}"] {
        assert!(!md.contains(raw), "{raw:?} unescaped in\n{md}");
    }
    for (i, _) in md.match_indices("<img") {
        assert!(md[..i].ends_with('\\'), "<img unescaped in\n{md}");
    }
    // The year is the year: the 2025 case is in another export, with its ignored command.
    assert!(!md.contains("CPR-2025-0001"), "{md}");
    let md = audit(
        &desk,
        &["export", "--from", "2025-01-01", "--to", "2026-01-01"],
    );
    assert!(md.contains("## CPR-2025-0001"), "{md}");
    assert!(
        md.contains(
            r"- 2025-11-04 09:30 UTC — Command ignored in \<sd02\@reporter\.example\> from nina\.okafor\@example-ca\.test: CPR-Delayed\: CPR-2025-0001 nothing to see here (the sender is not staff \(a From\: header alone proves nothing\))"
        ),
        "{md}"
    );
}

#[test]
fn csv_export_has_one_row_per_clock_and_defuses_formulas() {
    let desk = store();
    let mut args = vec!["export"];
    args.extend(YEAR);
    args.extend(["--format", "csv"]);
    let csv = audit(&desk, &args);
    assert!(csv.ends_with("\r\n"));
    let rows: Vec<&str> = csv.trim_end_matches("\r\n").split("\r\n").collect();
    assert_eq!(rows.len(), 1 + 7 + 8, "{csv}");
    assert_eq!(
        rows[0],
        "case,clock,kind,target,started_at,deadline,state,stopped_at,stopped_by,basis,matched,\
         acknowledged_at,acknowledged_reason,acknowledged_by,first_alert_sent_at,\
         breach_alert_sent_at"
    );
    assert!(rows.contains(
        &"CPR-2026-0002,preliminary_report:CPR-2026-0002,preliminary_report,,2026-03-04T13:30:00Z,\
          2026-03-05T13:30:00Z,late,2026-03-05T16:45:00Z,<cpr-20260305-0002@example-ca.test>,\
          br-4.9.5-24h,,,,,,"
    ), "{csv}");
    assert!(
        rows.contains(
            &"CPR-2026-0006,revocation:crtsh:9500000030,revocation,crtsh:9500000030,\
          2026-03-12T08:00:00Z,2026-03-13T08:00:00Z,met,2026-03-12T09:10:00Z,\
          CPR-Revoked in <cpr-20260312-0006@example-ca.test>,subscriber-request,\
          Revocation request,,,,,"
        ),
        "{csv}"
    );
    // The formula is quoted (it holds commas and quotes) and starts with ' inside.
    assert!(rows.contains(
        &"CPR-2026-0007,preliminary_report:CPR-2026-0007,preliminary_report,,2026-04-01T10:00:00Z,\
          2026-04-02T10:00:00Z,breached,,,br-4.9.5-24h,,2026-04-02T12:00:00Z,\
          \"'=HYPERLINK(\"\"https://evil.example\"\",\"\"click\"\")\",<hostile-1a@example-ca.test>,,"
    ), "{csv}");
    // No cell starts with a formula character.
    for r in &rows {
        for cell in r.split(',') {
            assert!(
                !cell
                    .trim_start_matches('"')
                    .starts_with(['=', '+', '-', '@']),
                "{cell} in {r}"
            );
        }
    }
}

#[test]
fn json_export_is_the_log_of_those_cases_with_seq_and_hash() {
    let desk = store();
    let mut args = vec!["export"];
    args.extend(YEAR);
    args.extend(["--format", "json"]);
    let v: Value = serde_json::from_str(&audit(&desk, &args)).unwrap();
    assert_eq!(
        v["cases"],
        serde_json::json!(
            (1..=7)
                .map(|n| format!("CPR-2026-{n:04}"))
                .collect::<Vec<_>>()
        )
    );
    let events = v["events"].as_array().unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(seqs, sorted, "in log order, each once");
    for e in events {
        let h = s(&e["hash"]);
        assert!(
            h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()),
            "{e}"
        );
        assert!(e["recorded_at"].is_string() && e["event"]["type"].is_string());
    }
    let types: Vec<String> = events.iter().map(|e| s(&e["event"]["type"])).collect();
    for t in [
        "message_received",
        "case_opened",
        "clock_started",
        "clock_stopped",
        "clock_breached",
        "clock_acknowledged",
    ] {
        assert!(types.iter().any(|x| x == t), "no {t} in {types:?}");
    }
    // Nothing of the 2025 case.
    assert!(!serde_json::to_string(&v).unwrap().contains("CPR-2025-0001"));
    // The subject decodes to exactly what was sent.
    let hostile = events
        .iter()
        .find(|e| e["event"]["facts"]["message_id"] == "<hostile-1@evil.example>")
        .expect("the hostile report's message_received");
    assert_eq!(hostile["event"]["facts"]["subject"], SUBJECT);

    // The head is the one `verify` proves.
    let cfg = desk.config().display().to_string();
    let o = desk.run(&["verify", "--config", &cfg]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let verified = String::from_utf8_lossy(&o.stdout).into_owned();
    let head = s(&v["head"]["hash"]);
    assert!(
        verified.contains(&format!("head {head}")),
        "{head} vs {verified}"
    );
    assert!(verified.contains(&format!("ok: {} events", v["head"]["seq"])));
}

#[test]
fn the_period_includes_from_and_excludes_to() {
    let desk = store();
    // CPR-2026-0006 opened at 2026-03-12T08:00:00Z, CPR-2026-0007 at 2026-04-01T10:00:00Z.
    let v: Value = serde_json::from_str(&audit(
        &desk,
        &[
            "export",
            "--from",
            "2026-03-12T08:00:00Z",
            "--to",
            "2026-04-01T10:00:00Z",
            "--format",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(v["cases"], serde_json::json!(["CPR-2026-0006"]));

    let cfg = desk.config().display().to_string();
    for (from, to, says) in [
        (
            "2026-13-01",
            "2027-01-01",
            "--from \"2026-13-01\" is neither a date",
        ),
        ("2026-01-01", "2026-01-01", "is not before --to"),
    ] {
        let o = desk.run(&[
            "audit", "report", "--config", &cfg, "--from", from, "--to", to,
        ]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(says),
            "{}",
            text(&o)
        );
    }
    // An empty period is an answer, not an error: zeros, and a note.
    let o = desk.run(&[
        "audit",
        "report",
        "--config",
        &cfg,
        "--from",
        "2030-01-01",
        "--to",
        "2031-01-01",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("reports 0  cases 0"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("note: no case was opened"));
}
