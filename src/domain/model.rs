//! The vocabulary shared by every stage of the pipeline.
//!
//! These types are the contract between `parse` (bytes → [`ParsedMail`]), `extract`
//! ([`ParsedMail`] → references and commands), `rules`, the engine and the event log.
//! Everything here is plain data: no I/O, no policy. Everything that is serialised is part of
//! the stored event log, so renaming a field or a variant is a schema change.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A point in time. Always UTC, whole seconds (see [`crate::domain::timefmt`]).
pub type Timestamp = OffsetDateTime;

/// What a watched folder holds, which decides how its messages count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FolderRole {
    /// Problem reports arrive here.
    Inbox,
    /// Counts exactly like the inbox: reports classified as spam are still reports.
    Junk,
    /// The desk's own outgoing mail: staff-authored by construction, never opens a case.
    Sent,
}

impl FolderRole {
    pub fn as_str(self) -> &'static str {
        match self {
            FolderRole::Inbox => "inbox",
            FolderRole::Junk => "junk",
            FolderRole::Sent => "sent",
        }
    }

    pub fn parse(s: &str) -> Option<FolderRole> {
        match s.to_ascii_lowercase().as_str() {
            "inbox" => Some(FolderRole::Inbox),
            "junk" | "spam" => Some(FolderRole::Junk),
            "sent" => Some(FolderRole::Sent),
            _ => None,
        }
    }
}

/// Where a message was read from, as the source knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceMeta {
    pub folder: FolderRole,
    /// A stable name for the place the bytes came from: `maildir:<dir>/<unique>`,
    /// `mbox:<file>#<n>`, `file:<path>`, later `imap:<account>/<folder>/<uidvalidity>/<uid>`.
    pub position: Option<crate::domain::ids::Position>,
    /// The server's own receipt time (IMAP `INTERNALDATE`). When present it beats every header.
    pub server_time: Option<Timestamp>,
}

/// One attachment (or non-text part) with its decoded content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub name: Option<String>,
    /// Lowercase `type/subtype`.
    pub content_type: String,
    pub data: Vec<u8>,
}

/// What `parse` makes of raw bytes: the headers the pipeline needs, every text it can find,
/// and every attachment. Never fails: a message that cannot be parsed has `parsed_ok = false`
/// and whatever could be salvaged.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParsedMail {
    pub parsed_ok: bool,
    /// With angle brackets, as `<local@domain>`. `None` when the header is missing or empty.
    pub message_id: Option<String>,
    /// Lowercase bare address of `From:`.
    pub from: Option<String>,
    pub reply_to: Vec<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    /// Decoded (RFC 2047) and with folding undone.
    pub subject: String,
    /// `Date:` — the sender's claim, untrusted for received mail.
    pub date: Option<Timestamp>,
    /// Date of the topmost `Received:` header: the CA's own MX stamps it on arrival.
    pub received_top: Option<Timestamp>,
    /// Message ids with angle brackets.
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// Lowercased first token of `Auto-Submitted:` (`no`, `auto-generated`, `auto-replied`, …).
    pub auto_submitted: Option<String>,
    /// `X-Autoreply`, `X-Autorespond`, `X-Autoresponder`, `Precedence: auto_reply`.
    pub autoreply_marks: bool,
    /// `Content-Type: multipart/report` at the top level (delivery or read report).
    pub is_report_mime: bool,
    /// `Return-Path: <>`: a null envelope sender.
    pub null_sender: bool,
    /// Raw values of every `Authentication-Results:` header, top first.
    pub authentication_results: Vec<String>,
    /// `X-Cprwatch-Receipt:` present: an automatic receipt this tool sent.
    pub cprwatch_receipt: bool,
    /// The raw value of the first `X-CPR-Canary:` (unverified: anyone can write one).
    pub canary: Option<String>,
    /// Mailing-list or bulk mail: `precedence:bulk`, `precedence:list`, `precedence:junk` or
    /// `list-id`, the first such header found. Never a receipt's recipient (RFC 3834 §2).
    pub bulk: Option<String>,
    /// Every text found in every part: plain text, HTML rendered to text with `href`s kept,
    /// nested `message/rfc822` parts included.
    pub texts: Vec<String>,
    pub attachments: Vec<Attachment>,
    /// Other readings of quoted-printable parts (an unescaped `=` read as written), each kept
    /// only where it differs from the strict decoding in `texts` and `attachments`. Searched
    /// for references only: rules and staff commands read what a mail client shows.
    pub lenient_texts: Vec<String>,
    pub lenient_attachments: Vec<Attachment>,
    /// Human-readable notes on what was wrong with the message (bad encoding, truncated, …).
    pub problems: Vec<String>,
}

/// How the receipt time of a message was established (README "How clocks work"), best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeSource {
    /// IMAP `INTERNALDATE`.
    ServerTime,
    /// The topmost `Received:` header.
    Received,
    /// `Date:`: the sender's word. Trusted only for the desk's own Sent folder.
    Date,
    /// Nothing in the message said: the time cprwatch first saw it.
    FirstSeen,
}

/// A certificate named by a message, in canonical form, with whatever is known about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRef {
    /// `crtsh:<id>` or `sha256:<lowercase hex>`.
    #[serde(rename = "ref")]
    pub reference: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crtsh_id: Option<u64>,
    /// Lowercase hex SHA-256 of the certificate's DER.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Lowercase hex of the serial number's bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sans: Vec<String>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub not_before: Option<Timestamp>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub not_after: Option<Timestamp>,
    /// Lowercase hex SHA-256 of the SubjectPublicKeyInfo DER (crt.sh's `spkisha256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spki_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_ca: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precertificate: Option<bool>,
}

impl CertificateRef {
    /// Every name the certificate itself goes by, as references and staff commands write it:
    /// its reference, then `crtsh:<id>` and `sha256:<hex>` when known (each once).
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names = vec![self.reference.clone()];
        if let Some(id) = self.crtsh_id {
            names.push(crate::domain::ids::crtsh_name(id));
        }
        if let Some(h) = &self.sha256 {
            names.push(crate::domain::ids::sha256_name(h));
        }
        names.dedup();
        names
    }

    /// The name of its key (`spki:<hex>`), when known.
    pub(crate) fn key_name(&self) -> Option<String> {
        self.spki_sha256
            .as_deref()
            .map(crate::domain::ids::spki_name)
    }

    /// A reference that carries nothing but its identifier (a crt.sh link, a fingerprint).
    pub(crate) fn bare(reference: String) -> CertificateRef {
        let (crtsh_id, sha256) = match reference.split_once(':') {
            Some(("crtsh", id)) => (id.parse().ok(), None),
            Some(("sha256", hex)) => (None, Some(hex.to_string())),
            _ => (None, None),
        };
        CertificateRef {
            reference,
            crtsh_id,
            sha256,
            serial: None,
            issuer: None,
            subject: None,
            sans: Vec::new(),
            not_before: None,
            not_after: None,
            spki_sha256: None,
            is_ca: None,
            precertificate: None,
        }
    }

    /// Fill whatever this reference lacks from another sighting of the same certificate.
    pub(crate) fn merge_from(&mut self, other: &CertificateRef) {
        fn fill<T: Clone>(a: &mut Option<T>, b: &Option<T>) {
            if a.is_none() {
                a.clone_from(b);
            }
        }
        fill(&mut self.crtsh_id, &other.crtsh_id);
        fill(&mut self.sha256, &other.sha256);
        fill(&mut self.serial, &other.serial);
        fill(&mut self.issuer, &other.issuer);
        fill(&mut self.subject, &other.subject);
        fill(&mut self.not_before, &other.not_before);
        fill(&mut self.not_after, &other.not_after);
        fill(&mut self.spki_sha256, &other.spki_sha256);
        fill(&mut self.is_ca, &other.is_ca);
        fill(&mut self.precertificate, &other.precertificate);
        if self.sans.is_empty() {
            self.sans.clone_from(&other.sans);
        }
    }
}

/// What a key reference rests on. Ordered weakest first, so `max` keeps the strongest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyEvidence {
    /// A crt.sh `?spkisha256=` link.
    Link,
    /// A bare public key.
    PublicKey,
    /// A certificate signing request offered as proof of possession.
    Csr,
    /// A private key we could not open: still evidence of compromise, but no SPKI.
    EncryptedPrivateKey,
    /// The private key itself.
    PrivateKey,
}

impl KeyEvidence {
    /// Key material in a report is evidence of key compromise (BR 4.9.1.1 item 3) whatever the
    /// text says. A bare public key or a link only names a key.
    pub(crate) fn is_compromise_evidence(self) -> bool {
        matches!(
            self,
            KeyEvidence::Csr | KeyEvidence::EncryptedPrivateKey | KeyEvidence::PrivateKey
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyEvidence::Link => "link",
            KeyEvidence::PublicKey => "public_key",
            KeyEvidence::Csr => "csr",
            KeyEvidence::EncryptedPrivateKey => "encrypted_private_key",
            KeyEvidence::PrivateKey => "private_key",
        }
    }
}

/// A key named by a message. Never holds key material: only the SPKI hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRef {
    /// `spki:<lowercase hex SHA-256 of the SubjectPublicKeyInfo DER>`; `None` for an encrypted
    /// private key, whose public half cannot be known.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub evidence: KeyEvidence,
    /// Key algorithm as far as known (`rsa-2048`, `ec-p256`, …), for staff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
}

impl KeyRef {
    /// Its identity within a case: its reference, or for a key whose public half is unknown
    /// (an encrypted private key) the kind of evidence, so two such keys of one kind are one.
    pub(crate) fn identity(&self) -> String {
        self.reference
            .clone()
            .unwrap_or_else(|| format!("unknown:{}", self.evidence.as_str()))
    }
}

/// A staff command found in a message body (README "Configuration", **Staff commands**).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// `CPR-Revoked: <ref> [<time>]`.
    Revoked {
        target: String,
        #[serde(with = "time::serde::rfc3339::option")]
        at: Option<Timestamp>,
    },
    /// `CPR-Not-Revoking: <ref> <reason>`.
    NotRevoking { target: String, reason: String },
    /// `CPR-Answered: <where> [<time>]`.
    Answered {
        place: String,
        #[serde(with = "time::serde::rfc3339::option")]
        at: Option<Timestamp>,
    },
    /// `CPR-Dismiss: <reason>`.
    Dismiss { reason: String },
    /// `CPR-Delayed: <ref or case id> <incident URL or reason>`: staff acknowledge that a clock
    /// is (or will be) late. The clock stays as it is (pending, then breached); only the
    /// reminders stop. `target` is a certificate or key reference (its revocation clock) or a
    /// case id `CPR-YYYY-NNNN` (that case's preliminary-report clock). Mozilla expects a public
    /// incident for a delayed revocation, so the reason is usually its URL.
    Delayed { target: String, reason: String },
    /// `CPR-Reason: <ref> <BR item> [note]`: the revocation reason the CA determined; the
    /// certificate's or key's window becomes that item's.
    Reason {
        target: String,
        item: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
}

/// A line that looked like a command but could not be understood. Kept so staff learn why their
/// command did nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadCommand {
    /// The line, with any key material it might hold never included: at most the first 200
    /// characters of a `CPR-` line, which never carries a PEM block.
    pub line: String,
    pub problem: String,
}

/// A rule that matched a message (see `rules`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleHit {
    pub id: String,
    /// BR 4.9.1.1 item (TLS BRs v2.2.6 numbering).
    pub br_item: u8,
    pub window_secs: i64,
    /// The phrase that made the rule apply (at most 120 characters, never from an encoded
    /// block), so staff can see why a clock has the window it has. Empty in logs written
    /// before excerpts were recorded.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub matched: String,
}
