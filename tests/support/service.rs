//! A running `cprwatch run` for end-to-end tests: a temporary directory with a config, a
//! Maildir it watches, and the process, stopped by the pid it was started with.

use std::fs;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cprwatch")
}

/// A report as a reporter's mail server would deliver it, received at `at` by the CA's MX.
pub fn report(id: &str, from: &str, subject: &str, body: &str, at: OffsetDateTime) -> Vec<u8> {
    let date = at.format(&Rfc2822).unwrap();
    format!(
        "Received: from mail.reporter.test by mx.example-ca.test; {date}\r\n\
         From: {from}\r\nTo: cpr@example-ca.test\r\nSubject: {subject}\r\n\
         Message-ID: <{id}>\r\nDate: {date}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

pub struct Cprwatch {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    /// Environment for the process and its commands (a database password).
    env: Vec<(String, String)>,
}

impl Cprwatch {
    /// A directory with `config` (the `[store]` and `[[maildir]]` sections are added: a store
    /// `s.sqlite` and the Maildir++ `mail/` with its INBOX and `.Junk` and `.Sent` folders
    /// (found by name), polled every second) and an empty Maildir. Not started yet.
    ///
    /// Unless `config` has a `[revocation]` section, revocation checks and fetching are off
    /// (and a staff `CPR-Revoked` stands): tests reach nothing beyond loopback, and only
    /// tests/revocation.rs, with its test CA, checks.
    pub fn new(config: &str) -> Cprwatch {
        Cprwatch::with_store(config, "[store]\npath = \"s.sqlite\"\n", None, Vec::new())
    }

    /// As [`Cprwatch::new`], with `store` as the `[store]` section, watching the Maildir
    /// `maildir` (another instance's `mail/`) instead of its own when given, and `env` set for
    /// the process and its commands.
    pub fn with_store(
        config: &str,
        store: &str,
        maildir: Option<&std::path::Path>,
        env: Vec<(String, String)>,
    ) -> Cprwatch {
        let dir = tempfile::tempdir().unwrap();
        let offline = if config.contains("[revocation]") {
            ""
        } else {
            "[revocation]\nenabled = false\nrequire_verified = false\n[enrich]\nenabled = false\n"
        };
        for folder in ["", ".Junk", ".Sent"] {
            for sub in ["cur", "new", "tmp"] {
                fs::create_dir_all(dir.path().join("mail").join(folder).join(sub)).unwrap();
            }
        }
        let mail = maildir.map_or_else(|| "mail".to_string(), |m| m.display().to_string());
        fs::write(
            dir.path().join("c.toml"),
            format!(
                "{config}\n{offline}{store}\n\
                 [[maildir]]\npath = \"{mail}\"\npoll_seconds = 1\n"
            ),
        )
        .unwrap();
        Cprwatch {
            dir,
            child: None,
            env,
        }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("c.toml")
    }

    /// Deliver `raw` into the watched INBOX the way an MDA does (tmp/, then new/).
    pub fn deliver(&self, name: &str, raw: &[u8]) {
        self.deliver_to("", name, raw);
    }

    /// Deliver `raw` into a folder of the watched Maildir (`""` INBOX, `.Junk`, `.Sent`).
    pub fn deliver_to(&self, folder: &str, name: &str, raw: &[u8]) {
        let md = self.dir.path().join("mail").join(folder);
        fs::write(md.join("tmp").join(name), raw).unwrap();
        fs::rename(md.join("tmp").join(name), md.join("new").join(name)).unwrap();
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("run.log"))
            .unwrap();
        self.child = Some(
            Command::new(bin())
                .args(["run", "--config"])
                .arg(self.config())
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }

    /// SIGTERM, and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let status = c.wait().unwrap();
            assert!(status.success(), "exit {status:?}\n{}", self.log());
        }
    }

    /// The process's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Send `signal` (`"STOP"`, `"CONT"`, …) to the process by its pid, while it runs: a
    /// pause the process cannot notice, as a long GC or a migrated VM.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("the service runs");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}: {status:?}");
    }

    /// Whether the process still runs (it was started and has not exited).
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// What the service logged (all runs).
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(self.dir.path().join("run.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Run a cprwatch command against this config; (exit code, stdout).
    pub fn command(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new(bin())
            .args(args)
            .arg("--config")
            .arg(self.config())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    pub fn status_json(&self) -> serde_json::Value {
        let (_, out) = self.command(&["status", "--format", "json"]);
        serde_json::from_str(&out).unwrap_or(serde_json::Value::Null)
    }

    /// Poll `status` until `done` holds for it, up to `within`.
    pub fn wait_status(
        &self,
        within: Duration,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let v = self.status_json();
            if done(&v) {
                return v;
            }
            assert!(
                start.elapsed() < within,
                "{what}: not within {within:?}\nstatus: {v}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Cprwatch {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every message in `user`'s INBOX on `dovecot` containing `needle`, once at least one is
/// there (up to `within`); empty if none came. For tests that are not async.
pub fn inbox(
    dovecot: &super::dovecot::Dovecot,
    user: &str,
    needle: &str,
    within: Duration,
) -> Vec<String> {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(dovecot.wait_for_inbox(user, needle, within))
}

/// The value of header `name` in `mail` (first occurrence, unfolded).
pub fn header(mail: &str, name: &str) -> Option<String> {
    let parsed = mail_parser::MessageParser::default().parse(mail.as_bytes())?;
    parsed
        .header_raw(name)
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// The `X-CPR-Level` of each mail, sorted.
pub fn levels(mails: &[String]) -> Vec<String> {
    let mut l: Vec<String> = mails
        .iter()
        .map(|m| header(m, "X-CPR-Level").unwrap_or_default())
        .collect();
    l.sort();
    l
}

/// Wait until the outbox is empty (all sent) and still is a few ticks later: then nothing
/// more is on its way.
pub fn settled(w: &Cprwatch) {
    let drained = |v: &serde_json::Value| v["outbox"]["pending"] == 0;
    w.wait_status(Duration::from_secs(60), "outbox drained", drained);
    std::thread::sleep(Duration::from_secs(3));
    w.wait_status(Duration::from_secs(60), "outbox drained", drained);
}

/// The argon2id hash `cprwatch hash-password` prints for `password`.
pub fn hash_password(password: &str) -> String {
    let mut child = Command::new(bin())
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
