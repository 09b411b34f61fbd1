//! `cprwatch run` as a user runs it: a real process watching a Maildir.
//!
//! The test waits for the service to notice a file (polling its store, bounded), never for a
//! deadline: clock logic is tested with explicit times elsewhere.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const REPORT: &str = "Received: from relay.reporter.test by mx.example-ca.test; Mon, 02 Mar 2026 10:00:00 +0000\r\n\
From: Rita Reporter <rita@reporter.test>\r\n\
To: cpr@example-ca.test\r\n\
Subject: Key compromise: private key published\r\n\
Message-ID: <svc-report@reporter.test>\r\n\
\r\n\
The private key of https://crt.sh/?id=987654321 was published and is compromised.\r\n";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cprwatch")
}

fn maildir(root: &Path) {
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(root.join(sub)).unwrap();
    }
}

fn status_json(config: &Path) -> serde_json::Value {
    let out = Command::new(bin())
        .args([
            "status",
            "--format",
            "json",
            "--at",
            "2026-03-02T12:00:00Z",
            "--config",
        ])
        .arg(config)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

#[test]
fn run_ingests_new_maildir_files_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("mail");
    maildir(&md);
    let config = dir.path().join("c.toml");
    fs::write(
        &config,
        "[revocation]\nenabled = false\nrequire_verified = false\n[enrich]\nenabled = false\n[desk]\nstaff_domains = [\"example-ca.test\"]\n[store]\npath = \"s.sqlite\"\n\
         [clock]\ntick_seconds = 1\n[[maildir]]\npath = \"mail\"\npoll_seconds = 1\n",
    )
    .unwrap();
    let child = Command::new(bin())
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Deliver the way an MDA does: write in tmp/, rename into new/.
    fs::write(md.join("tmp/1772445600.M1P1.mx"), REPORT).unwrap();
    fs::rename(
        md.join("tmp/1772445600.M1P1.mx"),
        md.join("new/1772445600.M1P1.mx"),
    )
    .unwrap();

    let start = Instant::now();
    let cases = loop {
        let v = status_json(&config);
        if let Some(c) = v["cases"].as_array().filter(|c| !c.is_empty()) {
            break c.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "service never ingested the message"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(cases[0]["id"], "CPR-2026-0001");
    assert_eq!(cases[0]["clocks"][1]["certificate"], "crtsh:987654321");
    assert_eq!(cases[0]["clocks"][1]["basis"], "key-compromise");

    // The MUA marks it read: new/ → cur/ with flags. Same position: nothing new.
    fs::rename(
        md.join("new/1772445600.M1P1.mx"),
        md.join("cur/1772445600.M1P1.mx:2,S"),
    )
    .unwrap();

    let kill = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\n{stderr}", out.status);
    assert!(stderr.contains("case opened"), "{stderr}");
    assert!(stderr.contains("shutting down"), "{stderr}");

    // Everything it did is in the log, intact, once.
    let v = Command::new(bin())
        .args(["verify", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    let again = Command::new(bin())
        .args(["ingest", "--format", "json", "--config"])
        .arg(&config)
        .arg(&md)
        .output()
        .unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(summary["new_messages"], 0, "{summary}");
}

#[test]
fn run_refuses_a_bad_config_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    fs::write(
        &config,
        "[desk]\nstaff_domains = []\nstaff_domain = [\"typo.test\"]\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("staff_domain") && err.contains("c.toml"),
        "{err}"
    );
}
