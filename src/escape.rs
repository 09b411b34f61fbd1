//! Neutralising what reporters write before it reaches a person.
//!
//! Anyone can mail the CPR address, so a subject, a display name, a Message-Id, an attachment
//! name or an excerpt of a report is attacker-controlled text. Printed raw, an ESC sequence
//! clears or recolours the staff's terminal, a newline or carriage return starts what looks
//! like a line of cprwatch's own, and a bidirectional override makes a line read differently
//! from the bytes it holds. So every such string goes through this module on its way to a
//! terminal, a text report or a log, and each function here fits one medium:
//!
//! - [`text`] for text output (a terminal, a text report): every hazardous character becomes a
//!   visible escape (`\x1b`, `\n`, `\u{202e}`), so the string stays on its line and means what
//!   its bytes say;
//! - [`log_value`] for a field of a text log line: a plain token stays bare, anything else is
//!   quoted, with `"` and `\` escaped too, so a value can never end early and forge a field or
//!   a line;
//! - `html` for the HTML part of a mail cprwatch sends: as [`text`], and `&`, `<`, `>`, `"`
//!   and `'` as character references, so a report's `<script>` or `<a href>` shows as text and
//!   a value can sit in a quoted attribute;
//! - [`json_text`] for JSON made by `serde_json`: the C0 controls are already escaped by it;
//!   the other hazards become `\uXXXX` escapes, so the JSON decodes to the very same string
//!   while its bytes show nothing a terminal would act on;
//! - [`markdown`] for Markdown text (the audit export): as [`text`], then every ASCII
//!   punctuation character that Markdown or its extensions give a meaning backslash-escaped,
//!   so a report's `<img>`, `[text](url)`, bare URL or `|` shows as text;
//! - [`csv_field`] for a CSV cell (the audit export): as [`text`], a cell a spreadsheet would
//!   take for a formula prefixed with `'`, and quoted as RFC 4180 says.
//!
//! Pure: no I/O, no allocation when there is nothing to escape.

use std::borrow::Cow;
use std::fmt::Write;

/// A character that must not reach a terminal or a log as it is: C0 and C1 control characters
/// and DEL (`char::is_control`: ESC, CR, LF, TAB, NEL, CSI, …), the bidirectional marks,
/// embeddings, overrides and isolates (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069),
/// and the Unicode line and paragraph separators (U+2028, U+2029), which some viewers break
/// lines at.
pub fn is_hazard(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `s` for text output: every hazardous character as a visible escape (`\t`, `\n`, `\r`, other
/// ASCII controls and DEL as `\xNN`, the rest as `\u{NNNN}`). Everything else is unchanged.
pub fn text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_hazard) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if is_hazard(c) {
            push_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Like [`text`], but line breaks stay: for a block of several lines written by cprwatch
/// (an error with its context) that may quote outside text.
pub fn text_lines(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && is_hazard(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if c != '\n' && is_hazard(c) {
            push_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `s` as the value of a `key=value` field in a text log line: bare when it is a plain token
/// (printable ASCII other than space, `"`, `\` and `=`), else in double quotes with `"` and `\`
/// escaped and every hazardous character as in [`text`]. An empty value is `""`.
pub fn log_value(s: &str) -> Cow<'_, str> {
    let token = |c: char| c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '=');
    if !s.is_empty() && s.chars().all(token) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_hazard(c) => push_escape(&mut out, c),
            c => out.push(c),
        }
    }
    out.push('"');
    Cow::Owned(out)
}

/// `s` for HTML text or a double- or single-quoted attribute value: every hazardous character
/// as a visible escape (as in [`text`]), then `&`, `<`, `>`, `"` and `'` as character
/// references. Nothing from a report reaches an HTML part as markup.
pub(crate) fn html(s: &str) -> Cow<'_, str> {
    let special = |c: char| matches!(c, '&' | '<' | '>' | '"' | '\'');
    if !s.chars().any(|c| special(c) || is_hazard(c)) {
        return Cow::Borrowed(s);
    }
    let shown = text(s);
    let mut out = String::with_capacity(shown.len() + 16);
    for c in shown.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// JSON text made by `serde_json` (compact or pretty) with every hazardous character that it
/// leaves as it is (DEL, C1 controls, bidirectional controls, U+2028/U+2029) written as a
/// `\uXXXX` escape. `serde_json` escapes the C0 controls itself, and outside strings JSON holds
/// only ASCII punctuation and whitespace, so each of these sits inside a string, where the
/// escape decodes to the same character: the JSON means exactly what it meant. Newlines (the
/// layout of pretty JSON, the end of a JSON line) stay.
pub(crate) fn json_text(s: &str) -> Cow<'_, str> {
    let hazard = |c: char| c != '\n' && is_hazard(c);
    if !s.chars().any(hazard) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if hazard(c) {
            // Every hazard is in the Basic Multilingual Plane: one \uXXXX each.
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// ASCII punctuation [`markdown`] leaves as it is: none of these starts or ends any Markdown
/// construct in the middle of a line (the only place cprwatch puts report text), in CommonMark
/// or in GitHub's extensions.
const MARKDOWN_INERT: &str = ",;?/%'\"-";

/// `s` for Markdown text, inline (a list item, a table cell, a heading): every hazardous
/// character as a visible escape (as in [`text`], so it stays on its line), then every ASCII
/// punctuation character but the inert `,;?/%'"-` backslash-escaped. CommonMark lets any ASCII
/// punctuation be escaped and shows it literally, so nothing from a report becomes markup: no
/// raw HTML (`<`, `&`), no link or image (`[`, `]`, `(`, `!`), no autolink (`<`, and GitHub's
/// bare `www.`, `https://` and `a@b.c`, which an escaped `.`, `:` or `@` breaks), no emphasis,
/// code, table cell (`|`), strikethrough (`~`) or math (`$`).
pub(crate) fn markdown(s: &str) -> Cow<'_, str> {
    let special = |c: char| c.is_ascii_punctuation() && !MARKDOWN_INERT.contains(c);
    if !s.chars().any(|c| special(c) || is_hazard(c)) {
        return Cow::Borrowed(s);
    }
    let shown = text(s);
    let mut out = String::with_capacity(shown.len() + 16);
    for c in shown.chars() {
        if special(c) {
            out.push('\\');
        }
        out.push(c);
    }
    Cow::Owned(out)
}

/// `s` as one CSV cell (RFC 4180): every hazardous character as a visible escape (as in
/// [`text`], so a cell is one line), a leading `=`, `+`, `-` or `@` (which spreadsheets read
/// as a formula: `=HYPERLINK(…)`, `@SUM(…)`) prefixed with `'`, and the cell in double quotes,
/// with `"` doubled, when it holds a comma, a quote or a leading or trailing space.
pub(crate) fn csv_field(s: &str) -> Cow<'_, str> {
    let shown = text(s);
    let formula = shown.starts_with(['=', '+', '-', '@']);
    let quote = shown.contains([',', '"']) || shown.starts_with(' ') || shown.ends_with(' ');
    if !formula && !quote {
        return shown;
    }
    let mut out = String::with_capacity(shown.len() + 4);
    if quote {
        out.push('"');
    }
    if formula {
        out.push('\'');
    }
    for c in shown.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quote {
        out.push('"');
    }
    Cow::Owned(out)
}

fn push_escape(out: &mut String, c: char) {
    match c {
        '\t' => out.push_str("\\t"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        c if c.is_ascii() => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a hostile reporter puts in a subject: a screen clear, a colour, a forged log line
    /// after CR and LF, a right-to-left override.
    const HOSTILE: &str = "Hi\x1b[2J\x1b[31m red\r\n2026-03-02T10:00:00Z  INFO cprwatch::service: clock stopped clock=revocation:crtsh:1 state=\"met\" \u{202e}txt.exe";

    fn every_hazard() -> Vec<char> {
        let mut v: Vec<char> = (0u32..0x20)
            .chain(0x7f..0xa0)
            .filter_map(char::from_u32)
            .collect();
        v.extend(['\u{061C}', '\u{200E}', '\u{200F}', '\u{2028}', '\u{2029}']);
        v.extend('\u{202A}'..='\u{202E}');
        v.extend('\u{2066}'..='\u{2069}');
        v
    }

    #[test]
    fn every_hazard_is_one_and_ordinary_text_is_not() {
        for c in every_hazard() {
            assert!(is_hazard(c), "{:?}", c);
        }
        for c in "aZ09 ~!\"\\=é€中😀\u{00a0}\u{200d}".chars() {
            assert!(!is_hazard(c), "{:?}", c);
        }
    }

    #[test]
    fn text_shows_escapes_and_keeps_the_rest() {
        assert!(matches!(text("plain Ünïcode ✓"), Cow::Borrowed(_)));
        assert_eq!(
            text(HOSTILE),
            "Hi\\x1b[2J\\x1b[31m red\\r\\n2026-03-02T10:00:00Z  INFO cprwatch::service: clock stopped clock=revocation:crtsh:1 state=\"met\" \\u{202e}txt.exe"
        );
        assert_eq!(text("a\tb\x7f\u{85}\u{9b}c"), "a\\tb\\x7f\\u{85}\\u{9b}c");
        assert_eq!(
            text("\u{2066}\u{2069}\u{200e}\u{61c}"),
            "\\u{2066}\\u{2069}\\u{200e}\\u{61c}"
        );
        for c in every_hazard() {
            let s = format!("x{c}y");
            let t = text(&s);
            assert!(!t.chars().any(is_hazard), "{:?} → {t}", c);
            assert!(t.len() > 3, "{:?} vanished", c);
        }
    }

    #[test]
    fn text_lines_keeps_line_breaks_only() {
        assert_eq!(text_lines("a\nb\x1b[2J\r"), "a\nb\\x1b[2J\\r");
        assert!(matches!(text_lines("one\ntwo"), Cow::Borrowed(_)));
    }

    #[test]
    fn log_values_are_tokens_or_quoted_and_never_break_out() {
        for token in [
            "CPR-2026-0001",
            "<a.b@c.test>",
            "2026-03-02T10:00:00Z",
            "42",
        ] {
            assert_eq!(log_value(token), token);
        }
        assert_eq!(log_value(""), "\"\"");
        assert_eq!(log_value("a b"), "\"a b\"");
        assert_eq!(log_value("k=v"), "\"k=v\"");
        assert_eq!(log_value(r#"x" state="met"#), r#""x\" state=\"met""#);
        assert_eq!(log_value(r"C:\x"), r#""C:\\x""#);
        let v = log_value(HOSTILE);
        assert!(v.starts_with('"') && v.ends_with('"'), "{v}");
        assert!(!v.chars().any(is_hazard), "{v}");
        // Inside the quotes, every `"` is escaped: the value cannot end early.
        let inner = &v[1..v.len() - 1];
        let mut escaped = false;
        for c in inner.chars() {
            assert!(escaped || c != '"', "unescaped quote in {v}");
            escaped = !escaped && c == '\\';
        }
    }

    #[test]
    fn html_shows_markup_as_text_and_never_breaks_an_attribute() {
        assert!(matches!(html("plain Ünïcode ✓"), Cow::Borrowed(_)));
        assert_eq!(
            html("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(html("a\r\n<b>\u{202e}"), "a\\r\\n&lt;b&gt;\\u{202e}");
        let h = html(HOSTILE);
        assert!(
            !h.chars().any(|c| is_hazard(c) || "<>\"'".contains(c)),
            "{h}"
        );
    }

    #[test]
    fn markdown_shows_markup_as_text() {
        assert!(matches!(markdown("plain Ünïcode, -ok-?"), Cow::Borrowed(_)));
        assert_eq!(
            markdown("[click](https://evil.example) <img src=x onerror=alert(1)>"),
            r"\[click\]\(https\://evil\.example\) \<img src\=x onerror\=alert\(1\)\>"
        );
        assert_eq!(
            markdown("a|b *c* _d_ `e` ~f~ $g$ #h"),
            r"a\|b \*c\* \_d\_ \`e\` \~f\~ \$g\$ \#h"
        );
        assert_eq!(
            markdown("www.evil.example a@b.example &amp;"),
            r"www\.evil\.example a\@b\.example \&amp;"
        );
        // Hazards first become visible escapes, whose backslash is then escaped itself, so
        // the rendered text shows `\x1b`, and a newline cannot start a Markdown line.
        assert_eq!(markdown("a\n# b\x1b"), r"a\\n\# b\\x1b");
        let m = markdown(HOSTILE);
        assert!(!m.chars().any(is_hazard), "{m}");
        // Every special character is preceded by an odd number of backslashes: escaped.
        let chars: Vec<char> = m.chars().collect();
        for (i, c) in chars.iter().enumerate() {
            if c.is_ascii_punctuation() && !MARKDOWN_INERT.contains(*c) && *c != '\\' {
                let slashes = chars[..i].iter().rev().take_while(|&&b| b == '\\').count();
                assert_eq!(slashes % 2, 1, "unescaped {c:?} at {i} in {m}");
            }
        }
    }

    #[test]
    fn csv_fields_quote_as_rfc_4180_and_defuse_formulas() {
        assert!(matches!(csv_field("CPR-2026-0001"), Cow::Borrowed(_)));
        assert_eq!(csv_field("2026-03-02T10:00:00Z"), "2026-03-02T10:00:00Z");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field(" padded "), "\" padded \"");
        assert_eq!(
            csv_field("=HYPERLINK(\"http://evil\")"),
            "\"'=HYPERLINK(\"\"http://evil\"\")\""
        );
        assert_eq!(csv_field("=1+2"), "'=1+2");
        assert_eq!(csv_field("+1"), "'+1");
        assert_eq!(csv_field("-2+3"), "'-2+3");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
        // A line break never reaches the file: one record is one line.
        assert_eq!(csv_field("a\r\nb"), "a\\r\\nb");
        assert_eq!(csv_field("\t=1"), "\\t=1");
        assert_eq!(csv_field(""), "");
    }

    #[test]
    fn json_text_escapes_what_serde_leaves_and_decodes_to_the_original() {
        let mut s: String = every_hazard().into_iter().collect();
        s.push_str(HOSTILE);
        for json in [
            serde_json::to_string(&s).unwrap(),
            serde_json::to_string_pretty(&serde_json::json!({ "subject": s, "n": [1, 2] }))
                .unwrap(),
        ] {
            let safe = json_text(&json);
            assert!(!safe.chars().any(|c| c != '\n' && is_hazard(c)), "{safe}");
            let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
            let orig: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(back, orig);
        }
        assert_eq!(json_text("\"\u{202e}\""), "\"\\u202e\"");
        assert!(matches!(json_text("{\n  \"a\": 1\n}"), Cow::Borrowed(_)));
    }
}
