//! A real Postfix SMTP server for tests, on loopback, in a temporary directory, started and
//! stopped by `scripts/postfix.sh` (which installs Debian's `postfix` when missing, keeping the
//! system-wide instance from starting).
//!
//! It accepts mail from loopback for cpr, other, desk, oncall and reporter at `example-ca.test`
//! and delivers it with Postfix's `virtual` agent into Maildir++ INBOXes under the directory
//! it is given: hand it `Dovecot::dir()/mail` (tests/support/dovecot.rs) and the test's
//! Dovecot serves over IMAP what Postfix delivered. It refuses, with a permanent 550 at RCPT,
//! [`REFUSED`], any other local part at example-ca.test and every other domain: nothing can
//! leave the machine.
//!
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The recipient Postfix refuses with "550 5.1.1 ... refused for the test".
pub const REFUSED: &str = "refuse@example-ca.test";

/// One Postfix instance. Dropping it stops the server and removes its directory (not the
/// mail, which belongs to whoever owns the Maildir base).
pub struct Postfix {
    dir: tempfile::TempDir,
    maildir_base: PathBuf,
    smtp_port: u16,
    smtps_port: u16,
    running: bool,
}

impl Postfix {
    /// Start a fresh server on a free loopback port, delivering into Maildirs under
    /// `maildir_base` (`<maildir_base>/<user>/`, as the owner of `maildir_base`, which must not
    /// be root). Panics, with the script's output and Postfix's log, when it cannot.
    pub fn start(maildir_base: &Path) -> Postfix {
        let dir = tempfile::Builder::new()
            .prefix("cprwatch-postfix-")
            .tempdir()
            .expect("temporary directory for Postfix");
        let mut p = Postfix {
            dir,
            maildir_base: maildir_base.to_path_buf(),
            smtp_port: super::free_port(),
            smtps_port: super::free_port(),
            running: false,
        };
        p.script("start");
        p.running = true;
        p
    }

    /// Plain SMTP, STARTTLS offered.
    pub fn smtp_port(&self) -> u16 {
        self.smtp_port
    }

    /// SMTP in implicit TLS.
    pub fn smtps_port(&self) -> u16 {
        self.smtps_port
    }

    /// The server's self-signed certificate (127.0.0.1, localhost): the CA file to trust it.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Postfix's own log (`maillog_file`), for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postfix.log")).unwrap_or_default()
    }

    /// Stop the server (SIGTERM, and wait). Queue and port are kept for [`Postfix::restart`].
    pub fn stop(&mut self) {
        if self.running {
            self.script("stop");
            self.running = false;
        }
    }

    /// Stop if running, then start again on the same port with the same queue.
    pub fn restart(&mut self) {
        self.stop();
        self.script("start");
        self.running = true;
    }

    /// SIGKILL every process of this server at once, as in a crash. [`Postfix::restart`]
    /// brings it back.
    pub fn kill(&mut self) {
        if self.running {
            self.script("kill");
            self.running = false;
        }
    }

    fn script(&self, command: &str) {
        super::server_script(
            "postfix.sh",
            command,
            self.dir.path(),
            &[
                ("SMTP_PORT", self.smtp_port.to_string().as_ref()),
                ("SMTPS_PORT", self.smtps_port.to_string().as_ref()),
                ("MAILDIR_BASE", self.maildir_base.as_os_str()),
            ],
            || self.log(),
        );
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if self.running {
            super::stop_quietly("postfix.sh", self.dir.path());
        }
    }
}
