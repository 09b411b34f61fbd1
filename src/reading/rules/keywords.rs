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

/// Words so frequent in mail (or inside its words: "der" in "order") that a pattern keyed on
/// them would run on nearly every message; another keyword of the same pattern is preferred
/// when there is one, and a part made of them is no use as a gate.
const COMMON: &[&str] = &[
    "certificate",
    "certificates",
    "certificat",
    "the",
    "and",
    "for",
    "from",
    "this",
    "that",
    "with",
    "our",
    "you",
    "your",
    "please",
    "have",
    "has",
    "had",
    "was",
    "were",
    "not",
    "are",
    "can",
    "its",
    "all",
    "his",
    "own",
    "set",
    "any",
    "but",
    "one",
    "out",
    "use",
    "der",
    "die",
    "das",
    "des",
    "del",
    "dem",
    "den",
    "les",
    "las",
    "los",
    "par",
    "mon",
    "mes",
    "une",
    "est",
    "que",
    "son",
    "sur",
    "por",
    "con",
    "und",
    "ist",
    "von",
    "ein",
    "per",
    "pour",
];

/// What the matcher needs to know of one pattern, from one reading of its syntax.
pub(super) struct Keys {
    /// Words one of which every match contains (see [`required`]).
    pub required: Vec<String>,
    /// Words one of which every match starts with, when worth trying anchored.
    pub prefixes: Option<Vec<String>>,
    /// Sets of which every match holds a word each.
    pub gates: Vec<Vec<String>>,
    /// How far a match may reach from its keyword, at most the ceiling given.
    pub reach: usize,
}

/// Read `pattern` once for all it tells the matcher; the error says why it cannot be keyed.
pub(super) fn analyse(pattern: &str, ceiling: usize) -> Result<Keys, String> {
    // Parsed case-sensitively: the keywords are matched ASCII-case-insensitively later, which
    // covers every spelling the case-insensitive regex accepts (but for Unicode's two odd
    // folds, K→U+212A and s→U+017F, which only hide a word, never invent one).
    let hir = ParserBuilder::new()
        .unicode(true)
        .utf8(true)
        .build()
        .parse(pattern)
        .map_err(|e| format!("does not parse: {e}"))?;
    Ok(Keys {
        required: required(&hir)?,
        prefixes: prefixes(&hir),
        gates: gates(&hir),
        reach: reach(&hir, ceiling),
    })
}

/// The keywords (lower-case ASCII) one of which every match contains, or why there are none
/// worth using.
fn required(hir: &Hir) -> Result<Vec<String>, String> {
    match needed(hir) {
        Some(set) if shortest(&set) >= MIN_KEYWORD_LEN => Ok(words_of(set)),
        _ => Err(format!(
            "has no literal word of at least {MIN_KEYWORD_LEN} ASCII letters that every match \
             contains; add one (e.g. write `key\\s+compromise`, not `\\w+\\s+compromise`) so \
             the rule can be found quickly"
        )),
    }
}

/// Every keyword set of which a match of the pattern contains one word each: the parts of the
/// pattern that are always there ("request … revocation … of"). A window where one of the sets
/// has no word cannot hold a match, so the pattern is not run there: in prose, where a rule's
/// words seldom meet, that spares most of the regex work.
fn gates(hir: &Hir) -> Vec<Vec<String>> {
    let parts: Vec<&Hir> = match hir.kind() {
        HirKind::Concat(parts) => parts.iter().collect(),
        _ => vec![hir],
    };
    let mut out: Vec<Vec<String>> = Vec::new();
    for p in parts {
        // A gate of common or three-letter words would be found nearly everywhere: no use.
        let Some(set) = needed(p).filter(|s| shortest(s) > MIN_KEYWORD_LEN && !has_common(s))
        else {
            continue;
        };
        let words = words_of(set);
        if !out.contains(&words) {
            out.push(words);
        }
    }
    out
}

/// The keywords one of which every match of the pattern starts with (after zero-width
/// assertions), when there are such keywords worth searching for. A pattern keyed on its
/// prefixes is tried only where a keyword begins, anchored, which costs the length of the
/// attempt instead of a scan of the text around the keyword.
fn prefixes(hir: &Hir) -> Option<Vec<String>> {
    let parts: Vec<&Hir> = match hir.kind() {
        HirKind::Concat(parts) => parts.iter().collect(),
        _ => vec![hir],
    };
    let mut set: Vec<Vec<u8>> = vec![Vec::new()];
    for p in parts {
        if matches!(p.kind(), HirKind::Look(_)) && set == [Vec::<u8>::new()] {
            continue;
        }
        match exact(p).and_then(|e| product(&set, &e)) {
            Some(longer) => set = longer,
            None => break,
        }
    }
    // Each prefix up to its first non-ASCII byte: a folded spelling may differ there.
    let mut words: Vec<String> = set
        .iter()
        .map(|w| {
            let end = w.iter().position(|b| !b.is_ascii()).unwrap_or(w.len());
            String::from_utf8_lossy(&w[..end]).to_ascii_lowercase()
        })
        .collect();
    if words.iter().any(|w| w.len() < MIN_KEYWORD_LEN) {
        return None;
    }
    words.sort();
    words.dedup();
    Some(words)
}

/// How far from its keyword a match of the pattern may reach, in bytes, at most `ceiling`: the
/// longest match, counting a run of unbounded length (`\s+`, `\w*`) as [`LONGEST_RUN`]
/// characters, with room for non-ASCII letters. Windows this wide around a keyword hold every
/// match a reporter's phrasing makes; only a word or a gap longer than that is not looked for.
fn reach(hir: &Hir, ceiling: usize) -> usize {
    (longest(hir) * 3 / 2).clamp(64, ceiling)
}

/// Characters in the longest word or gap a rule means by an unbounded run.
const LONGEST_RUN: usize = 32;

fn longest(hir: &Hir) -> usize {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => 0,
        HirKind::Literal(lit) => lit.0.len(),
        HirKind::Class(_) => 1,
        HirKind::Capture(c) => longest(&c.sub),
        HirKind::Repetition(r) => {
            let times = r.max.map_or(LONGEST_RUN, |m| m as usize);
            times.saturating_mul(longest(&r.sub))
        }
        HirKind::Concat(parts) => parts.iter().map(longest).fold(0, usize::saturating_add),
        HirKind::Alternation(branches) => branches.iter().map(longest).max().unwrap_or(0),
    }
}

/// A keyword set as sorted, distinct strings (its words are lower-case ASCII runs).
fn words_of(set: Vec<Vec<u8>>) -> Vec<String> {
    let mut words: Vec<String> = set
        .into_iter()
        .map(|w| String::from_utf8(w).expect("ASCII runs are UTF-8"))
        .collect();
    words.sort();
    words.dedup();
    words
}

fn shortest(set: &[Vec<u8>]) -> usize {
    set.iter().map(Vec::len).min().unwrap_or(0)
}

/// How good a keyword set is: sets without common words first, then sets of words longer
/// than three letters (which occur inside fewer words), then longer shortest words.
fn score(set: &[Vec<u8>]) -> (bool, bool, usize) {
    let n = shortest(set);
    (!has_common(set), n > MIN_KEYWORD_LEN, n)
}

fn has_common(set: &[Vec<u8>]) -> bool {
    set.iter()
        .any(|w| COMMON.iter().any(|c| c.as_bytes() == w.as_slice()))
}

/// Most strings an exact set may hold before it stops being worth spelling out.
const MAX_EXACT: usize = 64;

/// A set of literals at least one of which every match of `hir` contains; `None` when no such
/// set is known.
fn needed(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    if let Some(set) = exact(hir).filter(|s| s.iter().all(|w| !w.is_empty())) {
        return normalise(set);
    }
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) | HirKind::Class(_) | HirKind::Literal(_) => None,
        HirKind::Repetition(rep) if rep.min >= 1 => needed(&rep.sub),
        HirKind::Repetition(_) => None,
        HirKind::Capture(cap) => needed(&cap.sub),
        HirKind::Concat(parts) => {
            // Candidates: each part's own set, and each run of adjacent parts whose strings
            // are known exactly, spelled out (`(gene|ope)ration` → generation, operation).
            let mut candidates: Vec<Vec<Vec<u8>>> = parts.iter().filter_map(needed).collect();
            let mut run: Option<Vec<Vec<u8>>> = None;
            for part in parts.iter().chain(std::iter::once(&Hir::fail())) {
                match (exact(part), run.take()) {
                    (Some(e), Some(r)) => run = product(&r, &e),
                    (Some(e), None) => run = Some(e),
                    (None, Some(r)) => {
                        if r.iter().all(|w| !w.is_empty()) {
                            candidates.extend(normalise(r));
                        }
                    }
                    (None, None) => {}
                }
            }
            candidates.into_iter().max_by_key(|set| score(set))
        }
        HirKind::Alternation(branches) => {
            let mut all = Vec::new();
            for b in branches {
                all.extend(needed(b)?);
            }
            Some(all)
        }
    }
}

/// Every string `hir` can match, when there are few and they are known.
fn exact(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => Some(vec![Vec::new()]),
        HirKind::Literal(lit) => Some(vec![lit.0.to_vec()]),
        HirKind::Class(class) => {
            let mut out = Vec::new();
            match class {
                regex_syntax::hir::Class::Unicode(u) => {
                    for r in u.iter() {
                        for c in r.start()..=r.end() {
                            out.push(c.to_string().into_bytes());
                            if out.len() > 4 {
                                return None;
                            }
                        }
                    }
                }
                regex_syntax::hir::Class::Bytes(b) => {
                    for r in b.iter() {
                        for c in r.start()..=r.end() {
                            out.push(vec![c]);
                            if out.len() > 4 {
                                return None;
                            }
                        }
                    }
                }
            }
            Some(out)
        }
        HirKind::Capture(cap) => exact(&cap.sub),
        HirKind::Repetition(rep) if rep.min == 0 && rep.max == Some(1) => {
            let mut set = exact(&rep.sub)?;
            set.push(Vec::new());
            Some(set)
        }
        HirKind::Repetition(_) => None,
        HirKind::Concat(parts) => parts
            .iter()
            .try_fold(vec![Vec::new()], |acc, p| product(&acc, &exact(p)?)),
        HirKind::Alternation(branches) => {
            let mut all = Vec::new();
            for b in branches {
                all.extend(exact(b)?);
            }
            (all.len() <= MAX_EXACT).then_some(all)
        }
    }
}

/// Every string of `a` followed by every string of `b`, unless there are too many.
fn product(a: &[Vec<u8>], b: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
    if a.len() * b.len() > MAX_EXACT {
        return None;
    }
    Some(
        a.iter()
            .flat_map(|x| b.iter().map(move |y| [x.as_slice(), y.as_slice()].concat()))
            .collect(),
    )
}

/// Each string cut to its longest ASCII run, lower-cased; `None` if one has none.
fn normalise(set: Vec<Vec<u8>>) -> Option<Vec<Vec<u8>>> {
    set.iter().map(|w| longest_ascii_run(w)).collect()
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

    /// A pattern read as `analyse` reads it.
    fn hir(p: &str) -> Hir {
        ParserBuilder::new().build().parse(p).unwrap()
    }

    fn kw(p: &str) -> Vec<String> {
        required(&hir(p)).unwrap()
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
        assert_eq!(kw(r"\brévo(quer|cation)"), ["vocation", "voquer"]);
        // Adjacent parts known exactly are spelled out.
        assert_eq!(kw(r"\b(gene|ope)ration"), ["generation", "operation"]);
        assert_eq!(kw(r"\bkeys?\b"), ["key", "keys"]);
    }

    #[test]
    fn prefixes_are_what_every_match_starts_with() {
        let p = |s: &str| prefixes(&hir(s));
        assert_eq!(
            p(r"\b(leaked|exposed)\s+keys?"),
            Some(vec!["exposed".to_string(), "leaked".to_string()])
        );
        assert_eq!(p(r"\bkey[\s-]+compromise"), Some(vec!["key".to_string()]));
        assert_eq!(p(r"\b(i|we)\s+revoke"), None);
        assert_eq!(p(r"(^|[^=])zlint"), None);
        assert_eq!(p(r"\bclé\s+privée"), None);
        assert_eq!(p(r"\bschlüssel"), Some(vec!["schl".to_string()]));
    }

    #[test]
    fn gates_are_the_words_every_match_holds() {
        assert_eq!(
            gates(&hir(
                r"\b(i|we)\s+(hereby\s+)?request\s+(the\s+)?revocation\s+of\s+(my|our)\b"
            )),
            [vec!["request".to_string()], vec!["revocation".to_string()]]
        );
        // Three-letter and common words are found nearly everywhere: no gate of them.
        assert_eq!(
            gates(&hir(
                r"\bkey\W+(?:\w+\W+){0,10}(leaked|exposed)\s+on\s+the\s+web"
            )),
            [vec!["exposed".to_string(), "leaked".to_string()]]
        );
    }

    #[test]
    fn reach_covers_the_longest_phrase_a_pattern_means() {
        // 3 + 32 + 10 = 45 characters, with room for non-ASCII: 67 bytes.
        assert_eq!(reach(&hir(r"\bkey\s+compromise\b"), 400), 67);
        assert_eq!(reach(&hir(r"\bkey\b"), 400), 64);
        assert_eq!(reach(&hir(r"\bkey\W+(?:\w+\W+){0,10}leak"), 400), 400);
    }

    #[test]
    fn a_pattern_without_a_keyword_is_refused_with_a_reason() {
        for p in [r"\w+\s+\w+", r"(a|b)c", r"\bi\s+do\b", r"[a-z]ey"] {
            let e = analyse(p, 400).err().unwrap();
            assert!(e.contains("no literal word"), "{p}: {e}");
        }
    }
}
