//! End-to-end: `cprwatch replay` over the scenario mailboxes in `fixtures/scenarios/`, checked
//! against the JSON contract. Every expected value is a literal computed independently (times
//! from the fixtures' Received:/Date: headers, hashes with the openssl CLI: see
//! fixtures/scenarios/material/EXPECTED.txt and make-material.sh).

mod common;

use common::*;
use serde_json::{Value, json};

/// The shipped 5-day rule that "misissued … CN not in SAN" wording hits (BR 4.9.1.1 item 12).
const RULE_MISISSUED: &str = "misissuance";
/// The shipped 24-hour rule that "private key … has been compromised" wording hits (item 3).
const RULE_KEY_COMPROMISE: &str = "key-compromise";

// Independently computed (openssl; see make-material.sh).
const SHA_INTERMEDIATE: &str = "f1c05103da7ea2e1c0bd737cdf422c628fbbaaeb9d325de365eb023768188f93";
const SPKI_INTERMEDIATE: &str = "129cd954cd537120f17fbe133fc27ee02123d679818a471396a68cbf517c8078";
const SHA_MIS: &str = "2c8edd5c54d857998c8e2bf1aeb748a9b6c91bb180aae99b8d863c249e6ba4bb";
const SPKI_MIS: &str = "925de948e2e37266b6925f07183b558c874e80eebdc74513eb110264c5fdd361";
const SHA_OTHER: &str = "48d3800c05005153e7ceee447c903ace14b120c4f4e19febb1d77e3965514c0f";
const SPKI_OTHER: &str = "79960a8bea3fd0b3d6db38e46bb67656bfdb49b647a894b703ed1cebbfc5856d";
const SHA_REVOKE: &str = "5e50e01a83416ebbae7ddefc1fabd00750ac485ecc446aea86fca535a305c9b4";
const SPKI_REVOKE: &str = "b7f2357907f70d94e73501d7e7db6947fa658f24c4c3e3f0aa9515415f9b2440";
const SHA_PRECERT: &str = "84197eb38ec21f73e62807818ba7515f12d58e39bf83d7a4b707860a5ce49153";
const SPKI_PRECERT: &str = "a51bd75c1de8365365b9ba329ba69cb703bc2ea89601152b369ce07121698be9";
const SHA_SHOP: &str = "f1c2bb42f4b55775fb3e02c52e86fe16ac59d2143d63f10184b1062d45403604";
const SHA_EC: &str = "f02e226ef221ad0301e6d871f4202f4831d9e31d4795b601b5b46fb6c7b9ab90";
const SHA_SHORT: &str = "87733a62ea8c90a91521d9cb8db35debc837d2ec14f412bcccdfbfb2d146d7ce";
const SHA_EXPIRED: &str = "1f467a0daa918ba2bc7ba37c2eb806e1c8c38eb86ae3437075e5c36bcac672a0";
const SHA_SOON: &str = "8dca672798c00bd6b6a55b947343f23fab650982a755bf68111b95d11cabc1c7";
const SPKI_RSA_PKCS8: &str = "21279ceff318c61ae19f629f771a6f7d8bd1798666c875ba1bbfa1f82b8985c3";
const SPKI_RSA_PKCS1: &str = "a3540e90a8fbbae711510ac55c127ee67a174a458bb7e1654c211919ba8c635d";
const SPKI_EC_SEC1: &str = "41a9cbf1044043c56ea79d3e3617252539348598ad6cc5082a3c771131f3779f";
const SPKI_CSR: &str = "0cba3ef42760bdf9c38d7736b8f4a5dd631ffb374080d20dd2e2bd574f789117";
const SPKI_PUBLIC: &str = "713fc82176566cc9c01c2743a407ebc7fa177930ba73fd4ebce631d87098ea59";
const SPKI_LINK: &str = "5ae9d43aef81d122abc80bd7c861d235bf420f47cf998b8dfc08d36f1965e7ba";

fn sha(h: &str) -> String {
    format!("sha256:{h}")
}

fn spki(h: &str) -> String {
    format!("spki:{h}")
}

// ---------------------------------------------------------------------------------------
// 1. Receipt time
// ---------------------------------------------------------------------------------------

#[test]
fn receipt_time_is_the_topmost_received_header_not_date() {
    let v = replay("receipt-time", "2026-03-06T12:00:00Z");
    assert_eq!(v["at"], "2026-03-06T12:00:00Z");
    // Numbered in receipt order, not file order and not Date: order.
    assert_eq!(
        case_ids(&v),
        ["CPR-2026-0001", "CPR-2026-0002", "CPR-2026-0003"]
    );

    let c1 = case(&v, "CPR-2026-0001");
    assert_eq!(c1["reporter"], "alice.reporter@mailbox.example");
    assert_eq!(
        c1["subject"],
        "Certificate problem report for shop.example.net"
    );
    // Date: says 2026-02-24, the MX said 10:15:30 +0100; a lower relay hop says 11:59:59Z.
    assert_eq!(c1["opened_at"], "2026-03-03T09:15:30Z");
    assert_eq!(
        messages(c1),
        [
            m(
                "<0a1f9c2e-77b1-4c1e-9f0e-3d2a1b7c9e10@mailbox.example>",
                "2026-03-03T09:15:30Z",
                "alice.reporter@mailbox.example",
                "inbox",
                false
            ),
            // Sent: its Date: (15:00Z), not its local Received: (16:30Z).
            m(
                "<cpr-reply-20260303-1@example-ca.test>",
                "2026-03-03T15:00:00Z",
                "nina.okafor@example-ca.test",
                "sent",
                true
            ),
        ]
    );
    assert_eq!(clocks(c1).len(), 1);
    assert_clock(
        prelim(c1),
        "2026-03-03T09:15:30Z",
        "2026-03-04T09:15:30Z",
        "met",
        Some("2026-03-03T15:00:00Z"),
        "br-4.9.5-24h",
    );

    // Date: in 2019; Received: 22:05:00 -0500.
    let c2 = case(&v, "CPR-2026-0002");
    assert_eq!(c2["reporter"], "bob@pki-research.example");
    assert_eq!(c2["opened_at"], "2026-03-05T03:05:00Z");
    assert_clock(
        prelim(c2),
        "2026-03-05T03:05:00Z",
        "2026-03-06T03:05:00Z",
        "breached",
        None,
        "br-4.9.5-24h",
    );

    // No Received: at all: Date: is used.
    let c3 = case(&v, "CPR-2026-0003");
    assert_eq!(c3["reporter"], "carol.m@webmail.example");
    assert_eq!(c3["opened_at"], "2026-03-05T08:00:00Z");
    assert_eq!(
        messages(c3),
        [m(
            "<CAF7k2=xQ3@webmail.example>",
            "2026-03-05T08:00:00Z",
            "carol.m@webmail.example",
            "inbox",
            false
        )]
    );
    assert_clock(
        prelim(c3),
        "2026-03-05T08:00:00Z",
        "2026-03-06T08:00:00Z",
        "breached",
        None,
        "br-4.9.5-24h",
    );
}

// ---------------------------------------------------------------------------------------
// 2. Threading
// ---------------------------------------------------------------------------------------

#[test]
fn threading_by_headers_case_tag_and_subject_window() {
    let v = replay("threading", "2026-05-13T00:00:00Z");
    assert_eq!(
        case_ids(&v),
        ["CPR-2026-0001", "CPR-2026-0002", "CPR-2026-0003"]
    );

    let c1 = case(&v, "CPR-2026-0001");
    assert_eq!(c1["reporter"], "dave@research.example");
    assert_eq!(
        c1["subject"],
        "Misissued certificate for portal.example.org"
    );
    assert_eq!(c1["opened_at"], "2026-04-01T08:00:00Z");
    assert_eq!(
        messages(c1),
        [
            m(
                "<t01.8812@research.example>",
                "2026-04-01T08:00:00Z",
                "dave@research.example",
                "inbox",
                false
            ),
            m(
                "<t02.1@other.example>",
                "2026-04-01T09:00:00Z",
                "erin@other.example",
                "inbox",
                false
            ),
            m(
                "<t03.77@elsewhere.example>",
                "2026-04-01T10:00:00Z",
                "frank@elsewhere.example",
                "inbox",
                false
            ),
            m(
                "<cpr-20260401-dave@example-ca.test>",
                "2026-04-01T12:00:00Z",
                "nina.okafor@example-ca.test",
                "sent",
                true
            ),
            m(
                "<t04.2026@hosting.example>",
                "2026-04-02T07:30:00Z",
                "grace@hosting.example",
                "inbox",
                false
            ),
            m(
                "<t06.9931@research.example>",
                "2026-04-11T12:00:00Z",
                "dave@research.example",
                "inbox",
                false
            ),
        ]
    );
    assert_clock(
        prelim(c1),
        "2026-04-01T08:00:00Z",
        "2026-04-02T08:00:00Z",
        "met",
        Some("2026-04-01T12:00:00Z"),
        "br-4.9.5-24h",
    );

    // Same subject, other sender: its own case.
    let c2 = case(&v, "CPR-2026-0002");
    assert_eq!(c2["reporter"], "heidi@secmail.example");
    assert_eq!(message_ids(c2), ["<t05.heidi@secmail.example>"]);
    assert_clock(
        prelim(c2),
        "2026-04-03T00:00:00Z",
        "2026-04-04T00:00:00Z",
        "breached",
        None,
        "br-4.9.5-24h",
    );

    // Same sender and subject 31 days after the thread's last message: a new case.
    let c3 = case(&v, "CPR-2026-0003");
    assert_eq!(c3["reporter"], "dave@research.example");
    assert_eq!(
        c3["subject"],
        "Re: Misissued certificate for portal.example.org"
    );
    assert_eq!(message_ids(c3), ["<t07.1204@research.example>"]);
    assert_clock(
        prelim(c3),
        "2026-05-12T12:00:00Z",
        "2026-05-13T12:00:00Z",
        "pending",
        None,
        "br-4.9.5-24h",
    );

    // A sent message that answers no case opens none and is listed nowhere.
    for c in cases(&v) {
        assert!(!message_ids(c).contains(&"<caa-question-20260420@example-ca.test>".to_string()));
    }
}

// ---------------------------------------------------------------------------------------
// 3. Automatic mail
// ---------------------------------------------------------------------------------------

#[test]
fn automatic_mail_opens_nothing_unless_it_names_a_certificate() {
    let v = replay("automatic", "2026-05-08T00:00:00Z");
    assert_eq!(
        case_ids(&v),
        ["CPR-2026-0001", "CPR-2026-0002", "CPR-2026-0003"]
    );

    // The root-program notice (auto-generated, names the intermediate by ?sha256=…).
    let c1 = case(&v, "CPR-2026-0001");
    assert_eq!(c1["reporter"], "bugzilla-daemon@bugzilla.mozilla.org");
    assert_eq!(
        c1["subject"],
        "[Bug 2019001] Example CA: Undisclosed intermediate certificate"
    );
    assert_eq!(c1["opened_at"], "2026-05-05T16:20:00Z");
    assert_eq!(
        message_ids(c1),
        ["<bug-2019001-512345@https.bugzilla.mozilla.org/>"]
    );
    assert_eq!(cert_refs(c1), [sha(SHA_INTERMEDIATE)]);
    let cert = certificate(c1, &sha(SHA_INTERMEDIATE));
    assert_eq!(cert["crtsh_id"], Value::Null);
    assert_eq!(cert["sha256"], SHA_INTERMEDIATE);
    assert_eq!(
        clock_targets(c1),
        [
            ("preliminary_report".to_string(), None),
            ("revocation".to_string(), Some(sha(SHA_INTERMEDIATE)))
        ]
    );
    assert_clock(
        prelim(c1),
        "2026-05-05T16:20:00Z",
        "2026-05-06T16:20:00Z",
        "breached",
        None,
        "br-4.9.5-24h",
    );

    // An ordinary report, answered; the reporter's out-of-office threads in and changes nothing.
    let c2 = case(&v, "CPR-2026-0002");
    assert_eq!(
        messages(c2),
        [
            m(
                "<k42.1@tls-watch.example>",
                "2026-05-06T09:00:00Z",
                "kim@tls-watch.example",
                "inbox",
                false
            ),
            m(
                "<cpr-20260506-kim@example-ca.test>",
                "2026-05-06T15:00:00Z",
                "nina.okafor@example-ca.test",
                "sent",
                true
            ),
            m(
                "<k42.ooo@tls-watch.example>",
                "2026-05-06T15:00:05Z",
                "kim@tls-watch.example",
                "inbox",
                false
            ),
        ]
    );
    assert_eq!(cert_refs(c2), ["crtsh:7000000042"]);
    assert_clock(
        prelim(c2),
        "2026-05-06T09:00:00Z",
        "2026-05-07T09:00:00Z",
        "met",
        Some("2026-05-06T15:00:00Z"),
        "br-4.9.5-24h",
    );

    // An auto-generated notifier that names nothing but matches a rule (key compromise) is a
    // report too.
    let c3 = case(&v, "CPR-2026-0003");
    assert_eq!(c3["reporter"], "notifier@keywatch.example");
    assert_eq!(message_ids(c3), ["<kw-20260507-0001@keywatch.example>"]);
    assert_eq!(c3["certificates"], json!([]));
    assert_eq!(c3["keys"], json!([]));
    assert_eq!(
        clock_targets(c3),
        [("preliminary_report".to_string(), None)]
    );
    assert_clock(
        prelim(c3),
        "2026-05-07T08:00:00Z",
        "2026-05-08T08:00:00Z",
        "pending",
        None,
        "br-4.9.5-24h",
    );

    // Out-of-office, X-Autoreply, three kinds of bounce, a content-free auto-generated mail:
    // in no case.
    let listed: Vec<String> = cases(&v).iter().flat_map(message_ids).collect();
    for id in [
        "<ooo.77@partner.example>",
        "<ar.5@partner2.example>",
        "<20260504120000.4R2xy0001@mx.example-ca.test>",
        "<dsn.1@relay.partner.example>",
        "<ndr.9@mail.partner3.example>",
        "<weekly.2026-19@monitoring.partner.example>",
    ] {
        assert!(
            !listed.contains(&id.to_string()),
            "{id} is listed in a case: {listed:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 4. Staff
// ---------------------------------------------------------------------------------------

#[test]
fn staff_needs_dkim_pass_recorded_by_the_trusted_mx() {
    let v = replay("staff-auth", "2026-06-03T00:00:00Z");
    assert_eq!(case_ids(&v), ["CPR-2026-0001"]);
    let c = case(&v, "CPR-2026-0001");
    assert_eq!(c["reporter"], "leo@certwatch.example");
    assert_eq!(
        messages(c),
        [
            m(
                "<r1.leo@certwatch.example>",
                "2026-06-01T10:00:00Z",
                "leo@certwatch.example",
                "inbox",
                false
            ),
            m(
                "<spoof1@example-ca.test>",
                "2026-06-01T10:30:00Z",
                "abuse@example-ca.test",
                "inbox",
                false
            ),
            m(
                "<spoof2@example-ca.test>",
                "2026-06-01T11:00:00Z",
                "abuse@example-ca.test",
                "inbox",
                false
            ),
            m(
                "<spoof3@example-ca.test>",
                "2026-06-01T11:30:00Z",
                "abuse@example-ca.test",
                "inbox",
                false
            ),
            m(
                "<cpr-20260601-leo@example-ca.test>",
                "2026-06-01T14:00:00Z",
                "nina.okafor@example-ca.test",
                "inbox",
                true
            ),
        ]
    );
    assert_eq!(cert_refs(c), ["crtsh:5550001"]);
    // The spoofs' CPR-Dismiss / CPR-Revoked / CPR-Answered and mail To: the reporter changed
    // nothing: the genuine staff answer (14:00) and its CPR-Revoked (13:45) decide.
    assert_clock(
        prelim(c),
        "2026-06-01T10:00:00Z",
        "2026-06-02T10:00:00Z",
        "met",
        Some("2026-06-01T14:00:00Z"),
        "br-4.9.5-24h",
    );
    assert_clock(
        revocation(c, "crtsh:5550001"),
        "2026-06-01T10:00:00Z",
        "2026-06-02T10:00:00Z",
        "met",
        Some("2026-06-01T13:45:00Z"),
        "default-24h",
    );
}

#[test]
fn a_forged_authentication_results_with_our_authserv_id_below_our_mx_is_not_staff() {
    // Our MX's own A-R (topmost, added on arrival) says dkim=none; the sender wrote an
    // `Authentication-Results: mx.example-ca.test; dkim=pass header.d=example-ca.test` into
    // the message itself, below our MX's Received:. Only results our MX recorded count.
    let v = replay("staff-forged-ar", "2026-06-12T00:00:00Z");
    assert_eq!(case_ids(&v), ["CPR-2026-0001"]);
    let c = case(&v, "CPR-2026-0001");
    assert_eq!(
        messages(c),
        [
            m(
                "<r1.opal@certwatch2.example>",
                "2026-06-10T10:00:00Z",
                "opal@certwatch2.example",
                "inbox",
                false
            ),
            m(
                "<spoof4@example-ca.test>",
                "2026-06-10T11:00:00Z",
                "abuse@example-ca.test",
                "inbox",
                false
            ),
        ]
    );
    assert_clock(
        prelim(c),
        "2026-06-10T10:00:00Z",
        "2026-06-11T10:00:00Z",
        "breached",
        None,
        "br-4.9.5-24h",
    );
    assert_clock(
        revocation(c, "crtsh:5560001"),
        "2026-06-10T10:00:00Z",
        "2026-06-11T10:00:00Z",
        "breached",
        None,
        "default-24h",
    );
}

// ---------------------------------------------------------------------------------------
// 5. Preliminary report clock
// ---------------------------------------------------------------------------------------

#[test]
fn preliminary_report_clock_states() {
    let v = replay("preliminary", "2026-07-10T12:00:00Z");
    let ids: Vec<String> = (1..=9).map(|n| format!("CPR-2026-{n:04}")).collect();
    assert_eq!(case_ids(&v), ids);
    let p = |id: &str| prelim(case(&v, id)).clone();
    const B: &str = "br-4.9.5-24h";

    // Reply To: the reporter from Sent: met at its Date:.
    assert_clock(
        &p("CPR-2026-0001"),
        "2026-07-01T09:00:00Z",
        "2026-07-02T09:00:00Z",
        "met",
        Some("2026-07-01T17:30:00Z"),
        B,
    );
    // Cc: to the reporter's Reply-To: address.
    let c2 = case(&v, "CPR-2026-0002");
    assert_eq!(c2["reporter"], "pat@alerts.scanner.example");
    assert_clock(
        &p("CPR-2026-0002"),
        "2026-07-02T09:00:00Z",
        "2026-07-03T09:00:00Z",
        "met",
        Some("2026-07-02T20:00:00Z"),
        B,
    );
    // Answered after 25 h.
    assert_clock(
        &p("CPR-2026-0003"),
        "2026-07-03T09:00:00Z",
        "2026-07-04T09:00:00Z",
        "late",
        Some("2026-07-04T10:00:00Z"),
        B,
    );
    // Receipt, auto-reply and internal forward: still running, past the deadline.
    let c4 = case(&v, "CPR-2026-0004");
    assert_eq!(
        messages(c4),
        [
            m(
                "<p4@sec.example>",
                "2026-07-04T09:00:00Z",
                "rachel@sec.example",
                "inbox",
                false
            ),
            m(
                "<receipt-p4@example-ca.test>",
                "2026-07-04T09:01:00Z",
                "cpr@example-ca.test",
                "sent",
                true
            ),
            m(
                "<auto-p4@example-ca.test>",
                "2026-07-04T09:02:00Z",
                "cpr@example-ca.test",
                "sent",
                true
            ),
            m(
                "<fwd-p4@example-ca.test>",
                "2026-07-04T10:00:00Z",
                "nina.okafor@example-ca.test",
                "sent",
                true
            ),
        ]
    );
    assert_clock(
        &p("CPR-2026-0004"),
        "2026-07-04T09:00:00Z",
        "2026-07-05T09:00:00Z",
        "breached",
        None,
        B,
    );
    // CPR-Answered with an explicit time, in an internal note.
    assert_clock(
        &p("CPR-2026-0005"),
        "2026-07-05T09:00:00Z",
        "2026-07-06T09:00:00Z",
        "met",
        Some("2026-07-05T15:10:00Z"),
        B,
    );
    // CPR-Answered without a time: the note's Date:.
    assert_clock(
        &p("CPR-2026-0006"),
        "2026-07-06T09:00:00Z",
        "2026-07-07T09:00:00Z",
        "met",
        Some("2026-07-06T11:00:00Z"),
        B,
    );
    // CPR-Dismiss: every clock of the case dismissed.
    let c7 = case(&v, "CPR-2026-0007");
    assert_eq!(cert_refs(c7), ["crtsh:5550077"]);
    assert_clock(
        &p("CPR-2026-0007"),
        "2026-07-07T09:00:00Z",
        "2026-07-08T09:00:00Z",
        "dismissed",
        Some("2026-07-07T10:00:00Z"),
        B,
    );
    assert_clock(
        revocation(c7, "crtsh:5550077"),
        "2026-07-07T09:00:00Z",
        "2026-07-08T09:00:00Z",
        "dismissed",
        Some("2026-07-07T10:00:00Z"),
        "default-24h",
    );
    // Met, then dismissed: stays met.
    assert_clock(
        &p("CPR-2026-0008"),
        "2026-07-08T09:00:00Z",
        "2026-07-09T09:00:00Z",
        "met",
        Some("2026-07-08T10:00:00Z"),
        B,
    );
    // Received 11 h before --at.
    assert_clock(
        &p("CPR-2026-0009"),
        "2026-07-10T01:00:00Z",
        "2026-07-11T01:00:00Z",
        "pending",
        None,
        B,
    );
}

// ---------------------------------------------------------------------------------------
// 11. --at
// ---------------------------------------------------------------------------------------

#[test]
fn replay_at_hides_what_was_received_later() {
    // Before the first report: nothing exists.
    let v = replay("preliminary", "2026-07-01T08:59:59Z");
    assert_eq!(v["cases"], json!([]));

    // Before the answer to CPR-2026-0001 and before any other report.
    let v = replay("preliminary", "2026-07-01T12:00:00Z");
    assert_eq!(v["at"], "2026-07-01T12:00:00Z");
    assert_eq!(case_ids(&v), ["CPR-2026-0001"]);
    let c1 = case(&v, "CPR-2026-0001");
    assert_eq!(message_ids(c1), ["<p1@reporter.example>"]);
    assert_clock(
        prelim(c1),
        "2026-07-01T09:00:00Z",
        "2026-07-02T09:00:00Z",
        "pending",
        None,
        "br-4.9.5-24h",
    );

    // At exactly the receipt of CPR-2026-0003: it exists.
    let v = replay("preliminary", "2026-07-03T09:00:00Z");
    assert_eq!(
        case_ids(&v),
        ["CPR-2026-0001", "CPR-2026-0002", "CPR-2026-0003"]
    );
    assert_eq!(message_ids(case(&v, "CPR-2026-0003")), ["<p3@lab.example>"]);

    // Past CPR-2026-0003's deadline, before its late answer: breached, not yet late.
    let v = replay("preliminary", "2026-07-04T09:30:00Z");
    let c3 = case(&v, "CPR-2026-0003");
    assert_eq!(message_ids(c3), ["<p3@lab.example>"]);
    assert_clock(
        prelim(c3),
        "2026-07-03T09:00:00Z",
        "2026-07-04T09:00:00Z",
        "breached",
        None,
        "br-4.9.5-24h",
    );
    assert_eq!(case_ids(&v).len(), 4);
}

// ---------------------------------------------------------------------------------------
// 6. Certificate references
// ---------------------------------------------------------------------------------------

#[track_caller]
#[allow(clippy::too_many_arguments)]
fn assert_parsed_cert(
    c: &Value,
    sha256: &str,
    serial: &str,
    issuer_cn: &str,
    not_after: &str,
    spki: &str,
    is_ca: bool,
    precert: bool,
) {
    assert_eq!(c["ref"], sha(sha256), "{c}");
    assert_eq!(c["crtsh_id"], Value::Null, "{c}");
    assert_eq!(c["sha256"], sha256, "{c}");
    assert_eq!(c["serial"], serial, "{c}");
    let issuer = c["issuer"]
        .as_str()
        .unwrap_or_else(|| panic!("issuer missing: {c}"));
    assert!(
        issuer.contains(issuer_cn),
        "issuer {issuer:?} should name {issuer_cn:?}"
    );
    assert_eq!(c["not_after"], not_after, "{c}");
    assert_eq!(c["spki_sha256"], spki, "{c}");
    assert_eq!(c["is_ca"], is_ca, "{c}");
    assert_eq!(c["precertificate"], precert, "{c}");
}

#[test]
fn certificate_references_in_every_form() {
    let v = replay("cert-refs", "2026-03-22T00:00:00Z");
    let ids: Vec<String> = (1..=17).map(|n| format!("CPR-2026-{n:04}")).collect();
    assert_eq!(case_ids(&v), ids);
    let refs = |n: u32| cert_refs(case(&v, &format!("CPR-2026-{n:04}")));

    assert_eq!(
        refs(1),
        ["crtsh:9100000001"],
        "?id=&opt=; ?q=domain and bare domains are not references"
    );
    let c = certificate(case(&v, "CPR-2026-0001"), "crtsh:9100000001");
    assert_eq!(c["crtsh_id"], 9100000001u64);
    assert_eq!(c["sha256"], Value::Null);
    assert_eq!(
        refs(2),
        [sha(
            "31b1608f191b90c385198e93cf4626aa916a6acd0849ea44e32205efe33d4967"
        )],
        "?sha256= upper case"
    );
    assert_eq!(
        refs(3),
        [sha(
            "ba6fe79562bdf03f714bf6bd3890783670625918482cef77d604218714bf92c5"
        )],
        "?q=<64 hex>"
    );
    assert_eq!(
        refs(4),
        [sha(
            "ff62523e04ae48ba33a86ec74ed9bfbc3859a73bf2cf8bf68b233964c801f16d"
        )],
        "colon fingerprint"
    );
    assert_eq!(
        refs(5),
        [sha(
            "e51c453a44dbc8ea41e9838e1b4c772226724f88620daeeaeb026ed5bc1faf64"
        )],
        "bare fingerprint"
    );

    let one = |n: u32| -> Value {
        let c = case(&v, &format!("CPR-2026-{n:04}"));
        assert_eq!(
            c["certificates"].as_array().unwrap().len(),
            1,
            "case {n}: {:?}",
            cert_refs(c)
        );
        c["certificates"][0].clone()
    };
    const ISSUING: &str = "Example CA TLS Issuing CA 2026";
    // PEM in the body.
    assert_parsed_cert(
        &one(6),
        SHA_MIS,
        "7f114ad636122f85d07e4aaa375bd898",
        ISSUING,
        "2026-08-01T00:00:00Z",
        SPKI_MIS,
        false,
        false,
    );
    // .pem attachment.
    assert_parsed_cert(
        &one(7),
        SHA_OTHER,
        "7f114ad636122f85d07e4aaa375bd89d",
        ISSUING,
        "2026-07-15T00:00:00Z",
        SPKI_OTHER,
        false,
        false,
    );
    // .der attachment.
    assert_parsed_cert(
        &one(8),
        SHA_REVOKE,
        "7f114ad636122f85d07e4aaa375bd89e",
        ISSUING,
        "2026-07-20T00:00:00Z",
        SPKI_REVOKE,
        false,
        false,
    );
    // .crt attachment holding a precertificate.
    assert_parsed_cert(
        &one(9),
        SHA_PRECERT,
        "7f114ad636122f85d07e4aaa375bd89c",
        ISSUING,
        "2026-09-01T00:00:00Z",
        SPKI_PRECERT,
        false,
        true,
    );
    // .cer (DER) of the CA certificate.
    assert_parsed_cert(
        &one(10),
        SHA_INTERMEDIATE,
        "1482edd95407e535645db89283e804fc",
        "Example CA Test Root R1",
        "2030-06-01T00:00:00Z",
        SPKI_INTERMEDIATE,
        true,
        false,
    );
    assert_eq!(
        refs(11),
        ["crtsh:9100000011", "crtsh:9100000012"],
        "CSV attachment"
    );
    assert_eq!(
        refs(12),
        [
            sha("c09ef9b4d887caaeeed11e9256bdac31786d65f7baaf68a3b9d8bbff801add52"),
            sha("72b82b7ff0948803b87c5ed4246596e8afeb83a6883fb7b5370e161a968a7ace")
        ],
        "TXT attachment"
    );
    assert_eq!(refs(13), ["crtsh:9100000013"], "HTML-only, &amp;");
    assert_eq!(
        refs(14),
        ["crtsh:9100000014"],
        "quoted-printable with a soft break"
    );
    assert_eq!(refs(15), ["crtsh:9100000015"], "base64 body");
    assert_eq!(refs(16), ["crtsh:9100000016"], "forwarded message/rfc822");
    assert_eq!(refs(17), Vec::<String>::new(), "a domain name alone");

    // Clocks: the preliminary report first, then one revocation clock per certificate in the
    // same order.
    for c in cases(&v) {
        let mut want = vec![("preliminary_report".to_string(), None)];
        want.extend(
            cert_refs(c)
                .into_iter()
                .map(|r| ("revocation".to_string(), Some(r))),
        );
        assert_eq!(clock_targets(c), want, "clocks of {}", c["id"]);
        assert_eq!(c["keys"], json!([]), "keys of {}", c["id"]);
    }
}

// ---------------------------------------------------------------------------------------
// 7. Key references
// ---------------------------------------------------------------------------------------

#[test]
fn key_references_in_every_container() {
    let v = replay("keys", "2026-09-02T00:00:00Z");
    let ids: Vec<String> = (1..=7).map(|n| format!("CPR-2026-{n:04}")).collect();
    assert_eq!(case_ids(&v), ids);
    let expect: [(Option<&str>, &str); 7] = [
        (Some(SPKI_RSA_PKCS8), "private_key"),
        (Some(SPKI_RSA_PKCS1), "private_key"),
        (Some(SPKI_EC_SEC1), "private_key"),
        (Some(SPKI_CSR), "csr"),
        (Some(SPKI_PUBLIC), "public_key"),
        (Some(SPKI_LINK), "link"),
        (None, "encrypted_private_key"),
    ];
    for (n, (hash, evidence)) in expect.iter().enumerate() {
        let c = case(&v, &ids[n]);
        let received = format!("2026-09-01T{:02}:00:00Z", 9 + n);
        let due = format!("2026-09-02T{:02}:00:00Z", 9 + n);
        assert_eq!(c["opened_at"], received.as_str());
        assert_eq!(
            key_refs(c),
            [(hash.map(spki), evidence.to_string())],
            "case {}",
            ids[n]
        );
        assert_eq!(c["certificates"], json!([]), "case {}", ids[n]);
        match hash {
            Some(h) => {
                assert_eq!(
                    clock_targets(c),
                    [
                        ("preliminary_report".to_string(), None),
                        ("revocation".to_string(), Some(spki(h)))
                    ]
                );
                assert_clock(
                    revocation(c, &spki(h)),
                    &received,
                    &due,
                    "pending",
                    None,
                    "key-evidence",
                );
            }
            None => assert_eq!(clock_targets(c), [("preliminary_report".to_string(), None)]),
        }
    }
}

// ---------------------------------------------------------------------------------------
// 8. Revocation clocks
// ---------------------------------------------------------------------------------------

#[test]
fn revocation_clocks_windows_and_earliest_awareness() {
    let v = replay("revocation", "2026-04-20T00:00:00Z");
    let ids: Vec<String> = (1..=10).map(|n| format!("CPR-2026-{n:04}")).collect();
    assert_eq!(case_ids(&v), ids);
    let c = |n: u32| case(&v, &format!("CPR-2026-{n:04}"));

    // Short-lived (5 days): listed, no revocation clock.
    assert_eq!(cert_refs(c(1)), [sha(SHA_SHORT)]);
    assert_eq!(
        clock_targets(c(1)),
        [("preliminary_report".to_string(), None)]
    );

    // CN not in SAN: the 5-day rule; the follow-up threads in.
    assert_eq!(
        message_ids(c(2)),
        ["<rv02@audit.example>", "<rv11@audit.example>"]
    );
    assert_eq!(cert_refs(c(2)), [sha(SHA_MIS)]);
    let mis = revocation(c(2), &sha(SHA_MIS));
    assert_clock(
        mis,
        "2026-04-06T08:00:00Z",
        "2026-04-11T08:00:00Z",
        "breached",
        None,
        RULE_MISISSUED,
    );
    // Named again (by ?sha256=) in CPR-2026-0007 with 24-hour wording a day after the 5-day
    // deadline passed: the earlier deadline stands, and the clock is the same in both cases.
    assert_eq!(cert_refs(c(7)), [sha(SHA_MIS)]);
    assert_eq!(revocation(c(7), &sha(SHA_MIS)), mis);
    assert_eq!(
        c(7)["certificates"],
        c(2)["certificates"],
        "merged certificate details"
    );

    // leaf-shop: reported misissued (5 d) in 0003, its private key a day later in 0004:
    // due 24 h after the key report. Staff wrote `CPR-Revoked: sha256:…` (no time: the
    // message's 20:00) and `CPR-Revoked: spki:… 19:55`; revoking the key covers every
    // certificate with it, so the earlier 19:55 stops the certificate's clock too.
    assert_eq!(cert_refs(c(3)), [sha(SHA_SHOP)]);
    assert_eq!(
        certificate(c(3), &sha(SHA_SHOP))["spki_sha256"],
        SPKI_RSA_PKCS8
    );
    assert_eq!(
        clock_targets(c(3)),
        [
            ("preliminary_report".to_string(), None),
            ("revocation".to_string(), Some(sha(SHA_SHOP)))
        ]
    );
    assert_clock(
        revocation(c(3), &sha(SHA_SHOP)),
        "2026-04-07T09:00:00Z",
        "2026-04-09T09:00:00Z",
        "met",
        Some("2026-04-08T19:55:00Z"),
        "key-evidence",
    );
    // The staff answer came 35 h after the report.
    assert_clock(
        prelim(c(3)),
        "2026-04-07T09:00:00Z",
        "2026-04-08T09:00:00Z",
        "late",
        Some("2026-04-08T20:00:00Z"),
        "br-4.9.5-24h",
    );
    // The key report: one clock for the key, closed by CPR-Revoked: spki:… <time>.
    assert_eq!(
        key_refs(c(4)),
        [(Some(spki(SPKI_RSA_PKCS8)), "private_key".to_string())]
    );
    assert_eq!(cert_refs(c(4)), Vec::<String>::new());
    assert_eq!(
        clock_targets(c(4)),
        [
            ("preliminary_report".to_string(), None),
            ("revocation".to_string(), Some(spki(SPKI_RSA_PKCS8)))
        ]
    );
    assert_clock(
        revocation(c(4), &spki(SPKI_RSA_PKCS8)),
        "2026-04-08T09:00:00Z",
        "2026-04-09T09:00:00Z",
        "met",
        Some("2026-04-08T19:55:00Z"),
        "key-evidence",
    );

    // Key first (0005), certificate named later for a mild reason (0006): the certificate's
    // clock starts at the key report and is due 24 h after it.
    assert_clock(
        revocation(c(5), &spki(SPKI_EC_SEC1)),
        "2026-04-09T10:00:00Z",
        "2026-04-10T10:00:00Z",
        "breached",
        None,
        "key-evidence",
    );
    assert_eq!(cert_refs(c(6)), [sha(SHA_EC)]);
    assert_clock(
        revocation(c(6), &sha(SHA_EC)),
        "2026-04-09T10:00:00Z",
        "2026-04-10T10:00:00Z",
        "breached",
        None,
        "key-evidence",
    );

    // "private key … compromised" wording without key material: the 24 h rule.
    assert_clock(
        revocation(c(8), "crtsh:9200000007"),
        "2026-04-13T08:00:00Z",
        "2026-04-14T08:00:00Z",
        "breached",
        None,
        RULE_KEY_COMPROMISE,
    );
    // No rule: the conservative default.
    assert_clock(
        revocation(c(9), "crtsh:9200000008"),
        "2026-04-14T08:00:00Z",
        "2026-04-15T08:00:00Z",
        "breached",
        None,
        "default-24h",
    );
    // A CA certificate: 7 days.
    assert_eq!(certificate(c(10), &sha(SHA_INTERMEDIATE))["is_ca"], true);
    assert_clock(
        revocation(c(10), &sha(SHA_INTERMEDIATE)),
        "2026-04-15T08:00:00Z",
        "2026-04-22T08:00:00Z",
        "pending",
        None,
        "subordinate-ca-7d",
    );
}

#[test]
fn key_material_in_a_case_puts_its_certificates_on_24_hours() {
    let v = replay("key-evidence", "2026-06-22T12:00:00Z");
    assert_eq!(case_ids(&v), ["CPR-2026-0001", "CPR-2026-0002"]);
    // Misissuance wording (5 d) + certificate + an encrypted private key: 24 h key-evidence;
    // the encrypted key has no SPKI, so no clock of its own.
    let c1 = case(&v, "CPR-2026-0001");
    assert_eq!(cert_refs(c1), [sha(SHA_OTHER)]);
    assert_eq!(key_refs(c1), [(None, "encrypted_private_key".to_string())]);
    assert_eq!(
        clock_targets(c1),
        [
            ("preliminary_report".to_string(), None),
            ("revocation".to_string(), Some(sha(SHA_OTHER)))
        ]
    );
    assert_clock(
        revocation(c1, &sha(SHA_OTHER)),
        "2026-06-20T08:00:00Z",
        "2026-06-21T08:00:00Z",
        "breached",
        None,
        "key-evidence",
    );
    // … + a CSR: the certificate 24 h, and the CSR's key its own 24 h clock, after the
    // certificates.
    let c2 = case(&v, "CPR-2026-0002");
    assert_eq!(cert_refs(c2), [sha(SHA_REVOKE)]);
    assert_eq!(key_refs(c2), [(Some(spki(SPKI_CSR)), "csr".to_string())]);
    assert_eq!(
        clock_targets(c2),
        [
            ("preliminary_report".to_string(), None),
            ("revocation".to_string(), Some(sha(SHA_REVOKE))),
            ("revocation".to_string(), Some(spki(SPKI_CSR))),
        ]
    );
    for target in [sha(SHA_REVOKE), spki(SPKI_CSR)] {
        assert_clock(
            revocation(c2, &target),
            "2026-06-21T08:00:00Z",
            "2026-06-22T08:00:00Z",
            "breached",
            None,
            "key-evidence",
        );
    }
}

#[test]
fn short_lived_boundaries_follow_the_issuance_date() {
    let v = replay("short-lived", "2026-04-04T00:00:00Z");
    assert_eq!(
        case_ids(&v),
        ["CPR-2026-0001", "CPR-2026-0002", "CPR-2026-0003"]
    );
    let prelim_only = vec![("preliminary_report".to_string(), None)];
    // 9 days, issued before 2026-03-15 (≤ 10 days): no clock, even once expired.
    let c1 = case(&v, "CPR-2026-0001");
    assert_eq!(
        cert_refs(c1),
        [sha(
            "d40518934c26af415bb20291062865013bce934506945695e5b1ed60a9a51ae4"
        )]
    );
    assert_eq!(clock_targets(c1), prelim_only);
    // 9 days, issued after: a normal 5-day clock.
    let late = sha("eee398c191ac145b1554445789aeeca05eb7b35ac8fb921846b8d240fac70474");
    let c2 = case(&v, "CPR-2026-0002");
    assert_eq!(cert_refs(c2), std::slice::from_ref(&late));
    assert_eq!(certificate(c2, &late)["not_after"], "2026-04-10T00:00:00Z");
    assert_clock(
        revocation(c2, &late),
        "2026-04-03T08:00:00Z",
        "2026-04-08T08:00:00Z",
        "pending",
        None,
        RULE_MISISSUED,
    );
    // Exactly 7 days counted inclusively (…00:00:00 to …23:59:59): short-lived.
    let c3 = case(&v, "CPR-2026-0003");
    assert_eq!(
        cert_refs(c3),
        [sha(
            "9023110931fb272c361aba58e9a7a6004d8f53d3cf9213c44c4013cee528dcc9"
        )]
    );
    assert_eq!(clock_targets(c3), prelim_only);
}

// ---------------------------------------------------------------------------------------
// 9. Closing revocation clocks
// ---------------------------------------------------------------------------------------

#[test]
fn revocation_clocks_close_by_command_or_expiry() {
    let v = replay("closing", "2026-05-20T00:00:00Z");
    let ids: Vec<String> = (1..=5).map(|n| format!("CPR-2026-{n:04}")).collect();
    assert_eq!(case_ids(&v), ids);
    let c = |n: u32| case(&v, &format!("CPR-2026-{n:04}"));

    assert_clock(
        prelim(c(1)),
        "2026-05-02T08:00:00Z",
        "2026-05-03T08:00:00Z",
        "met",
        Some("2026-05-02T12:00:00Z"),
        "br-4.9.5-24h",
    );
    assert_clock(
        revocation(c(1), &sha(SHA_REVOKE)),
        "2026-05-02T08:00:00Z",
        "2026-05-07T08:00:00Z",
        "met",
        Some("2026-05-03T10:00:00Z"),
        RULE_MISISSUED,
    );
    // CPR-Revoked with a time after the deadline.
    assert_clock(
        revocation(c(2), "crtsh:9300000002"),
        "2026-05-03T08:00:00Z",
        "2026-05-04T08:00:00Z",
        "late",
        Some("2026-05-04T09:30:00Z"),
        "default-24h",
    );
    // A precertificate; CPR-Not-Revoking.
    assert_eq!(certificate(c(3), &sha(SHA_PRECERT))["precertificate"], true);
    assert_clock(
        revocation(c(3), &sha(SHA_PRECERT)),
        "2026-05-04T08:00:00Z",
        "2026-05-09T08:00:00Z",
        "not_required",
        Some("2026-05-04T15:00:00Z"),
        RULE_MISISSUED,
    );
    // Expired before the report: not required from receipt.
    assert_eq!(
        certificate(c(4), &sha(SHA_EXPIRED))["not_after"],
        "2025-02-01T00:00:00Z"
    );
    assert_clock(
        revocation(c(4), &sha(SHA_EXPIRED)),
        "2026-05-05T08:00:00Z",
        "2026-05-10T08:00:00Z",
        "not_required",
        Some("2026-05-05T08:00:00Z"),
        "expired",
    );
    // Expires before its deadline: not required from notAfter on.
    assert_eq!(
        certificate(c(5), &sha(SHA_SOON))["not_after"],
        "2026-05-10T12:00:00Z"
    );
    assert_clock(
        revocation(c(5), &sha(SHA_SOON)),
        "2026-05-10T06:00:00Z",
        "2026-05-15T06:00:00Z",
        "not_required",
        Some("2026-05-10T12:00:00Z"),
        "expired",
    );
    // …but not before notAfter.
    let v = replay("closing", "2026-05-10T09:00:00Z");
    assert_clock(
        revocation(case(&v, "CPR-2026-0005"), &sha(SHA_SOON)),
        "2026-05-10T06:00:00Z",
        "2026-05-15T06:00:00Z",
        "pending",
        None,
        RULE_MISISSUED,
    );
}

// ---------------------------------------------------------------------------------------
// 10. Odd messages
// ---------------------------------------------------------------------------------------

#[test]
fn messages_without_id_and_malformed_messages_still_open_cases() {
    use sha2::{Digest, Sha256};
    let v = replay("odd", "2026-10-10T00:00:00Z");
    assert_eq!(
        case_ids(&v),
        ["CPR-2026-0001", "CPR-2026-0002", "CPR-2026-0003"]
    );

    let raw = std::fs::read(scenario("odd").join("inbox/01-no-message-id.eml")).unwrap();
    let hash = hex::encode(Sha256::digest(&raw));
    let synthetic = format!("<sha256-{}@cprwatch.invalid>", &hash[..32]);
    let c1 = case(&v, "CPR-2026-0001");
    assert_eq!(
        messages(c1),
        [m(
            &synthetic,
            "2026-10-01T08:00:00Z",
            "mia@old-client.example",
            "inbox",
            false
        )]
    );
    assert_eq!(cert_refs(c1), ["crtsh:9400000001"]);
    assert_clock(
        prelim(c1),
        "2026-10-01T08:00:00Z",
        "2026-10-02T08:00:00Z",
        "breached",
        None,
        "br-4.9.5-24h",
    );

    let c2 = case(&v, "CPR-2026-0002");
    assert_eq!(message_ids(c2), ["<broken.1@broken-mua.example>"]);
    assert_eq!(c2["opened_at"], "2026-10-02T08:00:00Z");
    assert_clock(
        prelim(c2),
        "2026-10-02T08:00:00Z",
        "2026-10-03T08:00:00Z",
        "breached",
        None,
        "br-4.9.5-24h",
    );

    let c3 = case(&v, "CPR-2026-0003");
    assert_eq!(c3["opened_at"], "2026-10-03T08:00:00Z");
    assert_eq!(c3["messages"].as_array().unwrap().len(), 1);
    assert_clock(
        prelim(c3),
        "2026-10-03T08:00:00Z",
        "2026-10-04T08:00:00Z",
        "breached",
        None,
        "br-4.9.5-24h",
    );
}

#[test]
fn pure_garbage_without_any_header_still_opens_a_case() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let junk: Vec<u8> = (0..2048u32).map(|k| ((k * 197 + 13) % 256) as u8).collect();
    std::fs::write(inbox.join("garbage.eml"), &junk).unwrap();
    let out = replay_dirs(&inbox, None, None, "2099-01-01T00:00:00Z", "json");
    let v = parse_json(&out);
    assert_eq!(cases(&v).len(), 1, "{}", text(&out));
    let c = &cases(&v)[0];
    assert_eq!(c["messages"].as_array().unwrap().len(), 1);
    assert_eq!(clock_targets(c), [("preliminary_report".to_string(), None)]);
    let opened = s(&c["opened_at"]);
    assert_eq!(prelim(c)["started_at"], opened.as_str());
}

// ---------------------------------------------------------------------------------------
// Shape of the JSON
// ---------------------------------------------------------------------------------------

/// Every scenario with the `--at` its test uses.
const ALL: &[(&str, &str)] = &[
    ("receipt-time", "2026-03-06T12:00:00Z"),
    ("threading", "2026-05-13T00:00:00Z"),
    ("automatic", "2026-05-08T00:00:00Z"),
    ("staff-auth", "2026-06-03T00:00:00Z"),
    ("staff-forged-ar", "2026-06-12T00:00:00Z"),
    ("preliminary", "2026-07-10T12:00:00Z"),
    ("cert-refs", "2026-03-22T00:00:00Z"),
    ("keys", "2026-09-02T00:00:00Z"),
    ("revocation", "2026-04-20T00:00:00Z"),
    ("key-evidence", "2026-06-22T12:00:00Z"),
    ("short-lived", "2026-04-04T00:00:00Z"),
    ("closing", "2026-05-20T00:00:00Z"),
    ("odd", "2026-10-10T00:00:00Z"),
];

#[track_caller]
fn has(o: &Value, field: &str, ok: fn(&Value) -> bool, what: &str) {
    let v = o
        .get(field)
        .unwrap_or_else(|| panic!("{what}: field {field:?} missing in {o}"));
    assert!(ok(v), "{what}: field {field:?} has the wrong type: {v}");
}

#[test]
fn every_scenario_output_has_the_contract_shape() {
    let string = |v: &Value| v.is_string();
    let opt_string = |v: &Value| v.is_string() || v.is_null();
    let opt_u64 = |v: &Value| v.is_u64() || v.is_null();
    let opt_bool = |v: &Value| v.is_boolean() || v.is_null();
    let boolean = |v: &Value| v.is_boolean();
    let array = |v: &Value| v.is_array();
    let id = regex::Regex::new(r"^CPR-2026-\d{4}$").unwrap();
    let hex64 = regex::Regex::new(r"^[0-9a-f]{64}$").unwrap();
    for (name, at) in ALL {
        let v = replay(name, at);
        assert_eq!(v["at"], *at, "{name}");
        let mut opened = Vec::new();
        for (n, c) in cases(&v).iter().enumerate() {
            let what = format!("{name} {}", c["id"]);
            for f in ["id", "reporter", "subject", "opened_at"] {
                has(c, f, string, &what);
            }
            assert_eq!(
                s(&c["id"]),
                format!("CPR-2026-{:04}", n + 1),
                "{what}: numbered in order"
            );
            assert!(id.is_match(&s(&c["id"])));
            assert_eq!(
                s(&c["reporter"]),
                s(&c["reporter"]).to_lowercase(),
                "{what}: reporter lowercase"
            );
            opened.push(s(&c["opened_at"]));
            for f in ["messages", "certificates", "keys", "clocks"] {
                has(c, f, array, &what);
            }
            let msgs = c["messages"].as_array().unwrap();
            assert!(!msgs.is_empty(), "{what}");
            assert_eq!(
                msgs[0]["received_at"], c["opened_at"],
                "{what}: opened by its first message"
            );
            let mut last = String::new();
            for msg in msgs {
                for f in ["message_id", "received_at", "from", "folder"] {
                    has(msg, f, string, &what);
                }
                has(msg, "staff", boolean, &what);
                assert!(
                    ["inbox", "junk", "sent"].contains(&msg["folder"].as_str().unwrap()),
                    "{what}"
                );
                let t = s(&msg["received_at"]);
                assert!(t >= last, "{what}: messages oldest first");
                last = t;
            }
            for cert in c["certificates"].as_array().unwrap() {
                has(cert, "ref", string, &what);
                has(cert, "crtsh_id", opt_u64, &what);
                for f in ["sha256", "serial", "issuer", "not_after", "spki_sha256"] {
                    has(cert, f, opt_string, &what);
                }
                for f in ["is_ca", "precertificate"] {
                    has(cert, f, opt_bool, &what);
                }
                for f in ["sha256", "spki_sha256"] {
                    if let Some(h) = cert[f].as_str() {
                        assert!(hex64.is_match(h), "{what}: {f} {h}");
                    }
                }
            }
            for k in c["keys"].as_array().unwrap() {
                has(k, "ref", opt_string, &what);
                has(k, "evidence", string, &what);
            }
            let clocks = clocks(c);
            assert!(
                !clocks.is_empty(),
                "{what}: a case always has its preliminary report clock"
            );
            for (i, k) in clocks.iter().enumerate() {
                for f in ["kind", "started_at", "deadline", "state", "basis"] {
                    has(k, f, string, &what);
                }
                has(k, "certificate", opt_string, &what);
                has(k, "stopped_at", opt_string, &what);
                assert_eq!(
                    k["kind"] == "preliminary_report",
                    i == 0,
                    "{what}: preliminary report first, once"
                );
                let state = k["state"].as_str().unwrap();
                assert!(
                    [
                        "pending",
                        "met",
                        "late",
                        "breached",
                        "dismissed",
                        "not_required"
                    ]
                    .contains(&state),
                    "{what}: {state}"
                );
                assert_eq!(
                    k["stopped_at"].is_null(),
                    ["pending", "breached"].contains(&state),
                    "{what}: stopped_at set exactly when stopped: {k}"
                );
            }
        }
        let mut sorted = opened.clone();
        sorted.sort();
        assert_eq!(opened, sorted, "{name}: cases ordered by opened_at");
    }
}

#[test]
fn json_times_are_utc_whole_seconds_with_z() {
    let v = replay("revocation", "2026-04-20T00:00:00Z");
    let re = regex::Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$").unwrap();
    let mut n = 0;
    for c in cases(&v) {
        let mut times = vec![c["opened_at"].clone()];
        times.extend(
            c["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["received_at"].clone()),
        );
        for k in clocks(c) {
            times.extend([
                k["started_at"].clone(),
                k["deadline"].clone(),
                k["stopped_at"].clone(),
            ]);
        }
        for cert in c["certificates"].as_array().unwrap() {
            times.push(cert["not_after"].clone());
        }
        for t in times.into_iter().filter(|t| !t.is_null()) {
            assert!(re.is_match(t.as_str().unwrap()), "{t} in {}", c["id"]);
            n += 1;
        }
    }
    assert!(n > 50);
}

// ---------------------------------------------------------------------------------------
// 11. Why a window, and staff deciding it
// ---------------------------------------------------------------------------------------

#[test]
fn every_rule_clock_shows_the_phrase_that_set_its_window() {
    let v = replay("staff-reason", "2026-05-04T11:00:00Z");
    let c = case_of(&v, "<sr01@reporter.example>");
    let r = revocation(c, "crtsh:7001");
    assert_clock(
        r,
        "2026-05-04T08:00:00Z",
        "2026-05-09T08:00:00Z",
        "pending",
        None,
        RULE_MISISSUED,
    );
    // The subject is read first: its word is the phrase.
    assert_eq!(r["matched"], "Misissued");
    let c = case_of(&v, "<sr02@reporter.example>");
    let r = revocation(c, "crtsh:7002");
    assert_clock(
        r,
        "2026-05-04T09:00:00Z",
        "2026-05-05T09:00:00Z",
        "pending",
        None,
        RULE_KEY_COMPROMISE,
    );
    assert_eq!(r["matched"], "Key compromise");
    // A clock with no rule behind it has no phrase.
    assert_eq!(prelim(c)["matched"], Value::Null);
}

#[test]
fn cpr_reason_from_staff_moves_the_deadline_both_ways_and_a_forged_one_is_ignored() {
    let v = replay("staff-reason", "2026-05-04T14:00:00Z");
    // Item 4 (24 hours) for what the report's wording made item 12 (5 days): sooner.
    let r = revocation(case_of(&v, "<sr01@reporter.example>"), "crtsh:7001");
    assert_clock(
        r,
        "2026-05-04T08:00:00Z",
        "2026-05-05T08:00:00Z",
        "pending",
        None,
        "staff-item-4",
    );
    assert_eq!(r["matched"], Value::Null);
    // Item 6 (5 days) for what the wording made key compromise (24 hours): later.
    let r = revocation(case_of(&v, "<sr02@reporter.example>"), "crtsh:7002");
    assert_clock(
        r,
        "2026-05-04T09:00:00Z",
        "2026-05-09T09:00:00Z",
        "pending",
        None,
        "staff-item-6",
    );

    // In the log: who decided, when, and the window before; the forged claim is ignored.
    let desk = Desk::with_store();
    let cfg = desk.config().display().to_string();
    let dir = scenario("staff-reason");
    for (role, folder) in [("inbox", "inbox"), ("sent", "sent")] {
        let out = desk.run(&[
            "ingest",
            "--config",
            &cfg,
            "--role",
            role,
            &dir.join(folder).display().to_string(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let out = desk.run(&["case", "--config", &cfg, "CPR-2026-0001"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains(
            "revocation:crtsh:7001 now from 2026-05-04T08:00:00Z due 2026-05-05T08:00:00Z \
             (basis staff-item-4), decided in <sr01a@example-ca.test>; \
             was due 2026-05-09T08:00:00Z (basis misissuance)"
        ),
        "{shown}"
    );
    assert!(shown.contains("<sr01a@example-ca.test>"), "{shown}");
    let forged = desk.run(&[
        "case",
        "--config",
        &cfg,
        "CPR-2026-0003",
        "--format",
        "json",
    ]);
    let forged = String::from_utf8_lossy(&forged.stdout);
    assert!(
        forged.contains("command_ignored") && forged.contains("the sender is not staff"),
        "{forged}"
    );
}

// ---------------------------------------------------------------------------------------
// 12. Staff acknowledging a late clock (CPR-Delayed)
// ---------------------------------------------------------------------------------------

const INCIDENT: &str = "https://bugzilla.mozilla.org/show_bug.cgi?id=1";

#[test]
fn cpr_delayed_acknowledges_a_breach_and_the_clock_stays_breached() {
    // Breached at 09:00; the staff note at 10:00 is not received yet at 09:45.
    let v = replay("staff-delayed", "2025-11-04T09:45:00Z");
    let c = case(&v, "CPR-2025-0001");
    for clock in [prelim(c), revocation(c, "crtsh:8001")] {
        assert_eq!(clock["state"], "breached", "{clock}");
        assert!(clock.get("acknowledged").is_none(), "{clock}");
    }
    let v = replay("staff-delayed", "2025-11-06T00:00:00Z");
    let c = case(&v, "CPR-2025-0001");
    let acknowledged = json!({
        "at": "2025-11-04T10:00:00Z",
        "reason": INCIDENT,
        "by": "<sd01a@example-ca.test>",
    });
    assert_clock(
        prelim(c),
        "2025-11-03T09:00:00Z",
        "2025-11-04T09:00:00Z",
        "breached",
        None,
        "br-4.9.5-24h",
    );
    assert_eq!(prelim(c)["acknowledged"], acknowledged);
    let r = revocation(c, "crtsh:8001");
    assert_clock(
        r,
        "2025-11-03T09:00:00Z",
        "2025-11-04T09:00:00Z",
        "breached",
        None,
        RULE_KEY_COMPROMISE,
    );
    assert_eq!(r["acknowledged"], acknowledged);
}

#[test]
fn cpr_delayed_shows_in_case_and_status_and_the_log_and_a_forged_one_is_ignored() {
    let desk = Desk::with_store();
    let cfg = desk.config().display().to_string();
    let dir = scenario("staff-delayed");
    for (role, folder) in [("inbox", "inbox"), ("sent", "sent")] {
        let out = desk.run(&[
            "ingest",
            "--config",
            &cfg,
            "--role",
            role,
            &dir.join(folder).display().to_string(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let at = "2025-11-06T00:00:00Z";
    let shown = desk.run(&["case", "--config", &cfg, "CPR-2025-0001", "--at", at]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    let label = format!("breached (acknowledged: {INCIDENT}, 2025-11-04T10:00:00Z)");
    assert_eq!(shown.matches(&label).count(), 2, "{shown}");
    assert!(
        shown.contains(&format!(
            "clock_acknowledged    preliminary_report:CPR-2025-0001 late, acknowledged at \
             2025-11-04T10:00:00Z in <sd01a@example-ca.test>: {INCIDENT}"
        )),
        "{shown}"
    );
    assert!(
        shown.contains("clock_acknowledged    revocation:crtsh:8001 late"),
        "{shown}"
    );
    assert!(!shown.contains("clock_stopped"), "{shown}");

    let status = desk.run(&["status", "--config", &cfg, "--at", at]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("open clocks at 2025-11-06T00:00:00Z: 2"),
        "{status}"
    );
    assert_eq!(
        status
            .matches(&format!(
                "ago (acknowledged: {INCIDENT}, 2025-11-04T10:00:00Z)"
            ))
            .count(),
        2,
        "{status}"
    );
    let status = desk.run(&["status", "--config", &cfg, "--at", at, "--format", "json"]);
    let status = parse_json(&status);
    let c = case(&status, "CPR-2025-0001");
    assert_eq!(prelim(c)["acknowledged"]["by"], "<sd01a@example-ca.test>");

    // The log: one clock_acknowledged per clock, with the staff message; the forged
    // CPR-Delayed (a staff From: alone) ignored.
    let out = desk.run(&[
        "case",
        "--config",
        &cfg,
        "CPR-2025-0001",
        "--at",
        at,
        "--format",
        "json",
    ]);
    let v = parse_json(&out);
    let events = v["events"].as_array().expect("events");
    let acks: Vec<&Value> = events
        .iter()
        .filter(|e| e.to_string().contains("\"clock_acknowledged\""))
        .collect();
    assert_eq!(acks.len(), 2, "{events:?}");
    assert!(
        acks.iter()
            .all(|e| e.to_string().contains(INCIDENT) && e.to_string().contains("sd01a")),
        "{acks:?}"
    );
    let ignored: Vec<String> = events
        .iter()
        .map(Value::to_string)
        .filter(|e| e.contains("\"command_ignored\""))
        .collect();
    assert_eq!(ignored.len(), 1, "{ignored:?}");
    assert!(
        ignored[0].contains("sd02@reporter.example") && ignored[0].contains("not staff"),
        "{ignored:?}"
    );
    assert!(
        ignored[0].contains("\"delayed\""),
        "the ignored command is the CPR-Delayed: {ignored:?}"
    );

    // Derived afresh, the tables and the log's account agree; a second look adds nothing.
    let out = desk.run(&["verify", "--config", &cfg]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let again = desk.run(&[
        "ingest",
        "--config",
        &cfg,
        "--role",
        "sent",
        &dir.join("sent").display().to_string(),
    ]);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("0 new, 0 events"),
        "{}",
        text(&again)
    );
}
