//! Streaming mbox reader (mboxo and mboxrd).
//!
//! A message starts at a line beginning `From ` that follows a blank line (or opens the file);
//! that separator line is not part of the message, nor is the blank line before the next one.
//! Body lines `>From `, `>>From `, … lose one `>` (mboxrd unescaping; for mboxo this restores the
//! common case). The file is read line by line through a `BufReader`, so memory holds one message,
//! never the whole file. Positions are `mbox:<canonical path>#<byte offset of the From line>`:
//! stable as long as the file is only appended to, which is how mbox files grow.

use super::{RawMessage, SourceError, offline_meta};
use crate::domain::model::FolderRole;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

pub(crate) struct MboxReader {
    path: PathBuf,
    reader: BufReader<File>,
    role: FolderRole,
    /// Bytes consumed so far.
    offset: u64,
    /// Offset of the `From ` line that opens the next message, already consumed.
    next_start: Option<u64>,
    line: Vec<u8>,
    done: bool,
}

impl MboxReader {
    /// `path` must be canonical and start with `From ` (checked by the caller).
    pub fn open(path: &Path, role: FolderRole) -> Result<MboxReader, SourceError> {
        let file = File::open(path).map_err(|source| SourceError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(MboxReader {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(256 * 1024, file),
            role,
            offset: 0,
            next_start: None,
            line: Vec::new(),
            done: false,
        })
    }

    /// Read one line into `self.line`; `Ok(false)` at end of file.
    fn read_line(&mut self) -> std::io::Result<bool> {
        self.line.clear();
        let n = self.reader.read_until(b'\n', &mut self.line)?;
        self.offset += n as u64;
        Ok(n > 0)
    }

    fn fail(&mut self, source: std::io::Error) -> Option<Result<RawMessage, SourceError>> {
        self.done = true;
        Some(Err(SourceError::Mbox {
            path: self.path.clone(),
            offset: self.offset,
            source,
        }))
    }
}

fn is_blank(line: &[u8]) -> bool {
    line == b"\n" || line == b"\r\n"
}

impl Iterator for MboxReader {
    type Item = Result<RawMessage, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let start = match self.next_start.take() {
            Some(start) => start,
            None => {
                // File start: the first line is the first separator.
                let start = self.offset;
                match self.read_line() {
                    Ok(true) if self.line.starts_with(b"From ") => start,
                    Ok(_) => {
                        self.done = true;
                        return None;
                    }
                    Err(e) => return self.fail(e),
                }
            }
        };
        let mut raw = Vec::new();
        let mut prev_blank = false;
        loop {
            let line_start = self.offset;
            match self.read_line() {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    break;
                }
                Err(e) => return self.fail(e),
            }
            if prev_blank && self.line.starts_with(b"From ") {
                self.next_start = Some(line_start);
                break;
            }
            prev_blank = is_blank(&self.line);
            let gt = self.line.iter().take_while(|&&b| b == b'>').count();
            if gt > 0 && self.line[gt..].starts_with(b"From ") {
                raw.extend_from_slice(&self.line[1..]);
            } else {
                raw.extend_from_slice(&self.line);
            }
        }
        // The blank line before a separator (or the file end) belongs to the mbox format.
        if raw.ends_with(b"\r\n\r\n") {
            raw.truncate(raw.len() - 2);
        } else if raw.ends_with(b"\n\n") {
            raw.truncate(raw.len() - 1);
        }
        Some(Ok(RawMessage {
            raw,
            meta: offline_meta(
                self.role,
                crate::domain::ids::Position::mbox(&self.path, start),
            ),
        }))
    }
}
