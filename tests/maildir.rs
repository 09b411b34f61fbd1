//! The demo Maildir (`fixtures/maildir/`, Maildir++ with .Junk and .Sent): the story the README
//! tells, as `replay` sees it.

mod common;

use common::*;

const SPKI_DEMO: &str = "spki:085a8a3ced39cb71f11cb36d716e3075ba13c24d20e88ec1304fec266e614a3d";
const SHA_INTERMEDIATE: &str =
    "sha256:f1c05103da7ea2e1c0bd737cdf422c628fbbaaeb9d325de365eb023768188f93";

#[test]
fn demo_maildir_story() {
    let md = root().join("fixtures/maildir");
    let out = replay_dirs(&md, None, None, "2026-03-20T00:00:00Z", "json");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v = parse_json(&out);
    let ids: Vec<String> = (1..=6).map(|n| format!("CPR-2026-{n:04}")).collect();
    assert_eq!(case_ids(&v), ids);
    let c = |n: u32| case(&v, &format!("CPR-2026-{n:04}"));

    // 1. Key compromise: answered in 3 h, key revoked at 09:58.
    assert_eq!(c(1)["reporter"], "hanna.berg@keyhunters.example");
    assert_eq!(
        messages(c(1)),
        [
            m(
                "<CAKc0mpr0m1se.7712@keyhunters.example>",
                "2026-03-02T07:12:40Z",
                "hanna.berg@keyhunters.example",
                "inbox",
                false
            ),
            m(
                "<cpr-20260302-0001@example-ca.test>",
                "2026-03-02T10:05:00Z",
                "nina.okafor@example-ca.test",
                "sent",
                true
            ),
            m(
                "<CAKthanks.8801@keyhunters.example>",
                "2026-03-02T11:00:00Z",
                "hanna.berg@keyhunters.example",
                "inbox",
                false
            ),
        ]
    );
    assert_eq!(
        key_refs(c(1)),
        [(Some(SPKI_DEMO.to_string()), "private_key".to_string())]
    );
    assert_clock(
        prelim(c(1)),
        "2026-03-02T07:12:40Z",
        "2026-03-03T07:12:40Z",
        "met",
        Some("2026-03-02T10:05:00Z"),
        "br-4.9.5-24h",
    );
    assert_clock(
        revocation(c(1), SPKI_DEMO),
        "2026-03-02T07:12:40Z",
        "2026-03-03T07:12:40Z",
        "met",
        Some("2026-03-02T09:58:00Z"),
        "key-evidence",
    );

    // 2. Misissuance with crt.sh links: 5-day rule, revoked in time, preliminary report late.
    assert_eq!(
        message_ids(c(2)),
        [
            "<20260304133000.GA1209@linting.example>",
            "<20260305120000.GB1301@linting.example>",
            "<cpr-20260305-0002@example-ca.test>",
            // A colleague's out-of-office carries the case tag: it threads in, changes nothing.
            "<ooo-20260305@linting.example>",
        ]
    );
    assert_eq!(cert_refs(c(2)), ["crtsh:9500000001", "crtsh:9500000002"]);
    assert_clock(
        prelim(c(2)),
        "2026-03-04T13:30:00Z",
        "2026-03-05T13:30:00Z",
        "late",
        Some("2026-03-05T16:45:00Z"),
        "br-4.9.5-24h",
    );
    for r in ["crtsh:9500000001", "crtsh:9500000002"] {
        assert_clock(
            revocation(c(2), r),
            "2026-03-04T13:30:00Z",
            "2026-03-09T13:30:00Z",
            "met",
            Some("2026-03-06T10:00:00Z"),
            "misissuance",
        );
    }

    // 3. In Junk, never answered.
    assert_eq!(messages(c(3))[0].3, "junk");
    assert_eq!(cert_refs(c(3)), ["crtsh:9500000010"]);
    assert_clock(
        prelim(c(3)),
        "2026-03-07T22:10:00Z",
        "2026-03-08T22:10:00Z",
        "breached",
        None,
        "br-4.9.5-24h",
    );

    // 4. Root-program notice naming the intermediate; answered in Bugzilla.
    assert_eq!(c(4)["reporter"], "bugzilla-daemon@bugzilla.mozilla.org");
    assert_eq!(cert_refs(c(4)), [SHA_INTERMEDIATE]);
    assert_clock(
        prelim(c(4)),
        "2026-03-09T17:00:00Z",
        "2026-03-10T17:00:00Z",
        "met",
        Some("2026-03-10T08:30:00Z"),
        "br-4.9.5-24h",
    );

    // 5. No Message-Id.
    let id5 = s(&c(5)["messages"][0]["message_id"]);
    assert!(
        id5.starts_with("<sha256-") && id5.ends_with("@cprwatch.invalid>"),
        "{id5}"
    );
    assert_eq!(cert_refs(c(5)), ["crtsh:9500000020"]);

    // 6. Subscriber's revocation request: 24 h rule, met.
    assert_clock(
        prelim(c(6)),
        "2026-03-12T08:00:00Z",
        "2026-03-13T08:00:00Z",
        "met",
        Some("2026-03-12T09:15:00Z"),
        "br-4.9.5-24h",
    );
    assert_clock(
        revocation(c(6), "crtsh:9500000030"),
        "2026-03-12T08:00:00Z",
        "2026-03-13T08:00:00Z",
        "met",
        Some("2026-03-12T09:10:00Z"),
        "subscriber-request",
    );

    // The bounce is in no case.
    let listed: Vec<String> = cases(&v).iter().flat_map(message_ids).collect();
    assert!(!listed.contains(&"<20260302100529.4DEMOB0UNCE@mx.example.com>".to_string()));
    assert_eq!(
        listed.len(),
        13,
        "14 messages, all but the bounce in a case"
    );
}

/// `ingest` of an empty directory, given or configured, reads nothing and says so on stderr;
/// a path that does not exist is an error.
#[test]
fn ingest_of_an_empty_directory_is_an_empty_folder() {
    let desk = Desk::with_store();
    let empty = desk.dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let cfg = desk.config().display().to_string();
    let o = desk.run(&["ingest", "--config", &cfg, &empty.display().to_string()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("note: ") && stderr.contains("empty directory"),
        "{}",
        text(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("read 0 messages"),
        "{}",
        text(&o)
    );

    // The same directory as a configured Maildir.
    let config = format!(
        "{}\n[[maildir]]\npath = \"{}\"\n",
        std::fs::read_to_string(desk.config()).unwrap(),
        empty.display()
    );
    std::fs::write(desk.config(), config).unwrap();
    let o = desk.run(&["ingest", "--config", &cfg]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("empty directory"),
        "{}",
        text(&o)
    );
    let o = desk.run(&["check-config", "--config", &cfg]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let missing = desk.dir.path().join("missing");
    let o = desk.run(&["ingest", "--config", &cfg, &missing.display().to_string()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("missing"),
        "{}",
        text(&o)
    );
}
