//! Loose `.eml` files: one file, or every `.eml` file in one directory.
//!
//! Positions are `file:<canonical path>`; for a directory the canonical directory joined with the
//! file name, so a symlinked file keeps the name the user sees.

use super::{RawMessage, SourceError, offline_meta};
use crate::domain::model::FolderRole;
use std::path::{Path, PathBuf};

/// File names listed up front (cheap), bytes read one file at a time.
pub(crate) struct FileList {
    files: std::vec::IntoIter<PathBuf>,
    role: FolderRole,
}

impl FileList {
    /// One file, already canonical.
    pub(crate) fn single(path: PathBuf, role: FolderRole) -> FileList {
        FileList {
            files: vec![path].into_iter(),
            role,
        }
    }

    /// Every `*.eml` (any case) regular file directly in `dir` (canonical), sorted by name.
    /// Other files are skipped with one note; a directory with no `.eml` file at all is an
    /// error, since it is most likely the wrong path.
    pub(crate) fn directory(
        dir: &Path,
        role: FolderRole,
    ) -> Result<(FileList, Vec<String>), SourceError> {
        let entries = std::fs::read_dir(dir).map_err(|source| SourceError::Open {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut files = Vec::new();
        let mut skipped = 0usize;
        for entry in entries {
            let entry = entry.map_err(|source| SourceError::Open {
                path: dir.to_path_buf(),
                source,
            })?;
            let path = entry.path();
            let is_eml = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("eml"));
            let is_file = std::fs::metadata(&path).is_ok_and(|m| m.is_file());
            if is_eml && is_file {
                files.push(path);
            } else if is_file {
                skipped += 1;
            }
        }
        if files.is_empty() {
            return Err(SourceError::Unsupported {
                path: dir.to_path_buf(),
                reason: "the directory holds no .eml files and is not a Maildir (no cur/ and \
                         new/ subdirectories). Point at an .eml file, a directory of .eml files, \
                         a Maildir or an mbox file."
                    .into(),
            });
        }
        files.sort();
        let mut notes = Vec::new();
        if skipped > 0 {
            notes.push(format!(
                "skipped {skipped} file(s) in {} without an .eml extension",
                dir.display()
            ));
        }
        Ok((
            FileList {
                files: files.into_iter(),
                role,
            },
            notes,
        ))
    }
}

impl Iterator for FileList {
    type Item = Result<RawMessage, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        let path = self.files.next()?;
        Some(match std::fs::read(&path) {
            Ok(raw) => Ok(RawMessage {
                raw,
                meta: offline_meta(self.role, crate::domain::ids::Position::file(&path)),
            }),
            Err(source) => Err(SourceError::Read { path, source }),
        })
    }
}
