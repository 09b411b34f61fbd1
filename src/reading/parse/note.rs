//! Quoting message content in `problems` notes safely.
//!
//! Notes end up in logs and in front of staff. Reporters send private keys, so a note may quote
//! at most a short excerpt and never anything that looks like PEM armour.

/// The most characters of message content a note may quote.
pub(crate) const MAX_EXCERPT: usize = 80;

/// A short, single-line, quoted excerpt of `s` for a note, or a placeholder when `s` might hold
/// key material.
pub(crate) fn excerpt(s: &str) -> String {
    if s.contains("-----BEGIN") || s.contains("-----END") {
        return "[withheld: contains a PEM block]".into();
    }
    let mut out = String::with_capacity(MAX_EXCERPT + 4);
    out.push('"');
    let mut n = 0;
    let mut last_space = false;
    for c in s.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        if n == MAX_EXCERPT {
            out.push('…');
            break;
        }
        out.push(c);
        n += 1;
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_single_line_and_never_pem() {
        assert_eq!(excerpt("a\r\n\t b"), "\"a b\"");
        let long = "x".repeat(500);
        assert_eq!(excerpt(&long).chars().count(), MAX_EXCERPT + 3);
        assert!(!excerpt("-----BEGIN PRIVATE KEY-----\nMIIE").contains("MIIE"));
    }
}
