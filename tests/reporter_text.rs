//! Nothing a reporter writes reaches a person raw: a report whose Subject and Message-Id carry
//! terminal escape sequences, control characters, bidirectional overrides and a forged log line
//! goes through `ingest`, `case`, `status`, `replay` and `cprwatch run` (text and JSON logs).
//! Text shows every such character as a visible escape; logs quote it; JSON decodes to exactly
//! what was received.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{bin, text};

/// The subject as the reporter means it: clear the screen, turn red, ring the bell, back up,
/// an 8-bit CSI, then (after a line break) a line that reads like the service's own, and a
/// right-to-left override and an isolate.
const SUBJECT: &str = "Key compromise\x1b[2J\x1b[31m\x07\x08\u{9b}31m\r\n2026-03-02T10:00:00.000000Z  INFO cprwatch::service: clock stopped clock=revocation:crtsh:987654321 state=\"met\" at=2026-03-02T10:05:00Z \u{202e}gpj.exe\u{2066}x\u{2069}";

/// A forged line as it would appear raw in the text log.
const FORGED: &str = " state=\"met\"";

/// RFC 2047 Q-encoding of every byte, so any character can travel in a header.
fn q_encode(s: &str) -> String {
    let mut out = String::from("=?utf-8?q?");
    for b in s.bytes() {
        out.push_str(&format!("={b:02X}"));
    }
    out.push_str("?=");
    out
}

fn report() -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(
        b"Received: from relay.reporter.test by mx.example-ca.test; Mon, 02 Mar 2026 10:00:00 +0000\r\n",
    );
    m.extend_from_slice(
        format!(
            "From: {} <eve@reporter.test>\r\n",
            q_encode("Eve\x1b]0;owned\x07\u{202e}")
        )
        .as_bytes(),
    );
    m.extend_from_slice(b"To: cpr@example-ca.test\r\n");
    m.extend_from_slice(format!("Subject: {}\r\n", q_encode(SUBJECT)).as_bytes());
    // A raw ESC in the Message-Id: 8-bit junk as some senders write it.
    m.extend_from_slice(b"Message-ID: <evil\x1b[31m@reporter.test>\r\n");
    m.extend_from_slice(b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
    m.extend_from_slice(
        "The private key of https://crt.sh/?id=987654321 was published.\r\n".as_bytes(),
    );
    m
}

/// The subject as the store holds it (the parser unfolds whitespace, line breaks included).
fn stored_subject() -> String {
    let s = cprwatch::reading::parse::parse(&report()).subject;
    // The test only means something if the hazards survive parsing.
    assert!(
        s.contains('\x1b') && s.contains('\u{202e}') && s.contains('\u{9b}'),
        "{s:?}"
    );
    s
}

/// A Maildir holding the hostile report, and a configuration watching it.
fn setup(dir: &Path) -> std::path::PathBuf {
    let md = dir.join("mail");
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(md.join(sub)).unwrap();
    }
    fs::write(md.join("new/1772445600.M1P1.mx"), report()).unwrap();
    let config = dir.join("c.toml");
    fs::write(
        &config,
        "[revocation]\nenabled = false\nrequire_verified = false\n[enrich]\nenabled = false\n[desk]\nstaff_domains = [\"example-ca.test\"]\n[store]\npath = \"s.sqlite\"\n\
         [clock]\ntick_seconds = 1\n[[maildir]]\npath = \"mail\"\npoll_seconds = 1\n",
    )
    .unwrap();
    config
}

fn cprwatch(config: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("RUST_LOG")
        .env_remove("CPRWATCH_CONFIG")
        .output()
        .unwrap()
}

/// No character a terminal acts on, other than the line breaks of the output itself.
#[track_caller]
fn assert_inert(what: &str, s: &str) {
    if let Some(c) = s
        .chars()
        .find(|&c| c != '\n' && cprwatch::escape::is_hazard(c))
    {
        panic!("{what} holds a raw {c:?}:\n{s}");
    }
}

#[test]
fn text_output_shows_escapes_and_json_keeps_the_exact_string() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let ingest = cprwatch(&config, &["ingest"]);
    assert!(ingest.status.success(), "{}", text(&ingest));
    let subject = stored_subject();

    let case = cprwatch(
        &config,
        &["case", "CPR-2026-0001", "--at", "2026-03-02T12:00:00Z"],
    );
    assert!(case.status.success(), "{}", text(&case));
    let out = String::from_utf8(case.stdout).unwrap();
    assert_inert("case", &out);
    let shown = cprwatch::escape::text(&subject);
    assert!(
        out.lines().any(|l| l == format!("subject:  {shown}")),
        "subject line missing:\n{out}"
    );
    assert!(out.contains("<evil\\x1b[31m@reporter.test>"), "{out}");
    // The forged text stays inside the subject line: no line of its own.
    for line in out.lines() {
        assert!(
            !line.contains("clock stopped") || line.starts_with("subject:  "),
            "forged line: {line}\n{out}"
        );
    }

    for args in [
        &["status", "--at", "2026-03-02T12:00:00Z"][..],
        &["verify"][..],
        &["check-config"][..],
    ] {
        let o = cprwatch(&config, args);
        assert_inert(args[0], &String::from_utf8(o.stdout).unwrap());
        assert_inert(args[0], &String::from_utf8(o.stderr).unwrap());
    }

    // JSON: valid, inert bytes, and decoded it is exactly what was received.
    for args in [
        &["case", "CPR-2026-0001", "--format", "json"][..],
        &["status", "--format", "json", "--at", "2026-03-02T12:00:00Z"][..],
    ] {
        let o = cprwatch(&config, args);
        let raw = String::from_utf8(o.stdout).unwrap();
        assert_inert(args[0], &raw);
        let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
        let case = if args[0] == "case" {
            &v
        } else {
            &v["cases"][0]
        };
        assert_eq!(case["subject"], subject.as_str(), "{raw}");
        assert_eq!(
            case["messages"][0]["message_id"],
            "<evil\x1b[31m@reporter.test>"
        );
    }
    let replay = Command::new(bin())
        .args(["replay", "--at", "2026-03-02T12:00:00Z", "--config"])
        .arg(&config)
        .arg("--inbox")
        .arg(dir.path().join("mail"))
        .output()
        .unwrap();
    let raw = String::from_utf8(replay.stdout).unwrap();
    assert_inert("replay", &raw);
    let v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v["cases"][0]["subject"], subject.as_str());
}

/// Run the service until the report's case is in the store, stop it, return its log.
fn service_log(log_format: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let child = Command::new(bin())
        .args(["run", "--log-format", log_format, "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let o = cprwatch(
            &config,
            &["status", "--format", "json", "--at", "2026-03-02T12:00:00Z"],
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        if v["cases"].as_array().is_some_and(|c| !c.is_empty()) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the service never ingested the report"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let kill = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{log}");
    assert!(log.contains("shutting down"), "{log}");
    log
}

#[test]
fn text_service_log_quotes_reporter_text_and_cannot_be_forged() {
    let log = service_log("text");
    assert_inert("text log", &log);
    let subject = stored_subject();
    let opened = log
        .lines()
        .find(|l| l.contains("case opened"))
        .unwrap_or_else(|| panic!("no case opened line:\n{log}"));
    let quoted = cprwatch::escape::log_value(&subject);
    assert!(quoted.starts_with('"'), "{quoted}");
    assert!(
        opened.ends_with(&format!(" subject={quoted}")),
        "{opened}\n{quoted}"
    );
    assert!(
        log.contains("message_id=\"<evil\\x1b[31m@reporter.test>\""),
        "{log}"
    );
    // Every line is one of the service's own: timestamp, level, target, message.
    for line in log.lines() {
        let mut words = line.split_whitespace();
        let (t, level) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        assert!(t.starts_with("20") && t.ends_with('Z'), "{line}");
        assert!(
            ["INFO", "WARN", "ERROR", "DEBUG"].contains(&level),
            "{line}"
        );
        assert!(!line.contains(FORGED), "forged field: {line}");
        assert!(!line.contains("clock stopped") || line == opened, "{line}");
    }
}

#[test]
fn json_service_log_is_one_object_a_line_and_decodes_to_the_subject() {
    let log = service_log("json");
    assert_inert("json log", &log);
    let subject = stored_subject();
    let mut opened = None;
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}\n{log}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
        if v["message"] == "case opened" {
            opened = Some(v);
        }
    }
    let opened = opened.unwrap_or_else(|| panic!("no case opened:\n{log}"));
    assert_eq!(opened["subject"], subject.as_str());
    assert_eq!(opened["case"], "CPR-2026-0001");
    assert!(
        log.lines()
            .any(|l| l.contains("\"message\":\"clock started\"")),
        "{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("\"message\":\"clock stopped\""))
    );
}
