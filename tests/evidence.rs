//! Evidence beyond the hash chain, end to end: `cprwatch audit checkpoint` signs the log's head
//! with `[audit] signing_key_file`, and `cprwatch verify` catches what the chain alone catches
//! (a changed byte, a deleted event) and what it cannot: a dropped tail, a log rewritten and
//! hashed afresh without the key, a forged event appended after the last checkpoint that says
//! it was recorded before it, and a checkpoint signed by another key. An auditor checks with
//! the public key alone.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use cprwatch::store::Store;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use rusqlite::{Connection, params};

/// Write `key` as PKCS#8 PEM (what `openssl genpkey -algorithm ed25519` writes) at `path`,
/// readable by its owner only.
fn write_key(path: &Path, key: &SigningKey) {
    let pem = key
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .unwrap();
    std::fs::write(path, pem.as_bytes()).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A desk whose config names a signing key (`k.pem` beside it, key `seed`).
fn keyed(seed: u8) -> Desk {
    let desk = Desk::with_store();
    write_key(
        &desk.dir.path().join("k.pem"),
        &SigningKey::from_bytes(&[seed; 32]),
    );
    let mut cfg = std::fs::read_to_string(desk.config()).unwrap();
    cfg.push_str("[audit]\nsigning_key_file = \"k.pem\"\n");
    std::fs::write(desk.config(), cfg).unwrap();
    desk
}

fn cfg(desk: &Desk) -> String {
    desk.config().display().to_string()
}

fn ingest(desk: &Desk, role: &str) {
    let dir = scenario("revocation").join(role);
    let o = desk.run(&[
        "ingest",
        "--config",
        &cfg(desk),
        "--role",
        role,
        &dir.display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// Sign a checkpoint; returns its line (`cprwatch-checkpoint v1 …`).
fn checkpoint(desk: &Desk) -> String {
    let o = desk.run(&["audit", "checkpoint", "--config", &cfg(desk)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.starts_with("checkpoint signed: event #"), "{out}");
    out.lines()
        .find(|l| l.starts_with("cprwatch-checkpoint v1 "))
        .unwrap()
        .to_string()
}

/// The revocation scenario with a checkpoint after the inbox and one after the sent folder:
/// every event covered.
fn signed() -> Desk {
    let desk = keyed(1);
    ingest(&desk, "inbox");
    checkpoint(&desk);
    ingest(&desk, "sent");
    checkpoint(&desk);
    desk
}

/// A copy of `src`'s store and key in a fresh desk, damaged by `damage`.
fn damaged(src: &Desk, damage: impl FnOnce(&Connection)) -> Desk {
    let copy = keyed(1);
    std::fs::copy(src.store(), copy.store()).unwrap();
    {
        let conn = Connection::open(copy.store()).unwrap();
        damage(&conn);
    }
    copy
}

fn verify(desk: &Desk, extra: &[&str]) -> (Option<i32>, String, String) {
    let c = cfg(desk);
    let mut args = vec!["verify", "--config", &c];
    args.extend_from_slice(extra);
    let o = desk.run(&args);
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).to_string(),
        text(&o),
    )
}

fn head(store: &Path) -> i64 {
    Connection::open(store)
        .unwrap()
        .query_row("SELECT MAX(seq) FROM events", [], |r| r.get(0))
        .unwrap()
}

/// Every event's canonical body and hash, read through the store (rows keep bodies deflated
/// and most hashes as a check).
fn events(store: &Path) -> Vec<cprwatch::store::StoredEvent> {
    cprwatch::store::open_sqlite(store)
        .unwrap()
        .events()
        .unwrap()
}

/// Replace the events from `bodies[0].0` on with `bodies`, hashed afresh onto the event before:
/// what someone with write access and this project's source, but not the key, can do. Rows are
/// written plain with hex hashes, as schema 4 wrote them, which verify reads as it always did.
fn rewrite_chain(
    conn: &Connection,
    before: &[cprwatch::store::StoredEvent],
    bodies: Vec<(i64, Vec<u8>)>,
) {
    let first = bodies[0].0;
    let mut prev = if first == 1 {
        cprwatch::store::chain::GENESIS.to_string()
    } else {
        before[(first - 2) as usize].hash.clone()
    };
    conn.execute("DELETE FROM events WHERE seq >= ?1", [first])
        .unwrap();
    for (seq, body) in bodies {
        let hash = cprwatch::store::chain::event_hash(seq as u64, &prev, &body);
        conn.execute(
            "INSERT INTO events (seq, body, prev_hash, hash, encoding, size) \
             VALUES (?1, ?2, ?3, ?4, 0, ?5)",
            params![seq, body, prev, hash, body.len() as i64],
        )
        .unwrap();
        prev = hash;
    }
}

/// `body` with its `recorded_at` set to `at`.
fn recorded_at(body: &[u8], at: &str) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["recorded_at"] = serde_json::Value::String(at.to_string());
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn a_store_with_checkpoints_verifies_and_an_auditor_needs_only_the_public_key() {
    let desk = signed();
    let (code, out, all) = verify(&desk, &[]);
    assert_eq!(code, Some(0), "{all}");
    assert!(out.starts_with("ok:"), "{all}");
    assert!(
        out.contains(
            "checkpoints: 2 signed checkpoints hold and match the log; the last, signed at"
        ) && out.contains(&format!("covers events up to #{}", head(&desk.store()))),
        "{all}"
    );
    assert!(!out.contains("not yet covered"), "{all}");

    // The auditor: the public key the desk hands over, a config without [audit], a copy of
    // the store.
    let o = desk.run(&["audit", "public-key", "--config", &cfg(&desk)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let pem = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
    assert!(!pem.contains("PRIVATE"), "{pem}");
    let auditor = Desk::with_store();
    std::fs::copy(desk.store(), auditor.store()).unwrap();
    let public = auditor.dir.path().join("desk-public.pem");
    std::fs::write(&public, &pem).unwrap();
    let (code, out, all) = verify(&auditor, &[]);
    assert_eq!(code, Some(0), "{all}");
    assert!(
        out.contains("checkpoints: 2 not checked — no public key"),
        "{all}"
    );
    let (code, out, all) = verify(&auditor, &["--public-key", &public.display().to_string()]);
    assert_eq!(code, Some(0), "{all}");
    assert!(
        out.contains("2 signed checkpoints hold and match the log"),
        "{all}"
    );
}

#[test]
fn events_after_the_last_checkpoint_are_reported_as_not_yet_covered() {
    let desk = keyed(1);
    ingest(&desk, "inbox");
    checkpoint(&desk);
    let covered = head(&desk.store());
    ingest(&desk, "sent");
    let after = head(&desk.store()) - covered;
    assert!(after > 0);
    let (code, out, all) = verify(&desk, &[]);
    assert_eq!(code, Some(0), "{all}");
    assert!(
        out.contains(&format!(
            "checkpoints: {after} events after the last signed checkpoint at "
        )) && out.contains(": not yet covered"),
        "{all}"
    );
}

#[test]
fn a_changed_byte_is_caught() {
    let desk = signed();
    let seq = head(&desk.store()) / 2;
    let copy = damaged(&desk, |c| {
        let mut b: Vec<u8> = c
            .query_row("SELECT body FROM events WHERE seq = ?1", [seq], |r| {
                r.get(0)
            })
            .unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0x01;
        c.execute(
            "UPDATE events SET body = ?1 WHERE seq = ?2",
            params![b, seq],
        )
        .unwrap();
    });
    let (code, out, all) = verify(&copy, &[]);
    assert_eq!(code, Some(1), "{all}");
    assert!(out.starts_with(&format!("FAILED: event #{seq}")), "{all}");
}

#[test]
fn a_deleted_event_in_the_middle_is_caught() {
    let desk = signed();
    let seq = head(&desk.store()) / 2;
    let copy = damaged(&desk, |c| {
        c.execute("DELETE FROM events WHERE seq = ?1", [seq])
            .unwrap();
    });
    let (code, out, all) = verify(&copy, &[]);
    assert_eq!(code, Some(1), "{all}");
    assert!(
        out.starts_with(&format!(
            "FAILED: event #{}: sequence gap: expected seq {seq}, found seq {} (event #{seq} is missing)",
            seq + 1,
            seq + 1
        )),
        "{all}"
    );

    // Renumbered and hashed afresh, the chain holds again: the checkpoints do not.
    let before = events(&desk.store());
    let copy = damaged(&desk, |c| {
        let rest = before[seq as usize..]
            .iter()
            .map(|e| (e.seq as i64 - 1, e.body.clone()))
            .collect();
        rewrite_chain(c, &before, rest);
    });
    let (code, out, all) = verify(&copy, &[]);
    assert_eq!(code, Some(1), "{all}");
    assert!(
        out.starts_with("FAILED: the log does not match its signed checkpoints")
            && out.contains("the log was cut after event #"),
        "{all}"
    );
}

#[test]
fn a_rehashed_chain_without_the_key_is_caught() {
    let desk = signed();
    let before = events(&desk.store());
    let last = before.len() as i64;
    // An event the first checkpoint covers, rewritten (here: when it says it was recorded),
    // and every event from it on hashed afresh.
    let seq = 3i64;
    let copy = damaged(&desk, |c| {
        let bodies = before[(seq - 1) as usize..]
            .iter()
            .map(|e| {
                let body = if e.seq as i64 == seq {
                    recorded_at(&e.body, "2026-08-13T10:00:00Z")
                } else {
                    e.body.clone()
                };
                (e.seq as i64, body)
            })
            .collect();
        rewrite_chain(c, &before, bodies);
    });
    assert_eq!(head(&copy.store()), last);
    // The chain alone is content: this is what it cannot catch.
    let plain = Desk::with_store();
    std::fs::copy(copy.store(), plain.store()).unwrap();
    let (_, out, all) = verify(&plain, &[]);
    assert!(out.contains("hash chain intact"), "{all}");

    let (code, out, all) = verify(&copy, &[]);
    assert_eq!(code, Some(1), "{all}");
    assert!(
        out.starts_with("FAILED: the log does not match its signed checkpoints"),
        "{all}"
    );
    assert!(out.contains("is not the one signed at"), "{all}");
    assert!(
        out.contains("events were changed, removed or inserted and the chain hashed afresh"),
        "{all}"
    );
    assert!(out.contains("the change is in events #1..#"), "{all}");
}

#[test]
fn a_dropped_tail_is_caught_by_the_stored_checkpoint_and_by_the_mailed_copy() {
    let desk = signed();
    let last = head(&desk.store());
    let copy = damaged(&desk, |c| {
        c.execute("DELETE FROM events WHERE seq > ?1", [last - 3])
            .unwrap();
    });
    let (code, out, all) = verify(&copy, &[]);
    assert_eq!(code, Some(1), "{all}");
    assert!(
        out.contains(&format!(
            "the log was cut after event #{}: the checkpoint signed at ",
            last - 3
        )) && out.contains(&format!(
            "covers events up to #{last}, so 3 signed event(s) are gone"
        )),
        "{all}"
    );

    // The checkpoints removed from the store too: the chain and the store are content, the
    // copy outside (the lines of the daily mail) is not.
    let line = checkpoint(&desk);
    let copy = damaged(&desk, |c| {
        c.execute("DELETE FROM events WHERE seq > ?1", [last - 3])
            .unwrap();
        c.execute("DELETE FROM signed_checkpoints", []).unwrap();
    });
    // And the index made again from the shortened log, so the tables agree with it too.
    let o = copy.run(&["rebuild", "--reindex", "--config", &cfg(&copy)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let (code, _, all) = verify(&copy, &[]);
    assert_eq!(code, Some(0), "{all}");
    let saved = copy.dir.path().join("checkpoints.eml");
    std::fs::write(
        &saved,
        format!("Subject: [cprwatch] CHECKPOINTS\n\nKeep this mail.\n\n{line}\n"),
    )
    .unwrap();
    let (code, out, all) = verify(&copy, &["--checkpoints", &saved.display().to_string()]);
    assert_eq!(code, Some(1), "{all}");
    assert!(
        out.contains(&format!("the log was cut after event #{}", last - 3)),
        "{all}"
    );
}

#[test]
fn an_appended_forged_event_is_caught() {
    let desk = signed();
    let before = events(&desk.store());
    let last = before.len() as i64;
    // A naive forger appends a copy of an event with a made-up hash: the chain catches it.
    let copy = damaged(&desk, |c| {
        let body = before[1].body.clone();
        c.execute(
            "INSERT INTO events (seq, body, prev_hash, hash, encoding, size) \
             VALUES (?1, ?2, '', ?3, 0, ?4)",
            params![last + 1, body, "ab".repeat(32), body.len() as i64],
        )
        .unwrap();
    });
    let (code, out, all) = verify(&copy, &[]);
    assert_eq!(code, Some(1), "{all}");
    assert!(
        out.starts_with(&format!("FAILED: event #{}", last + 1)),
        "{all}"
    );

    // One who hashes it onto the chain, dated back to when the report should have come: the
    // chain holds, the checkpoint signed before it does not cover it.
    let copy = damaged(&desk, |c| {
        let body = recorded_at(&before[1].body, "2026-08-13T10:00:00Z");
        rewrite_chain(c, &before, vec![(last + 1, body)]);
    });
    let (code, out, all) = verify(&copy, &[]);
    assert_eq!(code, Some(1), "{all}");
    assert!(
        out.contains(&format!(
            "event #{} says it was recorded at 2026-08-13T10:00:00Z, before the checkpoint signed at ",
            last + 1
        )) && out.contains(&format!("covers only events up to #{last}"))
            && out.contains("a forged event"),
        "{all}"
    );
}

#[test]
fn a_checkpoint_signed_by_another_key_is_reported() {
    let desk = signed();
    // Someone with their own key signs the store's head.
    let other = keyed(2);
    let mut other_cfg = std::fs::read_to_string(other.config()).unwrap();
    other_cfg = other_cfg.replace(
        &other.store().display().to_string(),
        &desk.store().display().to_string(),
    );
    std::fs::write(other.config(), other_cfg).unwrap();
    checkpoint(&other);
    let (code, out, all) = verify(&desk, &[]);
    assert_eq!(code, Some(1), "{all}");
    assert!(
        out.contains("is signed by another key, ed25519:")
            && out.contains("it proves nothing about this log"),
        "{all}"
    );
}

#[test]
fn a_signing_key_others_can_read_is_refused() {
    let desk = keyed(1);
    let key = desk.dir.path().join("k.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = desk.run(&["audit", "checkpoint", "--config", &cfg(&desk)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("is readable by others (mode 0644)") && err.contains("chmod 600"),
        "{}",
        text(&o)
    );
    let o = desk.run(&["check-config", "--config", &cfg(&desk)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = desk.run(&["check-config", "--config", &cfg(&desk)]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("audit: checkpoints signed at start, hourly"),
        "{}",
        text(&o)
    );
    // Without a key at all, the command says how to make one.
    let bare = Desk::with_store();
    let o = bare.run(&["audit", "checkpoint", "--config", &cfg(&bare)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("openssl genpkey -algorithm ed25519"),
        "{}",
        text(&o)
    );
}

/// Poll `sql` (a count) on the store until it is at least `n`, for at most a minute.
fn wait_for(store: &Path, sql: &str, n: i64) {
    let start = std::time::Instant::now();
    loop {
        let got = Connection::open(store)
            .and_then(|c| c.query_row(sql, [], |r| r.get::<_, i64>(0)))
            .unwrap_or(0);
        if got >= n {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "{sql}: {got} < {n} after a minute"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn run_signs_a_checkpoint_at_start_and_at_shutdown() {
    let desk = keyed(1);
    let md = desk.dir.path().join("mail");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(md.join(sub)).unwrap();
    }
    let mut c = std::fs::read_to_string(desk.config()).unwrap();
    c.push_str("[clock]\ntick_seconds = 1\n[[maildir]]\npath = \"mail\"\npoll_seconds = 1\n");
    std::fs::write(desk.config(), c).unwrap();
    let child = std::process::Command::new(bin())
        .args(["run", "--config", &cfg(&desk)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&desk.store(), "SELECT COUNT(*) FROM signed_checkpoints", 1);
    // Mail after the start's checkpoint: covered only by the one at shutdown.
    let report = std::fs::read_dir(scenario("revocation").join("inbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    std::fs::copy(&report, md.join("tmp/1.eml")).unwrap();
    std::fs::rename(md.join("tmp/1.eml"), md.join("new/1.eml")).unwrap();
    wait_for(&desk.store(), "SELECT COUNT(*) FROM events", 1);
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.matches("checkpoint signed").count() >= 2, "{stderr}");
    let (code, out, all) = verify(&desk, &[]);
    assert_eq!(code, Some(0), "{all}");
    assert!(
        out.contains(&format!("covers events up to #{}", head(&desk.store()))),
        "{all}"
    );
    assert!(!out.contains("not yet covered"), "{all}");
}
