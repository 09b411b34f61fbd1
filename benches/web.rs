//! Web benchmark: `cargo bench --bench web` (env `WEB_CLOCKS`, default `1000,100000`;
//! `WEB_REPEAT`, default 30).
//!
//! How long do the dashboard and its neighbours take to answer with N open clocks? For each N:
//! writes a Maildir of reports received over the last 30 hours (so about a fifth are breached),
//! each naming crt.sh ids (one per report up to 10 000 clocks, else 1 000 cases of N/1 000
//! clocks each), `cprwatch ingest`s it, starts `cprwatch run` with `[web]` on a free loopback
//! port, logs in, and times `WEB_REPEAT` requests of each page over plain HTTP/1.1 from this
//! process (wall time from connect to the last byte): `/` (the default 500 rows), `/` with
//! every row, `/case/<ID>`, `/search`, `/api/status`, `/metrics`. Prints p50, p99 and max per
//! page. Under `cargo test --all-targets` (no `--bench`): 100 clocks, 3 requests, a smoke run.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cprwatch")
}

/// One request with `Connection: close`: (status, headers, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(600))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
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
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), rest.to_string())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_reports(dir: &Path, clocks: usize) -> (usize, usize) {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let (reports, per) = if clocks <= 10_000 {
        (clocks / 2, 1)
    } else {
        (1000, clocks / 1000 - 1)
    };
    let now = time::OffsetDateTime::now_utc();
    let span = 30 * 3600;
    for i in 0..reports {
        let at = now - time::Duration::seconds((i as i64 + 1) * span / reports as i64);
        let date = at
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap();
        let ids: Vec<String> = (0..per)
            .map(|j| format!("https://crt.sh/?id={}", 10_000_000 + i * per + j))
            .collect();
        let mail = format!(
            "Received: from mx.reporter{r}.test by mx.example-ca.test; {date}\r\n\
             From: Reporter {r} <reporter{r}@rep{r}.test>\r\nTo: cpr@example-ca.test\r\n\
             Subject: Certificate problem report {i} <b>misissued</b>\r\n\
             Message-ID: <bench{i}@rep.test>\r\nDate: {date}\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\n\
             These certificates are misissued (wrong organization):\r\n{}\r\n",
            ids.join("\r\n"),
            r = i % 97,
        );
        std::fs::write(dir.join("new").join(format!("{i}.bench:2,")), mail).unwrap();
    }
    (reports, per)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let sizes: Vec<usize> = if benching {
        std::env::var("WEB_CLOCKS")
            .unwrap_or_else(|_| "1000,100000".into())
            .split(',')
            .map(|v| {
                v.trim()
                    .replace('_', "")
                    .parse()
                    .expect("WEB_CLOCKS: e.g. 1000,100000")
            })
            .collect()
    } else {
        vec![100]
    };
    let repeat: usize = if benching {
        std::env::var("WEB_REPEAT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30)
    } else {
        3
    };
    println!("web benchmark: {} (repeat {repeat})", bin());
    println!(
        "{:>8} {:>7} {:>10}  {:<28} {:>9} {:>9} {:>9} {:>10}",
        "clocks", "cases", "ingest s", "page", "p50 ms", "p99 ms", "max ms", "bytes"
    );
    for clocks in sizes {
        let dir = tempfile::tempdir().unwrap();
        let (reports, per) = write_reports(&dir.path().join("mail"), clocks);
        let port = free_port();
        let hash = {
            let mut c = Command::new(bin())
                .arg("hash-password")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            writeln!(c.stdin.take().unwrap(), "bench").unwrap();
            String::from_utf8(c.wait_with_output().unwrap().stdout)
                .unwrap()
                .trim()
                .to_string()
        };
        let config = dir.path().join("c.toml");
        std::fs::write(
            &config,
            format!(
                "[revocation]\nenabled = false\nrequire_verified = false\n[enrich]\nenabled = false\n[desk]\nstaff_domains = [\"example-ca.test\"]\n[store]\npath = \"s.sqlite\"\n\
                 [web]\nlisten = \"127.0.0.1:{port}\"\n[[web.user]]\nname = \"bench\"\n\
                 password_hash = \"{hash}\"\n"
            ),
        )
        .unwrap();
        let start = Instant::now();
        let out = Command::new(bin())
            .args(["ingest", "--config"])
            .arg(&config)
            .arg(dir.path().join("mail"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ingest = start.elapsed().as_secs_f64();
        let log = std::fs::File::create(dir.path().join("run.log")).unwrap();
        let _service = Service(
            Command::new(bin())
                .args(["run", "--config"])
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "server not up"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let (status, head, _) = http(
            port,
            "POST",
            "/login",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            "user=bench&password=bench",
        );
        assert_eq!(status, 303, "login: {head}");
        let cookie = head
            .lines()
            .find_map(|l| l.strip_prefix("set-cookie: "))
            .and_then(|c| c.split(';').next())
            .expect("session cookie")
            .to_string();
        let middle = format!(
            "/case/CPR-{}-{:04}",
            time::OffsetDateTime::now_utc().year(),
            reports / 2
        );
        let search = format!("/search?q={}", 10_000_000 + reports / 2 * per);
        let all = format!("/?limit={}", clocks + 10);
        for (label, path) in [
            ("/ (500 rows)", "/"),
            ("/ (every row)", all.as_str()),
            ("/case/<middle case>", middle.as_str()),
            ("/search?q=<crt.sh id>", search.as_str()),
            ("/api/status", "/api/status"),
            ("/metrics", "/metrics"),
        ] {
            let mut ms = Vec::with_capacity(repeat);
            let mut bytes = 0;
            for _ in 0..repeat {
                let t = Instant::now();
                let (status, _, body) = http(port, "GET", path, &[("Cookie", &cookie)], "");
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
                assert_eq!(status, 200, "{path}: {body}");
                if path.starts_with("/search") {
                    assert!(body.contains("1 case(s)"), "{path}: {body}");
                }
                bytes = body.len();
            }
            ms.sort_by(f64::total_cmp);
            println!(
                "{clocks:>8} {reports:>7} {ingest:>10.1}  {label:<28} {:>9.1} {:>9.1} {:>9.1} {bytes:>10}",
                percentile(&ms, 0.5),
                percentile(&ms, 0.99),
                ms[ms.len() - 1]
            );
        }
    }
}
