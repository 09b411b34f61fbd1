//! `cprwatch store copy` (issue 17, migration) on a real PostgreSQL: a desk ingested into
//! SQLite, with outbox, alert, canary and check rows and a signed checkpoint, is copied to
//! PostgreSQL; `verify` passes on both sides with the same head hash, `status` and `case`
//! print the same, the rows beside the log are equal, new outbox ids go on after the copied
//! ones, a target that holds events is refused, and the copy goes back to SQLite too. A damaged
//! source is refused (no server needed).

mod common;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{CONFIG, bin, root, scenario, text};
use cprwatch::store::{
    AlertState, Batch, CanaryRow, CheckRow, NewMail, OutboxChange, PostgresStore, SqliteStore,
    Store, Tables,
};
use support::postgres::Postgres;

const PASSWORD_ENV: &str = "CPRWATCH_TEST_STORE_PASSWORD";
/// Every view is evaluated at this moment, on both sides.
const AT: &str = "2026-12-01T00:00:00Z";

fn toml_path(p: &Path) -> String {
    p.display().to_string().replace('\\', "\\\\")
}

/// A desk's configuration in `dir` with `store` as its `[store]` section, signing checkpoints
/// with a copy of the fixtures' Ed25519 key.
fn config(dir: &Path, name: &str, store: &str) -> PathBuf {
    let key = dir.join("audit.pem");
    if !key.exists() {
        std::fs::copy(root().join("fixtures/keys/ed25519-pkcs8.pem"), &key).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "{CONFIG}\n[audit]\nsigning_key_file = \"{}\"\n[store]\n{store}\n",
            toml_path(&key)
        ),
    )
    .unwrap();
    path
}

fn sqlite_config(dir: &Path, name: &str, file: &str) -> PathBuf {
    config(
        dir,
        name,
        &format!("path = \"{}\"", toml_path(&dir.join(file))),
    )
}

fn pg_config(dir: &Path, pg: &Postgres) -> PathBuf {
    config(
        dir,
        "pg.toml",
        &format!("url = \"{}\"\npassword_env = \"{PASSWORD_ENV}\"", pg.url()),
    )
}

fn cprwatch(password: &str, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("CPRWATCH_CONFIG")
        .env(PASSWORD_ENV, password)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run cprwatch")
}

fn ok(o: Output) -> String {
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    String::from_utf8(o.stdout).unwrap()
}

/// Output and exit code (`status` exits non-zero while clocks are breached).
fn shown(o: Output) -> (Option<i32>, String, String) {
    (
        o.status.code(),
        String::from_utf8(o.stdout).unwrap(),
        String::from_utf8(o.stderr).unwrap(),
    )
}

/// `status` output without what only a shared PostgreSQL store shows: the `leader:` line, or the
/// JSON's `leader`.
fn without_leader(out: &str) -> String {
    if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(out) {
        if let Some(leader) = v.as_object_mut().and_then(|o| o.remove("leader")) {
            assert_eq!(leader["live"], false, "{out}");
        }
        return serde_json::to_string_pretty(&v).unwrap() + "\n";
    }
    let kept: Vec<&str> = out.lines().filter(|l| !l.starts_with("leader: ")).collect();
    kept.join("\n") + "\n"
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The head hash `verify` prints.
fn head_of(verify: &str) -> String {
    verify
        .split("head ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap_or_else(|| panic!("no head in {verify}"))
        .trim_end_matches(';')
        .to_string()
}

fn at(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(days)
}

fn mail(key: &str) -> OutboxChange {
    OutboxChange::Queue(NewMail {
        key: key.into(),
        kind: "warning".into(),
        message_id: format!("<{key}@cprwatch.invalid>"),
        to: vec!["desk@example-ca.test".into()],
        rate_key: Some("reporter@example.test".into()),
        case: Some("CPR-2026-0001".into()),
        clocks: vec!["revocation:cert:1".into()],
        body: b"Subject: alert\r\n\r\nbody \xff bytes\r\n".to_vec(),
        queued_at: at(20_000),
    })
}

/// The state beside the log a running desk leaves: mail queued, retried, sent and failed, an
/// alert clock's state, a canary, a revocation check. Committed through the library, as the
/// desk does, without events (they are not what this test is about).
fn add_rows_beside(store: &mut SqliteStore) {
    store
        .commit(Batch {
            outbox: vec![
                mail("alert/a/warning/desk"),
                mail("alert/b/breach/desk"),
                mail("receipt/c"),
                OutboxChange::AlertState(AlertState {
                    clock: "revocation:cert:1".into(),
                    first_seen: at(20_000),
                    last_stage: Some("warning".into()),
                    advisory: true,
                    next_due: Some(at(20_001)),
                }),
                OutboxChange::CanarySent(CanaryRow {
                    id: "canary-1".into(),
                    to: "cpr@example-ca.test".into(),
                    message_id: "<canary-1@cprwatch.invalid>".into(),
                    sent_at: at(20_000),
                    due_by: at(20_001),
                    send_error: None,
                    arrived_at: None,
                    folder: None,
                    bounce: None,
                    alerted: None,
                }),
            ],
            checks: vec![CheckRow {
                target: "cert:1".into(),
                next_due: Some(at(20_002)),
                failures: 2,
                certificate: Some(vec![0x30, 0x82, 0, 1]),
                note: Some("no issuer yet".into()),
                ..Default::default()
            }],
            ..Batch::default()
        })
        .unwrap();
    store
        .commit(Batch {
            outbox: vec![
                OutboxChange::Retry {
                    id: 1,
                    attempts: 2,
                    next_at: at(20_003),
                    error: "421 try later".into(),
                },
                OutboxChange::Sent {
                    id: 2,
                    at: at(20_001),
                },
                OutboxChange::Failed {
                    id: 3,
                    at: at(20_002),
                    attempts: 5,
                    error: "550 no such user".into(),
                },
                OutboxChange::CanaryArrived {
                    id: "canary-1".into(),
                    at: at(20_000),
                    folder: "junk".into(),
                    bounce: None,
                },
            ],
            ..Batch::default()
        })
        .unwrap();
}

/// Everything beside the log, as the desk reads it.
fn beside(t: &dyn Tables) -> String {
    let rows: Vec<_> = (1..=4).map(|id| t.outbox_row(id).unwrap()).collect();
    format!(
        "{rows:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        t.alert_states(&["revocation:cert:1".into()]).unwrap(),
        t.canaries_latest().unwrap(),
        t.check_rows(&["cert:1".into()]).unwrap(),
        t.signed_checkpoints().unwrap(),
        t.outbox_summary(at(0)).unwrap(),
    )
}

#[test]
fn a_sqlite_desk_copied_to_postgresql_verifies_with_the_same_head_and_reads_the_same() {
    let pg = Postgres::start();
    let pw = pg.password().to_string();
    let dir = tempfile::tempdir().unwrap();
    let lite = sqlite_config(dir.path(), "lite.toml", "s.sqlite");
    let pgc = pg_config(dir.path(), &pg);

    // The fixtures' corpus, with the scenarios' cases (a report, staff replies, automatic mail).
    let corpus = root().join("fixtures/corpus/sakai-mbox.txt");
    let (refs, auto_in, auto_sent, keys) = (
        scenario("cert-refs").join("inbox"),
        scenario("automatic").join("inbox"),
        scenario("automatic").join("sent"),
        scenario("key-evidence").join("inbox"),
    );
    for (role, path) in [
        ("inbox", &corpus),
        ("inbox", &refs),
        ("inbox", &auto_in),
        ("sent", &auto_sent),
        ("inbox", &keys),
    ] {
        ok(cprwatch(
            &pw,
            &["ingest", "--config", s(&lite), "--role", role, s(path)],
        ));
    }
    ok(cprwatch(
        &pw,
        &["audit", "checkpoint", "--config", s(&lite)],
    ));
    add_rows_beside(&mut SqliteStore::open(&dir.path().join("s.sqlite")).unwrap());

    // The copy.
    let out = ok(cprwatch(
        &pw,
        &["store", "copy", "--from", s(&lite), "--to", s(&pgc)],
    ));
    assert!(out.contains("outbox rows: 3 copied"), "{out}");
    assert!(out.contains("signed_checkpoints rows: 1 copied"), "{out}");
    assert!(out.contains("canaries rows: 1 copied"), "{out}");
    assert!(out.contains("revocation_checks rows: 1 copied"), "{out}");
    assert!(out.contains("alert_clocks rows: 1 copied"), "{out}");
    assert!(!out.contains("MISMATCH"), "{out}");
    let heads: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("source:") || l.starts_with("target:"))
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(heads.len(), 2, "{out}");
    assert_eq!(heads[0], heads[1], "{out}");

    // verify on both: intact, the same head, the signed checkpoint judged good on both.
    let v_lite = ok(cprwatch(&pw, &["verify", "--config", s(&lite)]));
    let v_pg = ok(cprwatch(&pw, &["verify", "--config", s(&pgc)]));
    assert_eq!(head_of(&v_lite), head_of(&v_pg), "{v_lite}\n{v_pg}");
    assert_eq!(head_of(&v_pg), heads[0]);
    let first_line = |v: &str| v.lines().next().unwrap_or("").to_string();
    assert_eq!(first_line(&v_lite), first_line(&v_pg));
    assert!(
        !v_pg.contains("not checked"),
        "the checkpoint is judged: {v_pg}"
    );

    // The views read the same on both.
    for format in ["text", "json"] {
        let a = shown(cprwatch(
            &pw,
            &[
                "status",
                "--config",
                s(&lite),
                "--at",
                AT,
                "--format",
                format,
            ],
        ));
        let b = shown(cprwatch(
            &pw,
            &[
                "status",
                "--config",
                s(&pgc),
                "--at",
                AT,
                "--format",
                format,
            ],
        ));
        assert!(a.1.contains("retrying"), "{}", a.1);
        // PostgreSQL's status also says who leads (nobody: no `run` on it).
        let b = (b.0, without_leader(&b.1), b.2);
        assert!(
            !a.1.contains("\"leader\"") && !a.1.contains("\nleader: "),
            "a SQLite store has no leader: {}",
            a.1
        );
        let a = (a.0, without_leader(&a.1), a.2);
        assert_eq!(a, b, "status --format {format}");
    }
    let status = shown(cprwatch(
        &pw,
        &[
            "status",
            "--config",
            s(&lite),
            "--at",
            AT,
            "--format",
            "json",
        ],
    ))
    .1;
    let mut ids: Vec<String> = status
        .split('"')
        .filter(|t| t.starts_with("CPR-") && t.len() == 13)
        .map(str::to_string)
        .collect();
    ids.sort();
    ids.dedup();
    assert!(ids.len() >= 2, "cases in {status}");
    // The corpus' first cases and the scenarios' (the last): enough to compare, soon done.
    let some = ids.len().saturating_sub(15);
    for id in ids.iter().take(15).chain(ids.iter().skip(some)) {
        let a = shown(cprwatch(
            &pw,
            &[
                "case",
                "--config",
                s(&lite),
                id,
                "--at",
                AT,
                "--format",
                "json",
            ],
        ));
        let b = shown(cprwatch(
            &pw,
            &[
                "case",
                "--config",
                s(&pgc),
                id,
                "--at",
                AT,
                "--format",
                "json",
            ],
        ));
        assert_eq!(a.0, Some(0), "case {id}: {}", a.2);
        assert_eq!(a, b, "case {id}");
    }

    // The rows beside the log, as the desk reads them: equal.
    let lite_store = SqliteStore::open(&dir.path().join("s.sqlite")).unwrap();
    let mut pg_store = PostgresStore::open(&pg.url(), &pw, None).unwrap();
    assert_eq!(beside(&lite_store), beside(&pg_store));
    assert!(lite_store.outbox_row(1).unwrap().unwrap().attempts == 2);

    // A target that already holds events: refused, nothing written.
    let events = pg_store.events().unwrap().len();
    let again = cprwatch(&pw, &["store", "copy", "--from", s(&lite), "--to", s(&pgc)]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds"),
        "{}",
        text(&again)
    );
    assert_eq!(pg_store.events().unwrap().len(), events);

    // And back, into a new SQLite file: the same head again.
    let back = sqlite_config(dir.path(), "back.toml", "back.sqlite");
    let out = ok(cprwatch(
        &pw,
        &["store", "copy", "--from", s(&pgc), "--to", s(&back)],
    ));
    assert!(!out.contains("MISMATCH"), "{out}");
    let v_back = ok(cprwatch(&pw, &["verify", "--config", s(&back)]));
    assert_eq!(head_of(&v_back), head_of(&v_lite));
    assert_eq!(
        beside(&SqliteStore::open(&dir.path().join("back.sqlite")).unwrap()),
        beside(&lite_store)
    );

    // Mail queued on PostgreSQL after the copy gets the next id, not one of the copied.
    pg_store
        .commit(Batch {
            outbox: vec![mail("alert/d/warning/desk")],
            ..Batch::default()
        })
        .unwrap();
    let row = pg_store
        .outbox_row(4)
        .unwrap()
        .expect("the new mail is id 4");
    assert_eq!(row.key, "alert/d/warning/desk");
}

#[test]
fn a_damaged_source_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let lite = sqlite_config(dir.path(), "lite.toml", "s.sqlite");
    let to = sqlite_config(dir.path(), "to.toml", "to.sqlite");
    ok(cprwatch(
        "",
        &[
            "ingest",
            "--config",
            s(&lite),
            s(&scenario("cert-refs").join("inbox")),
        ],
    ));
    {
        let conn = rusqlite::Connection::open(dir.path().join("s.sqlite")).unwrap();
        // One stored message's bytes changed: its content hash no longer matches.
        let (rowid, mut raw): (i64, Vec<u8>) = conn
            .query_row("SELECT rowid, raw FROM messages LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        let i = raw.len() / 2;
        raw[i] ^= 0x01;
        conn.execute(
            "UPDATE messages SET raw = ?1 WHERE rowid = ?2",
            rusqlite::params![raw, rowid],
        )
        .unwrap();
    }
    let out = cprwatch("", &["store", "copy", "--from", s(&lite), "--to", s(&to)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not verify"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    let target = SqliteStore::open(&dir.path().join("to.sqlite")).unwrap();
    assert!(target.events().unwrap().is_empty());
    assert_eq!(target.verify().unwrap().messages_checked, 0);
}
