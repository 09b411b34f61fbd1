//! A real Dovecot IMAP server for tests, on loopback, in a temporary directory, started and
//! stopped by `scripts/dovecot.sh` (which installs Debian's `dovecot-imapd` when missing).
//!
//! Users: `cpr`/`cpr-secret` and `other`/`other-secret`, each with the folders INBOX, Junk and
//! Sent (Maildir++ under `<dir>/mail/<user>`). The plain port offers STARTTLS; the IMAPS port is
//! implicit TLS. Both present a self-signed certificate for 127.0.0.1 and localhost:
//! [`Dovecot::ca_file`].
//!
//! Delivering mail:
//! - [`Dovecot::append`]: IMAP APPEND from a separate connection with an explicit INTERNALDATE,
//!   exactly as a mail server's delivery looks to a watching client (wakes IDLE). Needs the
//!   server running. Dovecot stores lines with LF and serves them with CRLF, so a message given
//!   with CRLF line ends comes back byte for byte.
//! - [`Dovecot::append_many`]: writes Maildir files directly (tmp/ then rename into cur/, the
//!   Maildir delivery protocol), with the file's mtime as INTERNALDATE, which is what Dovecot's
//!   Maildir uses. 20 000 messages take a second or two, where APPEND would take minutes. Works
//!   with the server running or stopped; Dovecot assigns UIDs when it next looks at the folder,
//!   in the order given (it sorts new files by the time in their names, which counts up here).
//!   Lines are stored as given: give CRLF to get the same bytes back.
//!
//! The raw IMAP speaking here is deliberately tiny and separate from `cprwatch::source::imap`,
//! which must never write: the test's "other mail client" is this one.
#![allow(dead_code)]

use cprwatch::source::imap::{Account, TlsMode};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use time::OffsetDateTime;

pub const USERS: [(&str, &str); 5] = [
    ("cpr", "cpr-secret"),
    ("other", "other-secret"),
    ("desk", "desk-secret"),
    ("oncall", "oncall-secret"),
    ("reporter", "reporter-secret"),
];

/// One Dovecot instance. Dropping it stops the server and removes its directory.
pub struct Dovecot {
    dir: tempfile::TempDir,
    imap_port: u16,
    imaps_port: u16,
    running: bool,
    /// Counts up across `append_many` calls so Maildir file names sort in delivery order.
    delivered: AtomicU64,
}

impl Dovecot {
    /// Start a fresh server on two free loopback ports. Panics, with the script's output, when
    /// it cannot.
    pub fn start() -> Dovecot {
        let dir = tempfile::Builder::new()
            .prefix("cprwatch-dovecot-")
            .tempdir()
            .expect("temporary directory for Dovecot");
        let mut d = Dovecot {
            dir,
            imap_port: super::free_port(),
            imaps_port: super::free_port(),
            running: false,
            delivered: AtomicU64::new(0),
        };
        d.script("start");
        d.running = true;
        d
    }

    pub fn imap_port(&self) -> u16 {
        self.imap_port
    }

    pub fn imaps_port(&self) -> u16 {
        self.imaps_port
    }

    /// The server's self-signed certificate, to trust as a private CA.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Dovecot's own log, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// An account for `user` on this server: plain (loopback) and STARTTLS use the IMAP port,
    /// implicit TLS the IMAPS port; TLS accounts trust [`Dovecot::ca_file`].
    pub fn account(&self, user: &str, tls: TlsMode) -> Account {
        let password = USERS
            .iter()
            .find(|(u, _)| *u == user)
            .map(|(_, p)| p.to_string())
            .unwrap_or_else(|| panic!("no test user {user:?}"));
        Account {
            name: format!("test-{user}"),
            host: "127.0.0.1".into(),
            port: match tls {
                TlsMode::Implicit => self.imaps_port,
                TlsMode::StartTls | TlsMode::None => self.imap_port,
            },
            ca_file: match tls {
                TlsMode::None => None,
                _ => Some(self.ca_file()),
            },
            tls,
            username: user.into(),
            password,
        }
    }

    /// Every message in `user`'s INBOX containing `needle`, read over IMAP with cprwatch's own
    /// client, polling until there is one or `within` has passed (then none): mail delivered
    /// by a test Postfix arrives asynchronously.
    pub async fn wait_for_inbox(&self, user: &str, needle: &str, within: Duration) -> Vec<String> {
        let account = self.account(user, TlsMode::None);
        let deadline = std::time::Instant::now() + within;
        loop {
            let mut c =
                cprwatch::source::imap::Connection::connect(&account, Duration::from_secs(10))
                    .await
                    .unwrap_or_else(|e| panic!("connect to Dovecot: {e}"));
            c.examine("INBOX").await.expect("examine INBOX");
            let uids = c.uids().await.expect("uids");
            let fetched = c.fetch(&uids).await.expect("fetch");
            c.logout().await;
            let found: Vec<String> = fetched
                .into_iter()
                .map(|m| String::from_utf8_lossy(&m.raw).into_owned())
                .filter(|m| m.contains(needle))
                .collect();
            if !found.is_empty() || std::time::Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stop the server (SIGTERM, and wait). Mail and ports are kept for [`Dovecot::restart`].
    pub fn stop(&mut self) {
        if self.running {
            self.script("stop");
            self.running = false;
        }
    }

    /// Stop if running, then start again on the same ports with the same mail.
    pub fn restart(&mut self) {
        self.stop();
        self.script("start");
        self.running = true;
    }

    /// SIGKILL every process of this server at once, as in a crash: connections drop without
    /// a goodbye. [`Dovecot::restart`] brings it back.
    pub fn kill(&mut self) {
        if self.running {
            self.script("kill");
            self.running = false;
        }
    }

    /// Deliver one message by IMAP APPEND with this INTERNALDATE; returns its UID.
    pub fn append(
        &self,
        user: &str,
        folder: &str,
        raw: &[u8],
        internal_date: OffsetDateTime,
    ) -> u32 {
        let mut c = self.raw_login(user);
        let date = imap_date(internal_date);
        let lines = c.append(folder, &date, raw);
        appenduid(&lines).unwrap_or_else(|| panic!("no APPENDUID in {lines:?}"))
    }

    /// Deliver many messages at once by writing Maildir files (see the module documentation).
    /// The folder must exist.
    pub fn append_many(&self, user: &str, folder: &str, messages: &[(Vec<u8>, OffsetDateTime)]) {
        let maildir = self.maildir(user, folder);
        assert!(
            maildir.join("cur").is_dir(),
            "folder {folder:?} of {user} does not exist ({})",
            maildir.display()
        );
        // Dovecot accesses mail as the owner of the mail directory (nobody when run as root).
        let owner = std::fs::metadata(&maildir).expect("maildir metadata");
        let (uid, gid) = {
            use std::os::unix::fs::MetadataExt;
            (owner.uid(), owner.gid())
        };
        let pid = std::process::id();
        for (raw, date) in messages {
            let n = self.delivered.fetch_add(1, Ordering::Relaxed);
            // Named the way Dovecot's own deliveries are (`<secs>.M<usecs>P<pid>Q<n>.<host>,S=`), the
            // seconds counting up so that UIDs follow the order given.
            // Names that differ only in two counters made Dovecot's Maildir filename hash
            // collide: every session's first FETCH, every EXAMINE after a change and every APPEND
            // then cost it seconds on 20,000 messages, which measured Dovecot, not us.
            let usecs = splitmix64(n) % 1_000_000;
            let base = format!(
                "{}.M{usecs}P{pid}Q{n}.cprwatch-test,S={}",
                1_000_000_000 + n,
                raw.len()
            );
            let tmp = maildir.join("tmp").join(&base);
            let cur = maildir.join("cur").join(format!("{base}:2,"));
            let mut f = std::fs::File::create(&tmp).expect("create Maildir file");
            f.write_all(raw).expect("write Maildir file");
            let mtime = std::time::SystemTime::UNIX_EPOCH
                + Duration::from_secs(
                    u64::try_from(date.unix_timestamp()).expect("date after 1970"),
                );
            f.set_modified(mtime).expect("set INTERNALDATE (mtime)");
            drop(f);
            std::os::unix::fs::chown(&tmp, Some(uid), Some(gid)).expect("chown Maildir file");
            std::fs::rename(&tmp, &cur).expect("deliver Maildir file");
        }
    }

    /// CREATE a folder for `user`.
    pub fn create_folder(&self, user: &str, folder: &str) {
        self.raw_login(user)
            .ok(&format!("CREATE {}", quote(folder)));
    }

    /// DELETE a folder of `user` with all its mail. Creating it again gives it a new
    /// UIDVALIDITY.
    pub fn delete_folder(&self, user: &str, folder: &str) {
        self.raw_login(user)
            .ok(&format!("DELETE {}", quote(folder)));
    }

    /// The flags of one message, seen from a separate connection (read-only: EXAMINE).
    pub fn flags(&self, user: &str, folder: &str, uid: u32) -> Vec<String> {
        let mut c = self.raw_login(user);
        c.ok(&format!("EXAMINE {}", quote(folder)));
        let lines = c.ok(&format!("UID FETCH {uid} (FLAGS)"));
        let line = lines
            .iter()
            .find(|l| l.contains("FETCH") && l.contains(&format!("UID {uid}")))
            .unwrap_or_else(|| panic!("no FETCH for UID {uid}: {lines:?}"));
        let start = line.find("FLAGS (").expect("FLAGS in FETCH") + "FLAGS (".len();
        let end = start + line[start..].find(')').expect("end of FLAGS");
        line[start..end]
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    /// How many of `user`'s IMAP sessions are in IDLE right now, from Dovecot's process
    /// titles (`verbose_proctitle`).
    pub fn idling(&self, user: &str) -> usize {
        let marker = format!("cprwatch-test-{}/imap [{user} ", self.imap_port);
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return 0;
        };
        procs
            .filter_map(Result::ok)
            .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|t| t.contains(&marker) && t.trim_end().ends_with(" IDLE]"))
            .count()
    }

    /// Wait (polling, at most 10 s) until `user` has an IDLE session: a test that delivers
    /// mail "while the client idles" can then be sure it does.
    pub fn wait_for_idle(&self, user: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.idling(user) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "no IDLE session of {user} after 10 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The directory of a folder: INBOX is the Maildir root, others are Maildir++
    /// dot-directories.
    pub fn maildir(&self, user: &str, folder: &str) -> PathBuf {
        let root = self.dir.path().join("mail").join(user);
        if folder.eq_ignore_ascii_case("INBOX") {
            root
        } else {
            root.join(format!(".{folder}"))
        }
    }

    /// A logged-in raw connection (plain port) for test-side commands.
    pub fn raw_login(&self, user: &str) -> RawImap {
        let password = USERS
            .iter()
            .find(|(u, _)| *u == user)
            .map(|(_, p)| *p)
            .unwrap_or_else(|| panic!("no test user {user:?}"));
        let mut c = RawImap::connect(self.imap_port);
        c.ok(&format!("LOGIN {} {}", quote(user), quote(password)));
        c
    }

    fn script(&self, command: &str) {
        super::server_script(
            "dovecot.sh",
            command,
            self.dir.path(),
            &[
                ("IMAP_PORT", self.imap_port.to_string().as_ref()),
                ("IMAPS_PORT", self.imaps_port.to_string().as_ref()),
            ],
            || self.log(),
        );
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if self.running {
            super::stop_quietly("dovecot.sh", self.dir.path());
        }
    }
}

/// IMAP date-time: `01-Mar-2026 09:30:00 +0100`, in the date's own offset.
pub fn imap_date(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!(
        "[day]-[month repr:short]-[year] [hour]:[minute]:[second] [offset_hour sign:mandatory][offset_minute]"
    );
    t.format(&f).expect("format IMAP date")
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn appenduid(lines: &[String]) -> Option<u32> {
    let last = lines.last()?;
    let i = last.find("[APPENDUID ")? + "[APPENDUID ".len();
    let mut parts = last[i..].split([' ', ']']);
    let _uidvalidity = parts.next()?;
    parts.next()?.parse().ok()
}

/// A minimal line-based IMAP client over a blocking socket: enough for LOGIN, APPEND, CREATE,
/// DELETE, EXAMINE and FETCH FLAGS. Panics on any failure (it is test scaffolding).
pub struct RawImap {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: u32,
}

impl RawImap {
    pub fn connect(port: u16) -> RawImap {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to Dovecot");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        let writer = s.try_clone().expect("clone socket");
        let mut c = RawImap {
            reader: BufReader::new(s),
            writer,
            tag: 0,
        };
        let greeting = c.line();
        assert!(greeting.starts_with("* OK"), "greeting: {greeting}");
        c
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.reader.read_line(&mut l).expect("read from Dovecot");
        assert!(!l.is_empty(), "Dovecot closed the connection");
        l.trim_end().to_string()
    }

    fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("t{}", self.tag)
    }

    /// Read until the tagged response; panic unless it is OK. Returns every line.
    fn finish(&mut self, tag: &str, what: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let l = self.line();
            let done = l.starts_with(&format!("{tag} "));
            lines.push(l);
            if done {
                break;
            }
        }
        let last = lines.last().expect("a line");
        assert!(
            last.starts_with(&format!("{tag} OK")),
            "{what} failed: {lines:?}"
        );
        lines
    }

    /// Send one command (no literals), expect OK.
    pub fn ok(&mut self, command: &str) -> Vec<String> {
        let tag = self.next_tag();
        write!(self.writer, "{tag} {command}\r\n").expect("send command");
        let what = command.split(' ').next().unwrap_or(command).to_string();
        self.finish(&tag, &what)
    }

    /// APPEND with a synchronising literal.
    pub fn append(&mut self, folder: &str, date: &str, raw: &[u8]) -> Vec<String> {
        let tag = self.next_tag();
        write!(
            self.writer,
            "{tag} APPEND {} \"{date}\" {{{}}}\r\n",
            quote(folder),
            raw.len()
        )
        .expect("send APPEND");
        let cont = self.line();
        assert!(cont.starts_with('+'), "APPEND not accepted: {cont}");
        self.writer.write_all(raw).expect("send message");
        self.writer.write_all(b"\r\n").expect("send CRLF");
        self.finish(&tag, "APPEND")
    }
}

/// A well-mixed 64-bit function of `n` (SplitMix64's finaliser): varied microseconds in
/// Maildir names, as real deliveries have, reproducibly.
fn splitmix64(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
