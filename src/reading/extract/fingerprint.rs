//! Bare SHA-256 fingerprints: 64 hex digits, or 32 colon-separated pairs (`AB:CD:…`, as
//! `openssl x509 -fingerprint -sha256` prints them).

use regex::Regex;
use std::ops::Range;
use std::sync::LazyLock;

/// Candidates on word boundaries; a longer colon run is rejected in [`scan`] (the regex crate
/// has no look-around).
static FINGERPRINT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?-u:\b)(?:[0-9a-f]{64}|(?:[0-9a-f]{2}:){31}[0-9a-f]{2})(?-u:\b)")
        .expect("static regex")
});

/// Normalise a fingerprint to lowercase hex without colons, if `s` is exactly one.
pub(crate) fn hex64(s: &str) -> Option<String> {
    let s = s.trim();
    let plain = s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let paired = s.len() == 95
        && s.split(':').count() == 32
        && s.split(':')
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    (plain || paired).then(|| {
        s.bytes()
            .filter(|b| *b != b':')
            .map(|b| b.to_ascii_lowercase() as char)
            .collect()
    })
}

/// Every bare fingerprint in `text` (which must already have URLs and PEM blocks masked).
pub(crate) fn scan(text: &str) -> Vec<(Range<usize>, String)> {
    let mut out = Vec::new();
    if !has_long_hex_run(text) {
        return out;
    }
    for m in FINGERPRINT.find_iter(text) {
        let paired = m.as_str().contains(':');
        if paired
            && (continues_colon_run(&text[m.end()..]) || follows_colon_run(&text[..m.start()]))
        {
            continue;
        }
        if let Some(hex) = hex64(m.as_str()) {
            out.push((m.range(), hex));
        }
    }
    out
}

/// Whether `text` holds 64 or more hex digits and colons in a row, which any match of
/// [`FINGERPRINT`] is. Prose rarely does, and this one pass over the bytes is far cheaper than
/// the regex's, which has no literal to skip ahead to.
///
/// Branch-free within each 64-byte chunk: English is full of the letters a to f, so a branch on
/// "hex or not" is mispredicted about every other byte, which tripled the cost of this pass.
fn has_long_hex_run(text: &str) -> bool {
    let mut run = 0u32;
    for chunk in text.as_bytes().chunks(64) {
        let mut longest = 0u32;
        for &b in chunk {
            let hexish = u32::from(b.is_ascii_hexdigit() | (b == b':'));
            run = (run + 1) * hexish;
            longest = longest.max(run);
        }
        if longest >= 64 {
            return true;
        }
    }
    false
}

/// `:AB` right after a match: the match is the head of a longer colon-separated hex run (a
/// SHA-384 or SHA-512 fingerprint, say), not a SHA-256 fingerprint.
fn continues_colon_run(rest: &str) -> bool {
    let b = rest.as_bytes();
    b.len() >= 2 && b[0] == b':' && b[1].is_ascii_hexdigit()
}

/// `AB:` right before a match: the match is the tail of a longer colon-separated hex run.
/// (`sha256:AB:…` never reaches here: canonical forms are masked before bare scanning.)
fn follows_colon_run(before: &str) -> bool {
    let b = before.as_bytes();
    let n = b.len();
    n >= 3 && b[n - 1] == b':' && b[n - 2].is_ascii_hexdigit() && b[n - 3].is_ascii_hexdigit()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "55a7d05c16ef8fb68ef1c4d9b877b19d326f0ef41d50572194891ba8c9be5f5c";

    fn colons(hex: &str) -> String {
        hex.as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).to_uppercase())
            .collect::<Vec<_>>()
            .join(":")
    }

    fn found(text: &str) -> Vec<String> {
        scan(text).into_iter().map(|(_, h)| h).collect()
    }

    #[test]
    fn plain_and_uppercase() {
        assert_eq!(found(&format!("fp {HEX}.")), vec![HEX]);
        assert_eq!(found(&format!("fp {}", HEX.to_uppercase())), vec![HEX]);
    }

    #[test]
    fn colon_pairs() {
        let text = format!("SHA256 Fingerprint={}\n", colons(HEX));
        assert_eq!(found(&text), vec![HEX]);
    }

    #[test]
    fn wrong_lengths_are_not_fingerprints() {
        assert!(found(&HEX[..63]).is_empty());
        assert!(found(&format!("{HEX}a")).is_empty());
        assert!(found(&format!("a{HEX}")).is_empty());
        assert!(found(&format!("{HEX}{HEX}")).is_empty());
        assert!(found(&format!("{}:AB", colons(HEX))).is_empty());
        assert!(found(&colons(&HEX[..62])).is_empty());
        // A SHA-512 fingerprint in colon form holds 64 pairs: neither half is a SHA-256 one.
        assert!(found(&colons(&format!("{HEX}{HEX}"))).is_empty());
    }

    #[test]
    fn the_quick_check_passes_whatever_the_regex_could_match() {
        for text in [
            HEX.to_string(),
            colons(HEX),
            format!("x {HEX} y"),
            format!("{}:AB", colons(HEX)),
        ] {
            assert!(has_long_hex_run(&text), "{text}");
        }
        // Across the 64-byte chunks the check works in, wherever the run starts.
        for lead in 0..130 {
            let text = format!("{}{HEX} tail", "x".repeat(lead));
            assert!(has_long_hex_run(&text), "lead {lead}");
            assert!(
                !has_long_hex_run(&text.replacen(&HEX[..1], "x", 1)),
                "lead {lead}"
            );
        }
        assert!(!has_long_hex_run(&HEX[..63]));
        assert!(!has_long_hex_run(&format!("{} {}", &HEX[..40], &HEX[..40])));
        assert!(!has_long_hex_run(
            "The key was published; crt.sh/?id=123456789 names it."
        ));
    }

    #[test]
    fn hex64_accepts_only_exact_forms() {
        assert_eq!(hex64(&colons(HEX)).as_deref(), Some(HEX));
        assert_eq!(hex64(HEX).as_deref(), Some(HEX));
        assert_eq!(hex64(&HEX[1..]), None);
        assert_eq!(hex64(&format!("{}:", &colons(HEX)[..94])), None);
    }
}
