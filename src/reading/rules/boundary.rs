//! Word boundaries the lazy DFA can evaluate.
//!
//! Why: a lazy DFA cannot tell Unicode's `\b` once the text holds a non-ASCII character (a
//! typographic apostrophe, an accented name, an em dash: most real mail), and the regex engine
//! then falls back to an NFA simulation a hundred times slower. ASCII's `\b` it evaluates at
//! full speed. The two differ only where a non-ASCII letter touches the boundary. So a `\b`
//! becomes ASCII's where the pattern itself puts an ASCII character on each side it spells
//! out; where the pattern leaves a side to the text (the start or end of a pattern), the two
//! differ only for a non-ASCII letter glued to an ASCII word ("ékey"), which can only add a
//! match. A `\b` beside `\w`, an optional part or a non-ASCII letter keeps Unicode's meaning.

use regex_syntax::hir::{Capture, Class, Hir, HirKind, Look, Repetition};

/// `hir` with every Unicode word boundary that can be ASCII's made so.
pub(super) fn ascii_where_equal(hir: &Hir) -> Hir {
    match hir.kind() {
        HirKind::Concat(parts) => {
            let parts: Vec<Hir> = parts.iter().map(ascii_where_equal).collect();
            let n = parts.len();
            let out = (0..n)
                .map(|i| match parts[i].kind() {
                    HirKind::Look(look) if n > 1 => {
                        // Past the concatenation's ends lies the text: see the module's note.
                        let left = seq_edge(&parts[..i], Edge::Last);
                        let right = seq_edge(&parts[i + 1..], Edge::First);
                        match (ascii_look(*look), left && right) {
                            (Some(ascii), true) => Hir::look(ascii),
                            _ => parts[i].clone(),
                        }
                    }
                    _ => parts[i].clone(),
                })
                .collect();
            Hir::concat(out)
        }
        HirKind::Alternation(branches) => {
            Hir::alternation(branches.iter().map(ascii_where_equal).collect())
        }
        HirKind::Capture(c) => Hir::capture(Capture {
            index: c.index,
            name: c.name.clone(),
            sub: Box::new(ascii_where_equal(&c.sub)),
        }),
        HirKind::Repetition(r) => Hir::repetition(Repetition {
            min: r.min,
            max: r.max,
            greedy: r.greedy,
            sub: Box::new(ascii_where_equal(&r.sub)),
        }),
        _ => hir.clone(),
    }
}

fn ascii_look(look: Look) -> Option<Look> {
    match look {
        Look::WordUnicode => Some(Look::WordAscii),
        Look::WordUnicodeNegate => Some(Look::WordAsciiNegate),
        _ => None,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Edge {
    First,
    Last,
}

/// Whether every non-empty match of `hir` begins (or ends) with an ASCII character. Case
/// folding puts the Kelvin sign beside `k` and the long s beside `s`; those two count as their
/// letters.
fn ascii_edge(hir: &Hir, edge: Edge) -> bool {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => true,
        HirKind::Literal(lit) => {
            let b = if edge == Edge::First {
                lit.0.first()
            } else {
                lit.0.last()
            };
            b.is_some_and(u8::is_ascii)
        }
        HirKind::Class(Class::Unicode(c)) => c.iter().all(|r| {
            r.end().is_ascii()
                || (r.start() == r.end() && matches!(r.start(), '\u{17F}' | '\u{212A}'))
        }),
        HirKind::Class(Class::Bytes(c)) => c.iter().all(|r| r.end().is_ascii()),
        HirKind::Capture(c) => ascii_edge(&c.sub, edge),
        HirKind::Repetition(r) => ascii_edge(&r.sub, edge),
        HirKind::Alternation(branches) => branches.iter().all(|b| ascii_edge(b, edge)),
        HirKind::Concat(parts) => seq_edge(parts, edge),
    }
}

/// Whether the character at one end of a sequence is ASCII, looking through the parts that
/// may match nothing (they, and what lies past them, must then be ASCII too). Past the end of
/// the sequence lies the text (see the module's note), or nothing.
fn seq_edge(parts: &[Hir], edge: Edge) -> bool {
    let mut it: Box<dyn Iterator<Item = &Hir>> = if edge == Edge::First {
        Box::new(parts.iter())
    } else {
        Box::new(parts.iter().rev())
    };
    for p in &mut it {
        if !ascii_edge(p, edge) {
            return false;
        }
        if p.properties().minimum_len().is_some_and(|n| n > 0) {
            return true;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex_syntax::ParserBuilder;

    fn unicode_bounds_left(p: &str) -> bool {
        let hir = ParserBuilder::new()
            .case_insensitive(true)
            .build()
            .parse(p)
            .unwrap();
        ascii_where_equal(&hir)
            .properties()
            .look_set()
            .contains_word_unicode()
    }

    #[test]
    fn boundaries_beside_ascii_become_ascii() {
        assert!(!unicode_bounds_left(r"\bkey\s+compromise\b"));
        assert!(!unicode_bounds_left(
            r"\b(do|does)\s*(not|n[\x27’]t)\s+claim\b"
        ));
        assert!(!unicode_bounds_left(r"\bskip(ped|s)?\b"));
    }

    #[test]
    fn boundaries_beside_non_ascii_or_word_classes_stay_unicode() {
        assert!(unicode_bounds_left(r"\bcompromission\s+de\s+la\s+clé\b"));
        assert!(unicode_bounds_left(r"\bflaw\w*\b"));
        assert!(unicode_bounds_left(r"\b(\w+\s+)?key"));
    }

    #[test]
    fn the_rewritten_regex_finds_the_same_matches_on_real_text() {
        let text = "We don’t claim the key: compromise; la clé privée est compromise. \
                    Schlüssel kompromittiert. naïve keys, skipped DCV.";
        for p in [
            r"\bkey\W+compromise\b",
            r"\b(do|does)\s*(not|n[\x27’]t)\s+claim\b",
            r"\bclé\s+privée\s+est\s+compromise\b",
            r"\bschlüssel\s+kompromittiert\b",
            r"\bskipped\s+DCV\b",
            r"\bkeys?\b",
        ] {
            let hir = ParserBuilder::new()
                .case_insensitive(true)
                .build()
                .parse(p)
                .unwrap();
            let a = regex_automata::meta::Regex::builder()
                .build_from_hir(&hir)
                .unwrap();
            let b = regex_automata::meta::Regex::builder()
                .build_from_hir(&ascii_where_equal(&hir))
                .unwrap();
            let ma: Vec<_> = a.find_iter(text).map(|m| m.range()).collect();
            let mb: Vec<_> = b.find_iter(text).map(|m| m.range()).collect();
            assert_eq!(ma, mb, "{p}");
            assert!(!ma.is_empty(), "{p}");
        }
    }
}
