//! The keyword every match of a rule pattern must contain.
//!
//! Why: one [`regex::RegexSet`] over every pattern of every rule is a lazy DFA whose states are
//! combinations of hundreds of partial matches. Text that keeps varying (every real inbox, and
//! any text made to be slow) keeps asking for states it has never built, and building them cost
//! about 70 % of ingest on varied mail. Instead, each pattern names a set of literal keywords at
//! least one of which is inside every match it can make; one Aho-Corasick pass finds them all,
//! and only the patterns whose keywords occur run, only near them. The cost per message then
//! depends on the text's length and its keywords, not on how it varies.
//!
//! The keywords are derived from the pattern itself (its syntax tree), so a rule writer cannot
//! get them wrong: a literal run inside every branch the pattern could take.

use regex_syntax::ParserBuilder;
use regex_syntax::hir::{Hir, HirKind};

/// Shortest keyword worth searching for: one or two letters occur everywhere.
pub(super) const MIN_KEYWORD_LEN: usize = 3;

/// Words so frequent in problem reports that a pattern keyed on them would run on nearly every
/// message; another keyword of the same pattern is preferred when there is one.
const COMMON: &[&str] = &[
    "certificate",
    "certificates",
    "certificat",
    "the",
    "and",
    "for",
    "this",
    "that",
    "with",
    "our",
    "you",
    "your",
    "please",
    "have",
    "was",
    "were",
];

/// The keywords (lower-case ASCII) one of which every match of `pattern` contains, or why
/// there are none worth using.
pub(super) fn required(pattern: &str) -> Result<Vec<String>, String> {
    // Parsed case-sensitively: the keywords are matched ASCII-case-insensitively later, which
    // covers every spelling the case-insensitive regex accepts (but for Unicode's two odd
    // folds, K→U+212A and s→U+017F, which only hide a word, never invent one).
    let hir = ParserBuilder::new()
        .unicode(true)
        .utf8(true)
        .build()
        .parse(pattern)
        .map_err(|e| format!("does not parse: {e}"))?;
    match needed(&hir) {
        Some(set) if shortest(&set) >= MIN_KEYWORD_LEN => {
            let mut words: Vec<String> = set
                .into_iter()
                .map(|w| String::from_utf8(w).expect("ASCII runs are UTF-8"))
                .collect();
            words.sort();
            words.dedup();
            Ok(words)
        }
        _ => Err(format!(
            "has no literal word of at least {MIN_KEYWORD_LEN} ASCII letters that every match \
             contains; add one (e.g. write `key\\s+compromise`, not `\\w+\\s+compromise`) so \
             the rule can be found quickly"
        )),
    }
}

fn shortest(set: &[Vec<u8>]) -> usize {
    set.iter().map(Vec::len).min().unwrap_or(0)
}

/// How good a keyword set is: sets without common words first, then longer shortest words.
fn score(set: &[Vec<u8>]) -> (bool, usize) {
    let common = set
        .iter()
        .any(|w| COMMON.iter().any(|c| c.as_bytes() == w.as_slice()));
    (!common, shortest(set))
}

/// A set of literals at least one of which every match of `hir` contains; `None` when no such
/// set is known.
fn needed(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) | HirKind::Class(_) => None,
        HirKind::Literal(lit) => longest_ascii_run(&lit.0).map(|run| vec![run]),
        HirKind::Repetition(rep) if rep.min >= 1 => needed(&rep.sub),
        HirKind::Repetition(_) => None,
        HirKind::Capture(cap) => needed(&cap.sub),
        HirKind::Concat(parts) => parts.iter().filter_map(needed).max_by_key(|set| score(set)),
        HirKind::Alternation(branches) => {
            let mut all = Vec::new();
            for b in branches {
                all.extend(needed(b)?);
            }
            Some(all)
        }
    }
}

/// The longest run of ASCII letters, digits and punctuation in a literal, lower-cased. A
/// non-ASCII character may match other spellings under case folding, so runs stop there.
fn longest_ascii_run(bytes: &[u8]) -> Option<Vec<u8>> {
    bytes
        .split(|b| !b.is_ascii() || b.is_ascii_control())
        .max_by_key(|run| run.len())
        .filter(|run| !run.is_empty())
        .map(|run| run.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kw(p: &str) -> Vec<String> {
        required(p).unwrap()
    }

    #[test]
    fn a_literal_inside_every_match_is_found() {
        assert_eq!(kw(r"\bkey[\s-]+compromise\b"), ["compromise"]);
        assert_eq!(kw(r"\b(leaked|exposed)\s+keys?\b"), ["exposed", "leaked"]);
        assert_eq!(kw(r"(?-i:\bROCA\b)"), ["roca"]);
        // A branch without a keyword makes the alternation useless; another part serves.
        assert_eq!(kw(r"\b(a|bc)\s+compromised"), ["compromised"]);
        // Common words give way to rarer ones.
        assert_eq!(
            kw(r"\brevoke\s+(my|our)\s+(\w+\s+){0,3}certificates?\b"),
            ["revoke"]
        );
        // Optional parts are not required.
        assert_eq!(kw(r"(private\s+)?keys?\s+leak"), ["leak"]);
        // Non-ASCII letters end a run: `é` also matches `É`.
        assert_eq!(kw(r"\bclé\s+privée\s+compromise\b"), ["compromise"]);
        assert_eq!(kw(r"\brévo(quer|cation)"), ["cation", "quer"]);
    }

    #[test]
    fn a_pattern_without_a_keyword_is_refused_with_a_reason() {
        for p in [r"\w+\s+\w+", r"(a|b)c", r"\bi\s+do\b", r"[kK]ey"] {
            let e = required(p).unwrap_err();
            assert!(e.contains("no literal word"), "{p}: {e}");
        }
    }
}
