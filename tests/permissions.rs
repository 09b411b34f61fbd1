//! The store holds reported private keys and reporters' mail: the database and its WAL and
//! shared-memory files are created owner-only (0600), whatever the umask.
//!
//! One test in its own binary, since it sets the process umask.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use cprwatch::desk::Desk;
use cprwatch::domain::model::FolderRole;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn store_wal_and_shm_are_0600_after_a_real_ingest_even_with_umask_0() {
    // The most permissive umask: anything not 0600 is the code's doing.
    // SAFETY: umask only changes this process's file-creation mask.
    unsafe { libc::umask(0) };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.sqlite");
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!("{}\n[store]\npath = \"s.sqlite\"\n", common::CONFIG),
    )
    .unwrap();
    let config = cprwatch::config::load(&config).unwrap();
    let mut desk = Desk::open(&config).unwrap();
    let now = || cprwatch::domain::timefmt::parse("2026-12-01T00:00:00Z").unwrap();
    let summary = cprwatch::pipeline::ingest_paths(
        &mut desk,
        &[(common::root().join("fixtures/maildir"), FolderRole::Inbox)],
        100,
        now,
    )
    .unwrap();
    assert!(summary.new_messages > 0, "{summary:?}");
    // While the store is open, all three files exist.
    for suffix in ["", "-wal", "-shm"] {
        let path = dir.path().join(format!("s.sqlite{suffix}"));
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    drop(desk);

    // The command line, under a umask of 0 too.
    let other = dir.path().join("cli");
    std::fs::create_dir(&other).unwrap();
    let cfg = other.join("c.toml");
    std::fs::write(
        &cfg,
        format!("{}\n[store]\npath = \"s.sqlite\"\n", common::CONFIG),
    )
    .unwrap();
    let o = Command::new(common::bin())
        .args(["ingest", "--config"])
        .arg(&cfg)
        .arg(common::root().join("fixtures/maildir"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::text(&o));
    assert_eq!(mode(&other.join("s.sqlite")), 0o600);
    assert_eq!(mode(&store), 0o600);
}
