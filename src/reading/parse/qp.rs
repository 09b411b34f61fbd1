//! Quoted-printable as senders write it, not only as RFC 2045 says.
//!
//! Hand-made HTML mail and careless clients leave `=` unescaped in quoted-printable parts, most
//! often in a URL's query: `https://crt.sh/?id=12345`. The strict decoding (mail-parser's) reads
//! `=12` as the byte 0x12, skips a space after `=`, and gives up on a whole part at `==`, so the
//! link is lost. What the sender meant cannot be known from the bytes, so the extractor searches
//! each reading that differs from the strict one:
//!
//! - [`Escapes::Decode`], the lenient reading: `=XX` with two hex digits decodes, `=` before a
//!   line break (trailing blanks allowed) is a soft break, and any other `=` stays as written.
//!   It differs from the strict reading only where the part breaks the rules.
//! - [`suspicious_lines`], the literal reading of a sender who did not encode at all (only soft
//!   breaks undone, every `=XX` kept as written), of those lines only that hold an escape no
//!   encoder would write: `=12` (a control character), `=41` (a letter), a lone `=C3` (no whole
//!   UTF-8 character), `=3D` right before hex (`?sha256=3D5F…`), `=20` inside a line. This is
//!   the reading that keeps `?id=12345`, `?sha256=AB…` and `Fingerprint=AB:CD:…`, where what
//!   follows the `=` looks like hex; a part written by the book has no such line, so it costs
//!   nothing to search.
//!
//! Both readings drop blanks before a hard line break, as the strict one does.

/// What to do with `=XX` (two hex digits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Escapes {
    /// Decode it to its byte.
    Decode,
    /// Keep the three characters as written.
    Keep,
}

/// Decode a quoted-printable body, never failing: see the module doc for the two readings.
pub(crate) fn decode(raw: &[u8], escapes: Escapes) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    // Literal blanks at the end of `out`, dropped before a hard line break (RFC 2045 §6.7 (3)).
    let mut blanks = 0;
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        match b {
            b'=' => {
                if let Some(next) = soft_break_end(raw, i + 1) {
                    i = next;
                    continue;
                }
                let pair = (raw.get(i + 1).copied(), raw.get(i + 2).copied());
                if escapes == Escapes::Decode
                    && let (Some(hi), Some(lo)) = pair
                    && let (Some(hi), Some(lo)) = (hex(hi), hex(lo))
                {
                    out.push((hi << 4) | lo);
                    blanks = 0;
                    i += 3;
                    continue;
                }
                out.push(b'=');
                blanks = 0;
                i += 1;
            }
            b'\n' => {
                out.truncate(out.len() - blanks);
                blanks = 0;
                out.push(b'\n');
                i += 1;
            }
            b'\r' if raw.get(i + 1) == Some(&b'\n') => {
                out.truncate(out.len() - blanks);
                blanks = 0;
                out.extend_from_slice(b"\r\n");
                i += 2;
            }
            b' ' | b'\t' => {
                out.push(b);
                blanks += 1;
                i += 1;
            }
            _ => {
                out.push(b);
                blanks = 0;
                i += 1;
            }
        }
    }
    out
}

/// The literal reading ([`Escapes::Keep`]) of the lines that hold an escape no quoted-printable
/// encoder writes (see the module doc), in order; empty when there is none. `utf8`: the part's
/// charset is UTF-8 (or ASCII), so that escapes of non-ASCII bytes must spell whole characters.
pub(crate) fn suspicious_lines(raw: &[u8], utf8: bool) -> Vec<u8> {
    if !any_suspicious_escape(raw, utf8) {
        return Vec::new();
    }
    let literal = decode(raw, Escapes::Keep);
    let mut out = Vec::new();
    for line in literal.split_inclusive(|&b| b == b'\n') {
        if has_suspicious_escape(line, utf8) {
            out.extend_from_slice(line);
        }
    }
    out
}

/// Whether the lenient reading can differ from the strict one: some `=` is neither an escape
/// (`=XX`) nor a soft line break. A part written by the book needs no second reading.
pub(crate) fn breaks_rules(raw: &[u8]) -> bool {
    memchr::memchr_iter(b'=', raw).any(|at| {
        let escape = matches!(
            (raw.get(at + 1), raw.get(at + 2)),
            (Some(&hi), Some(&lo)) if hex(hi).is_some() && hex(lo).is_some()
        );
        !escape && soft_break_end(raw, at + 1).is_none()
    })
}

/// Whether any line holds an escape no encoder writes (what [`has_suspicious_escape`] looks for
/// line by line), in one pass over the raw part: the common answer, no, costs no decoding.
fn any_suspicious_escape(raw: &[u8], utf8: bool) -> bool {
    // UTF-8 continuation bytes the escapes so far still owe, and the range the next one must
    // fall in (narrower right after E0, ED, F0 and F4, which exclude overlong forms,
    // surrogates and code points past U+10FFFF, as `str::from_utf8` does).
    let mut owed = 0u8;
    let mut next_range = 0x80..=0xBFu8;
    let mut from = 0;
    while let Some(off) = memchr::memchr(b'=', &raw[from..]) {
        let at = from + off;
        if owed > 0 && at > from {
            return true; // a character cut short by literal text
        }
        if let Some(next) = soft_break_end(raw, at + 1) {
            from = next;
            continue;
        }
        // In the literal reading, soft breaks are gone: `=1=\r\n2` reads `=12`.
        let hi_at = skip_soft_breaks(raw, at + 1);
        let lo_at = skip_soft_breaks(raw, hi_at + 1);
        let byte = match (raw.get(hi_at), raw.get(lo_at)) {
            (Some(&hi), Some(&lo)) => hex(hi).zip(hex(lo)).map(|(hi, lo)| (hi << 4) | lo),
            _ => None,
        };
        let Some(byte) = byte else {
            if owed > 0 {
                return true;
            }
            from = at + 1;
            continue;
        };
        from = lo_at + 1;
        let next = skip_soft_breaks(raw, from);
        let suspicious = match byte {
            0x80.. if !utf8 => true,
            b if owed > 0 && next_range.contains(&b) => {
                owed -= 1;
                next_range = 0x80..=0xBF;
                false
            }
            0xC2..=0xDF if owed == 0 => {
                owed = 1;
                false
            }
            0xE0..=0xEF if owed == 0 => {
                owed = 2;
                next_range = match byte {
                    0xE0 => 0xA0..=0xBF,
                    0xED => 0x80..=0x9F,
                    _ => 0x80..=0xBF,
                };
                false
            }
            0xF0..=0xF4 if owed == 0 => {
                owed = 3;
                next_range = match byte {
                    0xF0 => 0x90..=0xBF,
                    0xF4 => 0x80..=0x8F,
                    _ => 0x80..=0xBF,
                };
                false
            }
            _ if owed > 0 => true,
            0x80.. => true,
            b'=' => raw
                .get(next)
                .is_some_and(|c| c.is_ascii_hexdigit() || *c == b':'),
            b' ' | b'\t' => !at_line_end(raw, next),
            _ => true,
        };
        if suspicious {
            return true;
        }
    }
    owed > 0
}

/// Whether only blanks and soft breaks lie between `from` and a hard line break (or nothing
/// between `from` and the end): the literal reading drops blanks there.
fn at_line_end(raw: &[u8], mut from: usize) -> bool {
    let mut blanks = false;
    loop {
        from = skip_soft_breaks(raw, from);
        match raw.get(from) {
            Some(b' ' | b'\t') => {
                blanks = true;
                from += 1;
            }
            // Blanks at the very end are not a line's trailing blanks: they stay.
            None => return !blanks,
            Some(b'\n') => return true,
            // Blanks are dropped before CRLF only, not before a bare CR.
            Some(b'\r') => return !blanks || raw.get(from + 1) == Some(&b'\n'),
            Some(_) => return false,
        }
    }
}

/// Where the text resumes after any soft line breaks at `from`.
fn skip_soft_breaks(raw: &[u8], mut from: usize) -> usize {
    while raw.get(from) == Some(&b'=') {
        match soft_break_end(raw, from + 1) {
            Some(next) => from = next,
            None => break,
        }
    }
    from
}

/// Whether `line` (literal reading, soft breaks undone) holds an escape no encoder writes.
fn has_suspicious_escape(line: &[u8], utf8: bool) -> bool {
    let escape_at = |i: usize| -> Option<u8> {
        match (line.get(i), line.get(i + 1), line.get(i + 2)) {
            (Some(b'='), Some(&hi), Some(&lo)) => Some((hex(hi)? << 4) | hex(lo)?),
            _ => None,
        }
    };
    let mut i = 0;
    while i < line.len() {
        let Some(first) = escape_at(i) else {
            i += 1;
            continue;
        };
        // A run of escapes: what an encoder writes for one character, or several.
        let mut run = vec![first];
        let mut end = i + 3;
        while let Some(b) = escape_at(end) {
            run.push(b);
            end += 3;
        }
        let next = line.get(end).copied();
        let at_line_end = matches!(next, None | Some(b'\r' | b'\n'));
        let last = run.len() - 1;
        let suspicious = run.iter().enumerate().any(|(k, &b)| match b {
            b'=' => k == last && next.is_some_and(|c| c.is_ascii_hexdigit() || c == b':'),
            b' ' | b'\t' => !(k == last && at_line_end),
            0x80.. => !utf8,
            _ => true,
        });
        if suspicious || (utf8 && std::str::from_utf8(&run).is_err()) {
            return true;
        }
        i = end;
    }
    false
}

/// If `raw[from..]` starts with blanks and a line break (what follows the `=` of a soft break),
/// where the next line starts.
fn soft_break_end(raw: &[u8], from: usize) -> Option<usize> {
    let mut j = from;
    while matches!(raw.get(j), Some(b' ' | b'\t')) {
        j += 1;
    }
    match (raw.get(j), raw.get(j + 1)) {
        (Some(b'\n'), _) => Some(j + 1),
        (Some(b'\r'), Some(b'\n')) => Some(j + 2),
        _ => None,
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(raw: &str) -> (String, String) {
        let read = |e| String::from_utf8(decode(raw.as_bytes(), e)).expect("utf-8");
        (read(Escapes::Decode), read(Escapes::Keep))
    }

    #[test]
    fn written_by_the_book() {
        let raw = "caf=C3=A9 =3D x  \r\nlong=\r\n line=20\r\nend";
        assert_eq!(both(raw).0, "café = x\r\nlong line \r\nend");
        assert_eq!(both(raw).1, "caf=C3=A9 =3D x\r\nlong line=20\r\nend");
    }

    #[test]
    fn an_unescaped_equals_sign_eats_nothing() {
        for (raw, lenient, literal) in [
            // Before characters that look like hex: only the literal reading keeps them.
            (
                "https://crt.sh/?id=12345",
                "https://crt.sh/?id\u{12}345",
                "https://crt.sh/?id=12345",
            ),
            (
                "https://crt.sh/?id=3D12345",
                "https://crt.sh/?id=12345",
                "https://crt.sh/?id=3D12345",
            ),
            // Before anything else: kept by both.
            ("?q=x&id= 42", "?q=x&id= 42", "?q=x&id= 42"),
            ("a=\tb", "a=\tb", "a=\tb"),
            ("=zz==", "=zz==", "=zz=="),
            // Right before a soft line break.
            ("?id==\r\n12345", "?id=12345", "?id=12345"),
            ("?id==  \n7", "?id=7", "?id=7"),
            // At the very end.
            ("tail =", "tail =", "tail ="),
            ("tail =4", "tail =4", "tail =4"),
        ] {
            assert_eq!(both(raw), (lenient.into(), literal.into()), "{raw:?}");
        }
    }

    fn suspicious(raw: &str, utf8: bool) -> String {
        String::from_utf8(suspicious_lines(raw.as_bytes(), utf8)).expect("utf-8")
    }

    #[test]
    fn lines_by_the_book_are_not_suspicious() {
        let raw = "Schl=C3=BCssel =3D x=20\r\n<a href=3D\"https://crt.sh/\">=3D=3D\r\nsoft=\r\n \
                   break, tab=09\r\nend=E2=82=AC";
        assert_eq!(suspicious(raw, true), "");
    }

    #[test]
    fn lines_with_escapes_no_encoder_writes_are_kept_literally() {
        for (raw, utf8) in [
            ("?id=12345", true),
            ("?id=2012345 (a space inside a line)", true),
            ("?sha256=3D5F", true),
            ("Fingerprint=3D:AB", true),
            ("?sha256=C3A9 (no whole character)", true),
            ("?q=A1B2", true),
            ("x=41", true),
            ("caf=E9 (Latin-1: any byte may be a careless one)", false),
        ] {
            let fine = if utf8 { "fine=C3=A9" } else { "fine=3D" };
            let text = format!("fine\r\n{raw}\r\n{fine}\r\n");
            assert_eq!(suspicious(&text, utf8), format!("{raw}\r\n"), "{raw}");
        }
        // Joined across a soft break, as the literal reading joins them.
        assert_eq!(suspicious("?id=1=\r\n2345\r\n", true), "?id=12345\r\n");
    }

    #[test]
    fn only_parts_breaking_the_rules_need_the_lenient_reading() {
        for raw in ["caf=C3=A9 =3D=\r\nx=20\r\n", "soft=  \nbreak", ""] {
            assert!(!breaks_rules(raw.as_bytes()), "{raw:?}");
        }
        for raw in ["?id=\r\n", "a==\r\n", "a= b", "tail =", "=4", "=G1"] {
            // (`?id=\r\n` is a soft break: by the rules.)
            let expected = raw != "?id=\r\n";
            assert_eq!(breaks_rules(raw.as_bytes()), expected, "{raw:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 50000, failure_persistence: None, ..Default::default()
        })]

        /// The one-pass check says yes exactly when some line of the literal reading holds a
        /// suspicious escape, so skipping the line-by-line look on its no loses nothing.
        #[test]
        fn the_quick_check_agrees_with_the_line_by_line_one(
            raw in proptest::collection::vec(proptest::sample::select(
                b"==3DC2A98F0Ex :\t\r\n\n".to_vec()), 0..24),
            utf8 in proptest::bool::ANY,
        ) {
            let slow = decode(&raw, Escapes::Keep)
                .split_inclusive(|&b| b == b'\n')
                .any(|line| has_suspicious_escape(line, utf8));
            proptest::prop_assert_eq!(any_suspicious_escape(&raw, utf8), slow, "{:?}", String::from_utf8_lossy(&raw));
        }
    }

    #[test]
    fn an_overlong_or_surrogate_sequence_is_suspicious_to_the_quick_check_too() {
        // Found by the property below: E0 must be followed by A0..BF, so E0 93 is no character.
        for raw in [
            "=E0==\n93=A3",
            "=E0=93=A3",
            "=ED=A0=80",
            "=F0=80=80=80",
            "=F4=90=80=80",
        ] {
            assert!(any_suspicious_escape(raw.as_bytes(), true), "{raw:?}");
        }
        for raw in ["=E0=A4=A3", "=ED=9F=BF", "=F0=90=80=80", "=F4=8F=BF=BF"] {
            assert!(!any_suspicious_escape(raw.as_bytes(), true), "{raw:?}");
        }
    }

    #[test]
    fn lowercase_hex_and_bare_cr() {
        assert_eq!(both("=c3=a9\rx").0, "é\rx");
    }
}
