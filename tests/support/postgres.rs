//! A real PostgreSQL server for tests (issue 17), on loopback, in a temporary directory, started
//! and stopped by `scripts/postgres.sh` (which installs Debian's `postgresql` when missing,
//! without the system-wide cluster).
//!
//! One role, `cprwatch`, owns one database, `cprwatch`; its password is chosen here, fresh for
//! each server ([`Postgres::password`]), and accepted only with scram-sha-256 over TCP from
//! 127.0.0.1. The server also offers TLS with a self-signed certificate for 127.0.0.1 and
//! localhost ([`Postgres::ca_file`]). The data stays across [`Postgres::restart`] and
//! [`Postgres::kill`]; dropping the value stops the server and removes the directory.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One PostgreSQL instance.
pub struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
    password: String,
    running: bool,
}

impl Postgres {
    /// Initialise and start a fresh server on a free loopback port, and wait until it accepts
    /// connections. Panics, with the script's output and the server log, when it cannot.
    pub fn start() -> Postgres {
        // The script hands the directory to the postgres user (initdb and the server refuse
        // root); /tmp lets that user reach it.
        let dir = tempfile::Builder::new()
            .prefix("cprwatch-postgres-")
            .tempdir_in("/tmp")
            .expect("temporary directory for PostgreSQL");
        let mut random = [0u8; 12];
        getrandom::getrandom(&mut random).expect("random password");
        // A space and a quote too: the password must survive every layer's quoting.
        let password = format!("pw '{}", hex::encode(random));
        let mut pg = Postgres {
            dir,
            port: super::free_port(),
            password,
            running: false,
        };
        pg.script("start");
        pg.running = true;
        pg.wait_accepting();
        pg
    }

    /// `postgres://cprwatch@127.0.0.1:PORT/cprwatch`: no password in it, as `[store] url`.
    pub fn url(&self) -> String {
        format!("postgres://cprwatch@127.0.0.1:{}/cprwatch", self.port)
    }

    /// A `PostgresStore` on this server; panics, with the server log, when it cannot open.
    pub fn store(&self) -> cprwatch::store::PostgresStore {
        cprwatch::store::PostgresStore::open(&self.url(), self.password(), None).unwrap_or_else(
            |e| {
                panic!(
                    "open the store at {}: {e}\nServer log:\n{}",
                    self.url(),
                    self.log()
                )
            },
        )
    }

    /// A connection of its own, to look at or change the tables behind a store's back.
    pub fn client(&self) -> postgres::Client {
        cprwatch::store::postgres_connect::connect(&self.url(), self.password(), None)
            .expect("side connection")
    }

    /// The password of the role `cprwatch`.
    pub fn password(&self) -> &str {
        &self.password
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's self-signed certificate, to trust as a private CA.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// The server's log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// A fast shutdown (open sessions are ended), by the pid the script started.
    pub fn stop(&mut self) {
        if self.running {
            self.script("stop");
            self.running = false;
        }
    }

    /// Stop if running (the script's `restart`), then start again on the same port with the
    /// same data.
    pub fn restart(&mut self) {
        self.script(if self.running { "restart" } else { "start" });
        self.running = true;
        self.wait_accepting();
    }

    /// SIGKILL every process of the server at once, as in a crash: connections drop without a
    /// goodbye. [`Postgres::restart`] brings it back (with crash recovery).
    pub fn kill(&mut self) {
        if self.running {
            self.script("kill");
            self.running = false;
        }
    }

    /// The script's `pg_ctl -w` already waited for the socket; this checks the TCP port the
    /// tests use, for at most 30 s.
    fn wait_accepting(&self) {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL does not accept connections on {addr} after 30 s; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn script(&self, command: &str) {
        super::server_script(
            "postgres.sh",
            command,
            self.dir.path(),
            &[
                ("PG_PORT", self.port.to_string().as_ref()),
                ("PG_PASSWORD", self.password.as_ref()),
            ],
            || self.log(),
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            super::stop_quietly("postgres.sh", self.dir.path());
        }
    }
}
