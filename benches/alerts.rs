//! Alerts and receipts on real servers: `cargo bench --bench alerts`
//! (env `BENCH_ALERTS`, default 300; `BENCH_CROSSINGS`, default 40; `BENCH_CROSSING_LEAD`,
//! default 20 seconds; `BENCH_CROSSING_SPACING_MS`, default 1500; `BENCH_RECEIPTS`, default 40).
//!
//! One private Dovecot and one private Postfix on loopback (Postfix delivers into Dovecot's
//! Maildirs); everything is read back over IMAP, as the desk and the reporter would.
//!
//! 1. Alerts per second: `cprwatch run` (this build) on a Maildir of N reports, each breached
//!    (received 25 h ago), each its own case, with `[alerts] flood` above N so each is its own
//!    `breach` alert to `desk`. Timed from the moment the first alert is in the outbox (the
//!    store is polled every 10 ms) until the N-th is in desk's INBOX (IMAP EXAMINE every
//!    20 ms). Baseline: the same N messages (read from the outbox) handed to the same Postfix
//!    through `cprwatch::notify::smtp::Mailer`, one connection per mail as the courier does,
//!    timed from the first send until the N-th is in oncall's INBOX.
//! 2. Threshold crossing to alert, with the default `[clock] tick_seconds` (not set): M reports
//!    whose 1-hour warning threshold (receipt + 23 h) falls at whole seconds spread over the
//!    run (start + lead + i·spacing, truncated to the second, since a receipt time has second
//!    resolution). Each has had its 4-hour warning when first seen, before the first crossing
//!    (checked), so its next mail is the 1-hour warning; its arrival in desk's INBOX (IMAP
//!    polled every 50 ms) minus the crossing is the delay. The tick dominates it: a crossing
//!    waits for the next evaluation.
//! 3. IDLE arrival to receipt: a `[[mailbox]]` on Dovecot's `cpr` INBOX; K reports APPENDed one
//!    at a time (each once the service idles again) from `reporter@example-ca.test`; the
//!    delay runs from the APPEND until the receipt is in reporter's INBOX (polled every 20 ms),
//!    split (the store polled every 2 ms) into APPEND -> receipt queued, queued -> handed to
//!    Postfix, handed -> in the INBOX. Dovecot itself holds an IDLE notification back 500 ms
//!    (`NOTIFY_DELAY_MSECS` in its mailbox-watch.c), which the first part includes.
//!
//! Under `cargo test --all-targets` (no `--bench` flag) it runs small, as a smoke test: 5
//! alerts, 2 crossings with `tick_seconds = 1` (the default tick alone would take a minute), 1
//! receipt.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use cprwatch::source::imap::{Connection, TlsMode};
use support::dovecot::Dovecot;
use support::postfix::Postfix;
use support::service::{Cprwatch, report};
use time::OffsetDateTime;

const BODY: &str = "Hello, one of your certificates has a problem. Please look into it.";

fn config(smtp_port: u16, extra: &str) -> String {
    format!(
        "[desk]\nstaff_domains = [\"example-ca.test\"]\nstaff_addresses = [\"staff@example-ca.test\"]\n\
         [smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\ntls = \"none\"\n\
         from = \"cprwatch@example-ca.test\"\ntimeout = \"10s\"\n{extra}"
    )
}

/// Alerts to desk only, every level; each of up to `flood` alerts in one evaluation its own
/// mail. Receipts off: the reporters here are made up.
fn alerts_to_desk(flood: usize) -> String {
    format!(
        "[receipts]\nenabled = false\n[alerts]\nflood = {flood}\n\
         [[alerts.route]]\nto = [\"desk@example-ca.test\"]\n\
         levels = [\"warning\", \"breach\", \"reminder\", \"advisory\", \"canary\", \"digest\", \"delivery\"]\n"
    )
}

/// One user's INBOX seen over IMAP with cprwatch's own (read-only) client, on one connection:
/// each look re-EXAMINEs the folder, which is what shows mail delivered since.
struct Inbox {
    rt: tokio::runtime::Runtime,
    conn: Connection,
    /// UIDs below this were returned already.
    next_uid: u32,
}

impl Inbox {
    /// Watch `user`'s INBOX from now on: mail already there is not "new".
    fn open(dovecot: &Dovecot, user: &str) -> Inbox {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let account = dovecot.account(user, TlsMode::None);
        let mut conn = rt
            .block_on(Connection::connect(&account, Duration::from_secs(30)))
            .unwrap_or_else(|e| panic!("connect to Dovecot as {user}: {e}"));
        let info = rt.block_on(conn.examine("INBOX")).expect("examine INBOX");
        let next_uid = info.uidnext.expect("Dovecot gives UIDNEXT");
        Inbox { rt, conn, next_uid }
    }

    /// How many messages the INBOX holds.
    fn count(&mut self) -> u32 {
        self.rt
            .block_on(self.conn.examine("INBOX"))
            .expect("examine INBOX")
            .exists
    }

    /// The messages delivered since the last look, oldest first.
    fn new_mail(&mut self) -> Vec<String> {
        let info = self
            .rt
            .block_on(self.conn.examine("INBOX"))
            .expect("examine INBOX");
        if info.uidnext.is_some_and(|u| u <= self.next_uid) {
            return Vec::new();
        }
        let uids = self
            .rt
            .block_on(self.conn.uids_from(self.next_uid))
            .expect("search");
        let fetched = self.rt.block_on(self.conn.fetch(&uids)).expect("fetch");
        if let Some(last) = uids.last() {
            self.next_uid = last + 1;
        }
        fetched
            .into_iter()
            .map(|m| String::from_utf8_lossy(&m.raw).into_owned())
            .collect()
    }
}

/// The parsed subject and `X-CPR-Level` of a delivered mail.
fn subject_and_level(mail: &str) -> (String, String) {
    let parsed = mail_parser::MessageParser::default()
        .parse(mail.as_bytes())
        .expect("a parsable mail");
    let level = parsed
        .header_raw("X-CPR-Level")
        .map(|v| v.trim().to_string())
        .unwrap_or_default();
    (parsed.subject().unwrap_or_default().to_string(), level)
}

fn count(db: &rusqlite::Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |r| r.get(0)).unwrap_or(0)
}

/// The service's store, read-only, once it exists.
fn open_store(path: &Path, within: Duration) -> rusqlite::Connection {
    let start = Instant::now();
    while !path.exists() {
        assert!(start.elapsed() < within, "no store at {}", path.display());
        std::thread::sleep(Duration::from_millis(5));
    }
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open the store read-only")
}

/// Milliseconds sorted, as (median, p99, max).
fn spread(mut ms: Vec<f64>) -> (f64, f64, f64) {
    assert!(!ms.is_empty());
    ms.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
    (pct(0.5), pct(0.99), ms[ms.len() - 1])
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let n = env("BENCH_ALERTS", if benching { 300 } else { 5 });
    let m = env("BENCH_CROSSINGS", if benching { 40 } else { 2 });
    let lead = env("BENCH_CROSSING_LEAD", if benching { 20 } else { 6 });
    let spacing_ms = env("BENCH_CROSSING_SPACING_MS", 1500);
    let k = env("BENCH_RECEIPTS", if benching { 40 } else { 1 });
    // The default tick, except in the smoke run (a minute for two crossings is too long there).
    let tick = (!benching).then_some(1);

    let t = Instant::now();
    let dovecot = Dovecot::start();
    let postfix = Postfix::start(&dovecot.dir().join("mail"));
    eprintln!(
        "Dovecot and Postfix up in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    alert_rate(&dovecot, &postfix, n);
    crossing_delays(&dovecot, &postfix, m, lead, spacing_ms, tick);
    receipt_delays(&dovecot, &postfix, k);
}

/// Figure 1: alerts delivered per second, by the service and by the bare sender.
fn alert_rate(dovecot: &Dovecot, postfix: &Postfix, n: usize) {
    let mut w = Cprwatch::new(&config(postfix.smtp_port(), &alerts_to_desk(n + 1)));
    let now = OffsetDateTime::now_utc();
    for i in 0..n {
        let at = now - time::Duration::hours(25) + time::Duration::seconds(i as i64);
        w.deliver(
            &format!("r{i}"),
            &report(
                &format!("rate-{i}@reporter.test"),
                &format!("Reporter {i} <r{i}@reporter.test>"),
                &format!("Rate-{i:05}"),
                BODY,
                at,
            ),
        );
    }
    let mut desk = Inbox::open(dovecot, "desk");
    let before = desk.count();
    let started = Instant::now();
    w.start();
    let db = open_store(&w.dir.path().join("s.sqlite"), Duration::from_secs(60));
    let queued = "SELECT count(*) FROM outbox";
    let within = Duration::from_secs(300 + n as u64);
    while count(&db, queued) == 0 {
        assert!(started.elapsed() < within, "no alert queued\n{}", w.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    let first_queued = Instant::now();
    let mut all_queued = None;
    let mut last_look = Instant::now() - Duration::from_secs(1);
    loop {
        if all_queued.is_none() && count(&db, queued) >= n as i64 {
            all_queued = Some(Instant::now());
        }
        if last_look.elapsed() >= Duration::from_millis(20) {
            last_look = Instant::now();
            if (desk.count() - before) as usize >= n {
                break;
            }
        }
        assert!(
            started.elapsed() < within,
            "{} of {n} alerts in desk's INBOX\n{}",
            desk.count() - before,
            w.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let secs = first_queued.elapsed().as_secs_f64();
    let all_queued = all_queued.unwrap_or_else(Instant::now);
    w.wait_status(Duration::from_secs(60), "outbox drained", |v| {
        v["outbox"]["pending"] == 0
    });
    w.stop();
    // Like for like: N breach alerts, each its own mail, all sent, none more.
    assert_eq!(
        count(&db, "SELECT count(*) FROM outbox WHERE kind = 'breach'"),
        n as i64,
        "one breach alert per report, no digest"
    );
    assert_eq!(count(&db, queued), n as i64, "nothing else queued");
    assert_eq!(
        count(&db, "SELECT count(*) FROM outbox WHERE state = 'sent'"),
        n as i64
    );
    assert_eq!(desk.count() - before, n as u32, "each alert delivered once");
    let rate = n as f64 / secs;
    println!(
        "alerts (cprwatch run -> local Postfix -> desk's INBOX over IMAP), from the first mail_queued to the {n}th delivered: {n} alerts in {secs:.2}s: alerts/s={rate:.1}"
    );
    println!(
        "  all {n} were queued {:.0} ms after the first; the first {:.2}s after process start (ingest and evaluation)",
        (all_queued - first_queued).as_secs_f64() * 1000.0,
        (first_queued - started).as_secs_f64()
    );

    // Baseline: the very same messages through the courier's own sender, one after another.
    let bodies: Vec<Vec<u8>> = db
        .prepare("SELECT body FROM outbox ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    drop(db);
    let config = cprwatch::config::load(&w.config()).expect("the bench's config loads");
    let mailer = cprwatch::notify::smtp::Mailer::new(config.smtp.as_ref().expect("[smtp]"))
        .expect("a mailer");
    let to: lettre::Address = "oncall@example-ca.test".parse().unwrap();
    let mut oncall = Inbox::open(dovecot, "oncall");
    let before = oncall.count();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = Instant::now();
    for body in &bodies {
        rt.block_on(mailer.send(std::slice::from_ref(&to), body))
            .expect("Postfix takes the mail");
    }
    let handed = t.elapsed().as_secs_f64();
    while ((oncall.count() - before) as usize) < n {
        assert!(
            t.elapsed() < Duration::from_secs(300 + n as u64),
            "baseline mail not delivered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let base_secs = t.elapsed().as_secs_f64();
    let base_rate = n as f64 / base_secs;
    println!(
        "  baseline (Mailer::send, one connection per mail, the same {n} messages -> oncall's INBOX): {base_secs:.2}s: alerts/s={base_rate:.1} (all handed to Postfix after {handed:.2}s)"
    );
    println!(
        "  ratio: the service delivers at {:.0}% of the bare sender's rate",
        100.0 * rate / base_rate
    );
}

/// Figure 2: a 1-hour warning threshold crossed → that warning in desk's INBOX.
fn crossing_delays(
    dovecot: &Dovecot,
    postfix: &Postfix,
    m: usize,
    lead: usize,
    spacing_ms: usize,
    tick: Option<u64>,
) {
    let clock = tick.map_or(String::new(), |t| format!("[clock]\ntick_seconds = {t}\n"));
    // flood above M: all crossings may fall into one evaluation, and must not become a digest.
    let mut w = Cprwatch::new(&config(
        postfix.smtp_port(),
        &format!("{clock}{}", alerts_to_desk(m + 10)),
    ));
    let tick_seconds = cprwatch::config::load(&w.config())
        .expect("the bench's config loads")
        .clock
        .tick_seconds;
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap();
    let base = now + time::Duration::seconds(lead as i64);
    let crossings: Vec<OffsetDateTime> = (0..m)
        .map(|i| base + time::Duration::seconds((i * spacing_ms / 1000) as i64))
        .collect();
    for (i, crossing) in crossings.iter().enumerate() {
        // Received 23 h before its crossing: the 1-hour threshold of its 24-hour deadline.
        w.deliver(
            &format!("x{i}"),
            &report(
                &format!("cross-{i}@reporter.test"),
                &format!("Reporter {i} <x{i}@reporter.test>"),
                &format!("Cross-{i:04}"),
                BODY,
                *crossing - time::Duration::hours(23),
            ),
        );
    }
    let which = |mail: &str| -> Option<usize> {
        let (subject, level) = subject_and_level(mail);
        assert_eq!(level, "warning", "only warnings here: {subject}");
        let at = subject.find("Cross-")? + "Cross-".len();
        subject.get(at..at + 4)?.parse().ok()
    };
    let mut desk = Inbox::open(dovecot, "desk");
    w.start();
    // The 4-hour warnings of first sight: all in before the first crossing.
    let mut first = vec![false; m];
    while first.iter().any(|f| !f) {
        for mail in desk.new_mail() {
            let i = which(&mail).expect("a warning about one of the reports");
            assert!(
                !first[i],
                "two warnings of Cross-{i:04} before any crossing"
            );
            first[i] = true;
        }
        assert!(
            OffsetDateTime::now_utc() < base,
            "the first warnings took longer than the lead of {lead}s; raise BENCH_CROSSING_LEAD\n{}",
            w.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "{m} first warnings in; first crossing in {:.1}s",
        (base - OffsetDateTime::now_utc()).as_seconds_f64()
    );
    // Then each report's next mail is its 1-hour warning.
    let mut delays: Vec<Option<f64>> = vec![None; m];
    let give_up =
        *crossings.last().unwrap() + time::Duration::seconds(2 * tick_seconds as i64 + 120);
    while delays.iter().any(Option::is_none) {
        let mail = desk.new_mail();
        let arrived = OffsetDateTime::now_utc();
        for mail in mail {
            let i = which(&mail).expect("a warning about one of the reports");
            assert!(delays[i].is_none(), "a third warning of Cross-{i:04}");
            let ms = (arrived - crossings[i]).as_seconds_f64() * 1000.0;
            assert!(
                ms >= 0.0,
                "Cross-{i:04}'s 1-hour warning came {:.1}s before its threshold",
                -ms / 1000.0
            );
            delays[i] = Some(ms);
        }
        assert!(
            arrived < give_up,
            "{} of {m} 1-hour warnings arrived\n{}",
            delays.iter().flatten().count(),
            w.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    w.stop();
    let (median, p99, max) = spread(delays.into_iter().flatten().collect());
    println!(
        "threshold crossing -> alert in desk's INBOX (tick_seconds = {tick_seconds}{}), {m} crossings over {:.0}s: median={median:.0}ms p99={p99:.0}ms max={max:.0}ms",
        if tick.is_none() {
            ", the default"
        } else {
            ", smoke run"
        },
        (*crossings.last().unwrap() - base).as_seconds_f64()
    );
}

/// Figure 3: a report arriving over IMAP IDLE → its receipt in the reporter's INBOX.
fn receipt_delays(dovecot: &Dovecot, postfix: &Postfix, k: usize) {
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "cpr-secret").unwrap();
    let extra = format!(
        "[receipts]\nenabled = true\nmax_per_sender_per_hour = {}\n\
         [[mailbox]]\nname = \"cpr\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
         username = \"cpr\"\npassword_file = \"{}\"\n\
         folders = [{{ name = \"INBOX\", role = \"inbox\" }}]\npoll_seconds = 60\n",
        k + 10,
        dovecot.imap_port(),
        secret.path().display()
    );
    let mut w = Cprwatch::new(&config(postfix.smtp_port(), &extra));
    let mut reporter = Inbox::open(dovecot, "reporter");
    w.start();
    w.wait_status(Duration::from_secs(60), "folder synced", |v| {
        v["sources"][0]["last_sync_at"].is_string()
    });
    let db = open_store(&w.dir.path().join("s.sqlite"), Duration::from_secs(60));
    let (queued, sent) = (
        "SELECT count(*) FROM outbox",
        "SELECT count(*) FROM outbox WHERE state = 'sent'",
    );
    let mut delays = Vec::with_capacity(k);
    // Where the time goes: APPEND -> receipt queued (IDLE wake, fetch, ingest, commit) ->
    // handed to Postfix (the courier) -> in the INBOX (Postfix, Dovecot, the 20 ms poll).
    let (mut to_queued, mut to_sent, mut to_inbox) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..k {
        dovecot.wait_for_idle("cpr");
        let now = OffsetDateTime::now_utc();
        let id = format!("receipt-{i}-{}@reporter.test", std::process::id());
        let raw = report(
            &id,
            "reporter@example-ca.test",
            &format!("Receipt-{i:04}"),
            "Please revoke https://crt.sh/?id=777 - its key is compromised.",
            now,
        );
        let (was_queued, was_sent) = (count(&db, queued), count(&db, sent));
        let (mut at_queued, mut at_sent) = (None, None);
        let mut last_look = Instant::now();
        let t = Instant::now();
        dovecot.append("cpr", "INBOX", &raw, now);
        let receipt = loop {
            // The store every 2 ms, the INBOX every 20 ms.
            if at_queued.is_none() && count(&db, queued) > was_queued {
                at_queued = Some(t.elapsed());
            }
            if at_sent.is_none() && count(&db, sent) > was_sent {
                at_sent = Some(t.elapsed());
            }
            if last_look.elapsed() >= Duration::from_millis(20) {
                last_look = Instant::now();
                if let Some(r) = reporter.new_mail().into_iter().next() {
                    break r;
                }
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "no receipt for report {i}\n{}",
                w.log()
            );
            std::thread::sleep(Duration::from_millis(2));
        };
        let total = t.elapsed();
        delays.push(total.as_secs_f64() * 1000.0);
        assert!(receipt.contains(&id), "the receipt answers report {i}");
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let q = at_queued.expect("the receipt was queued");
        let s = at_sent.expect("the receipt was sent").max(q);
        to_queued.push(ms(q));
        to_sent.push(ms(s - q));
        to_inbox.push(ms(total.saturating_sub(s)));
    }
    w.stop();
    let (median, p99, max) = spread(delays);
    println!(
        "report APPENDed (IDLE) -> receipt in reporter's INBOX, {k} reports: median={median:.0}ms p99={p99:.0}ms max={max:.0}ms"
    );
    println!(
        "  medians of its parts: APPEND -> receipt queued {:.0}ms, queued -> handed to Postfix {:.0}ms, handed -> in the INBOX {:.0}ms",
        spread(to_queued).0,
        spread(to_sent).0,
        spread(to_inbox).0
    );
}
