//! Receipts to reporters, end to end on real servers: `cprwatch run` reads reports (from a
//! Maildir, and from the test Dovecot over IMAP IDLE), and replies to each report that opens a
//! case through a test Postfix, which delivers into Dovecot, where the tests read the receipts
//! back over IMAP as the reporter would. Every loop-protection rule gets a report that must
//! get no receipt; a hostile subject and display name must not add a header.

mod support;

use std::time::{Duration, Instant};

use support::dovecot::Dovecot;
use support::postfix::Postfix;
use support::service::{Cprwatch, header, inbox, report, settled};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

fn config(smtp_port: u16, extra: &str) -> String {
    format!(
        "[desk]\nstaff_domains = [\"example-ca.test\"]\nstaff_addresses = [\"staff@example-ca.test\"]\n\
         [clock]\ntick_seconds = 1\n\
         [smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\ntls = \"none\"\n\
         from = \"cprwatch@example-ca.test\"\ntimeout = \"10s\"\n\
         [receipts]\nenabled = true\nmax_per_sender_per_hour = 2\nskip_junk = true\n{extra}"
    )
}

/// The header section of a delivered mail, one unfolded field per line.
fn header_lines(mail: &str) -> Vec<String> {
    let head = mail.split("\r\n\r\n").next().unwrap_or("");
    let mut out: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.push_str(line);
            }
        } else {
            out.push(line.to_string());
        }
    }
    out
}

/// A report with extra header lines (`extra` ends each with CRLF) before the body.
fn with_headers(extra: &str, raw: Vec<u8>) -> Vec<u8> {
    let mut out = extra.as_bytes().to_vec();
    out.extend(raw);
    out
}

#[test]
fn a_report_gets_one_receipt_threaded_to_it_and_automatic_or_own_mail_gets_none() {
    let dovecot = Dovecot::start();
    let postfix = Postfix::start(&dovecot.dir().join("mail"));
    let mut w = Cprwatch::new(&config(postfix.smtp_port(), ""));
    let now = OffsetDateTime::now_utc();
    let recent = now - time::Duration::minutes(5);
    let body =
        "The certificate https://crt.sh/?id=424242 was issued for a domain we never asked for.";
    let me = "reporter@example-ca.test";
    // The one that gets a receipt.
    w.deliver(
        "legit",
        &report("legit-1@reporter.test", me, "Legit-1", body, recent),
    );
    // Automatic or list mail, even when it names a certificate (and opens a case).
    w.deliver(
        "auto",
        &with_headers(
            "Auto-Submitted: auto-generated\r\n",
            report("auto@r.test", me, "Loop-Auto", body, recent),
        ),
    );
    w.deliver(
        "bulk",
        &with_headers(
            "Precedence: bulk\r\n",
            report("bulk@r.test", me, "Loop-Bulk", body, recent),
        ),
    );
    w.deliver(
        "list",
        &with_headers(
            "List-Id: <cpr.lists.example.test>\r\n",
            report("list@r.test", me, "Loop-List", body, recent),
        ),
    );
    w.deliver(
        "null",
        &with_headers(
            "Return-Path: <>\r\n",
            report("null@r.test", me, "Loop-Null", body, recent),
        ),
    );
    w.deliver(
        "daemon",
        &report(
            "daemon@r.test",
            "MAILER-DAEMON@example-ca.test",
            "Loop-Daemon",
            body,
            recent,
        ),
    );
    w.deliver(
        "own",
        &report(
            "own@r.test",
            "cprwatch@example-ca.test",
            "Loop-Own",
            body,
            recent,
        ),
    );
    // In Junk, with skip_junk.
    w.deliver_to(
        ".Junk",
        "junk",
        &report("junk@r.test", me, "Loop-Junk", body, recent),
    );
    // Staff-authored: in the Sent folder.
    w.deliver_to(
        ".Sent",
        "staff",
        &report(
            "staff@r.test",
            "staff@example-ca.test",
            "Loop-Staff",
            body,
            recent,
        ),
    );
    // Received three days ago (a first sync of an old mailbox): too late for a receipt.
    w.deliver(
        "old",
        &report(
            "old@r.test",
            me,
            "Loop-Old",
            body,
            now - time::Duration::days(3),
        ),
    );
    // Three reports from one sender in an hour: two receipts.
    for i in 1..=3 {
        w.deliver(
            &format!("rate{i}"),
            &report(
                &format!("rate-{i}@r.test"),
                "other@example-ca.test",
                &format!("Rate-{i}"),
                body,
                recent,
            ),
        );
    }
    // A hostile subject and display name, RFC 2047-encoded CR LF and a header after it.
    let hostile = format!(
        "Received: from mail.reporter.test by mx.example-ca.test; {date}\r\n\
         From: =?utf-8?q?Eve=0D=0ABcc:_desk@example-ca.test?= <{me}>\r\n\
         To: cpr@example-ca.test\r\n\
         Subject: =?utf-8?q?Inject=0D=0ABcc:_desk@example-ca.test=0D=0AX-Evil:_1?=\r\n\
         Message-ID: <inject@r.test>\r\nDate: {date}\r\n\r\n{body}\r\n",
        date = recent.format(&Rfc2822).unwrap()
    );
    w.deliver("inject", hostile.as_bytes());
    w.start();

    let wait = Duration::from_secs(60);
    let legit = inbox(&dovecot, "reporter", "Legit-1", wait);
    let inject = inbox(&dovecot, "reporter", "<inject@r.test>", wait);
    inbox(&dovecot, "other", "Rate-", wait);
    settled(&w);
    w.stop();

    // The reporter got exactly two receipts: Legit-1's and the hostile one's.
    let all = inbox(&dovecot, "reporter", "X-CPR-Case", Duration::ZERO);
    let subjects: Vec<String> = all.iter().filter_map(|m| header(m, "Subject")).collect();
    assert_eq!(all.len(), 2, "{subjects:?}\n{}", w.log());
    let r = &legit[0];
    let subject = header(r, "Subject").unwrap();
    assert!(
        subject.starts_with("Re: Legit-1 [CPR-") && subject.ends_with(']'),
        "{subject}"
    );
    assert_eq!(
        header(r, "In-Reply-To").as_deref(),
        Some("<legit-1@reporter.test>")
    );
    assert!(
        header(r, "References")
            .unwrap()
            .contains("<legit-1@reporter.test>")
    );
    assert_eq!(header(r, "Auto-Submitted").as_deref(), Some("auto-replied"));
    let case = header(r, "X-CPR-Case").unwrap();
    assert!(subject.contains(&case), "{subject} {case}");
    let text = mail_parser::MessageParser::default()
        .parse(r.as_bytes())
        .and_then(|m| m.body_text(0).map(|t| t.into_owned()))
        .unwrap();
    assert!(text.contains("424242"), "{text}");
    assert!(text.contains("<legit-1@reporter.test>"), "{text}");
    assert!(text.contains("24 hours"), "{text}");

    // The hostile one added no header, and nobody was copied.
    let lines = header_lines(&inject[0]);
    for forged in ["Bcc:", "X-Evil:"] {
        assert!(
            !lines.iter().any(|l| l.starts_with(forged)),
            "{forged} in {lines:#?}"
        );
    }
    assert!(inbox(&dovecot, "desk", "", Duration::ZERO).is_empty());

    // Two of the three from one sender within the hour.
    let rate = inbox(&dovecot, "other", "Rate-", Duration::ZERO);
    assert_eq!(rate.len(), 2, "{rate:?}");

    // A receipt is not the preliminary report: that clock still runs.
    let (_, case_text) = w.command(&["case", &case]);
    assert!(case_text.contains("preliminary_report"), "{case_text}");
    assert!(case_text.contains("pending"), "{case_text}");
    assert!(case_text.contains("mail_sent"), "{case_text}");
    let (code, out) = w.command(&["verify"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_report_arriving_over_imap_idle_gets_its_receipt_within_seconds() {
    let dovecot = Dovecot::start();
    let postfix = Postfix::start(&dovecot.dir().join("mail"));
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "cpr-secret").unwrap();
    let mailbox = format!(
        "[[mailbox]]\nname = \"cpr\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
         username = \"cpr\"\npassword_file = \"{}\"\n\
         folders = [{{ name = \"INBOX\", role = \"inbox\" }}]\npoll_seconds = 60\n",
        dovecot.imap_port(),
        secret.path().display()
    );
    let mut w = Cprwatch::new(&config(postfix.smtp_port(), &mailbox));
    w.start();
    // Wait until the folder is synced and idling, so the measurement starts from a watcher
    // that is listening.
    w.wait_status(Duration::from_secs(60), "folder synced", |v| {
        v["sources"][0]["last_sync_at"].is_string()
    });
    dovecot.wait_for_idle("cpr");
    let mut delays = Vec::new();
    // Two: receipts are limited to two per sender per hour here.
    for i in 0..2 {
        let now = OffsetDateTime::now_utc();
        let id = format!("idle-{i}-{}@reporter.test", std::process::id());
        let body = "Please revoke https://crt.sh/?id=777 - its key is compromised.";
        let raw = report(
            &id,
            "reporter@example-ca.test",
            &format!("Idle-{i}"),
            body,
            now,
        );
        let start = Instant::now();
        dovecot.append("cpr", "INBOX", &raw, now);
        let got = inbox(&dovecot, "reporter", &id, Duration::from_secs(30));
        let delay = start.elapsed();
        assert_eq!(got.len(), 1, "no receipt for {id}\n{}", w.log());
        delays.push(delay);
    }
    eprintln!("IDLE arrival to receipt in the reporter's INBOX: {delays:?}");
    assert!(
        delays.iter().all(|d| *d < Duration::from_secs(15)),
        "{delays:?}"
    );
    w.stop();
}
