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

/// A crt.sh URL without its leading word boundary; group 1 is the query string. The scheme and
/// `www.` are optional; the query ends at whitespace or at characters that close a URL in prose
/// or markup.
const URL_BODY: &str = r#"(?:https?://)?(?:www\.)?crt\.sh/?\?([^\s<>"'()\[\]{}]*)"#;

/// `crt.sh ID 1777593900`, `crt.sh id: 123456`, `crt.sh ID #42`, without the leading boundary.
const MENTION_BODY: &str = r"crt\.sh(?-u:\s)+id(?-u:\s)*[:#=]?(?-u:\s)*([0-9]{1,20})(?-u:\b)";

/// What may stand before `crt.sh` in a URL, longest first (so the earliest start is tried
/// first, as a leftmost search would).
const URL_LEADS: [&str; 6] = [
    "https://www.",
    "http://www.",
    "https://",
    "http://",
    "www.",
    "",
];

/// The URL anywhere in a text (for [`parse_url`], and the reference the scan is tested against).
static URL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"(?i)(?-u:\b){URL_BODY}")).expect("static regex"));

/// The URL at the very start of a haystack.
static URL_AT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"(?i)^{URL_BODY}")).expect("static regex"));

/// The mention at the very start of a haystack.
static MENTION_AT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"(?i)^{MENTION_BODY}")).expect("static regex"));

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
        // `__` closes a link rewritten by Proofpoint's URL Defense (`…/v3/__<link>__;…`).
        let value = percent_colons(value.trim_end_matches(['.', ',', ':', '!', '?', '_']));
        match key.to_ascii_lowercase().as_str() {
            "id" | "d" => parse_id(&value).map(Target::Crtsh),
            "sha256" | "q" => fingerprint::hex64(&value).map(Target::Sha256),
            "spkisha256" => fingerprint::hex64(&value).map(Target::Spki),
            _ => None,
        }
    })
}

/// `text` with its percent-escapes decoded, when it holds a crt.sh link inside another link's
/// query (Microsoft Safe Links, `…/?url=https%3A%2F%2Fcrt.sh%2F%3Fid%3D123`; Google's
/// `url?q=https://crt.sh/?id%3D123`), which only reads as one decoded. `None` otherwise.
pub(crate) fn percent_decoded(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let encoded_equals = memchr::memmem::find_iter(b, b"%3")
        .any(|i| b.get(i + 2).is_some_and(|c| c.eq_ignore_ascii_case(&b'd')));
    if !encoded_equals || occurrences(text).next().is_none() {
        return None;
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |j: usize| b.get(j).and_then(|c| (*c as char).to_digit(16));
        match (b[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
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
    for (whole, query) in matches_at(&URL_AT, text, &at, &URL_LEADS) {
        out.push((whole, parse_query(&text[query])));
    }
    for (whole, id) in matches_at(&MENTION_AT, text, &at, &[""]) {
        out.push((whole, parse_id(&text[id]).map(Target::Crtsh)));
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

/// The matches (whole span, group 1 span) that a leftmost, non-overlapping search for
/// `(?-u:\b)` + `re`'s pattern would find in `text`, where `re` is that pattern anchored with
/// `^` and every match holds `crt.sh` right after one of `leads`.
///
/// Why not the unanchored regex from near each occurrence: where an occurrence starts no match
/// (`crt.sh ID` for the URL pattern, a link for the mention pattern), an unanchored search runs
/// on to the end of the text, and that was most of the extractor's time on long bodies. Tried
/// at each possible start, in order, a miss costs a few bytes.
fn matches_at(
    re: &Regex,
    text: &str,
    at: &[usize],
    leads: &[&str],
) -> Vec<(Range<usize>, Range<usize>)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut end = 0;
    for &p in at {
        if p < end {
            continue;
        }
        for lead in leads {
            let Some(s) = p.checked_sub(lead.len()) else {
                continue;
            };
            // The pattern's leading `(?-u:\b)`: every lead and `crt` begin with a word byte.
            let boundary = s == 0 || !(b[s - 1].is_ascii_alphanumeric() || b[s - 1] == b'_');
            if s < end || !boundary || !b[s..p].eq_ignore_ascii_case(lead.as_bytes()) {
                continue;
            }
            let Some(caps) = re.captures(&text[s..]) else {
                continue;
            };
            if let (Some(whole), Some(group)) = (caps.get(0), caps.get(1)) {
                out.push((
                    s + whole.start()..s + whole.end(),
                    s + group.start()..s + group.end(),
                ));
                end = s + whole.end().max(1);
            }
            break;
        }
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
            "_https://crt.sh/?id=12 HTTPS://WWW.crt.sh/?id=13 www.www.crt.sh/?id=14",
            "crt.sh  ID\n 15x crt.sh ID #16 xcrt.sh id 17 crt.sh id 18_ crt.sh/?crt.sh id 19",
            "httpss://crt.sh/?id=20 http:/crt.sh/?id=21 crt.sh?id=22 crt.sh/?",
        ] {
            let mention = Regex::new(&format!(r"(?i)(?-u:\b){MENTION_BODY}")).unwrap();
            for (re, anchored, leads) in [
                (&*URL, &*URL_AT, &URL_LEADS[..]),
                (&mention, &*MENTION_AT, &[""][..]),
            ] {
                let whole: Vec<_> = re
                    .captures_iter(text)
                    .map(|c| (c.get(0).unwrap().range(), c.get(1).unwrap().range()))
                    .collect();
                let at: Vec<usize> = occurrences(text).collect();
                assert_eq!(matches_at(anchored, text, &at, leads), whole, "{text}");
            }
        }
    }

    #[test]
    fn links_inside_rewritten_links() {
        let safelinks = "https://eur01.safelinks.protection.outlook.com/?url=https%3A%2F%2Fcrt.sh\
                         %2F%3Fid%3D1777593900&data=05%7C01";
        let google = "https://www.google.com/url?q=https://crt.sh/?id%3D1777593900&sa=D";
        for text in [safelinks, google] {
            assert!(targets(text).is_empty(), "{text}");
            let decoded = percent_decoded(text).expect("decoded");
            assert_eq!(
                targets(&decoded),
                vec![Target::Crtsh(1_777_593_900)],
                "{text}"
            );
        }
        let proofpoint = "https://urldefense.com/v3/__https://crt.sh/?id=1777593900__;!!abc$";
        assert_eq!(targets(proofpoint), vec![Target::Crtsh(1_777_593_900)]);
        assert_eq!(percent_decoded("100%3D crt.sh"), Some("100= crt.sh".into()));
        assert_eq!(percent_decoded("https://crt.sh/?id=5 %20"), None);
        assert_eq!(percent_decoded("a%3Db, no link"), None);
    }

    #[test]
    fn parse_url_needs_the_whole_string() {
        assert_eq!(parse_url("https://crt.sh/?id=5"), Some(Target::Crtsh(5)));
        assert_eq!(parse_url("x https://crt.sh/?id=5"), None);
        assert_eq!(parse_url("https://example.com/?id=5"), None);
    }
}
