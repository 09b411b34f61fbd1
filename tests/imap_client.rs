//! The read-only IMAP client against a real Dovecot (started by the tests themselves through
//! `scripts/dovecot.sh`, installed with apt-get when missing). No mocks.

mod support;

use cprwatch::source::imap::{Account, Connection, FolderInfo, ImapError, TlsMode, Wake};
use std::time::{Duration, Instant};
use support::dovecot::Dovecot;
use time::macros::datetime;

const T: Duration = Duration::from_secs(10);

fn message(subject: &str) -> Vec<u8> {
    format!(
        "From: Reporter <reporter@example.org>\r\nTo: cpr@example-ca.test\r\nSubject: {subject}\r\n\
         Message-ID: <{}@example.org>\r\nDate: Sun, 01 Mar 2026 09:29:00 +0100\r\n\r\n\
         Please revoke https://crt.sh/?id=1777593900\r\n",
        subject.replace(' ', "-")
    )
    .into_bytes()
}

async fn connect(account: &Account) -> Connection {
    match Connection::connect(account, T).await {
        Ok(c) => c,
        Err(e) => panic!("connect {account:?}: {e}"),
    }
}

async fn open(d: &Dovecot, tls: TlsMode, folder: &str) -> (Connection, FolderInfo) {
    let mut c = connect(&d.account("cpr", tls)).await;
    let info = c.examine(folder).await.expect("examine");
    (c, info)
}

#[tokio::test]
async fn plain_connection_on_loopback() {
    let d = Dovecot::start();
    let (c, info) = open(&d, TlsMode::None, "INBOX").await;
    assert!(c.has_idle());
    assert!(info.uidvalidity > 0);
    assert_eq!(info.exists, 0);
    assert_eq!(info.uidnext, Some(1));
    c.logout().await;
}

#[tokio::test]
async fn implicit_tls_with_a_private_ca() {
    let d = Dovecot::start();
    let (mut c, info) = open(&d, TlsMode::Implicit, "Junk").await;
    assert!(info.uidvalidity > 0);
    assert_eq!(c.uids().await.expect("uids"), Vec::<u32>::new());
    c.logout().await;
}

#[tokio::test]
async fn starttls_with_a_private_ca() {
    let d = Dovecot::start();
    let uid = d.append(
        "cpr",
        "Sent",
        &message("sent"),
        datetime!(2026-03-01 10:00 UTC),
    );
    let (mut c, info) = open(&d, TlsMode::StartTls, "Sent").await;
    assert_eq!(info.exists, 1);
    assert_eq!(c.uids().await.expect("uids"), vec![uid]);
    c.logout().await;
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let d = Dovecot::start();
    for tls in [TlsMode::Implicit, TlsMode::StartTls] {
        let mut account = d.account("cpr", tls);
        account.ca_file = None;
        let err = Connection::connect(&account, T)
            .await
            .expect_err("self-signed certificate without ca_file");
        let msg = err.to_string();
        assert!(matches!(err, ImapError::Tls { .. }), "{tls:?}: {err:?}");
        assert!(
            msg.contains("not trusted") && msg.contains("ca_file"),
            "{tls:?}: {msg}"
        );
        assert!(msg.contains(&account.server()), "{msg}");
        assert!(!err.is_retryable() && !err.is_auth());
    }
    let mut account = d.account("cpr", TlsMode::Implicit);
    // The certificate names localhost too.
    account.host = "localhost".into();
    connect(&account).await.logout().await;
}

#[tokio::test]
async fn plaintext_to_another_host_is_refused_without_connecting() {
    let d = Dovecot::start();
    let mut account = d.account("cpr", TlsMode::None);
    account.host = "192.0.2.1".into(); // TEST-NET-1: never contacted.
    let started = Instant::now();
    let err = Connection::connect(&account, T)
        .await
        .expect_err("plaintext off loopback");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(matches!(err, ImapError::Config { .. }), "{err:?}");
    assert!(err.to_string().contains("loopback"), "{err}");
    // `localhost` and ::1 are loopback (Dovecot listens on 127.0.0.1 only, so use localhost).
    account.host = "localhost".into();
    connect(&account).await.logout().await;
}

#[tokio::test]
async fn a_wrong_password_is_an_auth_error_that_never_shows_it() {
    let d = Dovecot::start();
    let mut account = d.account("cpr", TlsMode::None);
    account.password = "wrong-Pa55word".into();
    let err = Connection::connect(&account, T)
        .await
        .expect_err("wrong password");
    assert!(err.is_auth() && !err.is_retryable(), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("\"cpr\""), "{shown}");
    assert!(!shown.contains("wrong-Pa55word"), "{shown}");
    assert!(shown.contains("password"), "{shown}");
}

#[tokio::test]
async fn examine_reports_the_folder_and_a_missing_one_says_so() {
    let d = Dovecot::start();
    for i in 0..3 {
        d.append(
            "cpr",
            "INBOX",
            &message(&format!("m{i}")),
            datetime!(2026-03-01 10:00 UTC),
        );
    }
    let (mut c, info) = open(&d, TlsMode::None, "INBOX").await;
    assert_eq!(info.exists, 3);
    assert_eq!(info.uidnext, Some(4));
    let junk = c.examine("Junk").await.expect("examine Junk");
    assert_ne!(junk.uidvalidity, 0);

    let err = c.examine("Spam").await.expect_err("no such folder");
    assert!(matches!(err, ImapError::FolderMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("\"Spam\""), "{err}");
    // The connection survives a NO.
    assert_eq!(c.examine("INBOX").await.expect("INBOX again"), info);
    c.logout().await;
}

#[tokio::test]
async fn fetch_returns_the_exact_bytes_and_internaldate_without_marking_read() {
    let d = Dovecot::start();
    let first = message("first report");
    let second = message("second report");
    // Given in +01:00; the client normalises to UTC.
    let t1 = datetime!(2026-03-01 09:30:00 +01:00);
    let t2 = datetime!(2026-03-02 23:59:59 -05:00);
    let u1 = d.append("cpr", "INBOX", &first, t1);
    let u2 = d.append("cpr", "INBOX", &second, t2);

    let (mut c, _) = open(&d, TlsMode::Implicit, "INBOX").await;
    let got = c.fetch(&[u2, u1, 999]).await.expect("fetch");
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!((got[0].uid, got[1].uid), (u1, u2));
    assert_eq!(got[0].raw, first);
    assert_eq!(got[1].raw, second);
    assert_eq!(
        got[0].internal_date,
        Some(datetime!(2026-03-01 08:30:00 UTC))
    );
    assert_eq!(
        got[1].internal_date,
        Some(datetime!(2026-03-03 04:59:59 UTC))
    );
    assert_eq!(
        got[0].internal_date.map(|t| t.offset()),
        Some(time::UtcOffset::UTC)
    );
    // Debug never shows the message.
    assert!(!format!("{got:?}").contains("crt.sh"));
    assert!(c.fetch(&[]).await.expect("empty fetch").is_empty());
    c.logout().await;

    for uid in [u1, u2] {
        let flags = d.flags("cpr", "INBOX", uid);
        assert!(!flags.iter().any(|f| f == "\\Seen"), "{flags:?}");
    }
}

#[tokio::test]
async fn uids_from_never_returns_older_uids() {
    let d = Dovecot::start();
    let uids: Vec<u32> = (0..3)
        .map(|i| {
            d.append(
                "cpr",
                "Junk",
                &message(&format!("j{i}")),
                datetime!(2026-03-01 10:00 UTC),
            )
        })
        .collect();
    let (mut c, info) = open(&d, TlsMode::None, "Junk").await;
    assert_eq!(c.uids().await.expect("uids"), uids);
    assert_eq!(c.uids_from(uids[1]).await.expect("from 2"), uids[1..]);
    assert_eq!(c.uids_from(0).await.expect("from 0"), uids);
    // `n:*` with n above the last UID: the server answers with the last UID; we must not.
    let next = info.uidnext.expect("uidnext");
    assert_eq!(
        c.uids_from(next).await.expect("from next"),
        Vec::<u32>::new()
    );
    assert_eq!(
        c.uids_from(next + 100).await.expect("far"),
        Vec::<u32>::new()
    );
    c.logout().await;
}

#[tokio::test]
async fn idle_wakes_on_new_mail_from_another_connection() {
    let d = std::sync::Arc::new(Dovecot::start());
    let (mut c, info) = open(&d, TlsMode::None, "INBOX").await;

    let deliver = {
        let d = d.clone();
        tokio::task::spawn_blocking(move || {
            // Deliver only once the client is really idling.
            d.wait_for_idle("cpr");
            let uid = d.append(
                "cpr",
                "INBOX",
                &message("pushed"),
                datetime!(2026-03-01 10:00 UTC),
            );
            (uid, Instant::now())
        })
    };
    let wake = tokio::time::timeout(Duration::from_secs(30), c.idle(Duration::from_secs(25)))
        .await
        .expect("idle returned within 30 s")
        .expect("idle");
    let woke = Instant::now();
    let (uid, delivered) = deliver.await.expect("delivery");
    assert_eq!(wake, Wake::NewMail);
    let latency = woke.saturating_duration_since(delivered);
    assert!(
        latency < Duration::from_secs(2),
        "woke {latency:?} after delivery"
    );

    // The connection is usable after IDLE, and the new UID is there.
    assert_eq!(
        c.uids_from(info.uidnext.expect("uidnext"))
            .await
            .expect("uids"),
        vec![uid]
    );
    c.noop().await.expect("noop");
    c.logout().await;
}

#[tokio::test]
async fn idle_times_out_without_mail() {
    let d = Dovecot::start();
    let (mut c, _) = open(&d, TlsMode::StartTls, "INBOX").await;
    let started = Instant::now();
    let wake = tokio::time::timeout(Duration::from_secs(20), c.idle(Duration::from_secs(1)))
        .await
        .expect("idle returned")
        .expect("idle");
    let took = started.elapsed();
    assert_eq!(wake, Wake::Timeout);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "{took:?}"
    );
    // Mail delivered between two waits is not slept on.
    d.append(
        "cpr",
        "INBOX",
        &message("between"),
        datetime!(2026-03-01 10:00 UTC),
    );
    let wake = tokio::time::timeout(Duration::from_secs(20), c.idle(Duration::from_secs(15)))
        .await
        .expect("idle returned")
        .expect("idle");
    assert_eq!(wake, Wake::NewMail);
    c.logout().await;
}

#[tokio::test]
async fn a_crashed_server_is_a_retryable_closed_connection() {
    let mut d = Dovecot::start();
    let (mut c, info) = open(&d, TlsMode::None, "INBOX").await;
    d.kill();
    let err = tokio::time::timeout(Duration::from_secs(30), c.idle(Duration::from_secs(20)))
        .await
        .expect("idle returned after the crash")
        .expect_err("server gone");
    assert!(err.is_retryable(), "{err:?}");
    // Every later call says the connection is closed.
    let again = c.uids().await.expect_err("closed");
    assert!(matches!(again, ImapError::Closed { .. }), "{again:?}");

    // A restarted server keeps the mail and the UIDVALIDITY.
    d.restart();
    let (c, after) = open(&d, TlsMode::None, "INBOX").await;
    assert_eq!(after.uidvalidity, info.uidvalidity);
    c.logout().await;

    d.stop();
    let err = Connection::connect(&d.account("cpr", TlsMode::None), T)
        .await
        .expect_err("server stopped");
    assert!(
        matches!(err, ImapError::Connect { .. }) && err.is_retryable(),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_recreated_folder_has_a_new_uidvalidity() {
    let d = Dovecot::start();
    d.create_folder("cpr", "Reports");
    d.append(
        "cpr",
        "Reports",
        &message("old"),
        datetime!(2026-03-01 10:00 UTC),
    );
    let (c, before) = open(&d, TlsMode::None, "Reports").await;
    c.logout().await;
    d.delete_folder("cpr", "Reports");
    let mut c = connect(&d.account("cpr", TlsMode::None)).await;
    let err = c.examine("Reports").await.expect_err("deleted");
    assert!(matches!(err, ImapError::FolderMissing { .. }), "{err:?}");
    d.create_folder("cpr", "Reports");
    let after = c.examine("Reports").await.expect("recreated");
    assert_ne!(after.uidvalidity, before.uidvalidity);
    assert_eq!(after.exists, 0);
    c.logout().await;
}

#[tokio::test]
async fn twenty_thousand_messages_load_fast_and_fetch_in_batches() {
    const N: usize = 20_000;
    let d = Dovecot::start();
    let base = datetime!(2026-01-01 00:00 UTC);
    let messages: Vec<(Vec<u8>, time::OffsetDateTime)> = (0..N)
        .map(|i| {
            (
                message(&format!("bulk {i}")),
                base + time::Duration::seconds(i as i64),
            )
        })
        .collect();
    let started = Instant::now();
    d.append_many("cpr", "Junk", &messages);
    let written = started.elapsed();
    let (mut c, info) = open(&d, TlsMode::None, "Junk").await;
    let indexed = started.elapsed();
    assert_eq!(info.exists as usize, N);
    let uids = c.uids().await.expect("uids");
    assert_eq!(uids.len(), N);
    assert!(
        indexed < Duration::from_secs(30),
        "loading {N} took {indexed:?}"
    );
    eprintln!("{N} messages: written in {written:?}, examined after {indexed:?}");

    // UIDs follow delivery order, and INTERNALDATE is the file's time.
    let tail = c.fetch(&uids[N - 100..]).await.expect("fetch last 100");
    assert_eq!(tail.len(), 100);
    for (k, f) in tail.iter().enumerate() {
        let i = N - 100 + k;
        assert_eq!(f.raw, messages[i].0, "message {i}");
        assert_eq!(f.internal_date, Some(messages[i].1), "message {i}");
    }
    c.logout().await;
}
