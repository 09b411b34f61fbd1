//! The test PostgreSQL (`scripts/postgres.sh`, tests/support/postgres.rs) with the client the
//! store will use (`cprwatch::store::postgres_connect::connect`): it connects and keeps data;
//! it listens on 127.0.0.1 only; only the role `cprwatch` gets in, with its password; TLS, when
//! asked for, is verified; data survives a restart and a crash of the server, and the client
//! connects again after each. The server is real: Debian's, installed with apt-get when missing.

mod support;

use support::listeners;

use cprwatch::store::postgres_connect::{PgConnectError, connect};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;
use support::postgres::Postgres;

fn connected(pg: &Postgres) -> postgres::Client {
    connect(&pg.url(), pg.password(), None)
        .unwrap_or_else(|e| panic!("connect to {}: {e}\nServer log:\n{}", pg.url(), pg.log()))
}

/// Whether this session is encrypted, as the server sees it.
fn uses_tls(client: &mut postgres::Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .expect("pg_stat_ssl")
        .get(0)
}

#[test]
fn connects_and_keeps_a_table() {
    let pg = Postgres::start();
    let mut client = connected(&pg);

    let one: i32 = client.query_one("SELECT 1", &[]).expect("SELECT 1").get(0);
    assert_eq!(one, 1);
    // Loopback without a ca_file: plain, by the host rule.
    assert!(!uses_tls(&mut client), "loopback without ca_file is plain");

    client
        .batch_execute("CREATE TABLE harness (id BIGINT PRIMARY KEY, note TEXT NOT NULL)")
        .expect("create table");
    client
        .execute(
            "INSERT INTO harness (id, note) VALUES ($1, $2), ($3, $4)",
            &[&1i64, &"first", &2i64, &"zweite \u{e9}"],
        )
        .expect("insert");
    let rows: Vec<(i64, String)> = client
        .query("SELECT id, note FROM harness ORDER BY id", &[])
        .expect("select")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rows,
        vec![(1, "first".to_string()), (2, "zweite \u{e9}".to_string())]
    );
    // The table belongs to the role that made it, in the database it owns.
    let owner: String = client
        .query_one(
            "SELECT tableowner::text FROM pg_tables WHERE tablename = 'harness'",
            &[],
        )
        .expect("owner")
        .get(0);
    assert_eq!(owner, "cprwatch");
}

#[test]
fn tls_when_asked_for_is_verified() {
    let pg = Postgres::start();

    // With the server's CA: TLS, verified against 127.0.0.1 in its certificate.
    let mut client = connect(&pg.url(), pg.password(), Some(&pg.ca_file()))
        .unwrap_or_else(|e| panic!("connect over TLS: {e}\nServer log:\n{}", pg.log()));
    assert!(uses_tls(&mut client), "a ca_file asks for TLS");

    // With a CA that did not sign the server's certificate: refused at the handshake, and the
    // message says where to look.
    let other_ca = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/keys/ca.pem");
    let err = connect(&pg.url(), pg.password(), Some(&other_ca))
        .err()
        .expect("a certificate from another CA must be refused");
    let text = err.to_string();
    assert!(matches!(err, PgConnectError::Connect { .. }), "{err:?}");
    assert!(text.contains("TLS required, verified"), "{text}");
    assert!(text.contains("invalid peer certificate"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{}", pg.port())), "{text}");
}

#[test]
fn listens_on_loopback_only() {
    let pg = Postgres::start();
    let port = pg.port();

    // 0100007F is 127.0.0.1 in the kernel's byte order: one listener, nothing on IPv6.
    assert_eq!(
        listeners(port),
        vec![format!("0100007F:{port:04X}")],
        "listening sockets on port {port}"
    );
    // Another local address on the same port is refused: the server is bound to 127.0.0.1,
    // not to every address.
    let other: SocketAddr = format!("127.0.0.2:{port}").parse().expect("address");
    assert!(
        TcpStream::connect_timeout(&other, Duration::from_secs(2)).is_err(),
        "{other} accepted a connection: PostgreSQL listens beyond 127.0.0.1"
    );
    let err = connect(
        &format!("postgres://cprwatch@127.0.0.2:{port}/cprwatch"),
        pg.password(),
        None,
    )
    .err()
    .expect("nothing on 127.0.0.2");
    assert!(err.to_string().contains("127.0.0.2"), "{err}");

    // The test server is never the system-wide cluster's port (a machine may run one of its
    // own there, which is none of this test's business).
    assert_ne!(port, 5432);
}

#[test]
fn only_the_role_with_its_password_gets_in() {
    let pg = Postgres::start();

    let wrong = "not-the-password";
    let err = connect(&pg.url(), wrong, None)
        .err()
        .expect("a wrong password must be refused");
    let text = err.to_string();
    assert!(matches!(err, PgConnectError::BadPassword { .. }), "{err:?}");
    assert!(
        text.contains("refused the password of role cprwatch"),
        "{text}"
    );
    assert!(text.contains("password_env or password_file"), "{text}");
    assert!(
        !text.contains(wrong),
        "the password is not repeated: {text}"
    );
    assert!(
        text.contains("password authentication failed"),
        "the server's own words: {text}"
    );

    // The superuser has no way in over TCP, whatever the password (no `trust`, no entry).
    let superuser = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port());
    let err = connect(&superuser, pg.password(), None)
        .err()
        .expect("the superuser must not get in over TCP");
    assert!(err.to_string().contains("no pg_hba.conf entry"), "{err}");
    // Nor does the role reach another database.
    let other_db = format!("postgres://cprwatch@127.0.0.1:{}/postgres", pg.port());
    assert!(connect(&other_db, pg.password(), None).is_err());

    // And the right password still works.
    connected(&pg);
}

#[test]
fn a_restart_keeps_the_data_and_the_client_reconnects() {
    let mut pg = Postgres::start();
    let mut client = connected(&pg);
    client
        .batch_execute("CREATE TABLE kept (v TEXT); INSERT INTO kept VALUES ('before restart')")
        .expect("write");

    pg.restart();

    // The old session was ended by the shutdown.
    assert!(
        client.query_one("SELECT 1", &[]).is_err(),
        "a session survived the restart"
    );
    let mut client = connected(&pg);
    let v: String = client
        .query_one("SELECT v FROM kept", &[])
        .expect("read after restart")
        .get(0);
    assert_eq!(v, "before restart");
}

#[test]
fn a_killed_server_recovers_its_committed_data() {
    let mut pg = Postgres::start();
    let mut client = connected(&pg);
    client
        .batch_execute("CREATE TABLE survived (n INT)")
        .expect("create");
    // Committed, one transaction each, right up to the crash.
    for n in 0..100 {
        client
            .execute("INSERT INTO survived VALUES ($1)", &[&n])
            .expect("insert");
    }
    let mut open = client.transaction().expect("begin");
    open.execute("INSERT INTO survived VALUES (-1)", &[])
        .expect("uncommitted insert");

    pg.kill();

    assert!(
        listeners(pg.port()).is_empty(),
        "the killed server still listens"
    );
    assert!(
        open.query_one("SELECT 1", &[]).is_err(),
        "a session survived SIGKILL"
    );
    drop(open);
    assert!(connect(&pg.url(), pg.password(), None).is_err());

    pg.restart();
    // It was a crash, not a shutdown: the server had to recover.
    assert!(
        pg.log().contains("not properly shut down"),
        "no crash recovery in the server log:\n{}",
        pg.log()
    );
    let mut client = connected(&pg);
    let (count, min, max): (i64, i32, i32) = {
        let r = client
            .query_one("SELECT count(*), min(n), max(n) FROM survived", &[])
            .expect("read after recovery");
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!(
        (count, min, max),
        (100, 0, 99),
        "every committed row, and not the uncommitted one"
    );
}
