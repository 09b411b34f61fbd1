//! Staff commands: `CPR-<Key>: <arguments>` lines in staff mail (README "Configuration",
//! **Staff commands**).
//!
//! Staff steer the clocks by writing one command per line anywhere in a message. Lines quoted
//! with `>` are somebody else's words (often an earlier command being replied to): they are
//! ignored, or every reply would fire the old command again.

use super::target;
use crate::domain::ids::CaseId;
use crate::domain::model::{BadCommand, Command, Timestamp};
use crate::domain::timefmt;
use regex::Regex;
use std::sync::LazyLock;

/// `CPR-<Key>:` at the start of a line (after indentation). Keys are letters and hyphens, so a
/// case tag such as `CPR-2026-0042` is not a command.
static COMMAND: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^\s*CPR-([a-z][a-z-]*)\s*:(.*)$").expect("static regex"));

/// How much of a bad line is echoed back.
const MAX_LINE_CHARS: usize = 200;

const REVOKED_FORM: &str = "CPR-Revoked: <certificate or key reference> [<RFC 3339 time>]";
const NOT_REVOKING_FORM: &str = "CPR-Not-Revoking: <certificate or key reference> <reason>";
const ANSWERED_FORM: &str = "CPR-Answered: <where> [<RFC 3339 time>]";
const DISMISS_FORM: &str = "CPR-Dismiss: <reason>";
const REASON_FORM: &str =
    "CPR-Reason: <certificate or key reference> <BR 4.9.1.1 item 1-16> [note]";
const DELAYED_FORM: &str = "CPR-Delayed: <certificate or key reference, or case id CPR-YYYY-NNNN> <incident URL or reason>";
const REFERENCE_FORMS: &str =
    "crtsh:<id>, sha256:<hex>, spki:<hex>, a crt.sh link or a SHA-256 fingerprint";

/// Every command in `texts`, in order, and every `CPR-` line that could not be understood.
pub(crate) fn commands(texts: &[String]) -> (Vec<Command>, Vec<BadCommand>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for line in texts.iter().flat_map(|t| t.lines()) {
        // The regex's own literal prefix, checked first: almost no line is a command, and
        // running the regex on each costs more than the rest of the extractor together.
        let starts_like_one = line
            .trim_start()
            .as_bytes()
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"cpr-"));
        if !starts_like_one {
            continue;
        }
        let Some(caps) = COMMAND.captures(line) else {
            continue;
        };
        let (Some(key), Some(args)) = (caps.get(1), caps.get(2)) else {
            continue;
        };
        match parse(key.as_str(), args.as_str().trim()) {
            Ok(command) => good.push(command),
            Err(problem) => bad.push(BadCommand {
                line: line.trim().chars().take(MAX_LINE_CHARS).collect(),
                problem,
            }),
        }
    }
    (good, bad)
}

/// One command from its key and arguments; the error says what is wrong and what was expected.
fn parse(key: &str, args: &str) -> Result<Command, String> {
    match key.to_ascii_lowercase().as_str() {
        "revoked" => revoked(args),
        "not-revoking" => not_revoking(args),
        "answered" => answered(args),
        "dismiss" => {
            required(args, "a reason", DISMISS_FORM).map(|reason| Command::Dismiss { reason })
        }
        "reason" => reason(args),
        "delayed" => delayed(args),
        other => Err(format!(
            "unknown command CPR-{other}; expected one of: {REVOKED_FORM} | {NOT_REVOKING_FORM} | {ANSWERED_FORM} | {DISMISS_FORM} | {REASON_FORM} | {DELAYED_FORM}"
        )),
    }
}

fn revoked(args: &str) -> Result<Command, String> {
    let (reference, rest) = split_first(args);
    let target = reference_of(reference, REVOKED_FORM)?;
    let at = if rest.is_empty() {
        None
    } else {
        Some(time_of(rest, REVOKED_FORM)?)
    };
    Ok(Command::Revoked { target, at })
}

fn not_revoking(args: &str) -> Result<Command, String> {
    let (reference, rest) = split_first(args);
    let target = reference_of(reference, NOT_REVOKING_FORM)?;
    let reason = required(rest, "a reason", NOT_REVOKING_FORM)?;
    Ok(Command::NotRevoking { target, reason })
}

/// A clock staff know is (or will be) late: a case id names its preliminary-report clock, any
/// other reference a revocation clock. The reason is required: it is what the log keeps to
/// show why the desk let the clock run over (for a revocation, the public incident's URL).
fn delayed(args: &str) -> Result<Command, String> {
    let (reference, rest) = split_first(args);
    let target = match CaseId::parse(reference) {
        Some(case) => case.to_string(),
        None => reference_of(reference, DELAYED_FORM).map_err(|e| {
            if reference.is_empty() {
                e
            } else {
                format!(
                    "not a case id (CPR-YYYY-NNNN) nor a certificate or key reference: {REFERENCE_FORMS}; expected {DELAYED_FORM}"
                )
            }
        })?,
    };
    let reason = required(rest, "an incident URL or reason", DELAYED_FORM)?;
    Ok(Command::Delayed { target, reason })
}

/// The BR item the CA determined; `item 6`, `#6` and `6` all name item 6.
fn reason(args: &str) -> Result<Command, String> {
    let (reference, rest) = split_first(args);
    let target = reference_of(reference, REASON_FORM)?;
    let rest = rest
        .strip_prefix("item")
        .or_else(|| rest.strip_prefix("Item"))
        .unwrap_or(rest)
        .trim_start();
    let (number, note) = split_first(rest);
    let number = number.trim_start_matches('#');
    if number.is_empty() {
        return Err(format!("missing the BR item; expected {REASON_FORM}"));
    }
    let item = number
        .parse::<u8>()
        .ok()
        .filter(|i| (1..=16).contains(i))
        .ok_or_else(|| {
            format!("{number:?} is not a BR 4.9.1.1 item (1 to 16); expected {REASON_FORM}")
        })?;
    let note = (!note.is_empty()).then(|| note.to_string());
    Ok(Command::Reason { target, item, note })
}

/// The time, if any, is the last token; everything before it is the place.
fn answered(args: &str) -> Result<Command, String> {
    let (place, at) = match args.rsplit_once(char::is_whitespace) {
        Some((place, last)) => match timefmt::parse(last) {
            Ok(at) => (place.trim(), Some(at)),
            Err(_) => (args, None),
        },
        None => (args, None),
    };
    if at.is_none() && timefmt::parse(args).is_ok() {
        return Err(format!(
            "missing where the answer was sent; expected {ANSWERED_FORM}"
        ));
    }
    let place = required(place, "where the answer was sent", ANSWERED_FORM)?;
    Ok(Command::Answered { place, at })
}

fn split_first(args: &str) -> (&str, &str) {
    match args.split_once(char::is_whitespace) {
        Some((first, rest)) => (first, rest.trim()),
        None => (args, ""),
    }
}

fn reference_of(reference: &str, form: &str) -> Result<String, String> {
    if reference.is_empty() {
        return Err(format!("missing reference; expected {form}"));
    }
    target::parse(reference)
        .map(|t| t.canonical())
        .ok_or_else(|| {
            format!("not a certificate or key reference: {REFERENCE_FORMS}; expected {form}")
        })
}

fn time_of(s: &str, form: &str) -> Result<Timestamp, String> {
    timefmt::parse(s)
        .map_err(|_| format!("not an RFC 3339 time (like 2026-03-01T09:30:00Z); expected {form}"))
}

fn required(s: &str, what: &str, form: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        Err(format!("missing {what}; expected {form}"))
    } else {
        Ok(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "55a7d05c16ef8fb68ef1c4d9b877b19d326f0ef41d50572194891ba8c9be5f5c";

    fn run(text: &str) -> (Vec<Command>, Vec<BadCommand>) {
        commands(&[text.to_string()])
    }

    fn at(s: &str) -> Option<Timestamp> {
        Some(timefmt::parse(s).expect("valid time"))
    }

    #[test]
    fn revoked_forms() {
        let text = format!(
            "Hi,\n\ncpr-revoked: https://crt.sh/?id=1777593900 2026-03-01T10:30:00+01:00\n  CPR-REVOKED: {}\nCPR-Revoked: spki:{HEX}\n",
            HEX.to_uppercase()
        );
        let (good, bad) = run(&text);
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(
            good,
            vec![
                Command::Revoked {
                    target: "crtsh:1777593900".into(),
                    at: at("2026-03-01T09:30:00Z")
                },
                Command::Revoked {
                    target: format!("sha256:{HEX}"),
                    at: None
                },
                Command::Revoked {
                    target: format!("spki:{HEX}"),
                    at: None
                },
            ]
        );
    }

    #[test]
    fn not_revoking_answered_dismiss() {
        let text = "CPR-Not-Revoking: crtsh:42 already expired on 2026-01-01\n\
                    CPR-Answered: reply to reporter 2026-03-01T09:30:00Z\n\
                    CPR-Answered: ticket #1234\n\
                    CPR-Dismiss: spam, no certificate named\n";
        let (good, bad) = run(text);
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(
            good,
            vec![
                Command::NotRevoking {
                    target: "crtsh:42".into(),
                    reason: "already expired on 2026-01-01".into()
                },
                Command::Answered {
                    place: "reply to reporter".into(),
                    at: at("2026-03-01T09:30:00Z")
                },
                Command::Answered {
                    place: "ticket #1234".into(),
                    at: None
                },
                Command::Dismiss {
                    reason: "spam, no certificate named".into()
                },
            ]
        );
    }

    #[test]
    fn reason_names_a_reference_and_a_br_item() {
        let (good, bad) = commands(&[concat!(
            "CPR-Reason: crtsh:42 6 RSA-1024, not computable\n",
            "cpr-reason: https://crt.sh/?id=43 item 4\n",
            "CPR-Reason: crtsh:44 #10\n",
            "CPR-Reason: crtsh:45 17\n",
            "CPR-Reason: crtsh:46\n",
            "CPR-Reason: nothing 3\n",
        )
        .to_string()]);
        assert_eq!(
            good,
            [
                Command::Reason {
                    target: "crtsh:42".into(),
                    item: 6,
                    note: Some("RSA-1024, not computable".into())
                },
                Command::Reason {
                    target: "crtsh:43".into(),
                    item: 4,
                    note: None
                },
                Command::Reason {
                    target: "crtsh:44".into(),
                    item: 10,
                    note: None
                },
            ]
        );
        let problems: Vec<&str> = bad.iter().map(|b| b.problem.as_str()).collect();
        assert!(
            problems[0].contains("not a BR 4.9.1.1 item"),
            "{problems:?}"
        );
        assert!(problems[1].contains("missing the BR item"), "{problems:?}");
        assert!(
            problems[2].contains("not a certificate or key reference"),
            "{problems:?}"
        );
    }

    #[test]
    fn delayed_names_a_reference_or_a_case_and_needs_a_reason() {
        let (good, bad) = commands(&[concat!(
            "CPR-Delayed: https://crt.sh/?id=42 https://bugzilla.mozilla.org/show_bug.cgi?id=1\n",
            "cpr-delayed: cpr-2026-0007   waiting for the subscriber's maintenance window\n",
            "CPR-Delayed: crtsh:43\n",
            "CPR-Delayed: CPR-2026-0001\n",
            "CPR-Delayed: example.com late\n",
            "CPR-Delayed:\n",
        )
        .to_string()]);
        assert_eq!(
            good,
            [
                Command::Delayed {
                    target: "crtsh:42".into(),
                    reason: "https://bugzilla.mozilla.org/show_bug.cgi?id=1".into()
                },
                Command::Delayed {
                    target: "CPR-2026-0007".into(),
                    reason: "waiting for the subscriber's maintenance window".into()
                },
            ]
        );
        let problems: Vec<&str> = bad.iter().map(|b| b.problem.as_str()).collect();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(
            problems[0].contains("missing an incident URL or reason"),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("missing an incident URL or reason"),
            "{problems:?}"
        );
        assert!(problems[2].contains("not a case id"), "{problems:?}");
        assert!(problems[3].contains("missing reference"), "{problems:?}");
        assert!(
            problems.iter().all(|p| p.contains(DELAYED_FORM)),
            "{problems:?}"
        );
    }

    #[test]
    fn quoted_lines_are_ignored() {
        let (good, bad) = run("> CPR-Revoked: crtsh:42\n>> CPR-Dismiss: old\n  > CPR-Bogus: x\n");
        assert!(good.is_empty());
        assert!(bad.is_empty());
    }

    #[test]
    fn bad_commands_say_why() {
        let cases = [
            (
                "CPR-Revoked: example.com",
                "not a certificate or key reference",
            ),
            ("CPR-Revoked: crtsh:42 yesterday", "not an RFC 3339 time"),
            ("CPR-Revoked:", "missing reference"),
            ("CPR-Not-Revoking: crtsh:42", "missing a reason"),
            ("CPR-Dismiss:   ", "missing a reason"),
            ("CPR-Answered: 2026-03-01T09:30:00Z", "missing where"),
            ("CPR-Revoke: crtsh:42", "unknown command CPR-revoke"),
            ("CPR-Delay: crtsh:42 later", "CPR-Delayed: <"),
        ];
        for (line, problem) in cases {
            let (good, bad) = run(line);
            assert!(good.is_empty(), "{line}");
            assert_eq!(bad.len(), 1, "{line}");
            assert_eq!(bad[0].line, line.trim());
            assert!(
                bad[0].problem.contains(problem),
                "{line}: {}",
                bad[0].problem
            );
            assert!(bad[0].problem.contains("expected"), "{line}");
        }
    }

    #[test]
    fn case_tags_and_prose_are_not_commands() {
        let (good, bad) =
            run("Re: [CPR-2026-0042] your report\nCPR-2026-0042: noted\nThe CPR process: fine\n");
        assert!(good.is_empty());
        assert!(bad.is_empty());
    }

    #[test]
    fn long_bad_line_is_cut() {
        let line = format!("CPR-Dismiss-All: {}", "x".repeat(500));
        let (_, bad) = run(&line);
        assert_eq!(bad[0].line.chars().count(), MAX_LINE_CHARS);
    }
}
