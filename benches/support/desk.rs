//! A desk on a new SQLite store in a temporary directory, the way every benchmark ingests.
#![allow(dead_code)] // each benchmark uses part of it

use std::path::Path;

use cprwatch::cli::commands::INGEST_BATCH;
use cprwatch::config;
use cprwatch::desk::Desk;
use cprwatch::domain::model::{FolderRole, Timestamp};
use cprwatch::pipeline::{self, IngestSummary};

/// The desk and the directory its store lives in (removed when dropped).
pub struct BenchDesk {
    pub dir: tempfile::TempDir,
    pub desk: Desk,
}

impl BenchDesk {
    /// Staff are the example CA's, as the generated mail has them.
    pub fn open() -> BenchDesk {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg_path = dir.path().join("c.toml");
        std::fs::write(
            &cfg_path,
            "[revocation]\nenabled = false\nrequire_verified = false\n[enrich]\nenabled = false\n[desk]\nstaff_domains = [\"example-ca.test\"]\ntrusted_authserv_ids = [\"mx.example-ca.test\"]\n[store]\npath = \"bench.sqlite\"\n",
        )
        .expect("config");
        let config = config::load(&cfg_path).expect("config loads");
        let desk = Desk::open(&config).expect("desk");
        BenchDesk { dir, desk }
    }

    /// Ingest one folder (or file) as the inbox.
    pub fn ingest(&mut self, path: &Path, now: fn() -> Timestamp) -> IngestSummary {
        pipeline::ingest_paths(
            &mut self.desk,
            &[(path.to_path_buf(), FolderRole::Inbox)],
            INGEST_BATCH,
            now,
        )
        .expect("ingest")
    }

    /// The store's size on disk: the main file plus the WAL after a checkpoint (what a
    /// backup copies). Returns `(main, wal, wal before the checkpoint)`.
    pub fn store_bytes(&self) -> (u64, u64, u64) {
        let path = self.dir.path().join("bench.sqlite");
        let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let wal_before = len(Path::new(&wal));
        if let Ok(conn) = rusqlite::Connection::open(&path) {
            let _ = conn.busy_timeout(std::time::Duration::from_secs(30));
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
        (len(&path), len(Path::new(&wal)), wal_before)
    }
}
