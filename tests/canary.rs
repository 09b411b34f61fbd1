//! The mailbox canary, end to end on real servers: `cprwatch run` mails canaries through a
//! test Postfix to four published addresses and watches the test Dovecot's `cpr` INBOX and
//! Junk over IMAP. The canary to `cpr` arrives in the INBOX (all well: no alert, no case, no
//! receipt); the one to `cpr-junk` is filed into Junk by the server (a `canary` alert); the one
//! to `oncall` lands in a folder nobody watches (missing after `max_delay`: an alert); the one
//! to `refuse` is refused with a 550 (bounced: an alert). Each problem is alerted once.

mod support;

use std::time::Duration;

use support::dovecot::Dovecot;
use support::postfix::Postfix;
use support::service::{Cprwatch, inbox};

#[test]
fn canaries_arriving_in_junk_missing_or_bounced_alert_once_and_never_open_a_case() {
    let dovecot = Dovecot::start();
    let postfix = Postfix::start(&dovecot.dir().join("mail"));
    let dir = tempfile::tempdir().unwrap();
    let imap_secret = dir.path().join("imap");
    let canary_secret = dir.path().join("canary");
    std::fs::write(&imap_secret, "cpr-secret").unwrap();
    std::fs::write(&canary_secret, "a canary key of the test").unwrap();
    let canary = |to: &str| {
        format!(
            "[[canary]]\nto = \"{to}\"\nevery = \"1h\"\nmax_delay = \"8s\"\nsecret_file = \"{}\"\n",
            canary_secret.display()
        )
    };
    let config = format!(
        "[desk]\nstaff_domains = [\"example-ca.test\"]\n[clock]\ntick_seconds = 1\n\
         [smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
         from = \"cprwatch@example-ca.test\"\ntimeout = \"10s\"\n\
         [[alerts.route]]\nto = [\"desk@example-ca.test\"]\nlevels = [\"canary\", \"breach\", \"warning\"]\n\
         [[mailbox]]\nname = \"cpr\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
         username = \"cpr\"\npassword_file = \"{}\"\n\
         folders = [{{ name = \"INBOX\", role = \"inbox\" }}, {{ name = \"Junk\", role = \"junk\" }}]\n\
         poll_seconds = 60\n{}{}{}{}",
        postfix.smtp_port(),
        dovecot.imap_port(),
        imap_secret.display(),
        canary("cpr@example-ca.test"),
        canary("cpr-junk@example-ca.test"),
        canary("oncall@example-ca.test"),
        canary(support::postfix::REFUSED),
    );
    let mut w = Cprwatch::new(&config);
    w.start();
    let v = w.wait_status(Duration::from_secs(90), "every canary settled", |v| {
        v["canaries"].as_array().is_some_and(|c| {
            c.len() == 4
                && c.iter()
                    .all(|c| c["state"] != "waiting" && c["state"] != "never_sent")
        })
    });
    let state = |to: &str| {
        v["canaries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["to"] == to)
            .map(|c| c["state"].as_str().unwrap_or("").to_string())
            .unwrap()
    };
    assert_eq!(state("cpr@example-ca.test"), "arrived", "{v}");
    assert_eq!(state("cpr-junk@example-ca.test"), "junk", "{v}");
    assert_eq!(state("oncall@example-ca.test"), "missing", "{v}");
    assert_eq!(state(support::postfix::REFUSED), "bounced", "{v}");
    // The canaries are in the log, and none opened a case.
    assert_eq!(v["cases"], serde_json::json!([]), "{v}");
    let alerts = inbox(
        &dovecot,
        "desk",
        "X-CPR-Level: canary",
        Duration::from_secs(30),
    );
    w.wait_status(Duration::from_secs(30), "outbox drained", |v| {
        v["outbox"]["pending"] == 0
    });
    std::thread::sleep(Duration::from_secs(3));
    w.stop();
    let alerts_all = inbox(&dovecot, "desk", "X-CPR-Level: canary", Duration::ZERO);
    assert_eq!(alerts_all.len(), 3, "one per problem: {alerts:?}");
    for (needle, what) in [
        ("cpr-junk@example-ca.test", "junk"),
        ("oncall@example-ca.test", "not seen"),
        ("refuse@example-ca.test", "bounced"),
    ] {
        assert!(
            alerts_all
                .iter()
                .any(|m| m.contains(needle) && m.contains(what)),
            "{needle}: {what} in {alerts_all:#?}"
        );
    }
    let (code, text) = w.command(&["status"]);
    assert_eq!(code, 3, "a canary problem is a problem: {text}");
    assert!(text.contains("JUNK") && text.contains("MISSING"), "{text}");
    let (code, _) = w.command(&["verify"]);
    assert_eq!(code, 0);
}
