//! How much of one message the pipeline reads: the bounds that keep a hostile or huge message
//! (50 MB of text, 10 000 MIME parts, forwards nested 200 deep, a 10 MB header line, a 30 MB
//! attachment) from stalling the service or exhausting its memory.
//!
//! Plain data, handed to the pure core (`parse`, `extract`) as an argument; set by the
//! `[limits]` section of the configuration. A message over a limit is still recorded whole
//! (its bytes are stored and hashed) and still opens a case: only the *search* for references
//! and report wording stops at the limit, and a note on the message's `problems`, starting with
//! [`TRUNCATED`], says what was left unread. `cprwatch case` shows those notes.

/// Every note about content left unsearched starts with this, so views can tell staff the
/// message was truncated for search without parsing the rest of the note.
pub const TRUNCATED: &str = "truncated for search:";

/// The bounds on one message. Defaults are generous for real reports (a real report is a few
/// kilobytes; the largest mass reports list some 100 000 certificates in a CSV of a few MB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of text (the subject and every text part, decoded) searched for references and
    /// classified by the rules, all parts together.
    pub text_bytes: usize,
    /// MIME parts walked, nested messages' parts included.
    pub parts: usize,
    /// Levels of messages nested in messages (forwards of forwards) walked part by part; deeper
    /// ones are searched as raw text, within `text_bytes`.
    pub depth: usize,
    /// Bytes kept of one header field: the subject, an address list, `References:`.
    pub header_bytes: usize,
    /// Bytes of attachments (decoded, all together) searched for certificates, keys and
    /// listings of crt.sh ids.
    pub attachment_bytes: usize,
    /// Certificate and key references kept from one message; each one gets a revocation clock.
    pub references: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            text_bytes: 8 << 20,
            parts: 1_000,
            depth: 8,
            header_bytes: 64 << 10,
            attachment_bytes: 16 << 20,
            references: 200_000,
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_on_a_character() {
        assert_eq!(prefix("abc", 10), "abc");
        assert_eq!(prefix("abc", 2), "ab");
        assert_eq!(prefix("aé", 2), "a");
        assert_eq!(prefix("", 0), "");
    }
}
