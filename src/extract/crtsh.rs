//! crt.sh links (`https://crt.sh/?id=…`) and mentions (`crt.sh ID 1777593900`).
//!
//! crt.sh is how the WebPKI community names certificates, so most reports carry such a link.
//! Only parameters that name exactly one certificate or key count: `?q=example.com` is a
//! search, not a reference.

use super::fingerprint;
use super::target::Target;
use regex::Regex;
use std::ops::Range;
use std::sync::LazyLock;

/// A crt.sh URL; group 1 is the query string. The scheme and `www.` are optional; the query
/// ends at whitespace or at characters that close a URL in prose or markup.
static URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)(?-u:\b)(?:https?://)?(?:www\.)?crt\.sh/?\?([^\s<>"'()\[\]{}]*)"#)
        .expect("static regex")
});

/// `crt.sh ID 1777593900`, `crt.sh id: 123456`, `crt.sh ID #42`.
static MENTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?-u:\b)crt\.sh(?-u:\s)+id(?-u:\s)*[:#=]?(?-u:\s)*([0-9]{1,20})(?-u:\b)")
        .expect("static regex")
});

/// A crt.sh id: digits only (as u64).
pub(crate) fn parse_id(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The reference a crt.sh query string makes, if any: the first parameter that names one
/// certificate (`id`, `d`, `sha256`, `q` with a fingerprint) or one key (`spkisha256`).
pub(crate) fn parse_query(query: &str) -> Option<Target> {
    let query = query
        .split('#')
        .next()
        .unwrap_or_default()
        .replace("&amp;", "&");
    query.split(['&', ';']).find_map(|param| {
        let (key, value) = param.split_once('=')?;
        let value = percent_colons(value.trim_end_matches(['.', ',', ':', '!', '?']));
        match key.to_ascii_lowercase().as_str() {
            "id" | "d" => parse_id(&value).map(Target::Crtsh),
            "sha256" | "q" => fingerprint::hex64(&value).map(Target::Sha256),
            "spkisha256" => fingerprint::hex64(&value).map(Target::Spki),
            _ => None,
        }
    })
}

/// `%3A` is how a colon-separated fingerprint arrives in a query string.
fn percent_colons(value: &str) -> String {
    value.replace("%3A", ":").replace("%3a", ":")
}

/// `s` is one crt.sh URL (nothing else) naming a certificate or key.
pub(crate) fn parse_url(s: &str) -> Option<Target> {
    let caps = URL.captures(s)?;
    let whole = caps.get(0)?;
    if whole.start() != 0 || whole.end() != s.len() {
        return None;
    }
    parse_query(caps.get(1)?.as_str())
}

/// Every crt.sh URL and mention in `text`: the span to mask and the reference, if it names one.
///
/// URLs that name nothing (searches) are still returned, with `None`, so their hex is masked
/// too.
pub(crate) fn scan(text: &str) -> Vec<(Range<usize>, Option<Target>)> {
    let mut out = Vec::new();
    let at: Vec<usize> = occurrences(text).collect();
    if at.is_empty() {
        return out;
    }
    for caps in captures_near(&URL, text, &at, "https://www.".len()) {
        if let (Some(whole), Some(query)) = (caps.get(0), caps.get(1)) {
            out.push((whole.range(), parse_query(query.as_str())));
        }
    }
    for caps in captures_near(&MENTION, text, &at, 0) {
        if let (Some(whole), Some(id)) = (caps.get(0), caps.get(1)) {
            out.push((whole.range(), parse_id(id.as_str()).map(Target::Crtsh)));
        }
    }
    out.sort_by_key(|(range, _)| range.start);
    out
}

/// Where `crt.sh` (any case) starts in `text`, in order. Found from the dots, which memchr
/// finds many bytes at a time.
fn occurrences(text: &str) -> impl Iterator<Item = usize> + '_ {
    let b = text.as_bytes();
    memchr::memchr_iter(b'.', b)
        .filter(move |&dot| {
            dot >= 3
                && dot + 3 <= b.len()
                && b[dot - 3..dot].eq_ignore_ascii_case(b"crt")
                && b[dot + 1..dot + 3].eq_ignore_ascii_case(b"sh")
        })
        .map(|dot| dot - 3)
}

/// The same matches as `re.captures_iter(text)`, for a regex whose every match holds `crt.sh`
/// within `lead` bytes of its start: searching starts near each occurrence, so the text
/// between and after them is not run through the regex (which, with its optional prefixes,
/// has no literal to skip ahead to by itself).
fn captures_near<'t>(
    re: &Regex,
    text: &'t str,
    at: &[usize],
    lead: usize,
) -> Vec<regex::Captures<'t>> {
    let mut out = Vec::new();
    let mut end = 0;
    for &p in at {
        if p < end {
            continue;
        }
        // No match starts before `p - lead`: it would hold an earlier occurrence.
        let mut from = p.saturating_sub(lead).max(end);
        while !text.is_char_boundary(from) {
            from -= 1;
        }
        let Some(caps) = re.captures_at(text, from) else {
            // None from here to the end of the text.
            break;
        };
        if let Some(m) = caps.get(0) {
            end = m.end().max(m.start() + 1);
        }
        out.push(caps);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "55a7d05c16ef8fb68ef1c4d9b877b19d326f0ef41d50572194891ba8c9be5f5c";

    fn targets(text: &str) -> Vec<Target> {
        scan(text).into_iter().filter_map(|(_, t)| t).collect()
    }

    #[test]
    fn id_links_in_every_spelling() {
        for text in [
            "https://crt.sh/?id=1777593900",
            "see http://www.crt.sh/?id=1777593900.",
            "<https://CRT.SH/?d=1777593900>",
            "https://crt.sh/?opt=cablint,x509lint&id=1777593900",
            "https://crt.sh/?id=1777593900&amp;opt=cablint,x509lint",
            "(crt.sh/?id=1777593900)",
            "https://crt.sh/?id=1777593900#revocation",
            "crt.sh ID 1777593900",
            "CRT.SH id: 1777593900",
        ] {
            assert_eq!(targets(text), vec![Target::Crtsh(1_777_593_900)], "{text}");
        }
    }

    #[test]
    fn fingerprint_links() {
        let upper = HEX.to_uppercase();
        for text in [
            format!("https://crt.sh/?sha256={HEX}"),
            format!("https://crt.sh/?q={upper}"),
            format!("https://crt.sh/?opt=ocsp&amp;sha256={upper}"),
        ] {
            assert_eq!(
                targets(&text),
                vec![Target::Sha256(HEX.to_string())],
                "{text}"
            );
        }
    }

    #[test]
    fn spki_link_is_a_key() {
        let text = format!("https://crt.sh/?spkisha256={HEX}");
        assert_eq!(targets(&text), vec![Target::Spki(HEX.to_string())]);
    }

    #[test]
    fn searches_are_masked_but_name_nothing() {
        let found = scan("https://crt.sh/?q=example.com and https://crt.sh/?id=abc");
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|(_, t)| t.is_none()));
        assert!(targets(&format!("https://crt.sh/?q={}", &HEX[..63])).is_empty());
    }

    #[test]
    fn searching_near_occurrences_finds_what_the_whole_text_scan_finds() {
        for text in [
            "https://crt.sh/?id=1 and http://www.crt.sh/?id=2, crt.sh ID 3",
            "xhttps://crt.sh/?id=4 ébrécrt.sh/?id=5 Ünïcødé https://www.CRT.SH/?id=6",
            "crt.sh is where https://crt.sh/?q=crt.sh/?id=7 lives; crt.sh id: 8",
            "crt.sh crt.sh crt.sh/?id=9",
            "no link here, just crt.shell and crt.sh",
            "www.crt.sh/?id=10 https://crt.sh/? https://crt.sh/?id=11)",
        ] {
            for (re, lead) in [(&*URL, 12), (&*MENTION, 0)] {
                let whole: Vec<_> = re.find_iter(text).map(|m| m.range()).collect();
                let at: Vec<usize> = occurrences(text).collect();
                let near: Vec<_> = captures_near(re, text, &at, lead)
                    .iter()
                    .filter_map(|c| c.get(0).map(|m| m.range()))
                    .collect();
                assert_eq!(near, whole, "{text}");
            }
        }
    }

    #[test]
    fn parse_url_needs_the_whole_string() {
        assert_eq!(parse_url("https://crt.sh/?id=5"), Some(Target::Crtsh(5)));
        assert_eq!(parse_url("x https://crt.sh/?id=5"), None);
        assert_eq!(parse_url("https://example.com/?id=5"), None);
    }
}
