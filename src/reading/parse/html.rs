//! HTML → plain text, for reference extraction rather than display.
//!
//! Reporters paste crt.sh links into HTML mail as `<a href="…">certificate</a>`: the visible text
//! says nothing, the reference is in the attribute. So besides rendering the text (entities
//! decoded, tags dropped, `<script>`/`<style>` bodies skipped) this appends every `href` and
//! `src` value, decoded, on a line of its own. One linear pass, no DOM: mail HTML is too often
//! broken for a strict parser to be worth it, and the extractor only needs the words and links.

/// Render `html` as text and append every `href`/`src` attribute value (entity-decoded), one per
/// line, after the text.
pub(crate) fn to_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len() / 2);
    let mut links: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        push_decoded(&mut text, &rest[..lt]);
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |end| &after[end + 3..]);
            continue;
        }
        let Some(gt) = tag_end(rest) else {
            // A lone `<` with no closing `>`: text, not markup.
            push_decoded(&mut text, rest);
            rest = "";
            break;
        };
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        let name = tag_name(tag);
        collect_links(tag, &mut links);
        if name.eq_ignore_ascii_case("script") || name.eq_ignore_ascii_case("style") {
            rest = skip_raw_element(rest, name);
        }
        if is_block(name) {
            if !text.ends_with('\n') && !text.is_empty() {
                text.push('\n');
            }
        } else if !text.ends_with(char::is_whitespace) && !text.is_empty() {
            // `<td>a</td><td>b</td>` must not read as `ab`.
            text.push(' ');
        }
    }
    push_decoded(&mut text, rest);
    for link in links {
        if !text.ends_with('\n') && !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&link);
        text.push('\n');
    }
    text
}

/// Decode HTML character references: the named ones mail uses and any numeric one.
/// Unknown or malformed references are kept literally.
pub(crate) fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_decoded(&mut out, s);
    out
}

fn push_decoded(out: &mut String, s: &str) {
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        // Entity names are short; bounding the search keeps this linear on `&&&&…`.
        let window = rest.char_indices().take(12).find(|&(_, c)| c == ';');
        let decoded = window.and_then(|(semi, _)| entity(&rest[1..semi]).map(|c| (c, semi)));
        match decoded {
            Some((c, semi)) => {
                out.extend(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
}

/// `Some(None)`: a reference that decodes to nothing (soft hyphen, zero-width joiners), which
/// senders and HTML editors sprinkle inside long hex strings.
fn entity(name: &str) -> Option<Option<char>> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse::<u32>().ok()?,
        };
        return match code {
            0xad | 0x200b..=0x200d | 0xfeff => Some(None),
            _ => char::from_u32(code).map(Some),
        };
    }
    Some(Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "sol" => '/',
        "colon" => ':',
        "equals" => '=',
        "quest" => '?',
        "num" => '#',
        "percnt" => '%',
        "commat" => '@',
        "period" => '.',
        "lowbar" => '_',
        "hyphen" | "dash" | "ndash" => '-',
        "mdash" => '—',
        "copy" => '©',
        "reg" => '®',
        "shy" | "zwnj" | "zwj" => return Some(None),
        _ => return None,
    }))
}

/// Index of the `>` closing the tag that starts at `s[0] == '<'`, skipping `>` inside quoted
/// attribute values.
fn tag_end(s: &str) -> Option<usize> {
    let mut quote: Option<u8> = None;
    for (i, b) in s.bytes().enumerate().skip(1) {
        match (quote, b) {
            (Some(q), b) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(b),
            (None, b'>') => return Some(i),
            _ => {}
        }
    }
    None
}

fn tag_name(tag: &str) -> &str {
    let t = tag.trim_start_matches('/');
    let end = t
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .unwrap_or(t.len());
    &t[..end]
}

fn is_block(name: &str) -> bool {
    const BLOCKS: &[&str] = &[
        "br",
        "p",
        "div",
        "tr",
        "li",
        "ul",
        "ol",
        "table",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "pre",
        "blockquote",
        "hr",
        "section",
        "article",
        "header",
        "footer",
        "dd",
        "dt",
    ];
    BLOCKS.iter().any(|b| b.eq_ignore_ascii_case(name))
}

/// Skip past `</name>` (case-insensitive); the content of script/style is never text.
fn skip_raw_element<'a>(rest: &'a str, name: &str) -> &'a str {
    let bytes = rest.as_bytes();
    let mut from = 0;
    while let Some(lt) = rest[from..].find("</").map(|p| from + p) {
        let candidate = bytes.get(lt + 2..lt + 2 + name.len());
        if candidate.is_some_and(|c| c.eq_ignore_ascii_case(name.as_bytes())) {
            let after = &rest[lt..];
            return after.find('>').map_or("", |gt| &after[gt + 1..]);
        }
        from = lt + 2;
    }
    ""
}

/// Append the decoded values of `href=` and `src=` attributes found in one tag's source.
fn collect_links(tag: &str, links: &mut Vec<String>) {
    let bytes = tag.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // Find an attribute name start preceded by whitespace.
        let is_start = i > 0 && bytes[i - 1].is_ascii_whitespace();
        let name_len = if !is_start {
            0
        } else if bytes[i..].len() >= 4 && bytes[i..i + 4].eq_ignore_ascii_case(b"href") {
            4
        } else if bytes[i..].len() >= 3 && bytes[i..i + 3].eq_ignore_ascii_case(b"src") {
            3
        } else {
            0
        };
        if name_len == 0 {
            i += 1;
            continue;
        }
        let mut j = i + name_len;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        if j >= bytes.len() || bytes[j] != b'=' {
            i += name_len;
            continue;
        }
        j += 1;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        let (start, end) = match bytes.get(j) {
            Some(&q @ (b'"' | b'\'')) => {
                let end = tag[j + 1..]
                    .find(q as char)
                    .map_or(tag.len(), |e| j + 1 + e);
                (j + 1, end)
            }
            Some(_) => {
                let end = tag[j..]
                    .find(|c: char| c.is_whitespace())
                    .map_or(tag.len(), |e| j + e);
                (j, end)
            }
            None => (j, j),
        };
        let value = decode_entities(tag[start..end].trim());
        if !value.is_empty() {
            links.push(value);
        }
        i = end.max(i + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_only_in_href_survives_with_entities_decoded() {
        let html =
            r#"<p>See <a href="https://crt.sh/?id=123&amp;opt=ocsp">this certificate</a>.</p>"#;
        let text = to_text(html);
        assert!(text.contains("this certificate"), "{text}");
        assert!(text.contains("https://crt.sh/?id=123&opt=ocsp"), "{text}");
    }

    #[test]
    fn entities_named_and_numeric() {
        assert_eq!(
            decode_entities("a&lt;b&gt;&quot;&apos;&nbsp;&#65;&#x42;&#X43;&amp;"),
            "a<b>\"' ABC&"
        );
        assert_eq!(
            decode_entities("AT&T &bogus; & &#xZZ;"),
            "AT&T &bogus; & &#xZZ;"
        );
        assert_eq!(decode_entities("ab&shy;cd&#8203;ef"), "abcdef");
    }

    #[test]
    fn script_style_comments_dropped_and_cells_separated() {
        let html = "<style>p{color:red}</style><SCRIPT>var x='<b>'</SCRIPT><!-- hidden -->\
                    <table><tr><td>serial</td><td>01AB</td></tr></table>";
        let text = to_text(html);
        assert!(!text.contains("color"));
        assert!(!text.contains("var x"));
        assert!(!text.contains("hidden"));
        assert!(text.contains("serial 01AB"), "{text:?}");
    }

    #[test]
    fn src_and_unquoted_and_broken_markup() {
        let text = to_text("<img src=https://x.example/a.png alt=x> tail < not a tag");
        assert!(text.contains("https://x.example/a.png"));
        assert!(text.contains("< not a tag"));
        // No attribute called `xhref` is a link.
        assert!(!to_text(r#"<a xhref="nope">"#).contains("nope"));
    }

    #[test]
    fn greater_than_inside_quoted_attribute() {
        let text = to_text(r#"<a title="a>b" href="https://crt.sh/?sha256=AB">x</a>"#);
        assert!(text.contains("https://crt.sh/?sha256=AB"));
        assert!(!text.contains("b\""));
    }
}
