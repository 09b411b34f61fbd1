//! No output of any command ever contains a reported private key: not a line of its base64,
//! not its PEM marker. Runs every command over the scenarios that carry private keys.

mod common;

use std::path::Path;

use common::*;

const KEY_FILES: &[&str] = &[
    "key-rsa-pkcs8.pem",
    "key-rsa-pkcs1.pem",
    "key-ec-sec1.pem",
    "key-encrypted-pkcs8.pem",
    "key-demo-pkcs8.pem",
];

/// Every base64 line of every private key fixture (short final lines excluded: four
/// characters can occur anywhere by chance).
fn secret_lines() -> Vec<String> {
    let mut out = Vec::new();
    for f in KEY_FILES {
        let pem = std::fs::read_to_string(material(f)).unwrap();
        for l in pem.lines() {
            if !l.starts_with("-----") && l.len() >= 16 {
                out.push(l.to_string());
            }
        }
    }
    assert!(out.len() > 40, "the key fixtures are where they should be");
    out
}

fn assert_clean(what: &str, output: &str, secrets: &[String]) {
    let marker = regex::Regex::new(r"BEGIN [A-Z0-9 ]*PRIVATE KEY").unwrap();
    assert!(
        !marker.is_match(output),
        "{what} prints a private key marker:\n{output}"
    );
    for s in secrets {
        assert!(
            !output.contains(s.as_str()),
            "{what} prints a line of a private key ({s}):\n{output}"
        );
    }
}

fn all_output(desk: &Desk, args: &[&str]) -> String {
    let o = desk.run(args);
    text(&o)
}

fn check_scenario(name: &str, at: &str) {
    let secrets = secret_lines();
    let dir = scenario(name);
    let inbox = dir.join("inbox");
    let sent = dir.join("sent");

    // replay, both formats.
    for format in ["json", "text"] {
        let o = replay_dirs(
            &inbox,
            sent.is_dir().then_some(sent.as_path()),
            None,
            at,
            format,
        );
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert_clean(
            &format!("replay --format {format} ({name})"),
            &text(&o),
            &secrets,
        );
    }

    // ingest into a store, then every reading command.
    let desk = Desk::with_store();
    let cfg = desk.config().display().to_string();
    let p = |x: &Path| x.display().to_string();
    let ingest_inbox = desk.run(&["ingest", "--config", &cfg, "--role", "inbox", &p(&inbox)]);
    assert_eq!(
        ingest_inbox.status.code(),
        Some(0),
        "{}",
        text(&ingest_inbox)
    );
    assert_clean("ingest (inbox)", &text(&ingest_inbox), &secrets);
    if sent.is_dir() {
        let o = desk.run(&["ingest", "--config", &cfg, "--role", "sent", &p(&sent)]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert_clean("ingest (sent)", &text(&o), &secrets);
    }
    for format in ["json", "text"] {
        let o = desk.run(&["ingest", "--config", &cfg, "--format", format, &p(&inbox)]);
        assert_clean(
            &format!("ingest again --format {format}"),
            &text(&o),
            &secrets,
        );
        let o = desk.run(&["status", "--config", &cfg, "--at", at, "--format", format]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert_clean(&format!("status --format {format}"), &text(&o), &secrets);
        let o = desk.run(&["status", "--config", &cfg, "--format", format]);
        assert_clean(
            &format!("status (now) --format {format}"),
            &text(&o),
            &secrets,
        );
    }
    let ids = case_ids(&replay(name, at));
    assert!(!ids.is_empty());
    for id in &ids {
        for format in ["json", "text"] {
            let o = desk.run(&["case", "--config", &cfg, id, "--at", at, "--format", format]);
            assert_eq!(o.status.code(), Some(0), "case {id}: {}", text(&o));
            assert_clean(&format!("case {id} --format {format}"), &text(&o), &secrets);
        }
    }
    let o = desk.run(&["verify", "--config", &cfg]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_clean(
        "verify",
        &all_output(&desk, &["verify", "--config", &cfg]),
        &secrets,
    );
    let o = desk.run(&["check-config", "--config", &cfg]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_clean("check-config", &text(&o), &secrets);
    for (command, formats) in [
        ("export", ["md", "csv", "json"]),
        ("report", ["text", "md", "json"]),
    ] {
        for format in formats {
            let args = [
                "audit",
                command,
                "--config",
                &cfg,
                "--from",
                "2000-01-01",
                "--to",
                "2100-01-01",
                "--at",
                at,
                "--format",
                format,
            ];
            let o = desk.run(&args);
            assert_eq!(o.status.code(), Some(0), "{}", text(&o));
            assert!(
                o.stdout.len() > 200,
                "audit {command} --format {format}: {}",
                text(&o)
            );
            assert_clean(
                &format!("audit {command} --format {format}"),
                &text(&o),
                &secrets,
            );
        }
    }
}

#[test]
fn no_command_prints_a_reported_private_key_keys_scenario() {
    check_scenario("keys", "2026-09-02T00:00:00Z");
}

#[test]
fn no_command_prints_a_reported_private_key_revocation_scenario() {
    check_scenario("revocation", "2026-04-20T00:00:00Z");
}

#[test]
fn no_command_prints_a_reported_private_key_demo_maildir() {
    let secrets = secret_lines();
    let maildir = root().join("fixtures/maildir");
    let desk = Desk::with_store();
    let cfg = desk.config().display().to_string();
    let md = maildir.display().to_string();
    let o = desk.run(&["ingest", "--config", &cfg, &md]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_clean("ingest (maildir)", &text(&o), &secrets);
    for format in ["json", "text"] {
        let o = desk.run(&[
            "status",
            "--config",
            &cfg,
            "--at",
            "2026-03-20T00:00:00Z",
            "--format",
            format,
        ]);
        assert_clean(&format!("status --format {format}"), &text(&o), &secrets);
        let o = desk.run(&[
            "case",
            "--config",
            &cfg,
            "CPR-2026-0001",
            "--at",
            "2026-03-20T00:00:00Z",
            "--format",
            format,
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert_clean(&format!("case --format {format}"), &text(&o), &secrets);
    }
}
