//! Maildir and Maildir++ folders, for one-off reads and for the service that watches for new mail.
//!
//! A message's identity is its *unique name*: the file name up to the first `:`. Mail clients
//! move files from `new/` to `cur/` and append flags (`:2,S`) as they are read; the unique name
//! survives all of that, so the position `maildir:<canonical root>/<folder>/<unique>` stays the
//! same and a message read before and after a client touched it is one message, not two.
//! `tmp/` holds deliveries in progress and is never read; dot files are never messages.

use super::{RawMessage, SourceError, offline_meta};
use crate::domain::model::FolderRole;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The name the root folder has in positions, whatever the caller called it.
const ROOT_NAME: &str = "INBOX";

/// An opened Maildir: its canonical root and the folders that are read, with their roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Maildir {
    /// Canonical path of the Maildir root.
    pub root: PathBuf,
    /// `(name, role)`: `"INBOX"` for the root, else the Maildir++ name without its leading dot
    /// (`"Junk"`, `"INBOX.Spam"`, `"Sent Items"`).
    pub folders: Vec<(String, FolderRole)>,
    /// Folders skipped by automatic role detection, for the user to see.
    pub notes: Vec<String>,
}

/// One message file found by [`Maildir::scan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaildirEntry {
    pub path: PathBuf,
    pub folder: FolderRole,
    /// `maildir:<canonical root>/<folder name>/<unique name>`.
    pub position: crate::domain::ids::Position,
}

/// `dir` has `cur/` and `new/` (a `tmp/` is optional: some tools never create it).
pub(crate) fn is_maildir(dir: &Path) -> bool {
    dir.join("cur").is_dir() && dir.join("new").is_dir()
}

/// The role a Maildir++ subfolder gets by name, or `None` (not watched unless named explicitly).
/// The last dot-separated component decides, so `.Junk` and `.INBOX.Junk` are both Junk.
pub(crate) fn auto_role(folder_name: &str) -> Option<FolderRole> {
    let name = folder_name.trim_start_matches('.');
    let last = name.rsplit('.').next().unwrap_or(name).to_ascii_lowercase();
    match last.as_str() {
        "junk" | "spam" | "junk e-mail" | "junk email" => Some(FolderRole::Junk),
        "sent" | "sent items" | "sent messages" => Some(FolderRole::Sent),
        _ => None,
    }
}

impl Maildir {
    /// Open `root` with the given folders, or (`None`) with the root as Inbox and subfolders
    /// by [`auto_role`]. A named folder that does not exist is an error: a typo in the
    /// configuration must not silently leave a folder unwatched.
    pub fn open(
        root: &Path,
        folders: Option<Vec<(String, FolderRole)>>,
    ) -> Result<Maildir, SourceError> {
        let Some(folders) = folders else {
            return Maildir::open_auto(root, FolderRole::Inbox);
        };
        let (root, empty) = canonical_maildir(root)?;
        let mut named = Vec::with_capacity(folders.len());
        for (name, role) in folders {
            let name = position_name(&name);
            let dir = folder_dir(&root, &name);
            // In an empty directory no folder exists yet, and none is a typo.
            if !empty && !is_maildir(&dir) {
                return Err(SourceError::MissingFolder { name, dir });
            }
            named.push((name, role));
        }
        Ok(Maildir {
            notes: empty_note(&root, empty),
            root,
            folders: named,
        })
    }

    /// Open with the root as `root_role` and Maildir++ subfolders by [`auto_role`]; other
    /// subfolders are skipped with a note.
    pub(crate) fn open_auto(root: &Path, root_role: FolderRole) -> Result<Maildir, SourceError> {
        let (root, empty) = canonical_maildir(root)?;
        let mut folders = vec![(ROOT_NAME.to_string(), root_role)];
        let mut notes = empty_note(&root, empty);
        let entries = std::fs::read_dir(&root).map_err(|source| SourceError::Open {
            path: root.clone(),
            source,
        })?;
        let mut subfolders = Vec::new();
        for entry in entries.flatten() {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if file_name.len() > 1 && file_name.starts_with('.') && is_maildir(&entry.path()) {
                subfolders.push(file_name);
            }
        }
        subfolders.sort();
        for dir_name in subfolders {
            match auto_role(&dir_name) {
                Some(role) => folders.push((position_name(&dir_name), role)),
                None => notes.push(format!(
                    "skipped Maildir folder {dir_name:?} in {}: not a Junk/Spam or Sent folder \
                     (name it in the configuration to watch it)",
                    root.display()
                )),
            }
        }
        Ok(Maildir {
            root,
            folders,
            notes,
        })
    }

    /// Every message file in `new/` and `cur/` of every folder, sorted by folder then unique
    /// name (Maildir unique names start with the delivery time, so this is roughly arrival
    /// order). A message seen in both `new/` and `cur/` during a move is listed once.
    pub(crate) fn scan(&self) -> Result<Vec<MaildirEntry>, SourceError> {
        let mut out = Vec::new();
        for (name, role) in &self.folders {
            let dir = folder_dir(&self.root, name);
            let mut seen = HashSet::new();
            let mut folder_entries = Vec::new();
            for sub in ["cur", "new"] {
                let sub_dir = dir.join(sub);
                let entries = match std::fs::read_dir(&sub_dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(source) => {
                        return Err(SourceError::Open {
                            path: sub_dir,
                            source,
                        });
                    }
                };
                for entry in entries {
                    let entry = entry.map_err(|source| SourceError::Open {
                        path: sub_dir.clone(),
                        source,
                    })?;
                    let file_name = entry.file_name().to_string_lossy().into_owned();
                    if file_name.starts_with('.') {
                        continue;
                    }
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        continue;
                    }
                    let unique = unique_name(&file_name).to_string();
                    if !seen.insert(unique.clone()) {
                        continue;
                    }
                    folder_entries.push((unique, entry.path()));
                }
            }
            folder_entries.sort();
            out.extend(
                folder_entries
                    .into_iter()
                    .map(|(unique, path)| MaildirEntry {
                        path,
                        folder: *role,
                        position: crate::domain::ids::Position::maildir(&self.root, name, &unique),
                    }),
            );
        }
        Ok(out)
    }

    /// Read one scanned message. If a mail client moved it since the scan (`new/` → `cur/`, or a
    /// flag change renamed it), it is found again by its unique name.
    pub(crate) fn read(&self, entry: &MaildirEntry) -> Result<RawMessage, SourceError> {
        let read_err = |source| SourceError::Read {
            path: entry.path.clone(),
            source,
        };
        let raw = match std::fs::read(&entry.path) {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let moved = self.find_moved(entry).ok_or_else(|| read_err(e))?;
                std::fs::read(&moved).map_err(read_err)?
            }
            Err(e) => return Err(read_err(e)),
        };
        Ok(RawMessage {
            raw,
            meta: offline_meta(entry.folder, entry.position.clone()),
        })
    }

    /// Where the message of `entry` lives now, by unique name, in its folder's cur/ or new/.
    fn find_moved(&self, entry: &MaildirEntry) -> Option<PathBuf> {
        let file_name = entry.path.file_name()?.to_string_lossy().into_owned();
        let unique = unique_name(&file_name);
        let folder = entry.path.parent()?.parent()?;
        ["cur", "new"].iter().find_map(|sub| {
            std::fs::read_dir(folder.join(sub))
                .ok()?
                .flatten()
                .find(|e| unique_name(&e.file_name().to_string_lossy()) == unique)
                .map(|e| e.path())
        })
    }
}

/// The iterator behind [`super::open`] for a Maildir: scanned once, read one file at a time.
pub(crate) struct MaildirReader {
    maildir: Maildir,
    entries: std::vec::IntoIter<MaildirEntry>,
}

impl MaildirReader {
    pub fn new(maildir: Maildir) -> Result<MaildirReader, SourceError> {
        let entries = maildir.scan()?.into_iter();
        Ok(MaildirReader { maildir, entries })
    }
}

impl Iterator for MaildirReader {
    type Item = Result<RawMessage, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        let entry = self.entries.next()?;
        Some(self.maildir.read(&entry))
    }
}

/// The canonical root, and whether it is an empty directory: a Maildir whose `cur/` and `new/`
/// are not made yet (a new mailbox, before its first delivery) reads as an empty folder, and
/// the scan finds what is delivered later. A path that does not exist stays an error.
fn canonical_maildir(root: &Path) -> Result<(PathBuf, bool), SourceError> {
    let canonical = std::fs::canonicalize(root).map_err(|source| SourceError::Open {
        path: root.to_path_buf(),
        source,
    })?;
    if !is_maildir(&canonical) && super::is_empty_dir(&canonical)? {
        return Ok((canonical, true));
    }
    if !is_maildir(&canonical) {
        return Err(SourceError::Unsupported {
            path: root.to_path_buf(),
            reason: "not a Maildir: it has no cur/ and new/ subdirectories. Point at the \
                     Maildir root (the directory that holds cur/, new/ and tmp/)."
                .into(),
        });
    }
    Ok((canonical, false))
}

fn empty_note(root: &Path, empty: bool) -> Vec<String> {
    if empty {
        vec![format!(
            "{} is an empty directory: read as an empty Maildir (no cur/ and new/ yet)",
            root.display()
        )]
    } else {
        Vec::new()
    }
}

/// `""`, `"INBOX"` (any case) → `"INBOX"`; `".Junk"` → `"Junk"`.
fn position_name(name: &str) -> String {
    let name = name.trim().trim_start_matches('.');
    if name.is_empty() || name.eq_ignore_ascii_case(ROOT_NAME) {
        ROOT_NAME.to_string()
    } else {
        name.to_string()
    }
}

fn folder_dir(root: &Path, position_name: &str) -> PathBuf {
    if position_name == ROOT_NAME {
        root.to_path_buf()
    } else {
        root.join(format!(".{position_name}"))
    }
}

/// The file name up to the first `:` (Maildir info separator).
fn unique_name(file_name: &str) -> &str {
    file_name.split(':').next().unwrap_or(file_name)
}
