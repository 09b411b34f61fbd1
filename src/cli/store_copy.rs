//! `cprwatch store copy --from A --to B`: move a desk's whole history between two configured
//! stores (SQLite to PostgreSQL, back, or file to file), chain intact.
//!
//! The order is what makes the copy trustworthy: the source is verified first (a damaged log
//! is refused, not laundered into a fresh chain on the target), the target must hold no
//! events (nothing is merged), the log and the rows beside it move ([`crate::store::copy`]),
//! the tables are derived on the target from the copied log, and the target is verified after.
//! Then both sides are counted and compared: any difference exits 1.

use std::path::Path;

use crate::cli::commands::{CommandError, Outcome};
use crate::config::{self, Config};
use crate::desk::{self, DeskError};
use crate::escape::text as esc;
use crate::store::copy::{self, BESIDE};

/// Where a configuration keeps its store, for messages (a URL holds no password).
fn place(config: &Config) -> String {
    match &config.store.postgres {
        Some(pg) => pg.url.clone(),
        None => config.store.path.display().to_string(),
    }
}

/// `cprwatch store copy`.
pub fn store_copy(from_path: &Path, to_path: &Path) -> Result<Outcome, CommandError> {
    let (from_cfg, to_cfg) = (config::load(from_path)?, config::load(to_path)?);
    let (from_at, to_at) = (place(&from_cfg), place(&to_cfg));
    if from_at == to_at {
        return Err(CommandError::Usage(format!(
            "--from and --to name the same store ({}) — point --to at another database or file",
            esc(&to_at)
        )));
    }
    let source = desk::open_store(&from_cfg)?;
    let mut target = desk::open_store(&to_cfg)?;

    let held = target.tables_state().map_err(DeskError::from)?.head;
    if held > 0 {
        return Err(CommandError::Usage(format!(
            "the target store {} already holds {held} events; nothing was written — copy into \
             a new, empty database or file (a copy never merges two histories)",
            esc(&to_at)
        )));
    }
    let before = desk::verify(source.as_ref())?;
    if let Some(p) = &before.problem {
        return Err(CommandError::Usage(format!(
            "the source store {} does not verify: {}; nothing was written — a copy would hide \
             the damage under a fresh chain: restore the source from a backup first",
            esc(&from_at),
            esc(p)
        )));
    }

    let log = copy::copy_log(source.as_ref(), target.as_mut()).map_err(DeskError::from)?;
    let beside = copy::copy_beside(source.as_ref(), target.as_mut()).map_err(DeskError::from)?;
    let rebuilt = desk::rebuild_tables(
        target.as_mut(),
        &desk::settings(&to_cfg),
        desk::Reindex::Always,
    )?;
    let after = desk::verify(target.as_ref())?;

    let was = copy::counts(source.as_ref()).map_err(DeskError::from)?;
    let now = copy::counts(target.as_ref()).map_err(DeskError::from)?;
    let mut out = format!("copied {} to {}\n", esc(&from_at), esc(&to_at));
    let mut differ = Vec::new();
    let mut line = |what: &str, source: u64, copied: u64, target: u64| {
        out.push_str(&format!("{what}: {copied} copied"));
        if source != target || copied != source {
            out.push_str(&format!(" — MISMATCH: source {source}, target {target}"));
            differ.push(what.to_string());
        }
        out.push('\n');
    };
    line("events", was.events, log.events, now.events);
    line("messages", was.messages, log.messages, now.messages);
    line("positions", was.positions, log.positions, now.positions);
    line(
        "imap checkpoints",
        was.imap_checkpoints,
        log.imap_checkpoints,
        now.imap_checkpoints,
    );
    line(
        "folder states",
        was.folder_states,
        log.folder_states,
        now.folder_states,
    );
    for (((table, n), (_, source_n)), (_, target_n)) in
        beside.iter().zip(&was.beside).zip(&now.beside)
    {
        line(&format!("{table} rows"), *source_n, *n, *target_n);
    }
    for t in BESIDE {
        let digests = (
            copy::digest(source.as_ref(), t).map_err(DeskError::from)?,
            copy::digest(target.as_ref(), t).map_err(DeskError::from)?,
        );
        if digests.0 != digests.1 {
            out.push_str(&format!("{} rows — MISMATCH: they differ\n", t.table));
            differ.push(t.table.to_string());
        }
    }
    out.push_str(&format!(
        "tables derived on the target: {} events, {} messages, {} versions\n",
        rebuilt.events, rebuilt.messages, rebuilt.versions
    ));
    out.push_str(&format!(
        "source: {} events verified, head {}\n",
        before.events, before.head
    ));
    match &after.problem {
        None => out.push_str(&format!(
            "target: {} events verified, head {}\n",
            after.events, after.head
        )),
        Some(p) => {
            out.push_str(&format!("target: FAILED to verify: {}\n", esc(p)));
            differ.push("target verification".into());
        }
    }
    if after.head != before.head || after.events != before.events {
        differ.push("head".into());
    }
    if !differ.is_empty() {
        out.push_str(&format!(
            "FAILED: the target differs from the source ({}) — do not use it; drop it and copy \
             again into an empty store\n",
            differ.join(", ")
        ));
        return Ok(Outcome::exit(out, 1));
    }
    out.push_str("ok: the same head on both sides\n");
    Ok(Outcome::exit(out, 0))
}
