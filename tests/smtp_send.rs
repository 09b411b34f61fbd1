//! cprwatch's SMTP sender (`notify::smtp`) against the test Postfix, read back over IMAP from
//! the test Dovecot: a message handed over arrives whole; a refused recipient is a permanent
//! failure; with Postfix stopped the failure is transient, and the same message goes through
//! once it is back; over STARTTLS and implicit TLS the server's certificate is verified against
//! `ca_file`, and one it cannot verify sends nothing. Real servers, on loopback, installed with
//! apt-get when missing.

mod support;

use cprwatch::config::SmtpConfig;
use cprwatch::notify::smtp::{Mailer, SendError};
use cprwatch::source::imap::TlsMode;
use std::time::Duration;
use support::dovecot::Dovecot;
use support::postfix::{Postfix, REFUSED};

fn mailer(port: u16) -> Mailer {
    tls_mailer(port, TlsMode::None, None)
}

fn tls_mailer(port: u16, tls: TlsMode, ca_file: Option<std::path::PathBuf>) -> Mailer {
    Mailer::new(&SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls,
        ca_file,
        login: None,
        from: "cprwatch@example-ca.test".into(),
        timeout: time::Duration::seconds(10),
    })
    .expect("a mailer for the test Postfix")
}

fn message(id: &str) -> Vec<u8> {
    format!(
        "From: cprwatch <cprwatch@example-ca.test>\r\nTo: cpr@example-ca.test\r\n\
         Subject: [CPR-2026-0001] breach: preliminary_report:CPR-2026-0001\r\n\
         Message-ID: <{id}>\r\nX-CPR-Level: breach\r\n\
         Date: Sun, 01 Mar 2026 09:29:00 +0000\r\n\r\n\
         The preliminary report for CPR-2026-0001 is overdue.\r\n"
    )
    .into_bytes()
}

/// Every message in cpr's INBOX holding `needle`, waiting up to 20 s for the first.
async fn read_back(dovecot: &Dovecot, postfix: &Postfix, needle: &str) -> Vec<String> {
    let found = dovecot
        .wait_for_inbox("cpr", needle, Duration::from_secs(20))
        .await;
    assert!(
        !found.is_empty(),
        "{needle} not in cpr's INBOX after 20 s\nPostfix log:\n{}",
        postfix.log()
    );
    found
}

#[tokio::test]
async fn a_message_handed_to_postfix_arrives_once_and_whole() {
    let dovecot = Dovecot::start();
    let postfix = Postfix::start(&dovecot.dir().join("mail"));
    let m = mailer(postfix.smtp_port());
    let id = format!("sent-{}@cprwatch.example-ca.test", std::process::id());
    let answer = m
        .send(&["cpr@example-ca.test".parse().unwrap()], &message(&id))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", postfix.log()));
    assert!(answer.contains("queued"), "{answer}");
    let got = read_back(&dovecot, &postfix, &id).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("X-CPR-Level: breach"), "{}", got[0]);
    assert!(
        got[0].contains("Return-Path: <cprwatch@example-ca.test>"),
        "{}",
        got[0]
    );
    assert!(got[0].contains("is overdue."), "{}", got[0]);
}

#[tokio::test]
async fn a_refused_recipient_is_permanent_and_a_stopped_server_is_transient() {
    let dovecot = Dovecot::start();
    let mut postfix = Postfix::start(&dovecot.dir().join("mail"));
    let m = mailer(postfix.smtp_port());

    let refused = m
        .send(
            &[REFUSED.parse().unwrap()],
            &message("refused@cprwatch.example-ca.test"),
        )
        .await;
    match refused {
        Err(SendError::Permanent(text)) => assert!(text.contains("550"), "{text}"),
        other => panic!("a 550 must be permanent, got {other:?}"),
    }

    postfix.stop();
    let id = format!("later-{}@cprwatch.example-ca.test", std::process::id());
    let to = ["cpr@example-ca.test".parse().unwrap()];
    match m.send(&to, &message(&id)).await {
        Err(SendError::Transient(_)) => {}
        other => panic!("a stopped server must be a transient failure, got {other:?}"),
    }
    postfix.restart();
    m.send(&to, &message(&id))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", postfix.log()));
    assert_eq!(read_back(&dovecot, &postfix, &id).await.len(), 1);
}

#[tokio::test]
async fn tls_is_verified_over_starttls_and_implicit_tls() {
    let dovecot = Dovecot::start();
    let postfix = Postfix::start(&dovecot.dir().join("mail"));
    let to = ["cpr@example-ca.test".parse().unwrap()];
    for (tls, port) in [
        (TlsMode::StartTls, postfix.smtp_port()),
        (TlsMode::Implicit, postfix.smtps_port()),
    ] {
        let id = format!("{tls:?}-{}@cprwatch.example-ca.test", std::process::id());
        tls_mailer(port, tls, Some(postfix.ca_file()))
            .send(&to, &message(&id))
            .await
            .unwrap_or_else(|e| panic!("{tls:?}: {e}\n{}", postfix.log()));
        let got = read_back(&dovecot, &postfix, &id).await;
        assert_eq!(got.len(), 1, "{tls:?}");
        // Postfix records that the message came in over TLS.
        assert!(got[0].contains("(using TLS"), "{tls:?}: {}", got[0]);

        // Without the CA file the self-signed certificate is not trusted: nothing is sent, and
        // the failure is transient (a certificate can be fixed; the alert must not be lost).
        let id = format!(
            "untrusted-{tls:?}-{}@cprwatch.example-ca.test",
            std::process::id()
        );
        match tls_mailer(port, tls, None).send(&to, &message(&id)).await {
            Err(SendError::Transient(text)) => {
                assert!(
                    text.to_lowercase().contains("certificate"),
                    "{tls:?}: {text}"
                )
            }
            other => panic!("{tls:?}: an untrusted certificate must fail, got {other:?}"),
        }
        assert!(
            dovecot
                .wait_for_inbox("cpr", &id, Duration::from_millis(500))
                .await
                .is_empty(),
            "{tls:?}: mail went out over an unverified connection"
        );
    }
}
