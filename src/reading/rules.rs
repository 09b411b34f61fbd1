//! Revocation-reason rules: which BR 4.9.1.1 item a report's wording points at, and so how
//! long the CA has to revoke (24 hours for items 1–5, 5 days for items 6–16).
//!
//! Rules are data, not code (`rules/*.toml`), so a CA can tune the wording its reporters use
//! without a release; a default set ships inside the binary. Every rule is checked against the
//! BR text it cites — the right CRLReason for its item, a window no longer than the BRs allow —
//! because a rule that grants 5 days for a key compromise would make cprwatch certify a breach
//! as "met".
//!
//! A rule applies when one of its subject regexes matches the subject or one of its body
//! regexes matches a text of the message, in a sentence none of its `unless` regexes matches,
//! and no rule that `overrides` it matched that same sentence (`matcher` says how and why;
//! `rules/README.md` says it for rule writers). Regexes are case-insensitive unless they switch
//! it off (`(?-i)`). The engine decides what several rules mean (the shortest window wins);
//! with none it applies the conservative 24 hours.

mod boundary;
mod keywords;
mod matcher;

use crate::domain::model::RuleHit;
use crate::domain::timefmt::{format_span, parse_span};
use matcher::{Field, Matcher, Pattern};
use regex_automata::meta;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use time::Duration;

/// The CRLReasons the BRs name in 4.9.1.1 (RFC 5280 §5.3.1 codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum CrlReason {
    Unspecified,
    KeyCompromise,
    Superseded,
    CessationOfOperation,
    PrivilegeWithdrawn,
}

impl CrlReason {
    /// The RFC 5280 spelling, as used in rule files.
    pub fn as_str(self) -> &'static str {
        match self {
            CrlReason::Unspecified => "unspecified",
            CrlReason::KeyCompromise => "keyCompromise",
            CrlReason::Superseded => "superseded",
            CrlReason::CessationOfOperation => "cessationOfOperation",
            CrlReason::PrivilegeWithdrawn => "privilegeWithdrawn",
        }
    }

    pub fn parse(s: &str) -> Option<CrlReason> {
        [
            CrlReason::Unspecified,
            CrlReason::KeyCompromise,
            CrlReason::Superseded,
            CrlReason::CessationOfOperation,
            CrlReason::PrivilegeWithdrawn,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    /// The CRLReason BR 4.9.1.1 (TLS BRs v2.2.6) prescribes for `item`.
    pub(crate) fn for_br_item(item: u8) -> Option<CrlReason> {
        Some(match item {
            1 | 14 | 15 => CrlReason::Unspecified,
            2 | 7 | 8 | 10 | 11 | 13 => CrlReason::PrivilegeWithdrawn,
            3 | 4 | 16 => CrlReason::KeyCompromise,
            5 | 6 | 12 => CrlReason::Superseded,
            9 => CrlReason::CessationOfOperation,
            _ => return None,
        })
    }
}

impl fmt::Display for CrlReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The longest revocation window BR 4.9.1.1 allows for `item`: 24 hours for items 1–5 ("SHALL
/// revoke within 24 hours"), 5 days for items 6–16 ("MUST revoke within 5 days").
pub(crate) fn br_max_window(item: u8) -> Option<Duration> {
    match item {
        1..=5 => Some(Duration::hours(24)),
        6..=16 => Some(Duration::days(5)),
        _ => None,
    }
}

/// One validated rule.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Rule {
    pub id: String,
    pub description: String,
    /// BR 4.9.1.1 item, TLS BRs v2.2.6 numbering (1..=16).
    pub br_item: u8,
    pub crl_reason: CrlReason,
    pub window: Duration,
    /// The file the rule came from (name only), for messages and listings.
    pub file: String,
    /// The patterns as written.
    pub subject: Vec<String>,
    pub body: Vec<String>,
    /// Exceptions: a match in a sentence that matches one of these does not count.
    pub unless: Vec<String>,
    /// Ids of the more generic rules this one wins over in a sentence both match.
    pub overrides: Vec<String>,
}

/// A validated, compiled set of rules.
#[derive(Clone, Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Shared: compiling takes a while and clones are cheap.
    matcher: Arc<Matcher>,
}

/// Why a rule set could not be loaded, naming the file (and rule) to fix.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("cannot read rules directory {}: {source} — check [rules] dir in the config, or remove it to use the shipped rules", .dir.display())]
    ReadDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read rule file {}: {source}", .path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rules directory {} holds no *.toml files — add rule files, or remove [rules] dir from the config to use the shipped rules", .dir.display())]
    NoFiles { dir: PathBuf },
    /// TOML syntax, unknown keys, wrong types: toml's message says where.
    #[error("rule file {file}: {message}")]
    Parse { file: String, message: String },
    #[error("rule file {file}, rule {rule:?}: {problem}")]
    Invalid {
        file: String,
        rule: String,
        problem: String,
    },
    #[error("rule set: {0} — use fewer or simpler patterns")]
    TooLarge(String),
}

/// Rule files shipped in the binary, in the order a rules directory is read (name order).
const SHIPPED: &[(&str, &str)] = &[
    (
        "24h-items-1-5.toml",
        include_str!("../../rules/24h-items-1-5.toml"),
    ),
    (
        "5d-items-6-16.toml",
        include_str!("../../rules/5d-items-6-16.toml"),
    ),
];

/// Compiled-program limits: generous, because the whole rule set shares one [`RegexSet`].
const SIZE_LIMIT: usize = 64 << 20;

impl RuleSet {
    /// The BR 4.9.1.1 item of the rule with `id`, if this set has it.
    pub(crate) fn item_of(&self, id: &str) -> Option<u8> {
        self.rules.iter().find(|r| r.id == id).map(|r| r.br_item)
    }

    /// The rule set built into the binary (a copy of `rules/` in the source tree).
    ///
    /// Compiling the patterns takes a noticeable fraction of a second, so it happens once per
    /// process; later calls return a cheap clone (the compiled sets are shared).
    pub fn shipped() -> RuleSet {
        static SHIPPED_SET: OnceLock<RuleSet> = OnceLock::new();
        SHIPPED_SET
            .get_or_init(|| {
                let files: Vec<_> = SHIPPED
                    .iter()
                    .map(|(n, t)| (n.to_string(), t.to_string()))
                    .collect();
                // The shipped files are part of the source and `tests::shipped_rules_load`
                // proves they load, so a failure here is a build defect, not bad input.
                RuleSet::from_sources(&files).expect("shipped rules are valid (see rules::tests)")
            })
            .clone()
    }

    /// Parse, validate and compile rule files given as `(file name, text)`, in this order.
    pub(crate) fn from_sources(files: &[(String, String)]) -> Result<RuleSet, RulesError> {
        let mut rules: Vec<Rule> = Vec::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        for (file, text) in files {
            let raw: RawFile = toml::from_str(text).map_err(|e| RulesError::Parse {
                file: file.clone(),
                message: e.to_string().trim_end().to_string(),
            })?;
            if raw.rule.is_empty() {
                return Err(RulesError::Parse {
                    file: file.clone(),
                    message: "defines no [[rule]]".into(),
                });
            }
            for r in raw.rule {
                let rule = validate(file, r)?;
                if let Some(first) = seen.insert(rule.id.clone(), file.clone()) {
                    return Err(RulesError::Invalid {
                        file: file.clone(),
                        rule: rule.id,
                        problem: format!(
                            "id already used by a rule in {first}; ids must be unique"
                        ),
                    });
                }
                rules.push(rule);
            }
        }
        let matcher = compile(&rules)?;
        Ok(RuleSet {
            rules,
            matcher: Arc::new(matcher),
        })
    }

    /// The rules that apply to a message, in rule order, each once with the phrase that made
    /// it apply.
    pub fn classify(&self, subject: &str, texts: &[String]) -> Vec<RuleHit> {
        self.matcher
            .apply(subject, texts)
            .into_iter()
            .map(|a| {
                let r = &self.rules[a.rule];
                RuleHit {
                    id: r.id.clone(),
                    br_item: r.br_item,
                    window_secs: r.window.whole_seconds(),
                    matched: a.excerpt,
                }
            })
            .collect()
    }

    pub(crate) fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// A rule by id.
    #[cfg(test)]
    pub(crate) fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }
}

fn validate(file: &str, r: RawRule) -> Result<Rule, RulesError> {
    let invalid = |problem: String| RulesError::Invalid {
        file: file.to_string(),
        rule: r.id.clone(),
        problem,
    };
    if r.id.trim().is_empty() || r.id.contains(char::is_whitespace) {
        return Err(invalid(
            "id must be a non-empty word like \"key-compromise\"".into(),
        ));
    }
    let item = u8::try_from(r.br_item)
        .ok()
        .filter(|i| (1..=16).contains(i))
        .ok_or_else(|| {
            invalid(format!(
                "br_item {} is not a BR 4.9.1.1 item; use 1 to 16 (TLS BRs v2.2.6 numbering)",
                r.br_item
            ))
        })?;
    let expected = CrlReason::for_br_item(item).ok_or_else(|| invalid("no BR item".into()))?;
    let reason = CrlReason::parse(&r.crl_reason).ok_or_else(|| {
        invalid(format!(
            "crl_reason {:?} is not one the BRs use; BR 4.9.1.1 item {item} names \"{expected}\"",
            r.crl_reason
        ))
    })?;
    if reason != expected {
        return Err(invalid(format!(
            "crl_reason \"{reason}\" does not match BR 4.9.1.1 item {item}, which names \"{expected}\""
        )));
    }
    let max = br_max_window(item).ok_or_else(|| invalid("no BR item".into()))?;
    let window = parse_span(&r.window)
        .filter(|w| w.is_positive())
        .ok_or_else(|| {
            invalid(format!(
                "window {:?} is not a span; write e.g. \"24h\" or \"5d\"",
                r.window
            ))
        })?;
    if window > max {
        return Err(invalid(format!(
            "window {} exceeds the {} BR 4.9.1.1 allows for item {item}",
            r.window,
            format_span(max.whole_seconds())
        )));
    }
    if r.subject.is_empty() && r.body.is_empty() {
        return Err(invalid(
            "has no patterns; give at least one subject or body regex".into(),
        ));
    }
    for (kind, patterns) in [
        ("subject", &r.subject),
        ("body", &r.body),
        ("unless", &r.unless),
    ] {
        for (i, p) in patterns.iter().enumerate() {
            if let Err(e) = build_regex(&[p.as_str()]) {
                return Err(invalid(format!("{kind}[{i}] does not compile: {e}")));
            }
            if kind != "unless"
                && let Err(e) = keywords::analyse(p, matcher::REACH)
            {
                return Err(invalid(format!("{kind}[{i}] {e}")));
            }
        }
    }
    Ok(Rule {
        br_item: item,
        crl_reason: reason,
        window,
        file: file.to_string(),
        description: r.description,
        subject: r.subject,
        body: r.body,
        unless: r.unless,
        overrides: r.overrides,
        id: r.id,
    })
}

/// One case-insensitive regex matching any of `patterns`, with lean word classes and the word
/// boundaries a lazy DFA can evaluate (see `boundary`).
fn build_regex(patterns: &[&str]) -> Result<meta::Regex, String> {
    let mut hirs = Vec::with_capacity(patterns.len());
    for p in patterns {
        let hir = regex_syntax::ParserBuilder::new()
            .case_insensitive(true)
            .build()
            .parse(&lean_word_classes(p))
            .map_err(|e| e.to_string())?;
        hirs.push(boundary::ascii_where_equal(&hir));
    }
    // The lazy DFA's cache is the engine's default size: one pattern's states fit in it many
    // times over (the whole rule set's caches hold about 13 MiB after 6 000 varied reports,
    // `cargo bench --bench classify`). No prefilter: the keywords already placed every search.
    meta::Regex::builder()
        .configure(
            meta::Config::new()
                .nfa_size_limit(Some(SIZE_LIMIT))
                .hybrid_cache_capacity(2 << 20)
                .auto_prefilter(false),
        )
        .build_many_from_hir(&hirs)
        .map_err(|e| e.to_string())
}

/// `\w` outside a class: ASCII word characters, or any non-ASCII character. Exempt from case
/// folding, which over that range costs seconds and changes nothing.
const WORD: &str = r"(?-i:[0-9A-Za-z_\x{80}-\x{10FFFF}])";
const NON_WORD: &str = r"(?-i:[^0-9A-Za-z_\x{80}-\x{10FFFF}])";

/// Rewrite `\w` and `\W` so that every non-ASCII character counts as a word character.
///
/// Why: Unicode's `\w` is a table of hundreds of ranges, and the shipped rules use it about
/// 250 times; compiled into one set that cost ~75 MB of resident memory and half a second per
/// process. Counting every non-ASCII character as a word character keeps words such as
/// "Schlüssel" or "révoqué" whole (what the rules need), at a sliver of the cost. `\b` keeps
/// its Unicode meaning, which agrees with this for letters (`boundary` makes it ASCII's where
/// the two agree).
fn lean_word_classes(p: &str) -> String {
    let mut out = String::with_capacity(p.len() + 16);
    let mut chars = p.chars();
    let mut depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('w') if depth > 0 => out.push_str(r"0-9A-Za-z_\x{80}-\x{10FFFF}"),
                Some('W') if depth > 0 => out.push_str(r"[^0-9A-Za-z_\x{80}-\x{10FFFF}]"),
                Some('w') => out.push_str(WORD),
                Some('W') => out.push_str(NON_WORD),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '[' => {
                depth += 1;
                out.push(c);
            }
            ']' if depth > 0 => {
                depth -= 1;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// Compile validated rules for matching, and check that their `overrides` name rules of the
/// set and never loop (a loop would let two rules each hide the other).
fn compile(rules: &[Rule]) -> Result<Matcher, RulesError> {
    let index: HashMap<&str, usize> = rules
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let mut overridden_by = vec![Vec::new(); rules.len()];
    let mut related = vec![false; rules.len()];
    for (i, r) in rules.iter().enumerate() {
        for o in &r.overrides {
            let Some(&j) = index.get(o.as_str()) else {
                return Err(RulesError::Invalid {
                    file: r.file.clone(),
                    rule: r.id.clone(),
                    problem: format!("overrides {o:?}, which is no rule of the set"),
                });
            };
            if j == i {
                return Err(RulesError::Invalid {
                    file: r.file.clone(),
                    rule: r.id.clone(),
                    problem: "overrides itself".into(),
                });
            }
            overridden_by[j].push(i);
            related[i] = true;
            related[j] = true;
        }
    }
    if let Some(r) = override_cycle(rules, &overridden_by) {
        return Err(RulesError::Invalid {
            file: rules[r].file.clone(),
            rule: rules[r].id.clone(),
            problem: "its overrides form a loop; a rule may only override more generic ones".into(),
        });
    }
    let too_large = |e: String| RulesError::TooLarge(e);
    // One regex per pattern: a union of a rule's patterns was tried, and its lazy DFA kept
    // building states for the combinations of their partial matches (twice as slow on varied
    // text).
    let mut patterns = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word_index: HashMap<String, usize> = HashMap::new();
    let mut keyed: Vec<Vec<usize>> = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        for (field, list) in [(Field::Subject, &r.subject), (Field::Body, &r.body)] {
            for p in list {
                let id = patterns.len();
                let keys = keywords::analyse(p, matcher::REACH).map_err(too_large)?;
                let mut intern = |w: String| -> usize {
                    *word_index.entry(w.clone()).or_insert_with(|| {
                        words.push(w);
                        keyed.push(Vec::new());
                        words.len() - 1
                    })
                };
                let gates = keys
                    .gates
                    .into_iter()
                    .map(|gate| gate.into_iter().map(&mut intern).collect())
                    .collect();
                let anchored = keys.prefixes.is_some();
                let keyed_on: Vec<usize> = keys
                    .prefixes
                    .unwrap_or(keys.required)
                    .into_iter()
                    .map(&mut intern)
                    .collect();
                patterns.push(Pattern {
                    rule: i,
                    field,
                    regex: build_regex(&[p.as_str()]).map_err(too_large)?,
                    anchored,
                    reach: keys.reach,
                    gates,
                });
                for k in keyed_on {
                    keyed[k].push(id);
                }
            }
        }
    }
    let unless = rules
        .iter()
        .map(|r| {
            if r.unless.is_empty() {
                return Ok(None);
            }
            let ps: Vec<&str> = r.unless.iter().map(String::as_str).collect();
            build_regex(&ps).map(Some).map_err(too_large)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Matcher {
        patterns,
        keywords: Matcher::build_keywords(&words).map_err(too_large)?,
        #[cfg(test)]
        keyword_list: words.clone(),
        keyed,
        unless,
        overridden_by,
        related,
    })
}

/// A rule on a loop of `overrides`, if there is one.
fn override_cycle(rules: &[Rule], overridden_by: &[Vec<usize>]) -> Option<usize> {
    // Depth-first search over "is overridden by" edges; a grey node met again closes a loop.
    fn visit(n: usize, edges: &[Vec<usize>], state: &mut [u8]) -> bool {
        state[n] = 1;
        for &m in &edges[n] {
            if state[m] == 1 || (state[m] == 0 && visit(m, edges, state)) {
                return true;
            }
        }
        state[n] = 2;
        false
    }
    let mut state = vec![0u8; rules.len()];
    (0..rules.len()).find(|&n| state[n] == 0 && visit(n, overridden_by, &mut state))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    description: String,
    br_item: i64,
    crl_reason: String,
    window: String,
    #[serde(default)]
    subject: Vec<String>,
    #[serde(default)]
    body: Vec<String>,
    #[serde(default)]
    unless: Vec<String>,
    #[serde(default)]
    overrides: Vec<String>,
}

#[cfg(test)]
mod tests;
