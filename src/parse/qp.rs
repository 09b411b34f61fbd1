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
//! - [`Escapes::Keep`], the literal reading of a sender who did not encode at all: only soft
//!   breaks are undone. This is the one that keeps `?id=12345`, `?sha256=AB…` and
//!   `Fingerprint=AB:CD:…`, where what follows the `=` looks like hex.
//!
//! Both readings drop blanks before a hard line break, as the strict one does, so a part with
//! no `=` but soft breaks reads the same every way and adds nothing to search. A part with
//! escapes adds its literal reading (one more pass of the extractor over that part's text).

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

    #[test]
    fn lowercase_hex_and_bare_cr() {
        assert_eq!(both("=c3=a9\rx").0, "é\rx");
    }
}
