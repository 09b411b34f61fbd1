//! Alerts to staff, end to end on real servers: `cprwatch run` watches a Maildir, evaluates its
//! clocks every second and mails alerts through a test Postfix on loopback, which delivers them
//! into the test Dovecot; the tests read them back over IMAP as the desk would.
//!
//! Time stays an argument: reports are dated relative to now (their `Received:` header), so a
//! clock is breached, or 4 hours from its deadline, or seconds from a threshold, the moment
//! cprwatch first sees it. Nothing sleeps until a deadline.

mod support;

use std::time::{Duration, Instant};

use support::dovecot::Dovecot;
use support::postfix::Postfix;
use support::service::{Cprwatch, header, inbox, levels, report, settled};
use time::OffsetDateTime;

fn config(smtp_port: u16, extra: &str) -> String {
    format!(
        "[desk]\nstaff_domains = [\"example-ca.test\"]\n\
         [clock]\ntick_seconds = 1\n\
         [smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\ntls = \"none\"\n\
         from = \"cprwatch@example-ca.test\"\ntimeout = \"10s\"\n\
         [receipts]\nenabled = false\n{extra}"
    )
}

const ROUTES: &str = "[[alerts.route]]\nto = [\"desk@example-ca.test\"]\n\
    levels = [\"warning\", \"breach\", \"reminder\", \"advisory\", \"canary\", \"digest\", \"delivery\"]\n\
    [[alerts.route]]\nto = [\"oncall@example-ca.test\"]\nlevels = [\"breach\"]\n";

#[test]
fn each_clock_alerts_once_per_stage_to_the_routes_that_take_it() {
    let dovecot = Dovecot::start();
    let postfix = Postfix::start(&dovecot.dir().join("mail"));
    let mut w = Cprwatch::new(&config(postfix.smtp_port(), ROUTES));
    let now = OffsetDateTime::now_utc();
    let h = time::Duration::hours;
    let plain = "Hello, one of your certificates has a problem. Please look into it.";
    // Breached an hour ago: a breach, to both routes.
    w.deliver(
        "a",
        &report(
            "a@r.test",
            "a@reporter.test",
            "Report-A",
            plain,
            now - h(25),
        ),
    );
    // Four hours left (12 h passed too): only the latest warning.
    w.deliver(
        "b",
        &report(
            "b@r.test",
            "b@reporter.test",
            "Report-B",
            plain,
            now - h(20),
        ),
    );
    // Answered in time: no alert at all.
    w.deliver(
        "c",
        &report(
            "c@r.test",
            "c@reporter.test",
            "Report-C",
            plain,
            now - h(13),
        ),
    );
    let answer = format!(
        "Received: from mx.example-ca.test by mx.example-ca.test; {}\r\n\
         From: staff@example-ca.test\r\nTo: c@reporter.test\r\nSubject: Re: Report-C\r\n\
         Message-ID: <answer-c@example-ca.test>\r\nIn-Reply-To: <c@r.test>\r\n\r\n\
         We are investigating.\r\n",
        (now - h(12))
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap()
    );
    w.deliver_to(".Sent", "c-answer", answer.as_bytes());
    // A 5-day revocation clock 30 hours in: the advisory; its case's preliminary report is
    // 6 hours overdue, past its breach and first reminder: only the reminder.
    w.deliver(
        "d",
        &report(
            "d@r.test",
            "d@reporter.test",
            "Report-D",
            "The certificate https://crt.sh/?id=5005 has an RSA key of only 1024 bits.",
            now - h(30),
        ),
    );
    // Breached 8 days before cprwatch first saw it: history, in a digest.
    w.deliver(
        "e",
        &report(
            "e@r.test",
            "e@reporter.test",
            "Report-E",
            plain,
            now - h(24 * 9),
        ),
    );
    // Six seconds from its 1-hour threshold: the 4-hour warning now, the 1-hour one when the
    // threshold is crossed.
    let f_at = now - h(23) + time::Duration::seconds(6);
    w.deliver(
        "f",
        &report("f@r.test", "f@reporter.test", "Report-F", plain, f_at),
    );
    w.start();

    let wait = Duration::from_secs(60);
    let a = inbox(&dovecot, "desk", "Report-A", wait);
    let f_first = inbox(&dovecot, "desk", "Report-F", wait);
    assert!(!f_first.is_empty(), "{}", w.log());
    // The 1-hour threshold of F: crossed about six seconds after the start.
    let crossing = Instant::now();
    let _ = loop {
        let f = inbox(&dovecot, "desk", "Report-F", wait);
        if f.len() >= 2 || crossing.elapsed() > Duration::from_secs(60) {
            break f;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    settled(&w);

    assert_eq!(levels(&a), ["breach"], "{a:?}");
    let a0 = &a[0];
    assert!(
        header(a0, "X-CPR-Case").is_some_and(|c| c.starts_with("CPR-")),
        "{a0}"
    );
    assert!(
        header(a0, "X-CPR-Clock").is_some_and(|c| c.starts_with("preliminary_report:CPR-")),
        "{a0}"
    );
    let b = inbox(&dovecot, "desk", "Report-B", wait);
    assert_eq!(levels(&b), ["warning"], "{b:?}");
    assert!(
        header(&b[0], "Subject").is_some_and(|s| s.to_lowercase().contains("warning")),
        "{}",
        b[0]
    );
    let d = inbox(&dovecot, "desk", "Report-D", wait);
    assert_eq!(levels(&d), ["advisory", "reminder"], "{d:?}");
    let e = inbox(&dovecot, "desk", "Report-E", wait);
    assert_eq!(levels(&e), ["digest"], "{e:?}");
    let f = inbox(&dovecot, "desk", "Report-F", wait)
        .into_iter()
        .collect::<Vec<_>>();
    assert_eq!(levels(&f), ["warning", "warning"], "{f:?}");
    assert!(
        inbox(&dovecot, "desk", "Report-C", Duration::ZERO).is_empty(),
        "a clock stopped in time alerts nobody"
    );
    // oncall takes breaches only: A's.
    let oncall = inbox(&dovecot, "oncall", "X-CPR-Level", wait);
    assert_eq!(levels(&oncall), ["breach"], "{oncall:?}");

    // Threaded per case: the alerts of one case share their root.
    let d_refs: Vec<String> = d.iter().filter_map(|m| header(m, "References")).collect();
    assert_eq!(d_refs.len(), 2, "{d:?}");
    assert_eq!(d_refs[0], d_refs[1]);

    // A restart re-evaluates every open clock and sends nothing twice.
    w.stop();
    w.start();
    settled(&w);
    w.stop();
    let all = inbox(&dovecot, "desk", "X-CPR-Level", wait);
    assert_eq!(all.len(), 1 + 1 + 2 + 1 + 2, "{}", levels(&all).join(" "));
    let (code, log) = w.command(&["verify"]);
    assert_eq!(code, 0, "{log}");
}

#[test]
fn a_flood_of_breaches_is_one_digest_per_route() {
    let dovecot = Dovecot::start();
    let postfix = Postfix::start(&dovecot.dir().join("mail"));
    let mut w = Cprwatch::new(&config(postfix.smtp_port(), ROUTES));
    let now = OffsetDateTime::now_utc();
    for i in 0..25 {
        let at = now - time::Duration::hours(25) + time::Duration::seconds(i);
        let body = "Hello, one of your certificates has a problem.";
        w.deliver(
            &format!("spam{i}"),
            &report(
                &format!("s{i}@r.test"),
                &format!("s{i}@spam.test"),
                &format!("Wave-{i}"),
                body,
                at,
            ),
        );
    }
    w.start();
    let digest = inbox(
        &dovecot,
        "desk",
        "X-CPR-Level: digest",
        Duration::from_secs(60),
    );
    settled(&w);
    w.stop();
    let desk = inbox(&dovecot, "desk", "X-CPR-Level", Duration::ZERO);
    assert_eq!(levels(&desk), ["digest"], "one mail, not 25");
    assert!(
        digest[0].contains("Wave-24") || digest[0].contains("preliminary_report"),
        "{}",
        digest[0]
    );
    let oncall = inbox(&dovecot, "oncall", "X-CPR-Level", Duration::ZERO);
    assert_eq!(levels(&oncall), ["digest"]);
}

#[test]
fn smtp_down_while_thresholds_pass_and_a_kill_before_delivery_still_deliver_exactly_once() {
    let dovecot = Dovecot::start();
    let mut postfix = Postfix::start(&dovecot.dir().join("mail"));
    let mut w = Cprwatch::new(&config(postfix.smtp_port(), ROUTES));
    postfix.stop();
    let now = OffsetDateTime::now_utc();
    let plain = "Hello, one of your certificates has a problem.";
    w.deliver(
        "g",
        &report(
            "g@r.test",
            "g@reporter.test",
            "Report-G",
            plain,
            now - time::Duration::hours(25),
        ),
    );
    // Its 1-hour threshold is crossed 4 seconds after the start, while the server is down.
    let l_at = now - time::Duration::hours(23) + time::Duration::seconds(4);
    w.deliver(
        "l",
        &report("l@r.test", "l@reporter.test", "Report-L", plain, l_at),
    );
    w.start();
    // Evaluated and queued, and the courier has tried and failed.
    let v = w.wait_status(Duration::from_secs(60), "delivery retried", |v| {
        v["outbox"]["retrying"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    });
    assert!(v["outbox"]["pending"].as_u64() >= Some(3), "{v}");
    // L's second warning queued too: its threshold was crossed during the outage.
    let v = w.wait_status(Duration::from_secs(60), "L's second warning queued", |v| {
        v["outbox"]["pending"] == 4
    });
    assert_eq!(v["outbox"]["failed"], serde_json::json!([]), "{v}");
    // Killed between evaluation and delivery.
    w.kill();
    postfix.restart();
    w.start();
    let g = inbox(&dovecot, "desk", "Report-G", Duration::from_secs(90));
    settled(&w);
    w.stop();
    let g_all = inbox(&dovecot, "desk", "Report-G", Duration::ZERO);
    assert_eq!(levels(&g_all), ["breach"], "exactly once: {g:?}");
    let oncall = inbox(&dovecot, "oncall", "Report-G", Duration::ZERO);
    assert_eq!(levels(&oncall), ["breach"]);
    let l = inbox(&dovecot, "desk", "Report-L", Duration::ZERO);
    assert_eq!(
        levels(&l),
        ["warning", "warning"],
        "4 h and 1 h, once each: {l:?}"
    );
    let (code, _) = w.command(&["verify"]);
    assert_eq!(code, 0);
}

#[test]
fn a_permanent_refusal_is_recorded_shown_and_alerted_to_the_other_routes() {
    let dovecot = Dovecot::start();
    let postfix = Postfix::start(&dovecot.dir().join("mail"));
    let routes = format!(
        "[[alerts.route]]\nto = [\"{}\"]\nlevels = [\"breach\"]\n\
         [[alerts.route]]\nto = [\"desk@example-ca.test\"]\nlevels = [\"delivery\"]\n",
        support::postfix::REFUSED
    );
    let mut w = Cprwatch::new(&config(postfix.smtp_port(), &routes));
    let now = OffsetDateTime::now_utc();
    w.deliver(
        "h",
        &report(
            "h@r.test",
            "h@reporter.test",
            "Report-H",
            "Hello, a certificate problem.",
            now - time::Duration::hours(25),
        ),
    );
    w.start();
    let delivery = inbox(
        &dovecot,
        "desk",
        "X-CPR-Level: delivery",
        Duration::from_secs(60),
    );
    settled(&w);
    w.stop();
    assert_eq!(delivery.len(), 1, "{delivery:?}");
    let (code, text) = w.command(&["status"]);
    assert_eq!(code, 3, "a failed delivery is a problem: {text}");
    assert!(text.contains("FAILED"), "{text}");
    let v = w.status_json();
    assert_eq!(v["outbox"]["failed"][0]["kind"], "breach", "{v}");
    assert!(
        v["outbox"]["failed"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("550")),
        "{v}"
    );
}

#[test]
fn cpr_delayed_stops_the_reminders_and_the_clock_stays_breached() {
    let dovecot = Dovecot::start();
    let postfix = Postfix::start(&dovecot.dir().join("mail"));
    let mut w = Cprwatch::new(&config(postfix.smtp_port(), ROUTES));
    let now = OffsetDateTime::now_utc();
    // Both breached 4 hours less 5 seconds ago: first seen at the breach stage, their first
    // reminder due 5 seconds after the start.
    let at = now - time::Duration::hours(28) + time::Duration::seconds(5);
    let body = |n: u32| {
        format!("The private key of https://crt.sh/?id={n} was published on a paste site.")
    };
    w.deliver(
        "j",
        &report("j@r.test", "j@reporter.test", "Report-J", &body(9001), at),
    );
    w.deliver(
        "k",
        &report("k@r.test", "k@reporter.test", "Report-K", &body(9002), at),
    );
    // Staff answered J an hour ago and acknowledged its revocation as delayed.
    let answer = format!(
        "Received: from mx.example-ca.test by mx.example-ca.test; {}\r\n\
         From: staff@example-ca.test\r\nTo: j@reporter.test\r\nSubject: Re: Report-J\r\n\
         Message-ID: <answer-j@example-ca.test>\r\nIn-Reply-To: <j@r.test>\r\n\r\n\
         We are on it.\r\n\r\n\
         CPR-Delayed: crtsh:9001 https://bugzilla.mozilla.org/show_bug.cgi?id=1999999\r\n",
        (now - time::Duration::hours(1))
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap()
    );
    w.deliver_to(".Sent", "j-answer", answer.as_bytes());
    w.start();
    let wait = Duration::from_secs(60);
    // K's reminders arrive: the moment J's would have.
    let start = Instant::now();
    let k = loop {
        let k = inbox(&dovecot, "desk", "Report-K", wait);
        if levels(&k).iter().filter(|l| *l == "reminder").count() >= 2
            || start.elapsed() > Duration::from_secs(60)
        {
            break k;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    settled(&w);
    w.stop();
    assert_eq!(
        levels(&k),
        ["breach", "breach", "reminder", "reminder"],
        "K: preliminary report and revocation, each breached then reminded"
    );
    let j = inbox(&dovecot, "desk", "Report-J", Duration::ZERO);
    assert_eq!(
        levels(&j),
        ["breach"],
        "J: the revocation's breach, no reminder: {j:?}"
    );
    assert_eq!(
        header(&j[0], "X-CPR-Clock").as_deref(),
        Some("revocation:crtsh:9001")
    );
    // Still breached, and the acknowledgement shows with its incident.
    let v = w.status_json();
    let clocks: Vec<&serde_json::Value> = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["clocks"].as_array().unwrap())
        .filter(|c| c["certificate"] == "crtsh:9001")
        .collect();
    assert_eq!(clocks.len(), 1, "{v}");
    assert_eq!(clocks[0]["state"], "breached", "{v}");
    assert!(
        clocks[0]["acknowledged"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("show_bug.cgi?id=1999999")),
        "{v}"
    );
}
