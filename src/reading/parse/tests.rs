use super::*;
use crate::domain::timefmt;

fn utc(s: &str) -> crate::domain::model::Timestamp {
    timefmt::parse(s).unwrap()
}

fn all_text(m: &ParsedMail) -> String {
    m.texts.join("\n")
}

const SIMPLE: &[u8] = b"Return-Path: <>\r\n\
Received: from mx1.ca.example by mx2.ca.example; Tue, 3 Mar 2026 10:00:05 +0000\r\n\
Received: from mail.reporter.example by mx1.ca.example; Tue, 3 Mar 2026 09:59:59 +0000\r\n\
Authentication-Results: mx2.ca.example; dkim=pass header.d=reporter.example\r\n\
Authentication-Results: mx1.ca.example;\r\n\tspf=pass smtp.mailfrom=reporter.example\r\n\
Authentication-Results: mx2.ca.example; dkim=pass header.d=ca.example\r\n\
From: \"Alice Reporter\" <Alice@Reporter.EXAMPLE>\r\n\
To: Problem Desk <CPR@CA.example>, undisclosed: Bob <bob@x.example>, carol@y.example;\r\n\
Cc: dave@z.example\r\n\
Reply-To: replies@reporter.example\r\n\
Subject: =?UTF-8?B?S2V5IGNvbXByb21pc2U6IMOcYmVy?=\r\n\
\x20=?ISO-8859-1?Q?_caf=E9?= report\r\n\
Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\
Message-ID: <abc.123@reporter.example>\r\n\
In-Reply-To: <prev@ca.example>\r\n\
References: <root@ca.example>\r\n\t<prev@ca.example>\r\n\
Auto-Submitted: Auto-Generated; by=robot\r\n\
X-Cprwatch-Receipt: yes\r\n\
\r\n\
https://crt.sh/?id=1777593900\r\n";

#[test]
fn header_fields() {
    let m = parse(SIMPLE);
    assert!(m.parsed_ok, "{:?}", m.problems);
    assert_eq!(m.message_id.as_deref(), Some("<abc.123@reporter.example>"));
    assert_eq!(m.from.as_deref(), Some("alice@reporter.example"));
    assert_eq!(
        m.to,
        ["cpr@ca.example", "bob@x.example", "carol@y.example"],
        "groups flattened"
    );
    assert_eq!(m.cc, ["dave@z.example"]);
    assert_eq!(m.reply_to, ["replies@reporter.example"]);
    assert_eq!(m.subject, "Key compromise: Über café report");
    assert_eq!(m.in_reply_to, ["<prev@ca.example>"]);
    assert_eq!(m.references, ["<root@ca.example>", "<prev@ca.example>"]);
    assert_eq!(m.auto_submitted.as_deref(), Some("auto-generated"));
    assert!(m.null_sender);
    assert!(m.cprwatch_receipt);
    assert!(!m.autoreply_marks);
    assert!(!m.is_report_mime);
    // The second verdict claiming mx2.ca.example sits below mx2's own: forged, dropped.
    assert_eq!(m.authentication_results.len(), 2);
    assert!(m.problems.iter().any(|p| p.contains("ignored as forged")));
    assert_eq!(
        m.authentication_results[0],
        "mx2.ca.example; dkim=pass header.d=reporter.example"
    );
    assert!(m.authentication_results[1].starts_with("mx1.ca.example;"));
    assert!(all_text(&m).contains("https://crt.sh/?id=1777593900"));
    assert!(m.attachments.is_empty());
}

#[test]
fn topmost_received_beats_lying_date() {
    let m = parse(SIMPLE);
    assert_eq!(m.date, Some(utc("2024-01-01T00:00:00Z")));
    assert_eq!(m.received_top, Some(utc("2026-03-03T10:00:05Z")));
}

#[test]
fn missing_message_id_and_headers() {
    let m = parse(b"From: a@b.example\r\nSubject: hi\r\n\r\nbody\r\n");
    assert!(m.parsed_ok);
    assert_eq!(m.message_id, None);
    assert_eq!(m.received_top, None);
    assert_eq!(m.date, None);
    assert!(!m.null_sender);
    let m = parse(b"From: a@b.example\r\nMessage-ID: \r\n\r\nbody\r\n");
    assert_eq!(m.message_id, None, "empty header counts as missing");
}

#[test]
fn auto_submitted_and_autoreply_variants() {
    for (hdr, want) in [
        ("Auto-Submitted: no", Some("no")),
        (
            "Auto-Submitted: auto-replied (vacation)",
            Some("auto-replied"),
        ),
        ("auto-submitted:AUTO-NOTIFIED", Some("auto-notified")),
        ("X-Other: 1", None),
    ] {
        let raw = format!("From: a@b.example\r\n{hdr}\r\n\r\nx\r\n");
        assert_eq!(
            parse(raw.as_bytes()).auto_submitted.as_deref(),
            want,
            "{hdr}"
        );
    }
    for (hdr, want) in [
        ("X-Autoreply: yes", true),
        ("X-Autorespond: whatever", true),
        ("x-autoresponder: 1", true),
        ("Precedence: auto_reply", true),
        ("Precedence: bulk", false),
    ] {
        let raw = format!("From: a@b.example\r\n{hdr}\r\n\r\nx\r\n");
        assert_eq!(parse(raw.as_bytes()).autoreply_marks, want, "{hdr}");
    }
}

/// Mailing-list and bulk mail is marked (no receipt goes to it), whatever the case or comments.
#[test]
fn precedence_bulk_list_junk_and_list_id_mark_bulk_mail() {
    for (hdr, want) in [
        ("Precedence: bulk", Some("precedence:bulk")),
        ("precedence: LIST", Some("precedence:list")),
        ("Precedence: junk (spam)", Some("precedence:junk")),
        (
            "List-Id: CA announcements <announce.lists.example>",
            Some("list-id"),
        ),
        ("list-id: <x.lists.example>", Some("list-id")),
        (
            "Precedence: list\r\nList-Id: <x.lists.example>",
            Some("precedence:list"),
        ),
        (
            "List-Id: <x.lists.example>\r\nPrecedence: bulk",
            Some("list-id"),
        ),
        ("Precedence: auto_reply", None),
        ("Precedence: first-class", None),
        ("List-Unsubscribe: <mailto:u@lists.example>", None),
        ("X-Other: 1", None),
    ] {
        let raw = format!("From: a@b.example\r\n{hdr}\r\n\r\nx\r\n");
        assert_eq!(parse(raw.as_bytes()).bulk.as_deref(), want, "{hdr}");
    }
}

#[test]
fn html_only_link_in_alternative() {
    let raw = b"From: r@x.example\r\n\
Subject: cert\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Please revoke this certificate.\r\n\
--b1\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>Please revoke <a href=\"https://crt.sh/?id=123&amp;opt=ocsp\">this certificate</a> &amp; thanks.</p>\r\n\
--b1--\r\n";
    let m = parse(raw);
    assert!(m.parsed_ok);
    let text = all_text(&m);
    assert!(text.contains("Please revoke this certificate."));
    assert!(text.contains("https://crt.sh/?id=123&opt=ocsp"), "{text}");
    assert!(text.contains("& thanks"));
    assert!(!text.contains("&amp;"));
}

#[test]
fn base64_and_quoted_printable_parts_and_attachments() {
    // "crt.sh/?id=42 revoke" base64; QP with a soft line break inside a hash.
    let raw = b"From: r@x.example\r\n\
Content-Type: multipart/mixed; boundary=XX\r\n\
\r\n\
--XX\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
Y3J0LnNoLz9pZD00MiByZXZva2U=\r\n\
--XX\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
sha256 ABCDEF0123=\r\n\
456789 caf=C3=A9\r\n\
--XX\r\n\
Content-Type: text/csv; name=list.csv\r\n\
Content-Disposition: attachment; filename=\"list.csv\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
aWQKMTIzCg==\r\n\
--XX\r\n\
Content-Type: application/pkix-cert\r\n\
Content-Disposition: attachment; filename=cert.der\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
MAMCAQE=\r\n\
--XX--\r\n";
    let m = parse(raw);
    let text = all_text(&m);
    assert!(text.contains("crt.sh/?id=42 revoke"), "{text}");
    assert!(text.contains("sha256 ABCDEF0123456789 café"), "{text}");
    assert!(text.contains("id\n123"), "CSV text is searched too");
    assert_eq!(m.attachments.len(), 2, "{:?}", m.attachments);
    let csv = &m.attachments[0];
    assert_eq!(csv.name.as_deref(), Some("list.csv"));
    assert_eq!(csv.content_type, "text/csv");
    assert_eq!(csv.data, b"id\n123\n");
    let der = &m.attachments[1];
    assert_eq!(der.name.as_deref(), Some("cert.der"));
    assert_eq!(der.content_type, "application/pkix-cert");
    assert_eq!(der.data, [0x30, 0x03, 0x02, 0x01, 0x01]);
    assert!(m.problems.is_empty(), "{:?}", m.problems);
}

#[test]
fn nested_rfc822_searched_recursively() {
    let raw = b"From: fwd@x.example\r\n\
Subject: Fwd: report\r\n\
Content-Type: multipart/mixed; boundary=outer\r\n\
\r\n\
--outer\r\n\
Content-Type: text/plain\r\n\
\r\n\
See attached.\r\n\
--outer\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: original@y.example\r\n\
Subject: Inner subject crt.sh/?id=777\r\n\
Content-Type: multipart/mixed; boundary=inner\r\n\
\r\n\
--inner\r\n\
Content-Type: text/html\r\n\
\r\n\
<a href='https://crt.sh/?id=888'>x</a>\r\n\
--inner\r\n\
Content-Type: application/octet-stream; name=keys.txt\r\n\
\r\n\
KEYDATA\r\n\
--inner--\r\n\
\r\n\
--outer--\r\n";
    let m = parse(raw);
    assert_eq!(m.subject, "Fwd: report");
    assert_eq!(m.from.as_deref(), Some("fwd@x.example"));
    let text = all_text(&m);
    assert!(text.contains("See attached."));
    assert!(text.contains("Inner subject crt.sh/?id=777"), "{text}");
    assert!(text.contains("https://crt.sh/?id=888"), "{text}");
    assert_eq!(m.attachments.len(), 1, "{:?}", m.attachments);
    assert_eq!(m.attachments[0].name.as_deref(), Some("keys.txt"));
    assert_eq!(m.attachments[0].data, b"KEYDATA");
}

#[test]
fn multipart_report_detected() {
    let raw = b"From: MAILER-DAEMON@ca.example\r\n\
Return-Path: < >\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=r\r\n\
\r\n\
--r\r\n\
Content-Type: text/plain\r\n\
\r\n\
Delivery failed.\r\n\
--r\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Final-Recipient: rfc822; x@y.example\r\n\
--r--\r\n";
    let m = parse(raw);
    assert!(m.is_report_mime);
    assert!(m.null_sender);
    assert!(all_text(&m).contains("Final-Recipient"));
    assert!(!parse(SIMPLE).is_report_mime);
}

#[test]
fn garbage_bytes_salvaged() {
    let mut raw: Vec<u8> = (0u8..=255).cycle().take(4000).collect();
    raw.extend_from_slice(b" https://crt.sh/?id=99 ");
    let m = parse(&raw);
    assert!(!m.parsed_ok);
    assert!(all_text(&m).contains("https://crt.sh/?id=99"));
    assert!(!m.problems.is_empty());
    let empty = parse(b"");
    assert!(!empty.parsed_ok);
    assert!(empty.texts.is_empty());
    let m = parse(b"\xff\xfe\x00garbage with no headers at all");
    assert!(!m.parsed_ok);
}

#[test]
fn invalid_utf8_in_declared_utf8_part_and_unknown_charset() {
    let raw = b"From: r@x.example\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain; charset=UTF-8\r\n\
\r\n\
bad \xff\xfe bytes crt.sh/?id=5\r\n\
--b\r\n\
Content-Type: text/plain; charset=x-klingon\r\n\
\r\n\
tlhIngan crt.sh/?id=6\r\n\
--b--\r\n";
    let m = parse(raw);
    assert!(m.parsed_ok);
    let text = all_text(&m);
    assert!(text.contains("crt.sh/?id=5") && text.contains("crt.sh/?id=6"));
    assert!(
        m.problems.iter().any(|p| p.contains("invalid UTF-8")),
        "{:?}",
        m.problems
    );
    assert!(
        m.problems.iter().any(|p| p.contains("unknown charset")),
        "{:?}",
        m.problems
    );
}

#[test]
fn problems_never_quote_pem() {
    let raw = b"Received: -----BEGIN PRIVATE KEY----- MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ\r\n\
From: a@b.example\r\n\r\nx";
    let m = parse(raw);
    assert!(!m.problems.is_empty());
    assert!(
        m.problems.iter().all(|p| !p.contains("MIIE")),
        "{:?}",
        m.problems
    );
}

#[test]
fn huge_html_message_parses_and_keeps_links() {
    let mut raw = b"From: a@b.example\r\nContent-Type: text/html\r\n\r\n".to_vec();
    for _ in 0..200_000 {
        raw.extend_from_slice(b"<a href=\"https://crt.sh/?id=1&amp;x\">&amp;&&<b>x</b></a>\r\n");
    }
    // Linear time is measured by the ingest benchmark; here: it parses and keeps the links.
    let m = parse(&raw);
    assert!(m.parsed_ok);
    assert!(m.texts.iter().any(|t| t.contains("https://crt.sh/?id=1&x")));
}

const SAKAI: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/corpus/sakai-mbox.txt"
);

#[test]
fn sakai_corpus_received_chains() {
    let data = std::fs::read(SAKAI).unwrap_or_else(|e| {
        panic!(
            "test corpus {SAKAI} is missing ({e}); it ships in fixtures/corpus (see fixtures/README.md)"
        )
    });
    let mut count = 0;
    for chunk in split_mbox_for_test(&data) {
        let m = parse(chunk);
        assert!(m.parsed_ok, "message {count}: {:?}", m.problems);
        let top = m
            .received_top
            .unwrap_or_else(|| panic!("message {count}: no received_top: {:?}", m.problems));
        let date = m.date.expect("sakai messages carry Date:");
        // The receiving site stamps after the sender's Date, within minutes.
        let lag = (top - date).whole_seconds();
        assert!((-120..86_400).contains(&lag), "message {count}: lag {lag}s");
        assert!(m.message_id.is_some());
        assert!(m.from.is_some());
        assert!(!m.texts.is_empty());
        count += 1;
    }
    assert_eq!(count, 323);
}

/// Just enough mbox splitting for this test; the real reader is `crate::source::mbox`.
fn split_mbox_for_test(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut pos = 0;
    let mut prev_blank = true;
    for line in data.split_inclusive(|&b| b == b'\n') {
        if prev_blank && line.starts_with(b"From ") {
            starts.push(pos);
        }
        prev_blank = line == b"\n" || line == b"\r\n";
        pos += line.len();
    }
    starts.push(data.len());
    starts
        .windows(2)
        .map(|w| {
            let msg = &data[w[0]..w[1]];
            let body_start = msg.iter().position(|&b| b == b'\n').map_or(0, |p| p + 1);
            &msg[body_start..]
        })
        .collect()
}

#[test]
fn plain_subject_unfolded() {
    let m = parse(
        b"From: a@b.example\r\nSubject: Revocation request for\r\n\t www.example.com\r\n\r\nx",
    );
    assert_eq!(m.subject, "Revocation request for www.example.com");
}

#[test]
fn deeply_nested_messages_do_not_overflow() {
    let mut raw = b"From: a@b.example\r\nSubject: leaf crt.sh/?id=1\r\n\r\nleaf\r\n".to_vec();
    for i in 0..300 {
        let mut outer = format!(
            "From: n{i}@b.example\r\nContent-Type: multipart/mixed; boundary=b{i}\r\n\r\n\
             --b{i}\r\nContent-Type: message/rfc822\r\n\r\n"
        )
        .into_bytes();
        outer.extend_from_slice(&raw);
        outer.extend_from_slice(format!("\r\n--b{i}--\r\n").as_bytes());
        raw = outer;
    }
    let m = parse(&raw);
    assert!(m.parsed_ok);
    assert_eq!(m.from.as_deref(), Some("n299@b.example"));
    assert!(
        all_text(&m).contains("crt.sh/?id=1"),
        "the deepest text is still searched"
    );
    assert!(m.problems.iter().any(|p| p.contains("nested deeper")));
}

#[test]
fn headers_parse_as_mail_parsers_default_except_received() {
    let raw = b"Return-Path: <r@reporter.test>\r\n\
Received: from a.test by b.test; Tue, 3 Mar 2026 10:00:05 +0000\r\n\
From: =?utf-8?q?R=C3=A9porter?= <r@reporter.test>\r\nSender: s@reporter.test\r\n\
To: cpr@example-ca.test\r\nCc: x@y.test\r\nBcc: z@y.test\r\nReply-To: r2@reporter.test\r\n\
Resent-From: a@b.test\r\nResent-To: c@d.test\r\nResent-Cc: e@f.test\r\nResent-Bcc: g@h.test\r\n\
Resent-Sender: i@j.test\r\nResent-Date: Tue, 3 Mar 2026 10:00:00 +0000\r\n\
Resent-Message-ID: <resent@x.test>\r\nList-Id: <cpr.example-ca.test>\r\n\
List-Unsubscribe: <mailto:u@x.test>\r\nList-Post: <mailto:p@x.test>\r\nList-Help: <mailto:h@x.test>\r\n\
List-Owner: <mailto:o@x.test>\r\nList-Archive: <https://x.test/a>\r\nList-Subscribe: <mailto:s@x.test>\r\n\
Subject: =?utf-8?q?Cl=C3=A9?= compromise\r\nComments: =?utf-8?q?a_comment?=\r\n\
Keywords: key, compromise\r\nDate: Tue, 3 Mar 2026 09:59:00 +0000\r\n\
Message-ID: <m@reporter.test>\r\nIn-Reply-To: <a@x.test>\r\nReferences: <a@x.test> <b@x.test>\r\n\
MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Language: en, de\r\n\
Content-Transfer-Encoding: 8bit\r\nContent-ID: <c@x.test>\r\nContent-Description: report\r\n\
Content-Location: https://x.test/r\r\nContent-Disposition: inline\r\n\
Authentication-Results: mx.example-ca.test; dkim=pass header.d=reporter.test\r\n\
X-Other: raw =?utf-8?q?value?=\r\n\r\nbody\r\n";
    let ours = PARSER.parse(&raw[..]).unwrap();
    let theirs = MessageParser::default().parse(&raw[..]).unwrap();
    let (ours, theirs) = (ours.headers(), theirs.headers());
    assert_eq!(ours.len(), theirs.len());
    for (o, t) in ours.iter().zip(theirs) {
        if t.name == HeaderName::Received {
            assert_eq!(
                (&o.name, o.offset_start, o.offset_end),
                (&t.name, t.offset_start, t.offset_end)
            );
        } else {
            assert_eq!(o, t);
        }
    }
}

/// One message with one quoted-printable part of `ctype` holding `body` as written.
fn qp_message(ctype: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "From: r@x.example\r\nSubject: report\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\n\
Hello.\r\n--XX\r\nContent-Type: {ctype}\r\n{extra_headers}\
Content-Transfer-Encoding: quoted-printable\r\n\r\n{body}\r\n--XX--\r\n"
    )
    .into_bytes()
}

fn refs_of(raw: &[u8]) -> Vec<String> {
    let found = crate::reading::extract::mail_references(
        &parse(raw),
        &crate::reading::limits::Limits::default(),
    );
    let keys = found.keys.into_iter().filter_map(|k| k.reference);
    found
        .certificates
        .into_iter()
        .map(|c| c.reference)
        .chain(keys)
        .collect()
}

/// An unescaped `=` in a quoted-printable part, as hand-made mail has it, eats nothing: in a
/// URL's query before digits or hex, right before a soft line break, before a blank, and in
/// a part that also holds escapes written by the book.
#[test]
fn quoted_printable_as_careless_senders_write_it() {
    const HEX: &str = "55A7D05C16EF8FB68EF1C4D9B877B19D326F0EF41D50572194891BA8C9BE5F5C";
    let hex = HEX.to_ascii_lowercase();
    let colons: String = HEX
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let id = "crtsh:12345".to_string();
    let sha = format!("sha256:{hex}");
    let cases: Vec<(&str, String, String)> = vec![
        (
            "text/plain",
            "see https://crt.sh/?id=12345 ok".into(),
            id.clone(),
        ),
        ("text/plain", "crt.sh/?d=12345".into(), id.clone()),
        (
            "text/plain",
            "https://crt.sh/?id==\r\n12345 ok".into(),
            id.clone(),
        ),
        (
            "text/plain",
            format!("https://crt.sh/?sha256={HEX}"),
            sha.clone(),
        ),
        (
            "text/plain",
            format!("https://crt.sh/?q={HEX}"),
            sha.clone(),
        ),
        (
            "text/plain",
            format!("SHA256 Fingerprint={colons}"),
            sha.clone(),
        ),
        ("text/plain", format!("sha256={hex}"), sha.clone()),
        (
            "text/plain",
            format!("https://crt.sh/?spkisha256={hex}"),
            format!("spki:{hex}"),
        ),
        // Escapes by the book elsewhere in the part, and a soft break inside the link.
        (
            "text/plain; charset=utf-8",
            "caf=C3=A9 =3D https://crt.sh/?opt=3Dx&id=3D123=\r\n45 == end".into(),
            id.clone(),
        ),
        (
            "text/html",
            "<p>See <a href=\"https://crt.sh/?id=12345\">the certificate</a>.</p>".into(),
            id.clone(),
        ),
        (
            "text/html; charset=iso-8859-1",
            "<p>caf=E9 <a href=3D\"https://crt.sh/?opt=cablint&amp;id=12345\">x</a>=\r\n</p>"
                .into(),
            id.clone(),
        ),
    ];
    for (ctype, body, expected) in cases {
        let raw = qp_message(ctype, "", &body);
        assert_eq!(refs_of(&raw), [expected], "{ctype} {body:?}");
    }
}

/// Attachments in quoted-printable are read leniently too: a listing, and a PEM file.
#[test]
fn quoted_printable_attachments_are_read_leniently() {
    let csv = qp_message(
        "text/csv; name=certs.csv",
        "Content-Disposition: attachment; filename=certs.csv\r\n",
        "url\r\nhttps://crt.sh/?id=12345\r\nhttps://crt.sh/?id=67890\r\n",
    );
    assert_eq!(refs_of(&csv), ["crtsh:12345", "crtsh:67890"]);
    let m = parse(&csv);
    assert!(
        m.lenient_attachments
            .iter()
            .any(|a| a.name.as_deref() == Some("certs.csv"))
    );

    let leaf = include_str!("../../../fixtures/keys/leaf.pem").replace('\n', "\r\n");
    // The base64 padding `==` unescaped, and a soft break inside the body's last line.
    let careless = leaf.replacen("lPGuvDZHA==", "lPGuvD=\r\nZHA==", 1);
    assert_ne!(
        careless, leaf,
        "the fixture's last line changed: update the test"
    );
    let pem = qp_message(
        "application/x-pem-file; name=leaf.pem",
        "Content-Disposition: attachment; filename=leaf.pem\r\n",
        &careless,
    );
    assert_eq!(
        refs_of(&pem),
        ["sha256:55a7d05c16ef8fb68ef1c4d9b877b19d326f0ef41d50572194891ba8c9be5f5c"]
    );
}

/// A part written by the book adds nothing to search, but the lines that may hide a reference.
#[test]
fn quoted_printable_by_the_book_adds_only_lines_that_may_hide_a_reference() {
    for (ctype, body) in [
        ("text/plain", "plain=\r\n words\r\n"),
        (
            "text/html; charset=utf-8",
            "<p class=3D\"x\">Der Schl=C3=BCssel=20\r\nist=09\r\n=E2=82=AC</p>",
        ),
    ] {
        let m = parse(&qp_message(ctype, "", body));
        assert!(m.lenient_texts.is_empty(), "{:?}", m.lenient_texts);
    }
    let m = parse(&qp_message("text/plain", "", "https://crt.sh/?id=3D5"));
    assert_eq!(m.lenient_texts, ["https://crt.sh/?id=3D5"]);
    assert_eq!(
        refs_of(&qp_message("text/plain", "", "https://crt.sh/?id=3D5")),
        ["crtsh:5"]
    );
}
