//! The test Postfix (`scripts/postfix.sh`, tests/support/postfix.rs) end to end with the test
//! Dovecot: mail submitted over SMTP on loopback lands in the Maildir Dovecot serves and is read
//! back over IMAP with cprwatch's own read-only client; refused recipients get a permanent 550;
//! nothing listens beyond 127.0.0.1. Both servers are real, installed with apt-get when missing.

mod support;

use support::listeners;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::dovecot::Dovecot;
use support::postfix::{Postfix, REFUSED};

/// A tiny SMTP client: one command, one (possibly multi-line) reply. Test scaffolding: panics
/// on I/O errors, returns the reply code and text for the test to judge.
struct Smtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Smtp {
    /// Connect and read the greeting, which must be 220.
    fn connect(port: u16) -> Smtp {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to Postfix");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        let writer = s.try_clone().expect("clone socket");
        let mut c = Smtp {
            reader: BufReader::new(s),
            writer,
        };
        let (code, text) = c.reply();
        assert_eq!(code, 220, "greeting: {text}");
        c
    }

    /// One reply: lines `NNN-...` continue, `NNN ...` ends it.
    fn reply(&mut self) -> (u16, String) {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("read from Postfix");
            assert!(!line.is_empty(), "Postfix closed the connection: {text}");
            text.push_str(&line);
            let code = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| panic!("not an SMTP reply: {line:?}"));
            if line.as_bytes().get(3) != Some(&b'-') {
                return (code, text.trim_end().to_string());
            }
        }
    }

    fn command(&mut self, line: &str) -> (u16, String) {
        write!(self.writer, "{line}\r\n").expect("send SMTP command");
        self.reply()
    }

    /// Send a command that must get `want`.
    fn expect(&mut self, line: &str, want: u16) -> String {
        let (code, text) = self.command(line);
        assert_eq!(code, want, "{line} -> {text}");
        text
    }

    /// DATA with the message (CRLF lines ending in CRLF, no line starting with a dot), then
    /// the final dot.
    fn data(&mut self, message: &str) -> String {
        self.expect("DATA", 354);
        assert!(message.ends_with("\r\n"), "message must end with CRLF");
        assert!(!message.contains("\r\n."), "dot-stuffing not implemented");
        self.writer
            .write_all(message.as_bytes())
            .expect("send message");
        self.expect(".", 250)
    }
}

fn message(message_id: &str) -> String {
    format!(
        "From: Reporter <reporter@example.org>\r\nTo: cpr@example-ca.test\r\n\
         Subject: Please revoke\r\nMessage-ID: <{message_id}>\r\n\
         Date: Sun, 01 Mar 2026 09:29:00 +0100\r\n\r\n\
         Please revoke https://crt.sh/?id=1777593900\r\n"
    )
}

#[tokio::test]
async fn mail_submitted_over_smtp_is_read_back_over_imap() {
    let dovecot = Dovecot::start();
    let postfix = Postfix::start(&dovecot.dir().join("mail"));

    let id = format!("postfix-harness-{}@example.org", std::process::id());
    let mut smtp = Smtp::connect(postfix.smtp_port());
    smtp.expect("EHLO client.example.org", 250);
    smtp.expect("MAIL FROM:<reporter@example.org>", 250);
    smtp.expect("RCPT TO:<cpr@example-ca.test>", 250);
    let queued = smtp.data(&message(&id));
    smtp.expect("QUIT", 221);

    // Delivery is asynchronous: poll the INBOX until the message is there.
    let deadline = Instant::now() + Duration::from_secs(20);
    let found = dovecot
        .wait_for_inbox("cpr", &id, Duration::from_secs(20))
        .await;
    assert!(
        !found.is_empty(),
        "message {queued:?} not in cpr's INBOX after 20 s\nPostfix log:\n{}\nDovecot log:\n{}",
        postfix.log(),
        dovecot.log()
    );
    let raw = &found[0];
    assert!(raw.contains("Delivered-To: cpr@example-ca.test"), "{raw}");
    assert!(
        raw.contains("Please revoke https://crt.sh/?id=1777593900"),
        "{raw}"
    );
    // Postfix's log tells what happened to the message. postlogd writes it asynchronously,
    // so the line may come a moment after the mail itself.
    let queue_id = queued
        .rsplit(' ')
        .next()
        .filter(|q| !q.is_empty())
        .unwrap_or_else(|| panic!("no queue id in {queued:?}"));
    let sent = format!("{queue_id}: to=<cpr@example-ca.test>, relay=virtual");
    while !postfix
        .log()
        .lines()
        .any(|l| l.contains(&sent) && l.contains("status=sent (delivered to maildir)"))
    {
        assert!(
            Instant::now() < deadline,
            "no delivery of {queue_id} in Postfix's log after 20 s:\n{}",
            postfix.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn refused_recipients_get_a_permanent_550() {
    let dovecot = Dovecot::start();
    let postfix = Postfix::start(&dovecot.dir().join("mail"));

    let mut smtp = Smtp::connect(postfix.smtp_port());
    smtp.expect("EHLO client.example.org", 250);
    smtp.expect("MAIL FROM:<reporter@example.org>", 250);
    let refused = smtp.expect(&format!("RCPT TO:<{REFUSED}>"), 550);
    assert!(refused.contains("5.1.1"), "{refused}");
    assert!(refused.contains("refused for the test"), "{refused}");
    // Unknown mailboxes and outside domains are refused too: nothing is queued for them.
    let unknown = smtp.expect("RCPT TO:<nobody-here@example-ca.test>", 550);
    assert!(unknown.contains("User unknown"), "{unknown}");
    let outside = smtp.expect("RCPT TO:<someone@example.org>", 550);
    assert!(
        outside.contains("no outside delivery in tests"),
        "{outside}"
    );
    // The session goes on for a valid recipient.
    smtp.expect("RCPT TO:<desk@example-ca.test>", 250);
    smtp.expect("RSET", 250);
    smtp.expect("QUIT", 221);
}

#[test]
fn postfix_listens_on_loopback_only() {
    let dovecot = Dovecot::start();
    let postfix = Postfix::start(&dovecot.dir().join("mail"));

    for port in [postfix.smtp_port(), postfix.smtps_port()] {
        // 0100007F is 127.0.0.1 in the kernel's byte order.
        assert_eq!(
            listeners(port),
            vec![format!("0100007F:{port:04X}")],
            "listening sockets on port {port}"
        );
    }
    // The system-wide Postfix the package may install is not running: nothing on port 25
    // beyond loopback.
    let smtp25: Vec<String> = listeners(25)
        .into_iter()
        .filter(|a| !a.starts_with("0100007F:"))
        .collect();
    assert!(
        smtp25.is_empty(),
        "something listens on port 25: {smtp25:?}"
    );
}
