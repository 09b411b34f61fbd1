//! Revocation verified, not claimed, end to end: `cprwatch run` over a Maildir, checking the
//! certificates its reports name against a real test CA (`scripts/testca.sh`: `openssl ocsp`
//! answering on loopback, a CRL and a crt.sh-like endpoint over a loopback HTTP server).
//!
//! What staff claim (`CPR-Revoked`) and what the responders say are held against each other:
//! a claim confirmed stops the clock at the revocationTime the CA published; a claim the
//! responders contradict keeps it running and queues a `revocation` alert naming both; a CRL
//! that lists a certificate its OCSP responder still calls good is an alert of its own. Each
//! answer is a `revocation_observed` event, and `verify` derives the same stop from the log.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::service::{Cprwatch, report};
use support::testca::{Publish, Signer, TestCa};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// How long a check may take to show (a responder answer is one `openssl` run).
const WITHIN: Duration = Duration::from_secs(60);

fn config(ca: &TestCa, extra: &str) -> String {
    format!(
        "[desk]\nstaff_domains = [\"example-ca.test\"]\n\
         trusted_authserv_ids = [\"mx.example-ca.test\"]\n\
         [clock]\ntick_seconds = 1\n\
         [revocation]\nclaim_grace = \"3s\"\ntimeout = \"20s\"\n\
         allow_private_addresses = true\n\
         [enrich]\nbase_url = \"{}\"\nrequests_per_minute = 600\n{extra}",
        ca.crtsh_url()
    )
}

/// A staff reply in the case's thread, as the desk's own Sent folder keeps it.
fn staff(id: &str, in_reply_to: &str, body: &str) -> Vec<u8> {
    let date = OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap();
    format!(
        "From: desk@example-ca.test\r\nTo: r@reporter.test\r\nSubject: Re: report\r\n\
         Message-ID: <{id}>\r\nIn-Reply-To: <{in_reply_to}>\r\nReferences: <{in_reply_to}>\r\n\
         Date: {date}\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// `case --format json`; `Null` while the case does not exist yet.
fn case(w: &Cprwatch, id: &str) -> Value {
    let (code, out) = w.command(&["case", id, "--format", "json"]);
    if code != 0 {
        return Value::Null;
    }
    serde_json::from_str(&out).unwrap()
}

/// The revocation clock of `target` in case `id`, once `done` holds for it.
fn wait_clock(
    w: &Cprwatch,
    id: &str,
    target: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = std::time::Instant::now();
    loop {
        let c = case(w, id);
        let clock = c["clocks"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|k| k["certificate"] == target)
            .cloned()
            .unwrap_or(Value::Null);
        if done(&clock) {
            return c;
        }
        assert!(
            start.elapsed() < WITHIN,
            "{what}: not within {WITHIN:?}\nclock: {clock}\nlog:\n{}",
            w.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn observed<'a>(clock: &'a Value, source: &str) -> Option<&'a Value> {
    clock["observed"]
        .as_array()?
        .iter()
        .find(|o| o["source"] == source)
}

fn status_of(clock: &Value, source: &str) -> Option<String> {
    observed(clock, source).and_then(|o| o["status"].as_str().map(str::to_string))
}

fn clock_of<'a>(c: &'a Value, target: &str) -> &'a Value {
    c["clocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["certificate"] == target)
        .unwrap_or_else(|| panic!("no clock for {target} in {c}"))
}

fn events_of<'a>(c: &'a Value, kind: &str) -> Vec<&'a Value> {
    c["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["event"]["type"] == kind)
        .collect()
}

#[test]
fn a_claim_is_verified_and_the_clock_stops_at_the_time_the_ca_published() {
    let ca = TestCa::start();
    let good = ca.cert("good").clone();
    let target = format!("sha256:{}", good.sha256);
    let mut w = Cprwatch::new(&config(&ca, ""));
    let now = OffsetDateTime::now_utc();
    // The report carries the certificate itself, and says its key is compromised.
    let body = format!(
        "The private key of this certificate was published; it is compromised.\r\n\r\n{}",
        good.pem().replace('\n', "\r\n")
    );
    w.deliver(
        "1.eml",
        &report(
            "r1@reporter.test",
            "r@reporter.test",
            "Key compromise",
            &body,
            now,
        ),
    );
    w.start();
    let c = wait_clock(&w, "CPR-2026-0001", &target, "first checks", |k| {
        status_of(k, "ocsp").as_deref() == Some("good")
            && status_of(k, "crl").as_deref() == Some("good")
    });
    assert_eq!(clock_of(&c, &target)["state"], "pending", "{c}");

    // The CA revokes it; staff say so. The claim alone stops nothing: the check does.
    ca.revoke(&good.serial, "keyCompromise");
    w.deliver_to(
        ".Sent",
        "s1.eml",
        &staff(
            "s1@example-ca.test",
            "r1@reporter.test",
            &format!("Revoked.\r\n\r\nCPR-Revoked: {target}"),
        ),
    );
    let c = wait_clock(&w, "CPR-2026-0001", &target, "verified revocation", |k| {
        k["state"] == "met"
    });
    let clock = clock_of(&c, &target);
    let ocsp = observed(clock, "ocsp").expect("an OCSP answer");
    assert_eq!(ocsp["status"], "revoked", "{clock}");
    assert_eq!(ocsp["reason"], "keyCompromise", "{clock}");
    // The stop is the revocationTime the CA published, not when staff wrote.
    assert_eq!(clock["stopped_at"], ocsp["revocation_time"], "{clock}");
    assert!(
        clock["notes"].is_null(),
        "keyCompromise is what item 3 calls for: {clock}"
    );
    // The checker's record is in the case thread, with the signed answer attached.
    let check = c["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["from"] == "revocation-check@cprwatch.invalid")
        .unwrap_or_else(|| panic!("no check record in {c}"));
    assert_eq!(check["staff"], true);
    assert!(!events_of(&c, "revocation_observed").is_empty(), "{c}");

    // `verify` derives the same clock from the log alone.
    let (code, out) = w.command(&["verify"]);
    assert_eq!(code, 0, "verify: {out}");
    w.stop();
}

#[test]
fn a_claim_the_responders_contradict_keeps_the_clock_running_and_is_an_alert() {
    let ca = TestCa::start();
    let good = ca.cert("good").clone();
    let other = ca.cert("other").clone();
    // The report names the certificate by crt.sh id only: cprwatch fetches it.
    let target = format!("crtsh:{}", good.crtsh_id);
    // Alerts are queued with [smtp] set; nothing listens on the port, so they stay queued,
    // which is all this test reads (delivery is tests/alerts.rs's).
    let smtp = "[smtp]\nhost = \"127.0.0.1\"\nport = 9\ntls = \"none\"\nfrom = \"cprwatch@example-ca.test\"\n\
                [receipts]\nenabled = false\n[[alerts.route]]\nto = [\"oncall@example-ca.test\"]\n";
    let mut w = Cprwatch::new(&config(&ca, smtp));
    let now = OffsetDateTime::now_utc();
    let body = format!(
        "This certificate's key is compromised: https://crt.sh/?id={}\r\n",
        good.crtsh_id
    );
    w.deliver(
        "1.eml",
        &report(
            "r2@reporter.test",
            "r@reporter.test",
            "Compromised key",
            &body,
            now,
        ),
    );
    w.start();
    wait_clock(
        &w,
        "CPR-2026-0001",
        &target,
        "first check of a fetched certificate",
        |k| status_of(k, "ocsp").as_deref() == Some("good"),
    );
    // The desk revokes another certificate for the same domain and claims the reported one.
    ca.revoke(&other.serial, "keyCompromise");
    w.deliver_to(
        ".Sent",
        "s2.eml",
        &staff(
            "s2@example-ca.test",
            "r2@reporter.test",
            &format!("Done.\r\n\r\nCPR-Revoked: {target}"),
        ),
    );
    let c = wait_clock(
        &w,
        "CPR-2026-0001",
        &target,
        "contradicted claim alert",
        |k| !k["claimed"].is_null(),
    );
    let start = std::time::Instant::now();
    let queued = loop {
        let c = case(&w, "CPR-2026-0001");
        let q: Vec<Value> = events_of(&c, "mail_queued")
            .into_iter()
            .filter(|e| e["event"]["kind"] == "revocation")
            .cloned()
            .collect();
        if !q.is_empty() {
            break q;
        }
        assert!(
            start.elapsed() < WITHIN,
            "no revocation alert: {c}\n{}",
            w.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(queued.len(), 1, "one alert per problem: {queued:?}");
    let c2 = case(&w, "CPR-2026-0001");
    let clock = clock_of(&c2, &target);
    assert_eq!(
        clock["state"], "pending",
        "a claim alone stops nothing: {clock}"
    );
    assert_eq!(status_of(clock, "ocsp").as_deref(), Some("good"), "{clock}");
    assert_eq!(clock["claimed"]["by"], "<s2@example-ca.test>", "{c}");
    // The fetched copy taught the case what the crt.sh id is: one certificate, one clock.
    let cert = c2["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["ref"] == target)
        .unwrap_or_else(|| panic!("no {target} in {c2}"));
    assert_eq!(cert["sha256"], good.sha256.as_str(), "{cert}");
    assert_eq!(cert["serial"], good.serial.as_str(), "{cert}");
    assert_eq!(cert["spki_sha256"], good.spki_sha256.as_str(), "{cert}");
    assert!(
        c2["clocks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["certificate"] != format!("sha256:{}", good.sha256)),
        "{c2}"
    );
    // `case` text shows the claim beside what the responders say.
    let (_, text) = w.command(&["case", "CPR-2026-0001"]);
    assert!(
        text.contains("claimed revoked") && text.contains("observed: OCSP good"),
        "{text}"
    );
    w.stop();
}

#[test]
fn responders_that_disagree_or_cannot_be_believed_are_told_apart() {
    let mut ca = TestCa::start();
    let mate = ca.cert("mate").clone();
    let unknown = ca.cert("unknown").clone();
    let (t_mate, t_unknown) = (
        format!("sha256:{}", mate.sha256),
        format!("sha256:{}", unknown.sha256),
    );
    let smtp = "[smtp]\nhost = \"127.0.0.1\"\nport = 9\ntls = \"none\"\nfrom = \"cprwatch@example-ca.test\"\n\
                [receipts]\nenabled = false\n[[alerts.route]]\nto = [\"oncall@example-ca.test\"]\n";
    let mut w = Cprwatch::new(&config(&ca, smtp));
    let now = OffsetDateTime::now_utc();
    // A rogue responder signs the first answers: a valid signature by a signer nobody trusts.
    ca.set_ocsp_signer(Signer::Rogue);
    let body = format!(
        "Misissued, please revoke both.\r\n\r\n{}\r\n{}",
        mate.pem().replace('\n', "\r\n"),
        unknown.pem().replace('\n', "\r\n")
    );
    w.deliver(
        "1.eml",
        &report(
            "r3@reporter.test",
            "r@reporter.test",
            "Misissued",
            &body,
            now,
        ),
    );
    w.start();
    let c = wait_clock(
        &w,
        "CPR-2026-0001",
        &t_mate,
        "a rogue answer refused",
        |k| status_of(k, "ocsp").as_deref() == Some("failed"),
    );
    let rogue = observed(clock_of(&c, &t_mate), "ocsp").unwrap().clone();
    assert!(
        rogue["problem"]
            .as_str()
            .unwrap_or("")
            .contains("responder"),
        "{rogue}"
    );
    assert_eq!(
        status_of(clock_of(&c, &t_mate), "crl").as_deref(),
        Some("good")
    );

    // The CA's own delegated responder is believed; a serial it does not know is "unknown".
    ca.set_ocsp_signer(Signer::Delegated);
    // A staff message wakes the checker; the claim on `unknown` is checked at once.
    w.deliver_to(
        ".Sent",
        "s3.eml",
        &staff(
            "s3@example-ca.test",
            "r3@reporter.test",
            &format!("CPR-Revoked: {t_unknown}"),
        ),
    );
    wait_clock(&w, "CPR-2026-0001", &t_unknown, "unknown serial", |k| {
        status_of(k, "ocsp").as_deref() == Some("unknown")
    });

    // Revoked on the CRL only: the responder still says good (a cached responder). The CRL
    // verifies the revocation (the clock stops) and the disagreement is an alert.
    ca.revoke_in(&mate.serial, "superseded", Publish::Crl);
    w.deliver_to(
        ".Sent",
        "s4.eml",
        &staff(
            "s4@example-ca.test",
            "r3@reporter.test",
            &format!("CPR-Revoked: {t_mate}"),
        ),
    );
    let c = wait_clock(&w, "CPR-2026-0001", &t_mate, "CRL revocation", |k| {
        k["state"] == "met"
    });
    let clock = clock_of(&c, &t_mate);
    assert_eq!(
        status_of(clock, "crl").as_deref(),
        Some("revoked"),
        "{clock}"
    );
    assert_eq!(status_of(clock, "ocsp").as_deref(), Some("good"), "{clock}");
    // The alert is about `mate`'s clock, stopped by now (the contradicted claim on `unknown`
    // is a `revocation` alert too). Times are whole seconds: OCSP's good disagrees only when
    // it was made after the revocation, not when the check came in the same second.
    let time_of = |source: &str, field: &str| {
        observed(clock, source)
            .and_then(|o| o[field].as_str())
            .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
    };
    let disagree = match (
        time_of("ocsp", "this_update"),
        time_of("crl", "revocation_time"),
    ) {
        (Some(made), Some(revoked)) => made > revoked,
        _ => false,
    };
    let mate_clock = format!("revocation:{t_mate}");
    let start = std::time::Instant::now();
    loop {
        let c = case(&w, "CPR-2026-0001");
        if events_of(&c, "mail_queued").iter().any(|e| {
            e["event"]["kind"] == "revocation"
                && (!disagree
                    || e["event"]["clocks"]
                        .as_array()
                        .is_some_and(|k| k.iter().any(|k| k == mate_clock.as_str())))
        }) {
            break;
        }
        assert!(
            start.elapsed() < WITHIN,
            "no disagreement alert: {c}\n{}",
            w.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The responder goes down: an answer that cannot be had is a failure, not a "good".
    ca.stop_ocsp();
    w.deliver_to(
        ".Sent",
        "s5.eml",
        &staff(
            "s5@example-ca.test",
            "r3@reporter.test",
            &format!("CPR-Revoked: {t_unknown}"),
        ),
    );
    let c = wait_clock(&w, "CPR-2026-0001", &t_unknown, "responder down", |k| {
        status_of(k, "ocsp").as_deref() == Some("failed")
    });
    let down = observed(clock_of(&c, &t_unknown), "ocsp").unwrap().clone();
    assert!(
        down["problem"].as_str().unwrap_or("").contains("reach"),
        "{down}"
    );
    w.stop();
}

#[test]
fn the_other_certificates_of_a_compromised_key_get_clocks_and_a_precertificate_is_one_with_its_certificate()
 {
    let ca = TestCa::start();
    let (good, mate, expired) = (
        ca.cert("good").clone(),
        ca.cert("mate").clone(),
        ca.cert("expired").clone(),
    );
    let (precert, fin) = (ca.cert("precert").clone(), ca.cert("final").clone());
    let mut w = Cprwatch::new(&config(&ca, ""));
    let now = OffsetDateTime::now_utc();
    let key = |name: &str| {
        std::fs::read_to_string(ca.key_pem(name))
            .unwrap()
            .replace('\n', "\r\n")
    };
    let body = format!(
        "These private keys were posted on a paste site.\r\n\r\n{}\r\n{}",
        key("key-a"),
        key("key-b")
    );
    w.deliver(
        "1.eml",
        &report(
            "r4@reporter.test",
            "r@reporter.test",
            "Leaked keys",
            &body,
            now,
        ),
    );
    w.start();
    let start = std::time::Instant::now();
    let c = loop {
        let c = case(&w, "CPR-2026-0001");
        let certs: Vec<String> = c["clocks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k["certificate"].as_str())
            .filter(|t| t.starts_with("sha256:"))
            .map(str::to_string)
            .collect();
        if certs.len() >= 3 {
            break c;
        }
        assert!(start.elapsed() < WITHIN, "lookup: {c}\n{}", w.log());
        std::thread::sleep(Duration::from_millis(200));
    };
    let clocks = c["clocks"].as_array().unwrap();
    assert!(
        clocks.iter().all(|k| !k["certificate"]
            .as_str()
            .unwrap_or("")
            .starts_with("crtsh:")),
        "each certificate found has one clock, under its fingerprint: {c}"
    );
    let has = |sha: &str| {
        clocks
            .iter()
            .any(|k| k["certificate"] == format!("sha256:{sha}"))
    };
    assert!(
        has(&good.sha256) && has(&mate.sha256),
        "both unexpired certificates of key-a: {c}"
    );
    assert!(
        !has(&expired.sha256),
        "an expired certificate needs no revocation: {c}"
    );
    assert!(
        has(&precert.sha256) ^ has(&fin.sha256),
        "a precertificate and its final certificate are one clock: {c}"
    );
    let one = clocks
        .iter()
        .find(|k| {
            k["certificate"] == format!("sha256:{}", precert.sha256)
                || k["certificate"] == format!("sha256:{}", fin.sha256)
        })
        .unwrap();
    assert!(
        !one["notes"].to_string().contains("precertificate"),
        "its final certificate is known: no note of a lone precertificate: {one}"
    );
    // Each is due with its key: 24 hours from the report, not from the lookup.
    let key_deadline = clocks
        .iter()
        .find(|k| {
            k["certificate"]
                .as_str()
                .is_some_and(|t| t.starts_with("spki:"))
        })
        .map(|k| k["deadline"].clone())
        .unwrap();
    for k in clocks.iter().filter(|k| {
        k["certificate"]
            .as_str()
            .is_some_and(|t| t.starts_with("sha256:"))
    }) {
        assert_eq!(k["deadline"], key_deadline, "{k}");
    }
    let lookup = c["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["from"] == "key-lookup@cprwatch.invalid")
        .unwrap_or_else(|| panic!("no lookup record in {c}"));
    assert_eq!(lookup["staff"], false);
    let (code, out) = w.command(&["verify"]);
    assert_eq!(code, 0, "verify: {out}");
    w.stop();
}

#[test]
fn a_reported_certificate_cannot_make_cprwatch_fetch_from_a_private_address() {
    // The test CA's certificates name 127.0.0.1 for OCSP, CRL and caIssuers: exactly what a
    // stranger's certificate would name to reach inside the CA's network.
    let ca = TestCa::start();
    let good = ca.cert("good").clone();
    let target = format!("sha256:{}", good.sha256);
    let cfg = config(&ca, "").replace(
        "allow_private_addresses = true",
        "allow_private_addresses = false",
    );
    let mut w = Cprwatch::new(&cfg);
    let body = format!("Please revoke.\r\n\r\n{}", good.pem().replace('\n', "\r\n"));
    let now = OffsetDateTime::now_utc();
    w.deliver(
        "1.eml",
        &report("r5@reporter.test", "r@reporter.test", "Revoke", &body, now),
    );
    let before = ca.requests().len();
    w.start();
    let start = std::time::Instant::now();
    loop {
        let (_, log) = (0, w.log());
        if log.contains("revocation checked") {
            break;
        }
        assert!(start.elapsed() < WITHIN, "no check: {log}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let c = case(&w, "CPR-2026-0001");
    let events = events_of(&c, "revocation_observed");
    let clock = clock_of(&c, &target);
    assert!(
        events.is_empty()
            || clock["observed"]
                .as_array()
                .is_some_and(|o| o.iter().all(|x| x["status"] == "failed")),
        "{c}"
    );
    let (_, text) = w.command(&["case", "CPR-2026-0001"]);
    assert!(text.contains("not a public address"), "{text}");
    assert_eq!(
        ca.requests().len(),
        before,
        "nothing reached the test CA: {:?}",
        ca.requests()
    );
    w.stop();
}
