//! Finding which rules apply to a message, and the phrase that made each apply.
//!
//! The work per message is bounded by its length, whatever its wording (see `keywords` for
//! why): one Aho-Corasick pass finds every rule keyword; each pattern keyed on a keyword that
//! occurs runs once over the merged windows of [`REACH`] bytes around its occurrences; a match
//! is then judged in its sentence only (never the whole text), against the rule's `unless`
//! patterns. Nothing here depends on earlier messages, so no text can make later ones slow.
//!
//! Precedence (documented for rule writers in `rules/README.md`):
//! 1. A match whose sentence matches one of its rule's `unless` patterns does not count
//!    ("we do not claim the key was exposed").
//! 2. A match of rule B does not count when a rule that `overrides` B matched in the same
//!    sentence: the specific reading of that sentence wins over the generic one. Only the same
//!    sentence: a weak-key remark in one paragraph never hides a leaked key in the next.
//! 3. Every rule with a counting match applies; the engine gives the case the shortest window
//!    among them.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex::Regex;
use regex_automata::{Anchored, Input, meta};
use std::cell::RefCell;
use std::ops::Range;
use std::sync::LazyLock;

/// How far from a keyword a match may reach, in bytes, at most (each pattern's own reach is
/// worked out from its syntax, see `keywords::reach`). Rule patterns span a few words, at most
/// a dozen and a line break; a phrase this long around its keyword is not one a rule describes.
pub(super) const REACH: usize = 400;

/// How far a sentence is followed from a match, in bytes, each way.
const SENTENCE_REACH: usize = 300;

/// Matches kept per rule and text when precedence needs them; past this many the rule simply
/// applies (the safe reading: it can only add a window to choose from).
const MAX_MATCHES: usize = 8;

/// The longest excerpt shown to staff, in characters.
pub(crate) const MAX_EXCERPT_CHARS: usize = 120;

/// Where a pattern looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Field {
    Subject,
    Body,
}

/// Every pattern of one rule for one field, as one regex.
#[derive(Clone, Debug)]
pub(super) struct Pattern {
    pub rule: usize,
    pub field: Field,
    pub regex: meta::Regex,
    /// Every match starts with one of its keywords: tried anchored where one begins.
    pub anchored: bool,
    /// How far a match may reach from its keyword (at most [`REACH`]).
    pub reach: usize,
    /// Keyword sets of which every match holds a word each (keyword ids): where one has none,
    /// the pattern cannot match.
    pub gates: Vec<Vec<usize>>,
}

/// Every rule's patterns, compiled for matching.
#[derive(Clone, Debug)]
pub(super) struct Matcher {
    pub patterns: Vec<Pattern>,
    /// Every distinct keyword of every pattern, ASCII-case-insensitive.
    pub keywords: AhoCorasick,
    /// The same keywords, by id.
    #[cfg(test)]
    pub keyword_list: Vec<String>,
    /// Keyword index → the [`Pattern`]s with a pattern keyed on it.
    pub keyed: Vec<Vec<usize>>,
    /// Per rule: its `unless` patterns as one regex, if any.
    pub unless: Vec<Option<meta::Regex>>,
    /// Per rule: the rules that override it.
    pub overridden_by: Vec<Vec<usize>>,
    /// Per rule: whether it takes part in precedence (overrides or is overridden), so that
    /// more than its first match is needed.
    pub related: Vec<bool>,
}

/// A counting match: which text (0 = subject), its sentence and the matched bytes.
#[derive(Clone, Debug)]
struct Hit {
    text: usize,
    sentence: Range<usize>,
    matched: Range<usize>,
}

/// A rule that applies, with the phrase that made it apply.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Applies {
    pub rule: usize,
    pub excerpt: String,
}

impl Matcher {
    pub(crate) fn build_keywords(words: &[String]) -> Result<AhoCorasick, String> {
        AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(words)
            .or_else(|_| {
                // A DFA over very many keywords may exceed its size limit; the NFA is slower
                // but has none.
                AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .build(words)
            })
            .map_err(|e| e.to_string())
    }

    /// Every keyword, for tests that write text full of them.
    #[cfg(test)]
    pub(crate) fn keywords_text(&self) -> Vec<String> {
        self.keyword_list.clone()
    }

    /// The rules that apply to a message, in rule order.
    pub(crate) fn apply(&self, subject: &str, texts: &[String]) -> Vec<Applies> {
        let rules = self.unless.len();
        let mut hits: Vec<Vec<Hit>> = vec![Vec::new(); rules];
        let all = std::iter::once((subject, Field::Subject))
            .chain(texts.iter().map(|t| (t.as_str(), Field::Body)));
        for (i, (text, field)) in all.enumerate() {
            self.scan(i, text, field, &mut hits);
        }
        let text_of = |i: usize| {
            if i == 0 {
                subject
            } else {
                texts[i - 1].as_str()
            }
        };
        let mut out = Vec::new();
        for (rule, rule_hits) in hits.iter().enumerate() {
            let capped = rule_hits.len() >= MAX_MATCHES;
            let counting = rule_hits.iter().find(|h| {
                capped
                    || !self.overridden_by[rule].iter().any(|&o| {
                        hits[o]
                            .iter()
                            .any(|oh| oh.text == h.text && overlaps(&oh.sentence, &h.sentence))
                    })
            });
            if let Some(h) = counting {
                out.push(Applies {
                    rule,
                    excerpt: excerpt(&text_of(h.text)[h.matched.clone()]),
                });
            }
        }
        out
    }

    /// Collect the counting matches of one text.
    fn scan(&self, text_index: usize, text: &str, field: Field, hits: &mut [Vec<Hit>]) {
        SCRATCH.with(|scratch| {
            let scratch = &mut *scratch.borrow_mut();
            scratch.fit(self.patterns.len(), self.keyed.len());
            let windows = self.place(text_index, text, field, hits, scratch);
            self.run_windows(text_index, text, hits, scratch, windows);
            scratch.reset();
        });
    }

    /// Find the keywords, try the anchored patterns where their keywords begin, and return the
    /// windows the other patterns must be run over.
    fn place(
        &self,
        text_index: usize,
        text: &str,
        field: Field,
        hits: &mut [Vec<Hit>],
        scratch: &mut Scratch,
    ) -> Vec<(usize, Range<usize>)> {
        let found: Vec<(usize, Range<usize>)> = self
            .keywords
            .find_overlapping_iter(text)
            .map(|m| (m.pattern().as_usize(), m.range()))
            .collect();
        for (k, r) in &found {
            scratch.saw(*k, r.clone());
        }
        // Windows per pattern, merged as they come (occurrences arrive in text order).
        let mut windows: Vec<(usize, Range<usize>)> = Vec::new();
        for (keyword, m) in &found {
            for &p in &self.keyed[*keyword] {
                let pat = &self.patterns[p];
                if pat.field != field || !self.wanted(pat.rule, hits) {
                    continue;
                }
                if pat.anchored {
                    if scratch.tried_at[p] != m.start {
                        scratch.touch(p);
                        scratch.tried_at[p] = m.start;
                        let end = ceil_char(text, (m.start + pat.reach).min(text.len()));
                        if !scratch.all_within(&pat.gates, m.start..end) {
                            continue;
                        }
                        let input = Input::new(text).range(m.start..end).anchored(Anchored::Yes);
                        if let Some(found) = pat.regex.search(&input) {
                            self.judge(text_index, text, pat.rule, found.range(), hits);
                        }
                    }
                    continue;
                }
                let w = floor_char(text, m.start.saturating_sub(pat.reach))
                    ..ceil_char(text, (m.end + pat.reach).min(text.len()));
                match scratch.last[p] {
                    i if i != NONE && windows[i].1.end >= w.start => {
                        windows[i].1.end = windows[i].1.end.max(w.end);
                    }
                    _ => {
                        scratch.touch(p);
                        scratch.last[p] = windows.len();
                        windows.push((p, w));
                    }
                }
            }
        }
        windows
    }

    /// Run each pattern over its windows, where every gate of it has a word.
    fn run_windows(
        &self,
        text_index: usize,
        text: &str,
        hits: &mut [Vec<Hit>],
        scratch: &Scratch,
        mut windows: Vec<(usize, Range<usize>)>,
    ) {
        // Pattern order, so the first pattern of a rule gives its excerpt.
        windows.sort_by_key(|(p, w)| (*p, w.start));
        for (p, w) in windows {
            let pat = &self.patterns[p];
            if !scratch.all_within(&pat.gates, w.clone()) {
                continue;
            }
            let mut at = w.start;
            while at <= w.end && self.wanted(pat.rule, hits) {
                let Some(m) = pat.regex.search(&Input::new(text).range(at..w.end)) else {
                    break;
                };
                at = if m.is_empty() {
                    ceil_char(text, m.end() + 1)
                } else {
                    m.end()
                };
                self.judge(text_index, text, pat.rule, m.range(), hits);
            }
        }
    }

    /// Whether `rule` still needs matches: its first, or up to [`MAX_MATCHES`] when precedence
    /// must see them.
    fn wanted(&self, rule: usize, hits: &[Vec<Hit>]) -> bool {
        let limit = if self.related[rule] { MAX_MATCHES } else { 1 };
        hits[rule].len() < limit
    }

    /// Keep a match of `rule` unless it is empty, not prose, or its sentence voids it.
    fn judge(
        &self,
        text_index: usize,
        text: &str,
        rule: usize,
        m: Range<usize>,
        hits: &mut [Vec<Hit>],
    ) {
        if m.is_empty() || in_encoded_line(text, m.start) {
            return;
        }
        let sentence = sentence(text, m.clone());
        let negated = self.unless[rule]
            .as_ref()
            .is_some_and(|u| u.is_match(&text[sentence.clone()]));
        if !negated {
            hits[rule].push(Hit {
                text: text_index,
                sentence,
                matched: m,
            });
        }
    }
}

/// No window or try yet.
const NONE: usize = usize::MAX;

thread_local! {
    /// Per-thread working memory of [`Matcher::scan`]: sized once, and only what a text
    /// touched is reset after it, so scanning a text allocates almost nothing.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

#[derive(Default)]
struct Scratch {
    /// Pattern → index of its last window, or [`NONE`].
    last: Vec<usize>,
    /// Pattern → where it was last tried anchored, or [`NONE`].
    tried_at: Vec<usize>,
    /// Keyword → its occurrences in the text, in order (all of one keyword have one length,
    /// so the order of their ends, in which they are found, is that of their starts).
    at: Vec<Vec<Range<usize>>>,
    touched_patterns: Vec<usize>,
    touched_keywords: Vec<usize>,
}

impl Scratch {
    fn fit(&mut self, patterns: usize, keywords: usize) {
        if self.last.len() < patterns {
            self.last.resize(patterns, NONE);
            self.tried_at.resize(patterns, NONE);
        }
        if self.at.len() < keywords {
            self.at.resize(keywords, Vec::new());
        }
    }

    fn touch(&mut self, pattern: usize) {
        if self.last[pattern] == NONE && self.tried_at[pattern] == NONE {
            self.touched_patterns.push(pattern);
        }
    }

    fn saw(&mut self, keyword: usize, r: Range<usize>) {
        if self.at[keyword].is_empty() {
            self.touched_keywords.push(keyword);
        }
        self.at[keyword].push(r);
    }

    fn reset(&mut self) {
        for p in self.touched_patterns.drain(..) {
            self.last[p] = NONE;
            self.tried_at[p] = NONE;
        }
        for k in self.touched_keywords.drain(..) {
            self.at[k].clear();
        }
    }

    /// Whether every gate has a word lying wholly inside `w`.
    fn all_within(&self, gates: &[Vec<usize>], w: Range<usize>) -> bool {
        gates.iter().all(|gate| {
            gate.iter().any(|&k| {
                let list = &self.at[k];
                let i = list.partition_point(|r| r.start < w.start);
                list[i..]
                    .iter()
                    .take_while(|r| r.start < w.end)
                    .any(|r| r.end <= w.end)
            })
        })
    }
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// The sentence around `m`: from the end of the previous sentence (`.`, `!`, `?` or `;` before
/// white space, or a blank line) to the end of its own, at most [`SENTENCE_REACH`] bytes each
/// way.
fn sentence(text: &str, m: Range<usize>) -> Range<usize> {
    let b = text.as_bytes();
    let lo = m.start.saturating_sub(SENTENCE_REACH);
    let mut start = lo;
    let mut i = m.start;
    while i > lo {
        if is_boundary(b, i) {
            start = i;
            break;
        }
        i -= 1;
    }
    let hi = (m.end + SENTENCE_REACH).min(b.len());
    let mut end = hi;
    for j in m.end..hi {
        if is_boundary(b, j) {
            end = j;
            break;
        }
    }
    floor_char(text, start)..ceil_char(text, end)
}

/// Whether a sentence ends just before byte `i`: `i` is white space after `.!?;`, or the second
/// line break of a blank line.
fn is_boundary(b: &[u8], i: usize) -> bool {
    if i == 0 || i >= b.len() || !b[i].is_ascii_whitespace() {
        return false;
    }
    if matches!(b[i - 1], b'.' | b'!' | b'?' | b';') {
        return true;
    }
    if b[i] == b'\n' {
        let mut k = i;
        while k > 0 && matches!(b[k - 1], b' ' | b'\t' | b'\r' | b'>') {
            k -= 1;
        }
        return k > 0 && b[k - 1] == b'\n';
    }
    false
}

/// Whether the line holding `pos` is base64 (a PEM body, an encoded blob): not prose, and
/// possibly key material that no excerpt may show.
fn in_encoded_line(text: &str, pos: usize) -> bool {
    let b = text.as_bytes();
    let start = memchr::memrchr(b'\n', &b[..pos]).map_or(0, |i| i + 1);
    let end = memchr::memchr(b'\n', &b[pos..]).map_or(b.len(), |i| pos + i);
    let line = text[start..end]
        .trim_start_matches(|c: char| c == '>' || c.is_whitespace())
        .trim_end();
    line.len() >= 40
        && line
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=' | b'-' | b'_'))
}

/// A PEM private-key boundary line, which outputs never reproduce (a reader, or a scanner
/// looking for leaked keys, would take the output for one carrying a key).
static PEM_KEY_LABEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)-*\s*BEGIN\s+(?:[A-Z0-9]+\s+)*?PRIVATE\s+KEY-*").expect("static regex")
});

/// The matched phrase as staff see it: white space folded, a private-key PEM label named
/// rather than shown, at most [`MAX_EXCERPT_CHARS`].
fn excerpt(matched: &str) -> String {
    let folded = matched.split_whitespace().collect::<Vec<_>>().join(" ");
    let folded = PEM_KEY_LABEL
        .replace_all(&folded, "[private key PEM label]")
        .into_owned();
    if folded.chars().count() <= MAX_EXCERPT_CHARS {
        return folded;
    }
    let mut cut: String = folded.chars().take(MAX_EXCERPT_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_end_at_stops_and_blank_lines() {
        let t = "First one. We do not claim the key was exposed; but see.\n\nNext para";
        let m = t.find("key").unwrap();
        assert_eq!(
            &t[sentence(t, m..m + 3)],
            " We do not claim the key was exposed;"
        );
        let n = t.find("Next").unwrap();
        assert_eq!(&t[sentence(t, n..n + 4)], "\nNext para");
        // A decimal point or a dotted name is not a sentence end.
        let t = "version 1.2 of the key policy";
        assert_eq!(&t[sentence(t, 16..19)], t);
    }

    #[test]
    fn encoded_lines_are_not_prose() {
        let t = "prose with key\n> MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\nend";
        assert!(!in_encoded_line(t, 11));
        assert!(in_encoded_line(t, t.find("MII").unwrap() + 10));
        assert!(!in_encoded_line(t, t.len() - 1));
    }

    #[test]
    fn excerpts_are_folded_and_bounded() {
        assert_eq!(excerpt("private\n  key   leaked"), "private key leaked");
        let long = "word ".repeat(100);
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), MAX_EXCERPT_CHARS);
        assert!(e.ends_with('…'));
        assert_eq!(
            excerpt("-----BEGIN RSA PRIVATE KEY-----"),
            "[private key PEM label]"
        );
    }
}
