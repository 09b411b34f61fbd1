use super::*;
use std::path::PathBuf;

/// The module's own source, comments included: a forbidden word anywhere fails the test, so no
/// command can slip in through a string built at run time either.
const SOURCES: [(&str, &str); 4] = [
    ("mod.rs", include_str!("mod.rs")),
    ("account.rs", include_str!("account.rs")),
    ("error.rs", include_str!("error.rs")),
    ("transport.rs", include_str!("transport.rs")),
];

#[test]
fn read_only_by_construction() {
    // IMAP commands that change a mailbox, or open one read-write.
    let commands = [
        "STORE", "COPY", "MOVE", "EXPUNGE", "DELETE", "SELECT", "APPEND", "CREATE", "RENAME",
        "CLOSE",
    ];
    // async-imap methods that send them.
    let methods = [
        ".select(",
        ".select_condstore(",
        ".store(",
        ".uid_store(",
        ".copy(",
        ".uid_copy(",
        ".mv(",
        ".uid_mv(",
        ".expunge(",
        ".uid_expunge(",
        ".delete(",
        ".close(",
        ".append(",
        ".create(",
        ".rename(",
        ".run_command(",
        ".run_command_untagged(",
    ];
    for (file, text) in SOURCES {
        for word in text.split(|c: char| !c.is_ascii_alphanumeric() && c != '_') {
            assert!(
                !commands.contains(&word),
                "src/source/imap/{file} mentions the writing IMAP command {word}"
            );
        }
        for m in methods {
            assert!(
                !text.contains(m),
                "src/source/imap/{file} calls {m}…) — this module must stay read-only"
            );
        }
    }
    // And the fetch really is a PEEK.
    assert!(SOURCES[0].1.contains("BODY.PEEK[]"));
    assert!(!SOURCES[0].1.contains("BODY[]"));
}

fn account(host: &str, tls: TlsMode) -> Account {
    Account {
        name: "reports".into(),
        host: host.into(),
        port: 143,
        tls,
        ca_file: None,
        username: "cpr".into(),
        password: "hunter2-very-secret".into(),
    }
}

#[test]
fn debug_redacts_the_password() {
    let a = account("imap.example-ca.test", TlsMode::Implicit);
    let shown = format!("{a:?} {a:#?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("<redacted>") && shown.contains("cpr"));
}

#[test]
fn loopback_hosts() {
    for h in [
        "127.0.0.1",
        "127.1.2.3",
        "::1",
        "[::1]",
        "localhost",
        "LOCALHOST",
    ] {
        assert!(is_loopback_host(h), "{h}");
    }
    for h in [
        "10.0.0.1",
        "192.168.1.1",
        "imap.example-ca.test",
        "localhost.example-ca.test",
        "::",
        "0.0.0.0",
        "",
    ] {
        assert!(!is_loopback_host(h), "{h}");
    }
}

#[tokio::test]
async fn plaintext_to_a_remote_host_is_refused_before_any_lookup() {
    // A name that cannot resolve: had the client tried, the error would be Connect.
    let a = account("imap.invalid", TlsMode::None);
    let err = Connection::connect(&a, Duration::from_secs(5))
        .await
        .expect_err("must refuse");
    assert!(matches!(err, ImapError::Config { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("loopback") && msg.contains("tls = implicit"),
        "{msg}"
    );
    assert!(!err.is_retryable() && !err.is_auth());
}

#[test]
fn a_missing_ca_file_is_a_configuration_error() {
    let mut a = account("127.0.0.1", TlsMode::Implicit);
    a.ca_file = Some(PathBuf::from("/nonexistent/ca.pem"));
    let err = transport::client_config(&a).expect_err("must fail");
    let msg = err.to_string();
    assert!(matches!(err, ImapError::Config { .. }), "{msg}");
    assert!(msg.contains("/nonexistent/ca.pem"), "{msg}");
}

#[test]
fn a_ca_file_without_certificates_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("empty.pem");
    std::fs::write(&path, "not a certificate\n").expect("write");
    let mut a = account("127.0.0.1", TlsMode::Implicit);
    a.ca_file = Some(path);
    let msg = transport::client_config(&a)
        .expect_err("must fail")
        .to_string();
    assert!(msg.contains("no certificate"), "{msg}");
}

#[test]
fn certificate_problems_say_what_to_do() {
    use rustls::CertificateError as C;
    let tls = |e: C| {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(e),
        );
        transport::handshake_error("imap.example-ca.test:993", "imap.example-ca.test", io)
    };
    let cases = [
        (tls(C::UnknownIssuer), "set ca_file"),
        (
            tls(C::NotValidForName),
            "set host to a name the certificate lists",
        ),
        (tls(C::Expired), "renewed"),
        (tls(C::BadSignature), "check the server's TLS setup"),
    ];
    for (err, hint) in cases {
        assert!(matches!(err, ImapError::Tls { .. }), "{err:?}");
        assert!(!err.is_retryable());
        let msg = err.to_string();
        assert!(
            msg.contains(hint) && msg.contains("imap.example-ca.test:993"),
            "{msg}"
        );
    }
    // A connection cut during the handshake is the network's fault: retry.
    let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
    let err = transport::handshake_error("h:993", "h", io);
    assert!(matches!(err, ImapError::Connect { .. }) && err.is_retryable());
}

#[test]
fn uid_sets_are_compact() {
    assert_eq!(uid_set(&[1]), "1");
    assert_eq!(uid_set(&[3, 1, 2]), "1:3");
    assert_eq!(uid_set(&[1, 2, 3, 7, 9, 10, 10]), "1:3,7,9:10");
    assert_eq!(uid_set(&[u32::MAX, 5]), "5,4294967295");
}

#[test]
fn server_text_is_tidied() {
    let e = async_imap::error::Error::No(
        "code: Some(Nonexistent), info: Some(\"Mailbox doesn't exist: Junk\")".into(),
    );
    assert_eq!(server_text(&e), "Mailbox doesn't exist: Junk (Nonexistent)");
    let e =
        async_imap::error::Error::Bad("code: None, info: Some(\"Error in IMAP command\")".into());
    assert_eq!(server_text(&e), "Error in IMAP command");
}

#[test]
fn login_errors_never_carry_the_password() {
    let a = account("127.0.0.1", TlsMode::None);
    // A server that echoes the rejected command.
    let e = async_imap::error::Error::No(
        "code: None, info: Some(\"LOGIN cpr hunter2-very-secret rejected\")".into(),
    );
    let err = login_error(&a, "127.0.0.1:143", e);
    assert!(err.is_auth() && !err.is_retryable());
    let msg = err.to_string();
    assert!(msg.contains("\"cpr\"") && !msg.contains("hunter2"), "{msg}");
    assert!(!format!("{err:?}").contains("hunter2"));

    let e = async_imap::error::Error::No(
        "code: Some(Unavailable), info: Some(\"Temporary authentication failure\")".into(),
    );
    let err = login_error(&a, "127.0.0.1:143", e);
    assert!(!err.is_auth() && err.is_retryable(), "{err:?}");
}

#[test]
fn the_client_is_send() {
    // The sync logic runs one task per folder.
    fn assert_send<T: Send>(_: &T) {}
    let mut c: Option<Connection> = None;
    if let Some(c) = c.as_mut() {
        assert_send(&c.idle(Duration::from_secs(1)));
        assert_send(&c.fetch(&[1]));
        assert_send(&c.examine("INBOX"));
    }
    assert_send(&Connection::connect(
        &account("127.0.0.1", TlsMode::None),
        Duration::from_secs(1),
    ));
}
