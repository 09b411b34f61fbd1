//! Revocation-reason rules: which BR 4.9.1.1 item a report's wording points at, and so how
//! long the CA has to revoke (24 hours for items 1–5, 5 days for items 6–16).
//!
//! Rules are data, not code (`rules/*.toml`), so a CA can tune the wording its reporters use
//! without a release; a default set ships inside the binary. Every rule is checked against the
//! BR text it cites — the right CRLReason for its item, a window no longer than the BRs allow —
//! because a rule that grants 5 days for a key compromise would make cprwatch certify a breach
//! as "met".
//!
//! Matching is deliberately simple: a rule hits when any of its subject regexes matches the
//! subject or any of its body regexes matches any text of the message. Regexes are
//! case-insensitive unless they switch it off (`(?-i)`). All patterns are compiled into two
//! [`RegexSet`]s, so classifying a message is one pass over each text whatever the number of
//! rules. The engine decides what several hits mean (normally: the shortest window wins); with
//! no hit it applies the conservative 24 hours.

use crate::model::RuleHit;
use crate::timefmt::{format_span, parse_span};
use regex::{RegexBuilder, RegexSet, RegexSetBuilder};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use time::Duration;

/// The CRLReasons the BRs name in 4.9.1.1 (RFC 5280 §5.3.1 codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CrlReason {
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

    /// The RFC 5280 `CRLReason` code.
    pub fn code(self) -> u8 {
        match self {
            CrlReason::Unspecified => 0,
            CrlReason::KeyCompromise => 1,
            CrlReason::Superseded => 4,
            CrlReason::CessationOfOperation => 5,
            CrlReason::PrivilegeWithdrawn => 9,
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
    pub fn for_br_item(item: u8) -> Option<CrlReason> {
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
pub fn br_max_window(item: u8) -> Option<Duration> {
    match item {
        1..=5 => Some(Duration::hours(24)),
        6..=16 => Some(Duration::days(5)),
        _ => None,
    }
}

/// One validated rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
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
}

/// A validated, compiled set of rules.
#[derive(Clone, Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    subject_set: RegexSet,
    /// Pattern index in `subject_set` → rule index.
    subject_owner: Vec<usize>,
    body_set: RegexSet,
    body_owner: Vec<usize>,
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

/// Rule files shipped in the binary, in the order `load_dir` would read them.
const SHIPPED: &[(&str, &str)] = &[
    (
        "24h-items-1-5.toml",
        include_str!("../rules/24h-items-1-5.toml"),
    ),
    (
        "5d-items-6-16.toml",
        include_str!("../rules/5d-items-6-16.toml"),
    ),
];

/// Compiled-program limits: generous, because the whole rule set shares one [`RegexSet`].
const SIZE_LIMIT: usize = 64 << 20;

impl RuleSet {
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

    /// Every `*.toml` file in `dir`, read in name order.
    pub fn load_dir(dir: &Path) -> Result<RuleSet, RulesError> {
        let read_dir = |source| RulesError::ReadDir {
            dir: dir.to_path_buf(),
            source,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_dir)? {
            let path = entry.map_err(read_dir)?.path();
            if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
                paths.push(path);
            }
        }
        if paths.is_empty() {
            return Err(RulesError::NoFiles {
                dir: dir.to_path_buf(),
            });
        }
        paths.sort();
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|source| RulesError::ReadFile {
                path: path.clone(),
                source,
            })?;
            files.push((path.display().to_string(), text));
        }
        RuleSet::from_sources(&files)
    }

    /// Parse, validate and compile rule files given as `(file name, text)`, in this order.
    pub fn from_sources(files: &[(String, String)]) -> Result<RuleSet, RulesError> {
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
        let (subject_set, subject_owner) = compile_set(&rules, |r| &r.subject)?;
        let (body_set, body_owner) = compile_set(&rules, |r| &r.body)?;
        Ok(RuleSet {
            rules,
            subject_set,
            subject_owner,
            body_set,
            body_owner,
        })
    }

    /// The rules that match a message, in rule order, each at most once.
    pub fn classify(&self, subject: &str, texts: &[String]) -> Vec<RuleHit> {
        let mut hit = vec![false; self.rules.len()];
        for i in self.subject_set.matches(subject).iter() {
            hit[self.subject_owner[i]] = true;
        }
        for text in texts {
            for i in self.body_set.matches(text).iter() {
                hit[self.body_owner[i]] = true;
            }
        }
        self.rules
            .iter()
            .zip(hit)
            .filter(|(_, h)| *h)
            .map(|(r, _)| RuleHit {
                id: r.id.clone(),
                br_item: r.br_item,
                window_secs: r.window.whole_seconds(),
            })
            .collect()
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// A rule by id.
    pub fn get(&self, id: &str) -> Option<&Rule> {
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
    for (kind, patterns) in [("subject", &r.subject), ("body", &r.body)] {
        for (i, p) in patterns.iter().enumerate() {
            if let Err(e) = RegexBuilder::new(&lean_word_classes(p))
                .case_insensitive(true)
                .size_limit(SIZE_LIMIT)
                .build()
            {
                return Err(invalid(format!("{kind}[{i}] does not compile: {e}")));
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
        id: r.id,
    })
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
/// its Unicode meaning, which agrees with this for letters.
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

/// One [`RegexSet`] over one kind of pattern of every rule, with each pattern's owner.
fn compile_set(
    rules: &[Rule],
    patterns: impl Fn(&Rule) -> &Vec<String>,
) -> Result<(RegexSet, Vec<usize>), RulesError> {
    let mut all = Vec::new();
    let mut owner = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        for p in patterns(r) {
            all.push(lean_word_classes(p));
            owner.push(i);
        }
    }
    let set = RegexSetBuilder::new(all)
        .case_insensitive(true)
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(SIZE_LIMIT)
        .build()
        .map_err(|e| RulesError::TooLarge(e.to_string()))?;
    Ok((set, owner))
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
}

#[cfg(test)]
mod tests;
