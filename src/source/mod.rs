//! The I/O edge for mail: `.eml` files, directories of them, Maildirs and mbox files, and (in
//! [`imap`]) a read-only IMAP client for the live mailbox.
//!
//! Every source yields raw bytes plus [`SourceMeta`]: the folder role (which decides whether a
//! message can open a case) and a stable *position*, so re-reading the same folder adds nothing
//! twice (a restart, a crash mid-batch, a folder read again). Sources are lazy: a 100 000-message
//! Maildir or a multi-GB mbox is read one message at a time. A file that cannot be read is an
//! `Err` item naming it, and iteration goes on: one bad file must not hide the rest of the
//! mailbox.

mod files;
pub mod imap;
pub mod maildir;
mod mbox;

use crate::domain::model::{FolderRole, SourceMeta};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

pub use maildir::{Maildir, MaildirEntry};

/// One message as read from a source, not yet parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawMessage {
    pub raw: Vec<u8>,
    pub meta: SourceMeta,
}

/// What went wrong reading a source. Every message names the path and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "cannot open {}: {source}. Check that the path exists and that cprwatch may read it.",
        path.display()
    )]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} cannot be read as mail: {reason}", path.display())]
    Unsupported { path: PathBuf, reason: String },
    #[error(
        "cannot read message file {}: {source}. It was skipped; fix its permissions or move it \
         away, then read the folder again.",
        path.display()
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot read mbox {} at byte {offset}: {source}. Messages after this point were not \
         read; check the file (disk, permissions, truncation) and read it again.",
        path.display()
    )]
    Mbox {
        path: PathBuf,
        offset: u64,
        source: std::io::Error,
    },
    #[error(
        "Maildir folder {name:?} not found: expected a directory {} with cur/ and new/. Check \
         the folder name in the configuration (Maildir++ subfolders are directories starting \
         with a dot, e.g. `.Junk`).",
        dir.display()
    )]
    MissingFolder { name: String, dir: PathBuf },
}

/// A lazy stream of raw messages from one opened path.
pub struct Source {
    inner: Inner,
    notes: Vec<String>,
}

enum Inner {
    Files(files::FileList),
    Maildir(maildir::MaildirReader),
    Mbox(Box<mbox::MboxReader>),
    Empty,
}

impl Source {
    /// Things worth telling the user that are not errors: skipped folders, skipped files, an
    /// empty file.
    pub(crate) fn notes(&self) -> &[String] {
        &self.notes
    }
}

impl Iterator for Source {
    type Item = Result<RawMessage, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Inner::Files(it) => it.next(),
            Inner::Maildir(it) => it.next(),
            Inner::Mbox(it) => it.next(),
            Inner::Empty => None,
        }
    }
}

/// Open any supported path: a single `.eml` file, a directory of `.eml` files, a Maildir (has
/// `cur/` and `new/`), or an mbox file (starts with `From `).
///
/// `role` applies to a single file, a directory, an mbox, and a Maildir's root; Maildir++
/// subfolders get their role by name (see [`maildir::auto_role`]), and others are skipped with a
/// note.
pub fn open(path: &Path, role: FolderRole) -> Result<Source, SourceError> {
    let meta = std::fs::metadata(path).map_err(|source| SourceError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let canonical = std::fs::canonicalize(path).map_err(|source| SourceError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_dir() {
        if is_empty_dir(&canonical)? {
            return Ok(Source {
                inner: Inner::Empty,
                notes: vec![format!(
                    "{} is an empty directory: no messages read",
                    canonical.display()
                )],
            });
        }
        if maildir::is_maildir(&canonical) {
            let md = Maildir::open_auto(&canonical, role)?;
            let notes = md.notes.clone();
            let reader = maildir::MaildirReader::new(md)?;
            return Ok(Source {
                inner: Inner::Maildir(reader),
                notes,
            });
        }
        let (list, notes) = files::FileList::directory(&canonical, role)?;
        return Ok(Source {
            inner: Inner::Files(list),
            notes,
        });
    }
    if !meta.is_file() {
        return Err(SourceError::Unsupported {
            path: path.to_path_buf(),
            reason: "not a regular file or directory. Give an .eml file, a directory of .eml \
                     files, a Maildir or an mbox file."
                .into(),
        });
    }
    let mut head = [0u8; 5];
    let n = read_head(&canonical, &mut head)?;
    if n == 0 {
        return Ok(Source {
            inner: Inner::Empty,
            notes: vec![format!(
                "{} is empty: no messages read",
                canonical.display()
            )],
        });
    }
    if &head[..n] == b"From " {
        let reader = mbox::MboxReader::open(&canonical, role)?;
        return Ok(Source {
            inner: Inner::Mbox(Box::new(reader)),
            notes: Vec::new(),
        });
    }
    Ok(Source {
        inner: Inner::Files(files::FileList::single(canonical, role)),
        notes: Vec::new(),
    })
}

/// A directory with nothing in it: an empty folder (a new mailbox, an export of nothing), read
/// as no messages with a note, where a directory holding other things is most likely the
/// wrong path.
pub(crate) fn is_empty_dir(dir: &Path) -> Result<bool, SourceError> {
    let mut entries = std::fs::read_dir(dir).map_err(|source| SourceError::Open {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(entries.next().is_none())
}

fn read_head(path: &Path, buf: &mut [u8]) -> Result<usize, SourceError> {
    let open_err = |source| SourceError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(open_err)?;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(open_err(e)),
        }
    }
    Ok(n)
}

/// Metadata for an offline message: offline sources have no server receipt time.
fn offline_meta(folder: FolderRole, position: crate::domain::ids::Position) -> SourceMeta {
    SourceMeta {
        folder,
        position: Some(position),
        server_time: None,
    }
}

#[cfg(test)]
mod tests;
