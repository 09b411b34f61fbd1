//! Property: a reference is never lost. Any reference (a crt.sh URL of each form, also as
//! rewritten by link protection, a crt.sh mention, a SHA-256 fingerprint in hex or colon form,
//! our own canonical forms, a PEM certificate) inserted at any position of any fixture body is
//! found by extraction: in any part of the message, inline or attached, as text/plain or
//! text/html (as text or as a link), under any transfer encoding (7bit, base64,
//! quoted-printable by the book, and quoted-printable as careless senders write it, with the
//! reference's `=` left unescaped), and after any PEM-looking decoy that does not decode (a
//! boundary line quoted in prose, an empty, unterminated or mislabelled block).
//!
//! The messages are built here, from the bodies of every fixture message (`fixtures/scenarios`
//! and `fixtures/maildir`), and read by the library as ingest reads them (parse, then extract).

use base64::Engine as _;
use cprwatch::reading::{extract, parse};
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const LEAF_PEM: &str = include_str!("../fixtures/keys/leaf.pem");
const LEAF_SHA256: &str = "55a7d05c16ef8fb68ef1c4d9b877b19d326f0ef41d50572194891ba8c9be5f5c";
const BOUNDARY: &str = "cprwatch-property-boundary-7f3a";

/// Every message file of the fixtures: `.eml` files under `fixtures/scenarios`, and every
/// message of the demo Maildir (whose file names are Maildir names).
fn fixture_messages() -> Vec<PathBuf> {
    fn walk(dir: &Path, maildir: bool, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            if p.is_dir() {
                walk(&p, maildir, out);
            } else if name.ends_with(".eml") || (maildir && !name.starts_with('.')) {
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut out = Vec::new();
    walk(&root.join("scenarios"), false, &mut out);
    walk(&root.join("maildir"), true, &mut out);
    out
}

/// The text of every part of every fixture message, once each.
fn bodies() -> &'static [String] {
    static BODIES: OnceLock<Vec<String>> = OnceLock::new();
    BODIES.get_or_init(|| {
        let mut out: Vec<String> = Vec::new();
        for path in fixture_messages() {
            let raw = std::fs::read(&path).expect("fixture readable");
            for text in parse::parse(&raw).texts {
                if !out.contains(&text) {
                    out.push(text);
                }
            }
        }
        assert!(out.len() > 50, "only {} fixture bodies found", out.len());
        out
    })
}

/// How a reference is written, and the reference extraction must give for it.
#[derive(Clone, Copy, Debug)]
enum Form {
    IdUrl,
    DUrl,
    Sha256Url,
    QUrl,
    SpkiUrl,
    OptIdUrl,
    /// Rewritten by link protection: Microsoft Safe Links, Proofpoint URL Defense.
    SafeLinks,
    UrlDefense,
    Mention,
    Hex,
    Colons,
    Prefixed,
    Pem,
}

const FORMS: [Form; 13] = [
    Form::IdUrl,
    Form::DUrl,
    Form::Sha256Url,
    Form::QUrl,
    Form::SpkiUrl,
    Form::OptIdUrl,
    Form::SafeLinks,
    Form::UrlDefense,
    Form::Mention,
    Form::Hex,
    Form::Colons,
    Form::Prefixed,
    Form::Pem,
];

impl Form {
    /// (as written, as extracted, whether it is a URL an HTML link can carry).
    fn write(self, id: u64, digest: &[u8; 32], upper: bool) -> (String, String, bool) {
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let shown = if upper {
            hex.to_ascii_uppercase()
        } else {
            hex.clone()
        };
        let colons = shown
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).expect("hex"))
            .collect::<Vec<_>>()
            .join(":");
        let crtsh = format!("crtsh:{id}");
        let sha = format!("sha256:{hex}");
        match self {
            Form::IdUrl => (format!("https://crt.sh/?id={id}"), crtsh, true),
            Form::DUrl => (format!("http://www.crt.sh/?d={id}"), crtsh, true),
            Form::Sha256Url => (format!("https://crt.sh/?sha256={shown}"), sha, true),
            Form::QUrl => (format!("crt.sh/?q={shown}"), sha, true),
            Form::SpkiUrl => (
                format!("https://crt.sh/?spkisha256={shown}"),
                format!("spki:{hex}"),
                true,
            ),
            Form::OptIdUrl => (
                format!("https://crt.sh/?opt=cablint,x509lint&id={id}"),
                crtsh,
                true,
            ),
            Form::SafeLinks => (
                format!(
                    "https://eur01.safelinks.protection.outlook.com/?url=https%3A%2F%2Fcrt.sh\
                     %2F%3Fid%3D{id}&data=05%7C02%7C&reserved=0"
                ),
                crtsh,
                true,
            ),
            Form::UrlDefense => (
                format!("https://urldefense.com/v3/__https://crt.sh/?id={id}__;!!Q2x$"),
                crtsh,
                true,
            ),
            Form::Mention => (format!("crt.sh ID {id}"), crtsh, false),
            Form::Hex => (shown, sha, false),
            Form::Colons => (format!("SHA256 Fingerprint={colons}"), sha, false),
            Form::Prefixed => (format!("sha256:{shown}"), sha, false),
            Form::Pem => (LEAF_PEM.to_string(), format!("sha256:{LEAF_SHA256}"), false),
        }
    }
}

/// Text written just before the reference: PEM-looking things that do not decode.
const DECOYS: [(&str, &str); 6] = [
    ("", ""),
    (
        "the file starts with -----BEGIN RSA PRIVATE KEY----- and the certificate is ",
        "",
    ),
    (
        "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE----- ",
        "",
    ),
    (
        "-----BEGIN CERTIFICATE-----\n",
        "\n-----END CERTIFICATE-----",
    ),
    ("-----BEGIN PRIVATE KEY-----\n", "\n"),
    (
        "-----BEGIN CERTIFICATE-----\nMIIB\n",
        "\n-----END PRIVATE KEY-----",
    ),
];

#[derive(Clone, Copy, Debug)]
enum Encoding {
    SevenBit,
    Base64,
    QuotedPrintable,
    /// Quoted-printable with the inserted text left as written: `=` unescaped.
    CarelessQuotedPrintable,
}

const ENCODINGS: [Encoding; 4] = [
    Encoding::SevenBit,
    Encoding::Base64,
    Encoding::QuotedPrintable,
    Encoding::CarelessQuotedPrintable,
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Markup {
    Plain,
    HtmlText,
    /// In an HTML link's `href`, where the reference is a URL; else as HTML text.
    HtmlLink,
}

const MARKUPS: [Markup; 3] = [Markup::Plain, Markup::HtmlText, Markup::HtmlLink];

/// Quoted-printable by the book (RFC 2045 §6.7): `=`, controls and non-ASCII escaped, blanks
/// before a line break escaped, lines soft-broken before 76 characters.
fn qp_encode(text: &str) -> String {
    let mut out = String::new();
    let lines: Vec<&str> = text.split('\n').collect();
    for (n, line) in lines.iter().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let bytes = line.as_bytes();
        let mut width = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let last = i + 1 == bytes.len();
            let literal = (b'!'..=b'~').contains(&b) && b != b'=' || (b == b' ' && !last);
            let piece = if literal {
                (b as char).to_string()
            } else {
                format!("={b:02X}")
            };
            if width + piece.len() > 75 {
                out.push_str("=\r\n");
                width = 0;
            }
            width += piece.len();
            out.push_str(&piece);
        }
        if n + 1 < lines.len() {
            out.push_str("\r\n");
        }
    }
    out
}

fn base64_encode(text: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    b64.as_bytes()
        .chunks(76)
        .map(|c| format!("{}\r\n", std::str::from_utf8(c).expect("ascii")))
        .collect()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One test message.
#[derive(Debug)]
struct Case {
    body: usize,
    /// Where in the body (rounded down to a character boundary).
    at: usize,
    form: Form,
    id: u64,
    digest: [u8; 32],
    upper: bool,
    decoy: usize,
    encoding: Encoding,
    markup: Markup,
    /// Sent as a file (`Content-Disposition: attachment`), which attachments are read as too.
    attached: bool,
    /// Other fixture bodies before and after the part under test (0, 1 or 2 parts in all).
    before: Option<usize>,
    after: Option<usize>,
}

impl Case {
    /// The raw message and the reference extraction must find.
    fn build(&self) -> (Vec<u8>, String) {
        let bodies = bodies();
        let body = &bodies[self.body % bodies.len()];
        let mut at = self.at % (body.len() + 1);
        while !body.is_char_boundary(at) {
            at -= 1;
        }
        let (head, tail) = body.split_at(at);
        let (written, expected, is_url) = self.form.write(self.id, &self.digest, self.upper);
        let (decoy_before, decoy_after) = DECOYS[self.decoy % DECOYS.len()];
        let html = self.markup != Markup::Plain;
        let esc = |s: &str| if html { html_escape(s) } else { s.to_string() };
        // The reference as a word of its own: ". " keeps a label at the end of `head`
        // (`spki:`, `sha256=`) from claiming it, and base64 around it from joining it.
        let inserted = if self.markup == Markup::HtmlLink && is_url {
            format!(
                ". {}<a href=\"{}\">the certificate</a>{} ",
                esc(decoy_before),
                html_escape(&written),
                esc(decoy_after)
            )
        } else {
            format!(
                ". {} ",
                esc(&format!("{decoy_before}{written}{decoy_after}"))
            )
        };
        let wrap = |s: &str| {
            if html {
                format!("<html><body><div>{s}</div></body></html>")
            } else {
                s.to_string()
            }
        };
        let (head, tail) = (esc(head), esc(tail));
        let (cte, content) = match self.encoding {
            Encoding::SevenBit => ("8bit", wrap(&format!("{head}{inserted}{tail}"))),
            Encoding::Base64 => (
                "base64",
                base64_encode(&wrap(&format!("{head}{inserted}{tail}"))),
            ),
            Encoding::QuotedPrintable => (
                "quoted-printable",
                qp_encode(&wrap(&format!("{head}{inserted}{tail}"))),
            ),
            Encoding::CarelessQuotedPrintable => {
                // By the book around it; the inserted text as written, joined by soft breaks.
                let whole = wrap(&format!("{head}\u{0}{tail}"));
                let (h, t) = whole.split_once('\u{0}').expect("marker");
                let inserted = inserted.replace('\n', "\r\n");
                (
                    "quoted-printable",
                    format!("{}=\r\n{inserted}=\r\n{}", qp_encode(h), qp_encode(t)),
                )
            }
        };
        let (ctype, file) = if html {
            ("text/html", "report.html")
        } else {
            ("text/plain", "report.txt")
        };
        let disposition = if self.attached {
            format!("Content-Disposition: attachment; filename=\"{file}\"\r\n")
        } else {
            String::new()
        };
        let part = format!(
            "Content-Type: {ctype}; charset=utf-8\r\n{disposition}\
             Content-Transfer-Encoding: {cte}\r\n\r\n{content}"
        );
        let others = |i: Option<usize>| {
            i.map(|i| {
                format!(
                    "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
                    base64_encode(&bodies[i % bodies.len()])
                )
            })
        };
        let parts: Vec<String> = [others(self.before), Some(part), others(self.after)]
            .into_iter()
            .flatten()
            .collect();
        let headers = "From: Reporter <reporter@example.org>\r\nTo: cpr@example-ca.test\r\n\
Subject: Problem report\r\nMessage-ID: <property@example.org>\r\nMIME-Version: 1.0\r\n";
        let raw = if parts.len() == 1 {
            format!("{headers}{}", parts[0])
        } else {
            let mut raw =
                format!("{headers}Content-Type: multipart/mixed; boundary=\"{BOUNDARY}\"\r\n\r\n");
            for p in &parts {
                raw.push_str(&format!("--{BOUNDARY}\r\n{p}\r\n"));
            }
            raw.push_str(&format!("--{BOUNDARY}--\r\n"));
            raw
        };
        (raw.into_bytes(), expected)
    }
}

fn case() -> impl Strategy<Value = Case> {
    (
        (any::<usize>(), any::<usize>(), 0..FORMS.len()),
        (10u64..1_000_000_000_000, any::<[u8; 32]>(), any::<bool>()),
        (
            0..DECOYS.len(),
            0..ENCODINGS.len(),
            0..MARKUPS.len(),
            any::<bool>(),
        ),
        (
            proptest::option::of(any::<usize>()),
            proptest::option::of(any::<usize>()),
        ),
    )
        .prop_map(
            |(
                (body, at, form),
                (id, digest, upper),
                (decoy, encoding, markup, attached),
                (before, after),
            )| {
                Case {
                    body,
                    at,
                    form: FORMS[form],
                    id,
                    digest,
                    upper,
                    decoy,
                    encoding: ENCODINGS[encoding],
                    markup: MARKUPS[markup],
                    attached,
                    before,
                    after,
                }
            },
        )
}

/// Every reference extraction finds in a raw message, as ingest finds them.
fn found(raw: &[u8]) -> Vec<String> {
    let found = extract::mail_references(
        &parse::parse(raw),
        &cprwatch::reading::limits::Limits::default(),
    );
    let keys = found.keys.into_iter().filter_map(|k| k.reference);
    found
        .certificates
        .into_iter()
        .map(|c| c.reference)
        .chain(keys)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_reference_inserted_anywhere_is_found(case in case()) {
        let (raw, expected) = case.build();
        let refs = found(&raw);
        prop_assert!(
            refs.contains(&expected),
            "{expected} not found in {refs:?}\n{}",
            String::from_utf8_lossy(&raw)
        );
    }
}

/// The builders themselves: what each encoding makes decodes back to the text, so a miss is
/// extraction's, not the test's.
#[test]
fn every_fixture_body_survives_each_encoding() {
    for body in bodies() {
        for encoding in ENCODINGS {
            let case = Case {
                body: bodies().iter().position(|b| b == body).expect("listed"),
                at: 0,
                form: Form::Mention,
                id: 12,
                digest: [0; 32],
                upper: false,
                decoy: 0,
                encoding,
                markup: Markup::Plain,
                attached: false,
                before: None,
                after: None,
            };
            let (raw, _) = case.build();
            let texts = parse::parse(&raw).texts;
            let normalize = |s: &str| s.replace("\r\n", "\n").trim_end().to_string();
            let expected = normalize(&format!(". crt.sh ID 12 {body}"));
            assert!(
                texts.iter().any(|t| normalize(t) == expected),
                "{encoding:?}: {texts:?}\nexpected {expected:?}"
            );
        }
    }
}
