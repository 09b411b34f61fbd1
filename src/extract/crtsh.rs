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
    if !contains_crtsh(text) {
        return out;
    }
    for caps in URL.captures_iter(text) {
        if let (Some(whole), Some(query)) = (caps.get(0), caps.get(1)) {
            out.push((whole.range(), parse_query(query.as_str())));
        }
    }
    for caps in MENTION.captures_iter(text) {
        if let (Some(whole), Some(id)) = (caps.get(0), caps.get(1)) {
            out.push((whole.range(), parse_id(id.as_str()).map(Target::Crtsh)));
        }
    }
    out.sort_by_key(|(range, _)| range.start);
    out
}

/// Cheap pre-check so most messages never run the URL regexes.
fn contains_crtsh(text: &str) -> bool {
    text.as_bytes()
        .windows(6)
        .any(|w| w.eq_ignore_ascii_case(b"crt.sh"))
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
    fn parse_url_needs_the_whole_string() {
        assert_eq!(parse_url("https://crt.sh/?id=5"), Some(Target::Crtsh(5)));
        assert_eq!(parse_url("x https://crt.sh/?id=5"), None);
        assert_eq!(parse_url("https://example.com/?id=5"), None);
    }
}
