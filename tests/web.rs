//! The web server as a person and a script meet it: `cprwatch run` with `[web]` on a free
//! loopback port, spoken to over plain HTTP/1.1 (a small client below, so the test depends
//! on no HTTP library's idea of cookies or redirects).
//!
//! Checks: a page without a session goes to the login; a wrong password is refused (and
//! logged) and a right one gives a session cookie `HttpOnly; SameSite=Strict; Path=/`; a POST
//! without the session's CSRF token is refused with 403; a hostile subject is escaped on `/`
//! and `/case/`; `/api/status` is the status document; `/metrics` parses as Prometheus text
//! with the metric names; `/healthz` needs no login; the reporter's page shows their
//! report and nothing internal, and a forged token gets nothing; failed logins are limited.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use support::service::{Cprwatch, bin, hash_password, report};

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request with `Connection: close`; the whole answer.
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).expect("UTF-8 answer");
    let (head, rest) = text.split_once("\r\n\r\n").expect("a header block");
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        let mut out = String::new();
        let mut rest = rest;
        loop {
            let (size, after) = rest.split_once("\r\n").expect("chunk size");
            let n = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
            if n == 0 {
                break;
            }
            out.push_str(&after[..n]);
            rest = &after[n + 2..];
        }
        out
    } else {
        rest.to_string()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn get(port: u16, path: &str, cookie: Option<&str>) -> Reply {
    match cookie {
        Some(c) => http(port, "GET", path, &[("Cookie", c)], ""),
        None => http(port, "GET", path, &[], ""),
    }
}

fn post_form(port: u16, path: &str, cookie: Option<&str>, body: &str) -> Reply {
    let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
    if let Some(c) = cookie {
        h.push(("Cookie", c));
    }
    http(port, "POST", path, &h, body)
}

/// Poll until `done` holds for the answer to `path`, up to 30 s.
fn wait_for(
    w: &Cprwatch,
    port: u16,
    path: &str,
    cookie: Option<&str>,
    done: impl Fn(&Reply) -> bool,
) -> Reply {
    let start = Instant::now();
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            let r = get(port, path, cookie);
            if done(&r) {
                return r;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{path} not ready within 30 s\nlog:\n{}",
            w.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A sample: its name, labels and value.
type Sample = (String, Vec<(String, String)>, f64);

/// A strict reading of Prometheus/OpenMetrics text: `# HELP`, `# TYPE` and `# EOF` lines,
/// and samples `name{label="value",…} number`; anything else fails the test. Returns the
/// samples as (name, labels, value).
fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut typed = std::collections::HashSet::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "OpenMetrics ends with # EOF");
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            assert!(name_ok(rest.split(' ').next().unwrap()), "{line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect(line);
            assert!(name_ok(name), "{line}");
            assert!(["gauge", "counter"].contains(&kind), "{line}");
            typed.insert(name.to_string());
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect(line);
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
        let (name, labels) = match series.split_once('{') {
            None => (series, Vec::new()),
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').expect(line);
                let mut labels = Vec::new();
                let mut rest = inner;
                while !rest.is_empty() {
                    let (k, after) = rest.split_once("=\"").expect(line);
                    assert!(name_ok(k), "{line}");
                    let mut v = String::new();
                    let mut chars = after.char_indices();
                    let end = loop {
                        match chars.next().expect(line) {
                            (_, '\\') => v.push(chars.next().expect(line).1),
                            (i, '"') => break i,
                            (_, c) => v.push(c),
                        }
                    };
                    labels.push((k.to_string(), v));
                    rest = after[end + 1..]
                        .strip_prefix(',')
                        .unwrap_or(&after[end + 1..]);
                }
                (name, labels)
            }
        };
        assert!(name_ok(name), "{line}");
        let family = name.strip_suffix("_total").unwrap_or(name);
        assert!(
            typed.contains(name) || typed.contains(family),
            "sample before its # TYPE: {line}"
        );
        samples.push((name.to_string(), labels, value));
    }
    samples
}

fn sample<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Option<&'a f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| v)
}

/// The value of `name="…"` in the first form field `name` on a page.
fn hidden(page: &str, name: &str) -> String {
    let at = page
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no field {name} in {page}"));
    let rest = &page[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_string()
}

const HOSTILE: &str = "<script>alert(1)</script> Key compromise";

#[test]
fn the_desk_logs_in_reads_cases_and_scripts_read_the_api() {
    let port = support::free_port();
    let hash = hash_password("correct horse battery");
    let mut w = Cprwatch::new(&format!(
        "[desk]\nstaff_domains = [\"example-ca.test\"]\n[clock]\ntick_seconds = 1\n\
         [web]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
         [[web.user]]\nname = \"alice\"\npassword_hash = \"{hash}\"\n"
    ));
    let now = time::OffsetDateTime::now_utc();
    w.deliver(
        "1.eml",
        &report(
            "r1@reporter.test",
            "Rita <rita@reporter.test>",
            HOSTILE,
            "The private key of https://crt.sh/?id=987654321 was published.",
            now - time::Duration::hours(2),
        ),
    );
    w.deliver(
        "2.eml",
        &report(
            "r2@other.test",
            "Otto <otto@other.test>",
            "Another problem",
            "See https://crt.sh/?id=123123123, it is misissued.",
            now - time::Duration::hours(1),
        ),
    );
    let date = (now - time::Duration::minutes(30))
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap();
    w.deliver_to(
        ".Sent",
        "3.eml",
        format!(
            "From: Nina Okafor <nina@example-ca.test>\r\nTo: rita@reporter.test\r\n\
             Subject: Re: your report\r\nMessage-ID: <staff1@example-ca.test>\r\n\
             In-Reply-To: <r1@reporter.test>\r\nDate: {date}\r\n\r\nWe are looking into it.\r\n"
        )
        .as_bytes(),
    );
    // A report with a private key pasted in (the fixture's): its case page must not show it.
    let fixture = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/maildir/cur/1772435560.M107919P2201.mx,S=3230:2,S"),
    )
    .unwrap();
    let begin = fixture.find("-----BEGIN PRIVATE KEY-----").unwrap();
    let end = fixture.find("-----END PRIVATE KEY-----").unwrap() + 25;
    w.deliver(
        "4.eml",
        &report(
            "k1@keys.test",
            "Kim <kim@keys.test>",
            "Compromised key",
            &format!("This key is compromised:\r\n{}\r\n", &fixture[begin..end]),
            now - time::Duration::minutes(20),
        ),
    );
    w.start();

    // No session: pages go to the login, the API says 401; /healthz needs none.
    let r = wait_for(&w, port, "/healthz", None, |r| r.status == 200);
    assert_eq!(r.json()["store_readable"], true, "{}", r.body);
    // The loop answers, and has evaluated the clocks once.
    wait_for(&w, port, "/healthz", None, |r| {
        r.json()["desk_answering"] == true && r.json()["last_tick"].is_string()
    });
    let r = get(port, "/", None);
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/login?next=%2F"));
    assert_eq!(get(port, "/case/CPR-2026-0001", None).status, 303);
    assert_eq!(get(port, "/api/status", None).status, 401);
    assert_eq!(get(port, "/metrics", None).status, 401);
    let r = get(port, "/login", None);
    assert_eq!(r.status, 200);
    assert!(r.body.contains("name=\"password\""));

    // A wrong password: refused, no cookie, logged.
    let r = post_form(port, "/login", None, "user=alice&password=wrong");
    assert_eq!(r.status, 401);
    assert!(r.header("set-cookie").is_none());
    assert!(w.log().contains("failed login"), "{}", w.log());

    // A login posted from another site's page: refused whatever the password.
    let r = http(
        port,
        "POST",
        "/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Origin", "https://evil.test"),
        ],
        "user=alice&password=correct+horse+battery",
    );
    assert_eq!(r.status, 403);
    assert!(r.header("set-cookie").is_none());

    // The right one: a session cookie with the flags.
    let r = post_form(
        port,
        "/login",
        None,
        "user=alice&password=correct+horse+battery&next=%2Fsearch",
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/search"));
    let set = r
        .header("set-cookie")
        .expect("a session cookie")
        .to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.split("; ").any(|f| f == flag), "{flag} in {set}");
    }
    assert!(!set.contains("Secure"), "http public_url: no Secure: {set}");
    let cookie = set.split(';').next().unwrap().to_string();
    let cookie = Some(cookie.as_str());

    // Both cases are there once the service has read them.
    wait_for(&w, port, "/api/search?q=CPR-2026-0003", cookie, |r| {
        r.status == 200 && r.json()["cases"].as_array().is_some_and(|c| !c.is_empty())
    });

    // The dashboard: the hostile subject escaped, the open clocks listed.
    let r = get(port, "/", cookie);
    assert_eq!(r.status, 200);
    assert!(
        r.body
            .contains("&lt;script&gt;alert(1)&lt;/script&gt; Key compromise")
    );
    assert!(!r.body.contains("<script>alert"), "{}", r.body);
    assert!(r.body.contains("href=\"/case/CPR-2026-0001\""));
    assert!(r.body.contains("data-deadline="));
    // Every open clock once (2 preliminary reports, 3 revocations), as /api/status has them.
    assert!(r.body.contains("Open clocks: 5 (0 breached)"), "{}", r.body);
    assert_eq!(r.body.matches("<tr class=\"pending\">").count(), 5);
    let csp = r.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    // Filters: by kind and by text.
    let r = get(port, "/?kind=revocation&q=123123123", cookie);
    assert!(r.body.contains("crtsh:123123123") && !r.body.contains("crtsh:987654321"));

    // The case page.
    let r = get(port, "/case/cpr-2026-0001", cookie);
    assert_eq!(r.status, 200);
    assert!(r.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!r.body.contains("<script>alert"));
    assert!(r.body.contains("href=\"https://crt.sh/?id=987654321\""));
    assert!(r.body.contains("&lt;r1@reporter.test&gt;"));
    assert!(r.body.contains("case_opened"));
    assert!(r.body.contains("preliminary_report"));
    assert!(
        r.body.contains("was published."),
        "the report's text: {}",
        r.body
    );
    assert_eq!(get(port, "/case/CPR-2026-0099", cookie).status, 404);
    // The key-compromise report: its text withheld, the key never shown.
    let r = get(port, "/case/CPR-2026-0003", cookie);
    assert_eq!(r.status, 200);
    assert!(r.body.contains("Compromised key"), "{}", r.body);
    assert!(r.body.contains("text not shown"), "{}", r.body);
    assert!(
        !r.body.contains("PRIVATE KEY") && !r.body.contains("MIIEvwIBADANBgkqhkiG9w0BAQEFAASC"),
        "{}",
        r.body
    );

    // Search, as `cprwatch search`.
    let r = get(port, "/search?q=987654321", cookie);
    assert!(r.body.contains("CPR-2026-0001") && !r.body.contains("CPR-2026-0002"));
    let r = get(port, "/search?q=%3Cr2%40other.test%3E", cookie);
    assert!(r.body.contains("CPR-2026-0002") && !r.body.contains("CPR-2026-0001"));

    // A POST without the CSRF token, or with a wrong one: 403, and the session stays.
    assert_eq!(post_form(port, "/logout", cookie, "").status, 403);
    assert_eq!(post_form(port, "/logout", cookie, "csrf=00").status, 403);
    assert_eq!(get(port, "/", cookie).status, 200);

    // The API: status --format json, a case, a search.
    let v = get(port, "/api/status", cookie).json();
    let ids: Vec<&str> = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["CPR-2026-0001", "CPR-2026-0002", "CPR-2026-0003"],
        "{v}"
    );
    assert_eq!(v["cases"][0]["subject"], HOSTILE);
    assert!(
        v["outbox"]["pending"].is_u64() && v["sources"].is_array(),
        "{v}"
    );
    let v = get(port, "/api/case/CPR-2026-0001", cookie).json();
    assert_eq!(v["id"], "CPR-2026-0001");
    assert!(v["events"].as_array().unwrap().len() > 3, "{v}");
    let v = get(port, "/api/search?q=crtsh:987654321", cookie).json();
    assert_eq!(v["cases"].as_array().unwrap().len(), 1);

    // Metrics, parsed strictly.
    let r = get(port, "/metrics", cookie);
    assert_eq!(r.status, 200);
    let m = parse_metrics(&r.body);
    // Staff answered case 1 (its Sent reply): cases 2 and 3 await their preliminary reports.
    assert_eq!(
        sample(
            &m,
            "cprwatch_open_clocks",
            &[("kind", "preliminary_report"), ("state", "pending")]
        ),
        Some(&2.0),
        "{}",
        r.body
    );
    assert_eq!(
        sample(
            &m,
            "cprwatch_open_clocks",
            &[("kind", "revocation"), ("state", "pending")]
        ),
        Some(&3.0),
        "{}",
        r.body
    );
    let next = *sample(
        &m,
        "cprwatch_next_deadline_seconds",
        &[("kind", "preliminary_report")],
    )
    .expect("next deadline");
    assert!(next > 22.0 * 3600.0 && next <= 23.0 * 3600.0, "{next}");
    assert_eq!(
        sample(&m, "cprwatch_messages_total", &[("role", "inbox")]),
        Some(&3.0),
        "{}",
        r.body
    );
    assert_eq!(
        sample(&m, "cprwatch_messages_total", &[("role", "sent")]),
        Some(&1.0)
    );
    assert_eq!(
        sample(
            &m,
            "cprwatch_clock_breaches_total",
            &[("kind", "revocation")]
        ),
        Some(&0.0)
    );
    assert_eq!(sample(&m, "cprwatch_outbox_pending", &[]), Some(&0.0));
    assert_eq!(
        sample(&m, "cprwatch_deliveries_failed_total", &[]),
        Some(&0.0)
    );

    // The reporter's page: from the link on the case page, without a session.
    let page = get(port, "/case/CPR-2026-0001", cookie).body;
    let at = page.find("/r/CPR-2026-0001.").expect("the reporter link");
    let token = &page[at + 3..at + 3 + page[at + 3..].find('"').unwrap()];
    let r = get(port, &format!("/r/{token}"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("We received your report on"), "{}", r.body);
    assert!(r.body.contains("crtsh:987654321"));
    assert!(r.body.contains("preliminary report") && r.body.contains("revocation"));
    assert!(
        r.body.contains("<td>sent</td>"),
        "the preliminary report was sent: {}",
        r.body
    );
    for internal in [
        "CPR-2026-0002",
        "123123123",
        "nina",
        "Okafor",
        "example-ca.test",
        "staff1",
        "basis",
        "alice",
        "csrf",
        "<script>alert",
        "r1@reporter.test",
    ] {
        assert!(
            !r.body.contains(internal),
            "{internal} on the reporter page: {}",
            r.body
        );
    }
    assert_eq!(r.header("referrer-policy"), Some("same-origin"));
    // A forged or moved token: nothing.
    let mut forged = token.to_string();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(get(port, &format!("/r/{forged}"), None).status, 404);
    let moved = token.replace("CPR-2026-0001", "CPR-2026-0002");
    assert_eq!(get(port, &format!("/r/{moved}"), None).status, 404);

    // Logging out takes the CSRF token from the page; the session is gone after.
    let csrf = hidden(&page, "csrf");
    let r = post_form(port, "/logout", cookie, &format!("csrf={csrf}"));
    assert_eq!(r.status, 303);
    assert_eq!(get(port, "/", cookie).status, 303);

    // Failed logins are limited: after five (one above), even the right password waits.
    for _ in 0..4 {
        assert_eq!(
            post_form(port, "/login", None, "user=alice&password=guess").status,
            401
        );
    }
    let r = post_form(
        port,
        "/login",
        None,
        "user=alice&password=correct+horse+battery",
    );
    assert_eq!(r.status, 429);
    assert!(r.header("set-cookie").is_none());
    w.stop();
}

#[test]
fn an_api_token_guards_the_api_and_metrics_and_web_needs_someone_to_let_in() {
    let port = support::free_port();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let mut w = Cprwatch::new(&format!(
        "[desk]\nstaff_domains = [\"example-ca.test\"]\n\
         [web]\nlisten = \"127.0.0.1:{port}\"\napi_token_file = \"{}\"\n",
        token_file.display()
    ));
    w.start();
    wait_for(&w, port, "/healthz", None, |r| r.status == 200);
    assert_eq!(get(port, "/api/status", None).status, 401);
    let bearer = |t: &str| http(port, "GET", "/api/status", &[("Authorization", t)], "");
    assert_eq!(bearer("Bearer wrong").status, 401);
    assert_eq!(bearer("Bearer s3cret-token-and-more").status, 401);
    let r = bearer("Bearer s3cret-token");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["cases"].is_array());
    let r = http(
        port,
        "GET",
        "/metrics",
        &[("Authorization", "Bearer s3cret-token")],
        "",
    );
    assert_eq!(r.status, 200);
    assert!(!parse_metrics(&r.body).is_empty());
    w.stop();

    // [web] that nobody could use is refused at start, naming the key.
    let w = Cprwatch::new("[desk]\nstaff_domains = []\n[web]\nlisten = \"127.0.0.1:1\"\n");
    let out = Command::new(bin())
        .args(["run", "--config"])
        .arg(w.config())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("web.user") && err.contains("hash-password"),
        "{err}"
    );
}
