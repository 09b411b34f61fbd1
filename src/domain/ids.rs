//! The domain's identifiers as types, each formatted and parsed in one place.
//!
//! A case number, a clock's id and a certificate's or key's name are what staff type in
//! commands, what auditors search for and what the store indexes. As bare strings they were
//! formatted in many places and could be swapped for one another; as types, each is built by
//! one constructor and the compiler keeps a case id from being used as a clock id. In the
//! log they are plain strings (`serde(transparent)`), so logs written before read as they are.

use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A case number, `CPR-<year>-<NNNN>`: what a case tag in a subject and a person quote.
/// (`Default` is the empty id a `case_merged` event names when the case it went into is
/// unknown.)
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CaseId(String);

impl CaseId {
    /// The `number`th case opened in `year`.
    pub fn new(year: i32, number: u32) -> CaseId {
        CaseId(format!("CPR-{year}-{number:04}"))
    }

    /// A case number as a person may write it (`cpr-2026-0042`, with spaces around): `None`
    /// when it is not one.
    pub fn parse(s: &str) -> Option<CaseId> {
        let id = CaseId(s.trim().to_ascii_uppercase());
        id.year_and_number().map(|_| id)
    }

    /// An id as stored (a table row read back): taken as it is.
    pub(crate) fn from_stored(s: &str) -> CaseId {
        CaseId(s.to_string())
    }

    /// Its year and number, for numbering the next case.
    pub(crate) fn year_and_number(&self) -> Option<(i32, u32)> {
        let rest = self.0.strip_prefix("CPR-")?;
        let (y, n) = rest.split_once('-')?;
        if y.len() != 4 || n.len() < 4 || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((y.parse().ok()?, n.parse().ok()?))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A clock's id: `preliminary_report:<case>` for a case's answer, `revocation:<name>` for a
/// certificate's or key's revocation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClockId(String);

impl ClockId {
    pub(crate) fn preliminary(case: &CaseId) -> ClockId {
        ClockId(format!("preliminary_report:{case}"))
    }

    /// The revocation clock of a certificate (`crtsh:…`, `sha256:…`) or key (`spki:…`).
    pub(crate) fn revocation(target: &str) -> ClockId {
        const PREFIX: &str = "revocation:";
        // Allocated to size: a mass report holds 100 000 of them.
        let mut id = String::with_capacity(PREFIX.len() + target.len());
        id.push_str(PREFIX);
        id.push_str(target);
        ClockId(id)
    }

    /// An id as stored (a table row, the key of a clock read back).
    pub(crate) fn from_stored(s: &str) -> ClockId {
        ClockId(s.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What every [`Position::web`] starts with.
const WEB: &str = "web:";
/// What every [`Position::revocation_check`] starts with.
const CHECK: &str = "check:";
/// What every [`Position::key_lookup`] starts with.
const LOOKUP: &str = "lookup:";

/// Where a message was read: a place that, once recorded, is never read into the log again.
/// `imap:<mailbox>/<folder>/<uidvalidity>/<uid>`, `maildir:<dir>/<folder>/<unique>`,
/// `mbox:<file>#<offset>`, `file:<path>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Position(String);

impl Position {
    pub fn imap(mailbox: &str, folder: &str, uidvalidity: u32, uid: u32) -> Position {
        Position(format!(
            "{}{uid}",
            Position::imap_folder(mailbox, folder, uidvalidity)
        ))
    }

    /// What every position in one IMAP folder under one UIDVALIDITY starts with.
    pub fn imap_folder(mailbox: &str, folder: &str, uidvalidity: u32) -> String {
        format!("imap:{mailbox}/{folder}/{uidvalidity}/")
    }

    /// A file in a Maildir: its folder's name and the file's unique part (the name before
    /// the `:2,` flags, which change as a mail client reads it).
    pub fn maildir(root: &std::path::Path, folder: &str, unique: &str) -> Position {
        Position(format!("maildir:{}/{folder}/{unique}", root.display()))
    }

    pub fn mbox(file: &std::path::Path, offset: u64) -> Position {
        Position(format!("mbox:{}#{offset}", file.display()))
    }

    pub fn file(path: &std::path::Path) -> Position {
        Position(format!("file:{}", path.display()))
    }

    /// A staff action taken in the dashboard by the logged-in `user`, recorded as a message
    /// (`action` names it uniquely). Only the web server makes these, in process: no mail
    /// source can produce one, so the user it names is who was logged in.
    pub fn web(user: &str, action: &str) -> Position {
        Position(format!("{WEB}{user}/{action}"))
    }

    /// The dashboard user of a [`Position::web`] position.
    pub fn web_user(&self) -> Option<&str> {
        self.0.strip_prefix(WEB)?.split('/').next()
    }

    /// A revocation check's record that OCSP or CRL showed a certificate revoked, kept as a
    /// message (`id` names it uniquely). Only the checker makes these, in process: no mail
    /// source can produce one, so a message with it is verified, never claimed.
    pub fn revocation_check(id: &str) -> Position {
        Position(format!("{CHECK}{id}"))
    }

    pub fn is_revocation_check(&self) -> bool {
        self.0.starts_with(CHECK)
    }

    /// The other certificates of a compromised key that the checker found, kept as a message
    /// in the case (`id` names the lookup). Never staff: it brings certificates, like a report.
    pub fn key_lookup(id: &str) -> Position {
        Position(format!("{LOOKUP}{id}"))
    }

    pub fn is_key_lookup(&self) -> bool {
        self.0.starts_with(LOOKUP)
    }

    /// A position as recorded (a test's, or one read back).
    pub fn from_stored(s: &str) -> Position {
        Position(s.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The names of a certificate or key as references write them: `crtsh:<id>`,
/// `sha256:<hex>`, `spki:<hex>`.
pub(crate) fn crtsh_name(id: u64) -> String {
    format!("crtsh:{id}")
}

pub(crate) fn sha256_name(hex: &str) -> String {
    format!("sha256:{hex}")
}

pub(crate) fn spki_name(hex: &str) -> String {
    format!("spki:{hex}")
}

macro_rules! string_id {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Borrow<str> for $t {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

string_id!(CaseId);
string_id!(ClockId);
string_id!(Position);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_ids_are_written_and_read_one_way() {
        let id = CaseId::new(2026, 42);
        assert_eq!(id.as_str(), "CPR-2026-0042");
        assert_eq!(CaseId::parse(" cpr-2026-0042 "), Some(id.clone()));
        assert_eq!(id.year_and_number(), Some((2026, 42)));
        assert_eq!(CaseId::new(2026, 12345).as_str(), "CPR-2026-12345");
        for bad in [
            "CPR-26-0001",
            "CPR-2026-01",
            "CPR-2026-00x1",
            "2026-0001",
            "",
        ] {
            assert_eq!(CaseId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn clock_ids_name_their_case_or_target() {
        let case = CaseId::new(2026, 1);
        assert_eq!(
            ClockId::preliminary(&case).as_str(),
            "preliminary_report:CPR-2026-0001"
        );
        assert_eq!(
            ClockId::revocation("crtsh:42").as_str(),
            "revocation:crtsh:42"
        );
        assert_eq!(
            serde_json::to_string(&ClockId::revocation("crtsh:42")).unwrap(),
            "\"revocation:crtsh:42\""
        );
    }
}
