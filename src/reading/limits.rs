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
    /// Bytes of text (the subject first, then the text parts) the rules read to classify the
    /// report's wording. Smaller than `text_bytes`: wording is what a reporter writes, at the
    /// top, and matching many rules costs more per byte than finding references.
    pub classify_bytes: usize,
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
            classify_bytes: 512 << 10,
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

/// The first `max` bytes of `subject` and `texts` together (the subject first), and how many
/// bytes were left out.
pub(crate) fn texts_prefix(
    subject: &str,
    texts: &[String],
    max: usize,
) -> (String, Vec<String>, usize) {
    let subject = prefix(subject, max).to_string();
    let mut left = max - subject.len();
    let mut cut = 0;
    let mut kept = Vec::new();
    for t in texts {
        let p = prefix(t, left);
        cut += t.len() - p.len();
        left -= p.len();
        if !p.is_empty() {
            kept.push(p.to_string());
        }
    }
    (subject, kept, cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_prefix_takes_the_subject_first() {
        let texts = vec!["abcd".to_string(), "ef".to_string()];
        let (s, t, cut) = texts_prefix("xy", &texts, 5);
        assert_eq!((s.as_str(), t, cut), ("xy", vec!["abc".to_string()], 3));
        let (_, t, cut) = texts_prefix("", &texts, 100);
        assert_eq!((t, cut), (texts.clone(), 0));
    }

    #[test]
    fn prefix_ends_on_a_character() {
        assert_eq!(prefix("abc", 10), "abc");
        assert_eq!(prefix("abc", 2), "ab");
        assert_eq!(prefix("aé", 2), "a");
        assert_eq!(prefix("", 0), "");
    }
}
