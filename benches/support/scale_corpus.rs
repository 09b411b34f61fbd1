//! A CA problem-report desk's mailbox over its history, for `benches/scale.rs`: the desk does its
//! work, so what is open at the end is only the last day's, whatever the length of the history.
//!
//! The mail, in receipt order, one message every two minutes or so (a new piece of mail every
//! four minutes on average, plus what the desk and reporters send about it):
//! - reports (a fifth of the new mail): crt.sh links, crt.sh ids in prose, crt.sh links by
//!   SHA-256, colon-separated SHA-256 fingerprints, pasted PEM certificates, questions naming
//!   nothing; a few misfiled in `.Junk`;
//! - staff answers in `.Sent` within 10 hours, In-Reply-To the report and To the reporter (which
//!   meets the preliminary-report clock), with `CPR-Revoked: <ref>` in the answer or in a second
//!   message within 20 hours of the report (which meets the revocation clock);
//! - reporter follow-ups, threaded by References;
//! - far more spam than reports (seven tenths of the new mail, mostly in `.Junk`, some HTML):
//!   every spam opens a case (the rules cannot tell spam from a terse report) and staff dismiss
//!   it within 16 hours with `CPR-Dismiss`, an internal note In-Reply-To the spam;
//! - backscatter: bounces (`multipart/report`, null sender) and auto-replies, which open no case.
//!
//! Generated in receipt order with a queue of what the desk and the reporters will send later,
//! so every reply follows what it answers; the work scheduled after the end is never sent, and
//! that is what stays open. The first `n` messages are the history (`main/`, a Maildir with
//! `.Sent` and `.Junk`), the next `live` the mail that arrives while the service runs (`live/`).
//! Case numbers are known to the generator (cases are numbered per year in receipt order), so
//! the benchmark can name a case in the middle of the history.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::corpus::{CERT_PEM, Rng, seed_lines};

/// Bumped whenever the generated mail changes, so a cached corpus of an older shape is rebuilt.
const VERSION: &str = "scale-corpus v2";

/// The nominal end of the history (2026-06-01T00:00:00Z): the last message is close to it.
const T_END: i64 = 1_780_272_000;
/// Seconds between two pieces of new mail (reports, spam, backscatter): uniform in this range.
const GAP: (i64, i64) = (60, 420);
/// Messages per piece of new mail, with everything sent about it (measured on the generator).
const MESSAGES_PER_NEW: f64 = 2.0;

/// What the benchmark needs to know about a generated corpus.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub root: PathBuf,
    /// Messages in `main/` (the history) and in `live/` (for the service).
    pub n: usize,
    pub live: usize,
    /// Bytes of every file in `main/`.
    pub mail_bytes: u64,
    /// Receipt time of the last message of the history (unix seconds).
    pub t_end: i64,
    /// A case opened by a report in the middle of the history, and the crt.sh id it names.
    pub mid_case: String,
    pub mid_crtsh: u64,
    /// Counts in the history, for the printout.
    pub reports: usize,
    pub spam: usize,
    pub cases: usize,
}

impl Corpus {
    pub fn main(&self) -> PathBuf {
        self.root.join("main")
    }

    pub fn live_dir(&self) -> PathBuf {
        self.root.join("live")
    }
}

/// The corpus under `root`, generated unless a complete one of this version is there.
pub fn ensure(root: &Path, n: usize, live: usize) -> Corpus {
    if let Some(c) = read_meta(root)
        && c.n == n
        && c.live == live
    {
        return c;
    }
    let t = std::time::Instant::now();
    let c = generate(root, n, live);
    eprintln!(
        "scale: generated {} + {} messages ({:.1} MB) in {:.1}s at {}",
        n,
        live,
        c.mail_bytes as f64 / 1e6,
        t.elapsed().as_secs_f64(),
        root.display()
    );
    c
}

/// The folders of a generated Maildir, relative to it: the inbox, Junk and Sent.
pub const FOLDERS: [&str; 3] = ["", ".Junk", ".Sent"];

fn read_meta(root: &Path) -> Option<Corpus> {
    let text = fs::read_to_string(root.join(".done")).ok()?;
    let mut lines = text.lines();
    if lines.next()? != VERSION {
        return None;
    }
    let kv: BTreeMap<&str, &str> = lines.filter_map(|l| l.split_once('=')).collect();
    let num = |k: &str| kv.get(k).and_then(|v| v.parse::<u64>().ok());
    Some(Corpus {
        root: root.to_path_buf(),
        n: num("n")? as usize,
        live: num("live")? as usize,
        mail_bytes: num("mail_bytes")?,
        t_end: kv.get("t_end")?.parse().ok()?,
        mid_case: kv.get("mid_case")?.to_string(),
        mid_crtsh: num("mid_crtsh")?,
        reports: num("reports")? as usize,
        spam: num("spam")? as usize,
        cases: num("cases")? as usize,
    })
}

fn write_meta(c: &Corpus) {
    let text = format!(
        "{VERSION}\nn={}\nlive={}\nmail_bytes={}\nt_end={}\nmid_case={}\nmid_crtsh={}\nreports={}\nspam={}\ncases={}\n",
        c.n, c.live, c.mail_bytes, c.t_end, c.mid_case, c.mid_crtsh, c.reports, c.spam, c.cases
    );
    fs::write(c.root.join(".done"), text).expect("write corpus marker");
}

/// A report the desk will answer, as the later messages about it need it.
#[derive(Clone)]
struct Report {
    message_id: String,
    from: String,
    subject: String,
    /// The reference a staff `CPR-Revoked` names; `None` when the report names no certificate.
    revoke: Option<String>,
    /// The report's own words, which the answer quotes (`> `), as mail clients do.
    quote: String,
}

/// Mail scheduled for later, sent when its time comes (unless the history ends first).
enum Later {
    /// The staff answer; with the revocation command when `revoke_in_answer`.
    Answer {
        report: Report,
        revoke_in_answer: bool,
    },
    /// The staff message saying the certificate is revoked.
    Revoked { report: Report },
    /// The reporter asking for news.
    FollowUp { report: Report },
    /// A staff note dismissing a spam case.
    Dismiss { spam: Report },
}

struct Gen {
    rng: Rng,
    seeds: Vec<String>,
    /// Scheduled mail by time (ties by order of scheduling).
    queue: BinaryHeap<Reverse<(i64, u64)>>,
    later: BTreeMap<u64, Later>,
    seq: u64,
    /// Next case number per year.
    numbering: BTreeMap<i32, u32>,
    /// Reports and crt.sh ids handed out so far: ids are unique, as certificates are.
    crtsh_next: u64,
}

impl Gen {
    fn schedule(&mut self, at: i64, what: Later) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.later.insert(self.seq, what);
    }

    fn open_case(&mut self, at: i64) -> String {
        let year = time::OffsetDateTime::from_unix_timestamp(at)
            .expect("time")
            .year();
        let n = self.numbering.entry(year).or_insert(1);
        let id = format!("CPR-{year}-{:04}", *n);
        *n += 1;
        id
    }

    fn filler(&mut self, lines: (u64, u64)) -> String {
        let mut body = String::new();
        for _ in 0..(lines.0 + self.rng.below(lines.1 - lines.0)) {
            let l = self.rng.below(self.seeds.len() as u64) as usize;
            body.push_str(&self.seeds[l]);
            body.push_str("\r\n");
        }
        body
    }

    fn hex64(&mut self) -> String {
        format!(
            "{:016x}{:016x}{:016x}{:016x}",
            self.rng.next(),
            self.rng.next(),
            self.rng.next(),
            self.rng.next()
        )
    }
}

fn rfc2822(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .expect("time")
        .format(&time::format_description::well_known::Rfc2822)
        .expect("format date")
}

/// The header block of mail received by the CA's MX (whose `Received:` gives receipt time), as
/// real mail has it: a chain of relays, a DKIM signature, the MX's verdicts and spam score.
fn inbound_headers(g: &mut Gen, i: usize, t: i64, from: &str, relay: &str) -> String {
    let date = rfc2822(t);
    let hop = |t: i64| rfc2822(t);
    let domain = from.rsplit_once('@').map_or(relay, |(_, d)| d).to_string();
    let score = if relay.contains("bulk") {
        format!("Yes, score={}.{}", 5 + g.rng.below(20), g.rng.below(10))
    } else {
        format!("No, score=-{}.{}", g.rng.below(3), g.rng.below(10))
    };
    let bh = b64(g, 44);
    let b = b64(g, 344);
    let b = b
        .as_bytes()
        .chunks(72)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\r\n\t ");
    format!(
        "Return-Path: <{from}>\r\n\
         Delivered-To: cpr@example-ca.test\r\n\
         Received: from {relay} ({relay} [192.0.2.{ip}])\r\n\tby mx.example-ca.test (Postfix) with ESMTPS id Q{i:X}\r\n\tfor <cpr@example-ca.test>; {date}\r\n\
         Authentication-Results: mx.example-ca.test;\r\n\tdkim=pass (2048-bit key; unprotected) header.d={domain} header.s=s1 header.b=abcdEF12;\r\n\tspf=pass (mx.example-ca.test: domain of {from} designates 192.0.2.{ip} as permitted sender) smtp.mailfrom={from};\r\n\tdmarc=pass (p=none dis=none) header.from={domain}\r\n\
         X-Spam-Status: {score} required=5.0 tests=DKIM_SIGNED,DKIM_VALID,SPF_PASS\r\n\
         Received: from outbound{o}.{relay} (outbound{o}.{relay} [198.51.100.{o}])\r\n\tby {relay} with ESMTPSA id {i:x}.{o}\r\n\tfor <cpr@example-ca.test>; {d1}\r\n\
         Received: from [10.0.{o}.{ip}] (client.{domain} [10.0.{o}.{ip}])\r\n\tby outbound{o}.{relay} (Postfix) with ESMTPSA; {d2}\r\n\
         DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain}; s=s1; t={t};\r\n\th=from:to:subject:date:message-id:mime-version:content-type;\r\n\tbh={bh};\r\n\tb={b}\r\n\
         Date: {date}\r\n",
        ip = 1 + i % 250,
        o = g.rng.below(200),
        d1 = hop(t - 2),
        d2 = hop(t - 3),
    )
}

/// `len` characters of base64 alphabet: signatures and hashes as mail carries them.
fn b64(g: &mut Gen, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..len)
        .map(|_| ALPHABET[g.rng.below(64) as usize] as char)
        .collect()
}

const SPAM_SUBJECTS: [&str; 10] = [
    "Boost your search ranking today",
    "Invoice overdue - action required",
    "Your mailbox is almost full",
    "Partnership proposal for your company",
    "Exclusive offer: wildcard certificates at 90% off",
    "Re: your order has shipped",
    "Congratulations, you have been selected",
    "Unpaid domain renewal notice",
    "Meet singles in your area",
    "Quick question about your website",
];

const SPAM_LINES: [&str; 10] = [
    "We can put your website on the first page of every search engine within a week.",
    "Click the link below to confirm your account before it is suspended.",
    "Our team offers the lowest prices for bulk orders, shipping worldwide.",
    "This is a limited time offer, reply now to claim your discount.",
    "Please find the attached invoice and settle the amount at your earliest convenience.",
    "You have received this message because you subscribed to our newsletter.",
    "Earn money from home with our proven investment programme.",
    "Your password expires today; keep it by signing in through the portal.",
    "We noticed several errors on your website that cost you customers every day.",
    "Unsubscribe at any time by replying with REMOVE in the subject.",
];

fn generate(root: &Path, n: usize, live: usize) -> Corpus {
    let _ = fs::remove_dir_all(root);
    for part in ["main", "live"] {
        for folder in FOLDERS {
            for sub in ["cur", "new", "tmp"] {
                fs::create_dir_all(root.join(part).join(folder).join(sub)).expect("mkdir");
            }
        }
    }
    let mut g = Gen {
        rng: Rng(0x5CA1_AB1E_D00D_F00D),
        seeds: seed_lines(),
        queue: BinaryHeap::new(),
        later: BTreeMap::new(),
        seq: 0,
        numbering: BTreeMap::new(),
        crtsh_next: 4_100_000_000,
    };
    let mean_gap = (GAP.0 + GAP.1) as f64 / 2.0;
    let start = T_END - (n as f64 / MESSAGES_PER_NEW * mean_gap) as i64;
    let mut next_new = start;
    let mut last_t = start - 1;
    let mut c = Corpus {
        root: root.to_path_buf(),
        n,
        live,
        mail_bytes: 0,
        t_end: 0,
        mid_case: String::new(),
        mid_crtsh: 0,
        reports: 0,
        spam: 0,
        cases: 0,
    };
    for i in 0..n + live {
        let scheduled = g
            .queue
            .peek()
            .is_some_and(|Reverse((at, _))| *at <= next_new);
        // Strictly increasing receipt times: receipt order is unambiguous, and so are the case
        // numbers the generator predicts.
        let (t, msg_folder) = if scheduled {
            let Reverse((at, seq)) = g.queue.pop().expect("peeked");
            let what = g.later.remove(&seq).expect("scheduled");
            let t = at.max(last_t + 1);
            (t, later_mail(&mut g, i, t, what))
        } else {
            let t = next_new.max(last_t + 1);
            next_new += g.rng.range(GAP.0, GAP.1);
            let (mail, kind) = new_mail(&mut g, i, t);
            if i < n {
                match kind {
                    NewKind::Report { case, crtsh } => {
                        c.reports += 1;
                        c.cases += 1;
                        if c.mid_case.is_empty()
                            && i >= n / 2
                            && let Some(id) = crtsh
                        {
                            c.mid_case = case;
                            c.mid_crtsh = id;
                        }
                    }
                    NewKind::Spam => {
                        c.spam += 1;
                        c.cases += 1;
                    }
                    NewKind::Backscatter => {}
                }
            }
            (t, mail)
        };
        last_t = t;
        let (folder, msg) = msg_folder;
        let part = if i < n { "main" } else { "live" };
        let name = format!("{t}.M{i}P1.scale,S={}:2,S", msg.len());
        let mut f = fs::File::create(root.join(part).join(folder).join("cur").join(name))
            .expect("create message file");
        f.write_all(msg.as_bytes()).expect("write message");
        if i < n {
            c.mail_bytes += msg.len() as u64;
            c.t_end = t;
        }
        if (i + 1) % 100_000 == 0 {
            eprintln!("scale: generated {} of {} messages", i + 1, n + live);
        }
    }
    if c.mid_case.is_empty() {
        // A history too short to hold a report with a crt.sh id after its middle.
        c.mid_case = "CPR-0000-0000".into();
    }
    write_meta(&c);
    c
}

enum NewKind {
    Report { case: String, crtsh: Option<u64> },
    Spam,
    Backscatter,
}

/// A new piece of mail at `t`: a report, spam or backscatter, and what it sets in motion.
fn new_mail(g: &mut Gen, i: usize, t: i64) -> ((&'static str, String), NewKind) {
    let roll = g.rng.below(100);
    if roll < 20 {
        report(g, i, t)
    } else if roll < 28 {
        (("", backscatter(g, i, t)), NewKind::Backscatter)
    } else {
        let (folder, msg, spam) = spam(g, i, t);
        g.open_case(t);
        let dismiss_at = t + g.rng.range(1_800, 16 * 3_600);
        g.schedule(dismiss_at, Later::Dismiss { spam });
        ((folder, msg), NewKind::Spam)
    }
}

fn report(g: &mut Gen, i: usize, t: i64) -> ((&'static str, String), NewKind) {
    let from = format!(
        "reporter{}@reporter{}.test",
        g.rng.below(20_000),
        g.rng.below(400)
    );
    let message_id = format!("<r{i}.{:x}@reporter.test>", g.rng.next() % 0xFFFF_FFFF);
    g.crtsh_next += 1 + g.rng.below(40);
    let id = g.crtsh_next;
    let (subject, text, revoke, crtsh) = match g.rng.below(6) {
        0 => (
            format!("Key compromise report {i}"),
            format!(
                "The private key of this certificate was leaked and is compromised: https://crt.sh/?id={id}\r\n"
            ),
            Some(format!("crtsh:{id}")),
            Some(id),
        ),
        1 => {
            let hex = g.hex64();
            (
                format!("Misissued certificate {i}"),
                format!(
                    "The certificate is misissued (CN not in SAN): https://crt.sh/?sha256={hex}&opt=cablint\r\n"
                ),
                Some(format!("sha256:{hex}")),
                None,
            )
        }
        2 => (
            format!("Problem report {i}"),
            format!("Certificate attached.\r\n{CERT_PEM}\r\n"),
            None,
            None,
        ),
        3 => (
            format!("Phishing site using your certificate {i}"),
            format!("crt.sh ID {id} is used for phishing on a look-alike domain.\r\n"),
            Some(format!("crtsh:{id}")),
            Some(id),
        ),
        4 => {
            let hex = g.hex64();
            let colons: Vec<String> = hex
                .as_bytes()
                .chunks(2)
                .map(|p| String::from_utf8_lossy(p).to_ascii_uppercase())
                .collect();
            (
                format!("Private key found in public repository {i}"),
                format!(
                    "We found the private key of this certificate in a public Git repository.\r\nSHA-256 Fingerprint: {}\r\n",
                    colons.join(":")
                ),
                Some(format!("sha256:{hex}")),
                None,
            )
        }
        _ => (
            format!("Question about certificate {i}"),
            String::new(),
            None,
            None,
        ),
    };
    let case = g.open_case(t);
    let body = g.filler((4, 24));
    let msg = format!(
        "{}From: Reporter <{from}>\r\nTo: cpr@example-ca.test\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello,\r\n\r\n{text}\r\n{body}\r\nRegards,\r\nReporter\r\n",
        inbound_headers(g, i, t, &from, "relay.reporter.test")
    );
    let r = Report {
        message_id,
        from,
        subject,
        revoke,
        quote: format!("Hello,\r\n\r\n{text}\r\n{body}"),
    };
    let answer_at = t + g.rng.range(600, 10 * 3_600);
    let revoke_in_answer = g.rng.below(2) == 0;
    g.schedule(
        answer_at,
        Later::Answer {
            report: r.clone(),
            revoke_in_answer,
        },
    );
    if r.revoke.is_some() && !revoke_in_answer {
        let at = answer_at + g.rng.range(600, 10 * 3_600);
        g.schedule(at, Later::Revoked { report: r.clone() });
    }
    if g.rng.below(10) < 3 {
        let at = t + g.rng.range(2 * 3_600, 48 * 3_600);
        g.schedule(at, Later::FollowUp { report: r });
    }
    // A few reports land in Junk, as real ones do.
    let folder = if g.rng.below(100) < 4 { ".Junk" } else { "" };
    ((folder, msg), NewKind::Report { case, crtsh })
}

fn spam(g: &mut Gen, i: usize, t: i64) -> (&'static str, String, Report) {
    let from = format!(
        "{}@{}.example",
        ["info", "sales", "noreply", "office", "support"][g.rng.below(5) as usize],
        format_args!("bulk{}", g.rng.below(3_000))
    );
    let message_id = format!("<s{i}.{:x}@bulk.example>", g.rng.next());
    let subject = format!("{} #{:x}", g.rng.pick(&SPAM_SUBJECTS), g.rng.below(1 << 20));
    let mut lines = String::new();
    for _ in 0..(3 + g.rng.below(10)) {
        let line: &&str = g.rng.pick(&SPAM_LINES);
        lines.push_str(line);
        lines.push_str("\r\n");
    }
    // Most spam is a newsletter-like multipart/alternative with a styled HTML part.
    let body = if g.rng.below(10) < 7 {
        let boundary = format!("=_alt{i:x}");
        let site = format!("https://offers{}.example", g.rng.below(500));
        let mut html = String::from(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><style>body{font-family:Arial,sans-serif;color:#333}\
             .btn{background:#e33;color:#fff;padding:12px 24px;border-radius:4px;text-decoration:none}\
             td{padding:8px 16px}</style></head><body><table width=\"600\" align=\"center\" cellpadding=\"0\" cellspacing=\"0\">\r\n",
        );
        for l in lines.lines() {
            html.push_str(&format!(
                "<tr><td style=\"font-size:15px;line-height:22px\">{l}</td></tr>\r\n"
            ));
        }
        let token = g.rng.next();
        html.push_str(&format!(
            "<tr><td><a class=\"btn\" href=\"{site}/c?u={token:x}&amp;utm_source=mail&amp;utm_campaign=c{i}\">Learn more</a></td></tr>\r\n\
             <tr><td style=\"font-size:11px;color:#999\">You receive this mail because you registered at one of our partner sites. \
             <a href=\"{site}/unsubscribe?u={token:x}\">Unsubscribe</a></td></tr></table>\
             <img src=\"{site}/open.gif?u={token:x}\" width=\"1\" height=\"1\" alt=\"\"></body></html>\r\n"
        ));
        format!(
            "MIME-Version: 1.0\r\nList-Unsubscribe: <{site}/unsubscribe?u={token:x}>\r\nContent-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n\
             --{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{lines}\r\nLearn more: {site}/c?u={token:x}\r\n\r\n\
             --{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--{boundary}--\r\n"
        )
    } else {
        let filler = g.filler((0, 6));
        format!(
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{lines}\r\n{filler}"
        )
    };
    let msg = format!(
        "{}From: Offers <{from}>\r\nTo: cpr@example-ca.test\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\n{body}",
        inbound_headers(g, i, t, &from, "smtp.bulk.example")
    );
    let folder = if g.rng.below(100) < 85 { ".Junk" } else { "" };
    (
        folder,
        msg,
        Report {
            message_id,
            from,
            subject,
            revoke: None,
            quote: String::new(),
        },
    )
}

/// A bounce of mail forged in the CA's name, or an auto-reply to it: opens no case.
fn backscatter(g: &mut Gen, i: usize, t: i64) -> String {
    let mid = format!("<b{i}.{:x}@mx.elsewhere.test>", g.rng.next());
    if g.rng.below(2) == 0 {
        let boundary = format!("bnd{i}");
        format!(
            "{}From: Mail Delivery System <MAILER-DAEMON@mx.elsewhere.test>\r\nTo: cpr@example-ca.test\r\nSubject: Undelivered Mail Returned to Sender\r\nMessage-ID: {mid}\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\nThis is the mail system at host mx.elsewhere.test.\r\nI'm sorry to have to inform you that your message could not be delivered.\r\n\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.elsewhere.test\r\n\r\nFinal-Recipient: rfc822; user{}@elsewhere.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--{boundary}--\r\n",
            inbound_headers(g, i, t, "", "mx.elsewhere.test"),
            g.rng.below(10_000)
        )
    } else {
        let from = format!("person{}@elsewhere.test", g.rng.below(10_000));
        format!(
            "{}From: {from}\r\nTo: cpr@example-ca.test\r\nSubject: Out of office: your message\r\nMessage-ID: {mid}\r\nAuto-Submitted: auto-replied\r\nX-Autoreply: yes\r\n\r\nI am out of the office until next week and will read your message on my return.\r\n",
            inbound_headers(g, i, t, &from, "mx.elsewhere.test"),
        )
    }
}

/// The report quoted under an answer.
fn quoted(report: &Report) -> String {
    let mut q = format!("On an earlier day, {} wrote:\r\n", report.from);
    for l in report.quote.lines() {
        q.push_str("> ");
        q.push_str(l.trim_end_matches('\r'));
        q.push_str("\r\n");
    }
    q
}

/// Mail the desk or a reporter sends about an earlier message.
fn later_mail(g: &mut Gen, i: usize, t: i64, what: Later) -> (&'static str, String) {
    let date = rfc2822(t);
    let staff = |to: &str, subject: &str, parent: &str, text: &str| {
        format!(
            "From: CA Problem Reports <cpr@example-ca.test>\r\nTo: {to}\r\nSubject: Re: {subject}\r\nDate: {date}\r\nMessage-ID: <a{i}@example-ca.test>\r\nIn-Reply-To: {parent}\r\nReferences: {parent}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}"
        )
    };
    match what {
        Later::Answer {
            report,
            revoke_in_answer,
        } => {
            let mut text = String::from(
                "Thank you for your report. We have opened an investigation and will keep you informed.\r\n\r\n",
            );
            if let (true, Some(r)) = (revoke_in_answer, &report.revoke) {
                text.push_str("The certificate has been revoked.\r\n\r\nCPR-Revoked: ");
                text.push_str(r);
                text.push_str("\r\n");
            }
            text.push_str("\r\n-- \r\nExample CA problem reporting\r\n\r\n");
            text.push_str(&quoted(&report));
            (
                ".Sent",
                staff(&report.from, &report.subject, &report.message_id, &text),
            )
        }
        Later::Revoked { report } => {
            let text = format!(
                "The certificate you reported has been revoked.\r\n\r\nCPR-Revoked: {}\r\n\r\n-- \r\nExample CA problem reporting\r\n\r\n{}",
                report.revoke.as_deref().unwrap_or_default(),
                quoted(&report)
            );
            (
                ".Sent",
                staff(&report.from, &report.subject, &report.message_id, &text),
            )
        }
        Later::Dismiss { spam } => (
            ".Sent",
            staff(
                "cpr@example-ca.test",
                &spam.subject,
                &spam.message_id,
                "Spam, closing.\r\n\r\nCPR-Dismiss: spam\r\n",
            ),
        ),
        Later::FollowUp { report } => {
            let body = g.filler((1, 6));
            let from = &report.from;
            (
                "",
                format!(
                    "{}From: Reporter <{from}>\r\nTo: cpr@example-ca.test\r\nSubject: Re: {}\r\nMessage-ID: <f{i}.{:x}@reporter.test>\r\nIn-Reply-To: {}\r\nReferences: {}\r\n\r\nAny news on this? The certificate still seems to be in use.\r\n\r\n{body}",
                    inbound_headers(g, i, t, from, "relay.reporter.test"),
                    report.subject,
                    g.rng.next() % 0xFFFF_FFFF,
                    report.message_id,
                    report.message_id,
                ),
            )
        }
    }
}
