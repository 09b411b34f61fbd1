//! `cprwatch run` against a real Dovecot on loopback: initial sync, IDLE, Junk and Sent,
//! Dovecot killed mid-sync, UIDVALIDITY reset, wrong password, untrusted TLS.
//!
//! The tests wait for the service to reach a state (polling its store, bounded); they never
//! sleep for a deadline.

mod support;

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::dovecot::Dovecot;
use time::OffsetDateTime;
use time::macros::datetime;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cprwatch")
}

/// A realistic report; `n` makes each one distinct.
fn report(n: usize) -> Vec<u8> {
    format!(
        "Received: from relay.reporter.test by mx.example-ca.test; Mon, 02 Mar 2026 10:00:00 +0000\r\n\
         From: Reporter {n} <reporter{n}@reporter.test>\r\n\
         To: cpr@example-ca.test\r\n\
         Subject: Key compromise report {n}\r\n\
         Message-ID: <imap-{n}@reporter.test>\r\n\
         \r\n\
         The private key of https://crt.sh/?id={} was published and is compromised.\r\n",
        1_000_000 + n
    )
    .into_bytes()
}

fn answer(n: usize) -> Vec<u8> {
    format!(
        "From: Desk <cpr@example-ca.test>\r\nTo: reporter{n}@reporter.test\r\n\
         Subject: Re: Key compromise report {n}\r\nDate: Mon, 02 Mar 2026 12:00:00 +0000\r\n\
         Message-ID: <answer-{n}@example-ca.test>\r\nIn-Reply-To: <imap-{n}@reporter.test>\r\n\r\n\
         We are investigating.\r\n"
    )
    .into_bytes()
}

fn internal(n: usize) -> OffsetDateTime {
    datetime!(2026-03-02 10:00 UTC) + time::Duration::seconds(n as i64)
}

/// A service process with its own config and store.
struct Service {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Service {
    fn config(dovecot: &Dovecot, tls: &str, port: u16, password: &str, ca: bool) -> Service {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("pw"), format!("{password}\n")).unwrap();
        let ca_line = if ca {
            format!("ca_file = {:?}\n", dovecot.ca_file())
        } else {
            String::new()
        };
        fs::write(
            dir.path().join("c.toml"),
            format!(
                "[revocation]\nenabled = false\nrequire_verified = false\n[enrich]\nenabled = false\n[desk]\nstaff_domains = [\"example-ca.test\"]\n[store]\npath = \"s.sqlite\"\n\
                 [clock]\ntick_seconds = 1\n\
                 [[mailbox]]\nname = \"cpr\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"{tls}\"\n{ca_line}\
                 username = \"cpr\"\npassword_file = \"pw\"\npoll_seconds = 30\nfetch_batch = 250\n\
                 stale_after = \"10m\"\n\
                 folders = [{{ name = \"INBOX\", role = \"inbox\" }}, {{ name = \"Junk\", role = \"junk\" }}, {{ name = \"Sent\", role = \"sent\" }}]\n"
            ),
        )
        .unwrap();
        Service { dir, child: None }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start(&mut self) {
        let child = Command::new(bin())
            .args(["run", "--config"])
            .arg(self.path("c.toml"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(fs::File::create(self.path("service.log")).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// SIGTERM and wait; the exit must be clean.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let status = child.wait().unwrap();
            assert!(status.success(), "service exit {status:?}\n{}", self.log());
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.path("service.log")).unwrap_or_default()
    }

    fn db(&self) -> Option<rusqlite::Connection> {
        let p = self.path("s.sqlite");
        if !p.exists() {
            return None;
        }
        rusqlite::Connection::open_with_flags(&p, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()
    }

    fn count(&self, sql: &str) -> i64 {
        self.db()
            .and_then(|c| c.query_row(sql, [], |r| r.get(0)).ok())
            .unwrap_or(0)
    }

    /// Every event's `event` object, decoded: bodies are stored compactly, so SQL cannot look
    /// inside them.
    fn events(&self) -> Vec<serde_json::Value> {
        let Some(db) = self.db() else {
            return Vec::new();
        };
        let Ok(mut st) = db.prepare("SELECT body, encoding, size FROM events ORDER BY seq") else {
            return Vec::new();
        };
        st.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get(1)?, r.get(2)?)))
            .map(|rows| {
                rows.filter_map(Result::ok)
                    .map(|(b, e, n)| {
                        let body = cprwatch::store::event_body(&db, &b, e, n).unwrap();
                        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                        v["event"].clone()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the cases and clocks are derived from every event recorded (a derivation commits
    /// the mail with its first piece and may take more commits to finish).
    fn derived(&self) -> bool {
        let through =
            self.count("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'tables_through'");
        through > 0 && through == self.count("SELECT max(seq) FROM events")
    }

    fn received(&self) -> i64 {
        self.events()
            .iter()
            .filter(|e| e["type"] == "message_received")
            .count() as i64
    }

    fn wait_until(&self, what: &str, limit: Duration, mut ok: impl FnMut(&Service) -> bool) {
        let start = Instant::now();
        while !ok(self) {
            assert!(
                start.elapsed() < limit,
                "timed out waiting for {what}\n--- service log ---\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn status(&self) -> (i32, serde_json::Value) {
        let out = Command::new(bin())
            .args(["status", "--format", "json", "--config"])
            .arg(self.path("c.toml"))
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            serde_json::from_slice(&out.stdout).unwrap_or_default(),
        )
    }

    fn verify(&self) {
        let out = Command::new(bin())
            .args(["verify", "--config"])
            .arg(self.path("c.toml"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn deliver(
    dovecot: &Dovecot,
    folder: &str,
    range: std::ops::Range<usize>,
    make: fn(usize) -> Vec<u8>,
) {
    // The desk's answers reach the Sent folder two hours after the reports arrive.
    let later = if folder == "Sent" {
        time::Duration::hours(2)
    } else {
        time::Duration::ZERO
    };
    let batch: Vec<(Vec<u8>, OffsetDateTime)> =
        range.map(|n| (make(n), internal(n) + later)).collect();
    dovecot.append_many("cpr", folder, &batch);
}

#[test]
fn initial_sync_then_idle_with_junk_and_sent() {
    let mut dovecot = Dovecot::start();
    deliver(&dovecot, "INBOX", 0..3000, report);
    deliver(&dovecot, "Junk", 3000..3010, report);
    deliver(&dovecot, "Sent", 0..5, answer);
    let mut svc = Service::config(&dovecot, "none", dovecot.imap_port(), "cpr-secret", false);
    svc.start();
    svc.wait_until(
        "initial sync of 3015 messages",
        Duration::from_secs(180),
        |s| s.received() == 3015,
    );

    // Receipt time is the server's INTERNALDATE, not the Received: header (10:00:00).
    let t = svc
        .events()
        .iter()
        .find(|e| e["facts"]["message_id"] == "<imap-42@reporter.test>")
        .map(|e| e["facts"]["received_at"].clone())
        .unwrap();
    assert_eq!(t, "2026-03-02T10:00:42Z");

    // A Junk report opened a case; a Sent answer met its case's preliminary-report clock.
    let (_, status) = svc.status();
    let cases = status["cases"].as_array().unwrap();
    assert!(
        cases
            .iter()
            .any(|c| c["reporter"] == "reporter3005@reporter.test")
    );
    let answered = svc
        .events()
        .iter()
        .filter(|e| {
            e["type"] == "clock_stopped"
                && e["clock"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("preliminary_report:"))
        })
        .count();
    assert_eq!(answered, 5);

    // A new message while the service IDLEs is noticed without waiting for the 30 s poll.
    dovecot.wait_for_idle("cpr");
    let sent_at = Instant::now();
    dovecot.append("cpr", "INBOX", &report(9999), internal(9999));
    svc.wait_until(
        "the message appended during IDLE",
        Duration::from_secs(20),
        |s| s.received() == 3016,
    );
    assert!(
        sent_at.elapsed() < Duration::from_secs(10),
        "{:?}",
        sent_at.elapsed()
    );

    // Every message once; every position once.
    assert_eq!(
        svc.events()
            .iter()
            .filter(|e| e["type"] == "message_received")
            .map(|e| e["facts"]["content_hash"].to_string())
            .collect::<std::collections::HashSet<_>>()
            .len(),
        3016
    );
    assert_eq!(
        svc.count("SELECT count(*) FROM positions WHERE position LIKE 'imap:cpr/%'"),
        3016
    );
    let (code, status) = svc.status();
    assert_eq!(code, 0, "{status}");
    assert!(
        status["sources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["stale"] == false)
    );
    svc.stop();
    svc.verify();

    // The first sync's large batches are logged as counts, not a line per event; the message
    // that arrived alone during IDLE gets its own lines.
    let log = svc.log();
    assert!(log.contains("batch committed"), "{log}");
    assert!(log.contains("clocks BREACHED"), "{log}");
    let lines = log.lines().count();
    assert!(lines < 500, "{lines} log lines for a 3,016-message sync");
    assert!(log.contains("<imap-9999@reporter.test>"), "{log}");
    dovecot.stop();
}

#[test]
fn dovecot_killed_mid_sync_loses_nothing_and_doubles_nothing() {
    let mut dovecot = Dovecot::start();
    deliver(&dovecot, "INBOX", 0..4000, report);
    let mut svc = Service::config(&dovecot, "none", dovecot.imap_port(), "cpr-secret", false);
    svc.start();
    svc.wait_until("the sync to start", Duration::from_secs(60), |s| {
        s.received() > 0
    });
    dovecot.kill();
    let during = svc.received();
    assert!(
        during < 4000,
        "the sync finished before the kill; load more messages"
    );
    svc.wait_until("the outage to be recorded", Duration::from_secs(30), |s| {
        s.status().1["sources"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| !x["last_error"].is_null()))
    });
    dovecot.restart();
    svc.wait_until(
        "the sync to finish after the restart",
        Duration::from_secs(180),
        |s| s.received() == 4000,
    );
    assert_eq!(
        svc.count("SELECT count(*) FROM positions WHERE position LIKE 'imap:cpr/INBOX/%'"),
        4000
    );
    // Logged once per change of state, not once per retry.
    let log = svc.log();
    let failures = log.matches("folder cannot be synced").count();
    assert!(failures <= 3 * 2, "{failures} failure lines:\n{log}");
    assert!(log.contains("folder syncing again"), "{log}");
    svc.stop();
    svc.verify();
}

#[test]
fn a_uidvalidity_reset_re_reads_without_duplicates() {
    let dovecot = Dovecot::start();
    deliver(&dovecot, "Junk", 0..200, report);
    let mut svc = Service::config(&dovecot, "none", dovecot.imap_port(), "cpr-secret", false);
    svc.start();
    svc.wait_until("the Junk folder", Duration::from_secs(60), |s| {
        s.received() == 200 && s.derived()
    });
    let events_before = svc.count("SELECT count(*) FROM events");
    svc.stop();

    // The folder is deleted and recreated with the same messages: a new UIDVALIDITY.
    dovecot.delete_folder("cpr", "Junk");
    dovecot.create_folder("cpr", "Junk");
    deliver(&dovecot, "Junk", 0..200, report);
    svc.start();
    svc.wait_until("the re-scan", Duration::from_secs(60), |s| {
        s.count("SELECT count(*) FROM positions WHERE position LIKE 'imap:cpr/Junk/%'") == 400
    });
    svc.stop();
    assert_eq!(svc.received(), 200, "no message counted twice");
    let new_events = svc.count("SELECT count(*) FROM events") - events_before;
    assert!(
        new_events <= 1,
        "only clock changes may appear, got {new_events}"
    );
    assert!(svc.log().contains("UIDVALIDITY changed"), "{}", svc.log());
    svc.verify();
}

#[test]
fn a_wrong_password_is_a_clear_error_retried_until_fixed() {
    let mut dovecot = Dovecot::start();
    deliver(&dovecot, "INBOX", 0..3, report);
    let mut svc = Service::config(
        &dovecot,
        "none",
        dovecot.imap_port(),
        "not-the-password",
        false,
    );
    fs::write(svc.path("c.toml"), fs::read_to_string(svc.path("c.toml")).unwrap().replace(
        "folders = [{ name = \"INBOX\", role = \"inbox\" }, { name = \"Junk\", role = \"junk\" }, { name = \"Sent\", role = \"sent\" }]",
        "folders = [{ name = \"INBOX\", role = \"inbox\" }]",
    ))
    .unwrap();
    svc.start();
    svc.wait_until(
        "the failure to show in status",
        Duration::from_secs(30),
        |s| s.status().1["sources"][0]["last_error"].is_string(),
    );
    let (code, status) = svc.status();
    assert_eq!(code, 3, "a failing folder makes status exit 3: {status}");
    let err = status["sources"][0]["last_error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        err.to_lowercase().contains("auth") || err.to_lowercase().contains("login"),
        "{err}"
    );
    assert!(!err.contains("not-the-password"), "{err}");
    assert!(!svc.log().contains("not-the-password"));
    // Still running: fix the secret, and the next attempt succeeds.
    fs::write(svc.path("pw"), "cpr-secret\n").unwrap();
    svc.wait_until(
        "recovery after the password is fixed",
        Duration::from_secs(120),
        |s| s.received() == 3,
    );
    svc.stop();
    dovecot.stop();
}

#[test]
fn tls_with_an_untrusted_certificate_is_refused() {
    let mut dovecot = Dovecot::start();
    deliver(&dovecot, "INBOX", 0..2, report);
    // IMAPS without ca_file: the self-signed certificate is not trusted.
    let mut svc = Service::config(
        &dovecot,
        "implicit",
        dovecot.imaps_port(),
        "cpr-secret",
        false,
    );
    svc.start();
    svc.wait_until(
        "the TLS failure to show in status",
        Duration::from_secs(30),
        |s| s.status().1["sources"][0]["last_error"].is_string(),
    );
    let err = svc.status().1["sources"][0]["last_error"]
        .as_str()
        .unwrap()
        .to_lowercase();
    assert!(err.contains("tls") || err.contains("certificate"), "{err}");
    assert_eq!(svc.received(), 0);
    svc.stop();

    // With the server's certificate as ca_file it connects and syncs.
    let mut trusted = Service::config(
        &dovecot,
        "implicit",
        dovecot.imaps_port(),
        "cpr-secret",
        true,
    );
    trusted.start();
    trusted.wait_until("the sync over verified TLS", Duration::from_secs(60), |s| {
        s.received() == 2
    });
    trusted.stop();
    dovecot.stop();
}
