//! End-to-end tests of [`references`] and [`canonical_target`] on real (openssl-made) material.
//! Expected hashes were computed with openssl, not with this code: see fixtures/keys/README.md.

use super::*;

const LEAF_PEM: &str = include_str!("../../../fixtures/keys/leaf.pem");
const LEAF_DER: &[u8] = include_bytes!("../../../fixtures/keys/leaf.der");
const CA_PEM: &str = include_str!("../../../fixtures/keys/ca.pem");
const LEAF_SHA256: &str = "55a7d05c16ef8fb68ef1c4d9b877b19d326f0ef41d50572194891ba8c9be5f5c";
const RSA_SPKI: &str = "614d467560efeb0b7d1625cd8279b29427538346349146dc010040c071035fe7";
const P256_SPKI: &str = "855de8bc01a5d2841dac952095aedf075145cbd9426314308841620366b4464c";
const ED25519_SPKI: &str = "d7e0ffe7d8ca7ad39db978a6a6b782082ce4eeed2db07dfd2b7a6a74596063f3";

/// Every private-key fixture, by name.
const PRIVATE_KEYS: [(&str, &str); 11] = [
    (
        "rsa-pkcs8",
        include_str!("../../../fixtures/keys/rsa-pkcs8.pem"),
    ),
    (
        "rsa-pkcs1",
        include_str!("../../../fixtures/keys/rsa-pkcs1.pem"),
    ),
    (
        "ec-p256-sec1",
        include_str!("../../../fixtures/keys/ec-p256-sec1.pem"),
    ),
    (
        "ec-p256-sec1-nopub",
        include_str!("../../../fixtures/keys/ec-p256-sec1-nopub.pem"),
    ),
    (
        "ec-p256-pkcs8",
        include_str!("../../../fixtures/keys/ec-p256-pkcs8.pem"),
    ),
    (
        "ec-p384-sec1",
        include_str!("../../../fixtures/keys/ec-p384-sec1.pem"),
    ),
    (
        "ec-p384-pkcs8",
        include_str!("../../../fixtures/keys/ec-p384-pkcs8.pem"),
    ),
    (
        "ec-p521-sec1",
        include_str!("../../../fixtures/keys/ec-p521-sec1.pem"),
    ),
    (
        "ed25519-pkcs8",
        include_str!("../../../fixtures/keys/ed25519-pkcs8.pem"),
    ),
    (
        "rsa-encrypted-pkcs8",
        include_str!("../../../fixtures/keys/rsa-encrypted-pkcs8.pem"),
    ),
    (
        "rsa-legacy-encrypted",
        include_str!("../../../fixtures/keys/rsa-legacy-encrypted.pem"),
    ),
];

fn body(text: &str) -> Found {
    references("", &[text.to_string()], &[])
}

fn cert_refs(found: &Found) -> Vec<&str> {
    found
        .certificates
        .iter()
        .map(|c| c.reference.as_str())
        .collect()
}

fn key_refs(found: &Found) -> Vec<Option<&str>> {
    found.keys.iter().map(|k| k.reference.as_deref()).collect()
}

fn attachment(name: &str, content_type: &str, data: &[u8]) -> Attachment {
    Attachment {
        name: Some(name.to_string()),
        content_type: content_type.to_string(),
        data: data.to_vec(),
    }
}

#[test]
fn links_ids_and_fingerprints_in_order() {
    let text = format!(
        "Please revoke https://crt.sh/?id=1777593900&amp;opt=cablint and crt.sh ID 42.\n\
         Also SHA256 Fingerprint={}\n and https://crt.sh/?sha256={LEAF_SHA256} (same one).",
        LEAF_SHA256
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).to_uppercase())
            .collect::<Vec<_>>()
            .join(":")
    );
    let found = body(&text);
    let want_sha = format!("sha256:{LEAF_SHA256}");
    assert_eq!(
        cert_refs(&found),
        vec!["crtsh:1777593900", "crtsh:42", want_sha.as_str()]
    );
    assert_eq!(found.certificates[0].crtsh_id, Some(1_777_593_900));
    assert!(found.keys.is_empty());
}

#[test]
fn spkisha256_link_is_a_key_not_a_certificate() {
    let found = body(&format!(
        "key: https://crt.sh/?spkisha256={RSA_SPKI} and spki:{P256_SPKI}"
    ));
    assert!(found.certificates.is_empty());
    let spki = format!("spki:{RSA_SPKI}");
    let spki2 = format!("spki:{P256_SPKI}");
    assert_eq!(
        key_refs(&found),
        vec![Some(spki.as_str()), Some(spki2.as_str())]
    );
    assert!(found.keys.iter().all(|k| k.evidence == KeyEvidence::Link));
}

#[test]
fn things_that_are_not_references() {
    for text in [
        "www.example.com has a bad certificate".to_string(),
        "https://crt.sh/?q=example.com".to_string(),
        LEAF_SHA256[..63].to_string(),
        format!("{LEAF_SHA256}0"),
        "crt.sh is a nice site; id 1234".to_string(),
    ] {
        let found = body(&text);
        assert!(
            found.certificates.is_empty() && found.keys.is_empty(),
            "{text}: {found:?}"
        );
    }
}

#[test]
fn pem_certificate_gets_all_details_and_merges_with_fingerprint() {
    let quoted: String = LEAF_PEM.lines().map(|l| format!("> {l}\r\n")).collect();
    let found = references(
        &format!("Compromised {LEAF_SHA256}"),
        &[quoted, CA_PEM.to_string()],
        &[],
    );
    assert_eq!(found.certificates.len(), 2, "{found:?}");
    let leaf = &found.certificates[0];
    assert_eq!(leaf.reference, format!("sha256:{LEAF_SHA256}"));
    assert_eq!(leaf.serial.as_deref(), Some("1234abcd"));
    assert_eq!(leaf.spki_sha256.as_deref(), Some(RSA_SPKI));
    assert_eq!(found.certificates[1].is_ca, Some(true));
    // A certificate names its key, but is no evidence about it.
    assert!(found.keys.is_empty());
}

#[test]
fn certificate_attachments_pem_and_der() {
    let found = references(
        "",
        &[],
        &[
            attachment("leaf.der", "application/octet-stream", LEAF_DER),
            attachment("x", "application/pkix-cert", LEAF_DER),
            attachment("ca.crt", "application/octet-stream", CA_PEM.as_bytes()),
        ],
    );
    assert_eq!(found.certificates.len(), 2);
    assert_eq!(found.certificates[0].sha256.as_deref(), Some(LEAF_SHA256));
    assert!(found.problems.is_empty(), "{:?}", found.problems);
}

#[test]
fn every_private_key_format() {
    let want = |hex: &str, alg: &str| {
        (
            Some(format!("spki:{hex}")),
            KeyEvidence::PrivateKey,
            Some(alg.to_string()),
        )
    };
    let expected = [
        want(RSA_SPKI, "rsa-2048"),
        want(P256_SPKI, "ec-p256"),
        want(
            "a9273c2f120fd7d4ae64413aabcdbeab16ca45a191ca2eb5205f62fa812d6d37",
            "ec-p384",
        ),
        want(
            "afc92ade9727d6a303009c7bd5cd4bc629502d8036169f3fadabe90034c8235f",
            "ec-p521",
        ),
        want(ED25519_SPKI, "ed25519"),
        (None, KeyEvidence::EncryptedPrivateKey, None),
        (
            None,
            KeyEvidence::EncryptedPrivateKey,
            Some("rsa".to_string()),
        ),
    ];
    let text: String = PRIVATE_KEYS
        .iter()
        .map(|(_, pem)| format!("{pem}\n"))
        .collect();
    let found = body(&text);
    let got: Vec<_> = found
        .keys
        .iter()
        .map(|k| (k.reference.clone(), k.evidence, k.algorithm.clone()))
        .collect();
    assert_eq!(got, expected);
    assert!(found.certificates.is_empty(), "{found:?}");
    // Only P-521's public key could not be checked against its private key.
    assert_eq!(found.problems.len(), 1, "{:?}", found.problems);
    assert!(found.problems[0].contains("not checked"));
}

#[test]
fn key_evidence_keeps_the_strongest() {
    let csr = include_str!("../../../fixtures/keys/ec-p256.csr");
    let sec1 = include_str!("../../../fixtures/keys/ec-p256-sec1.pem");
    let text = format!("https://crt.sh/?spkisha256={P256_SPKI}\n{csr}\n{sec1}");
    let found = body(&text);
    assert_eq!(found.keys.len(), 1);
    assert_eq!(found.keys[0].evidence, KeyEvidence::PrivateKey);
    assert_eq!(found.keys[0].algorithm.as_deref(), Some("ec-p256"));
}

#[test]
fn key_attachments() {
    let sec1_der = pem::blocks(include_str!("../../../fixtures/keys/ec-p256-sec1.pem"))
        .remove(0)
        .der
        .expect("base64");
    let found = references(
        "",
        &[],
        &[
            attachment("key.der", "application/octet-stream", &sec1_der),
            attachment(
                "req.csr",
                "application/pkcs10",
                include_bytes!("../../../fixtures/keys/ec-p256.csr"),
            ),
            attachment(
                "pub.pem",
                "application/x-pem-file",
                include_bytes!("../../../fixtures/keys/rsa-pkcs1-public.pem"),
            ),
        ],
    );
    let p256 = format!("spki:{P256_SPKI}");
    let rsa = format!("spki:{RSA_SPKI}");
    assert_eq!(
        key_refs(&found),
        vec![Some(p256.as_str()), Some(rsa.as_str())]
    );
    assert_eq!(found.keys[0].evidence, KeyEvidence::PrivateKey);
    assert_eq!(found.keys[1].evidence, KeyEvidence::PublicKey);
}

#[test]
fn pkcs12_attachment_is_unopened_key_evidence() {
    let p12 = include_bytes!("../../../fixtures/keys/leaf.p12");
    let found = references(
        "",
        &[],
        &[attachment("leaf.pfx", "application/octet-stream", p12)],
    );
    assert_eq!(key_refs(&found), vec![None]);
    assert_eq!(found.keys[0].evidence, KeyEvidence::EncryptedPrivateKey);
    assert_eq!(found.problems.len(), 1);
}

#[test]
fn listing_attachments() {
    let csv = format!("cn,crt.sh id,sha256\nexample.com,1777593900,{LEAF_SHA256}\nfoo,17,\n");
    let txt = "1777593901\nhttps://crt.sh/?id=1777593902\n12\n";
    let found = references(
        "",
        &[],
        &[
            attachment("list.csv", "text/csv", csv.as_bytes()),
            attachment("ids", "text/plain", txt.as_bytes()),
        ],
    );
    let sha = format!("sha256:{LEAF_SHA256}");
    assert_eq!(
        cert_refs(&found),
        vec![
            "crtsh:1777593900",
            sha.as_str(),
            "crtsh:17",
            "crtsh:1777593901",
            "crtsh:1777593902"
        ]
    );
}

#[test]
fn broken_blocks_are_reported_by_label_only() {
    let text = "-----BEGIN CERTIFICATE-----\nMIIBadbase64!!\n-----END CERTIFICATE-----\n\
                -----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n\
                then https://crt.sh/?id=5";
    let found = body(text);
    assert_eq!(cert_refs(&found), vec!["crtsh:5"]);
    assert_eq!(found.problems.len(), 2, "{:?}", found.problems);
    assert!(found.problems[0].contains("CERTIFICATE"));
    assert!(found.problems[1].contains("PRIVATE KEY"));
    assert!(
        found
            .problems
            .iter()
            .all(|p| !p.contains("AAAA") && !p.contains("MIIB"))
    );
}

/// A link rewritten by the receiving side's link protection (Safe Links here) is still found.
#[test]
fn a_crtsh_link_inside_a_rewritten_link_is_found() {
    let found = body(
        "see https://eur01.safelinks.protection.outlook.com/?url=https%3A%2F%2Fcrt.sh%2F%3Fid%3D5\
         &data=05%7C01 and crt.sh ID 6",
    );
    assert_eq!(cert_refs(&found), vec!["crtsh:6", "crtsh:5"]);
}

/// The report that found it: a PEM boundary line quoted in prose, the link on the same line.
#[test]
fn a_boundary_line_quoted_in_prose_swallows_nothing() {
    let found = body(
        "Our private key was leaked: the file starts with -----BEGIN RSA PRIVATE KEY----- \
         and the certificate is https://crt.sh/?id=12345\r\nRegards",
    );
    assert_eq!(cert_refs(&found), vec!["crtsh:12345"]);
    assert!(found.keys.is_empty(), "{:?}", found.keys);
}

/// Whatever a block that does not decode holds is still searched: links, fingerprints, our
/// own forms, and real blocks after it.
#[test]
fn undecodable_blocks_are_searched_for_everything_else() {
    let colons = LEAF_SHA256
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let leaf = format!("sha256:{LEAF_SHA256}");
    let cases: Vec<(String, Vec<&str>)> = vec![
        // Empty, with the link on the END line.
        (
            "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE----- https://crt.sh/?id=1".into(),
            vec!["crtsh:1"],
        ),
        // Prose between the boundary lines (the link's colon made it an RFC 1421 "header").
        (
            "starts with -----BEGIN CERTIFICATE----- then https://crt.sh/?id=2 then \
             -----END CERTIFICATE-----"
                .into(),
            vec!["crtsh:2"],
        ),
        // A body that is valid base64 but no certificate: a bare fingerprint.
        (
            format!("-----BEGIN CERTIFICATE-----\n{LEAF_SHA256}\n-----END CERTIFICATE-----"),
            vec![leaf.as_str()],
        ),
        // The colon form, in a key block that does not decode.
        (
            format!("-----BEGIN PRIVATE KEY-----\n{colons}\n-----END PRIVATE KEY-----"),
            vec![leaf.as_str()],
        ),
        // A mismatched END label.
        (
            "-----BEGIN CERTIFICATE-----\ncrtsh:3\n-----END PRIVATE KEY-----".into(),
            vec!["crtsh:3"],
        ),
        // Unterminated, the link on the BEGIN line and on the next.
        (
            "-----BEGIN EC PRIVATE KEY----- crt.sh ID 4\nhttps://crt.sh/?id=5\n".into(),
            vec!["crtsh:4", "crtsh:5"],
        ),
        // Prose that names both boundary lines, then the real block: the prose's BEGIN must
        // not pair with the real block's END.
        (
            format!(
                "It starts with -----BEGIN CERTIFICATE----- and ends with \
                 -----END CERTIFICATE-----, here: https://crt.sh/?id=6\n{LEAF_PEM}"
            ),
            vec!["crtsh:6", leaf.as_str()],
        ),
        // An unterminated prose mention right before a real block of the same label.
        (
            format!("see -----BEGIN CERTIFICATE----- below\n\n{LEAF_PEM}"),
            vec![leaf.as_str()],
        ),
        // Nested: a BEGIN whose END is the real block's.
        (
            format!("-----BEGIN CERTIFICATE-----\n{LEAF_PEM}"),
            vec![leaf.as_str()],
        ),
        // An encrypted-key label with nothing encrypted after it is no key.
        (
            "the -----BEGIN ENCRYPTED PRIVATE KEY----- file, https://crt.sh/?id=7".into(),
            vec!["crtsh:7"],
        ),
    ];
    for (text, expected) in cases {
        let found = body(&text);
        assert_eq!(cert_refs(&found), expected, "{text}");
        assert!(found.keys.is_empty(), "{text}: {:?}", found.keys);
    }
}

/// A line that a real block skips (not base64) is not masked with the block.
#[test]
fn a_note_inside_a_real_block_is_still_read() {
    let annotated = LEAF_PEM.replacen("-----\n", "-----\nNote: this is https://crt.sh/?id=8\n", 1);
    let found = body(&annotated);
    assert_eq!(
        cert_refs(&found),
        vec![format!("sha256:{LEAF_SHA256}").as_str(), "crtsh:8"]
    );
}

/// Text pasted into a certificate's base64 near its end can leave a DER that still parses, with
/// bytes after it: that is a damaged block, not the certificate (whose hash it would not have).
#[test]
fn a_block_with_bytes_after_its_certificate_is_not_one() {
    let end = LEAF_PEM.find("\n-----END").expect("END line");
    let damaged = format!(
        "{} AAAABBBB {}",
        &LEAF_PEM[..end - 30],
        &LEAF_PEM[end - 30..]
    );
    let found = body(&damaged);
    assert!(found.certificates.is_empty(), "{:?}", found.certificates);
    assert!(found.problems[0].contains("not a valid X.509 certificate"));
}

/// A fingerprint pasted into a block's base64 is read as one, and the block as it would be
/// without it: even a legacy encrypted key, which any whole number of cipher blocks fits.
#[test]
fn a_fingerprint_pasted_into_a_block_is_read_as_one() {
    let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let legacy = include_str!("../../../fixtures/keys/rsa-legacy-encrypted.pem");
    for (pem, expected) in [
        (
            LEAF_PEM,
            vec![format!("sha256:{LEAF_SHA256}"), format!("sha256:{hex}")],
        ),
        (legacy, vec![format!("sha256:{hex}")]),
    ] {
        let end = pem.find("\n-----END").expect("END line");
        for at in [end - 70, end - 30, end - 1, end] {
            for sep in [" ", "\n"] {
                let text = format!("{}{sep}{hex}{sep}{}", &pem[..at], &pem[at..]);
                let found = body(&text);
                assert_eq!(cert_refs(&found), expected, "{text}");
                assert_eq!(found.keys.len(), usize::from(pem == legacy), "{text}");
            }
        }
    }
}

/// A block whose END line was lost (cut off, or mislabelled) is still read when its base64 is
/// whole; the problem says so.
#[test]
fn a_whole_block_without_its_end_line_is_read() {
    let body_only = LEAF_PEM.replace("-----END CERTIFICATE-----", "");
    let mislabelled = LEAF_PEM.replace("END CERTIFICATE", "END X509 CRL");
    for text in [body_only, mislabelled, LEAF_PEM.replace("-----END", "\n\n")] {
        let found = body(&text);
        assert_eq!(
            cert_refs(&found),
            vec![format!("sha256:{LEAF_SHA256}").as_str()],
            "{text}"
        );
        assert!(
            found.problems.iter().any(|p| p.contains("no END line")),
            "{:?}",
            found.problems
        );
    }
}

#[test]
fn bad_der_attachment_is_a_problem() {
    let found = references(
        "",
        &[],
        &[attachment(
            "x.der",
            "application/octet-stream",
            b"\x30\x01\x00",
        )],
    );
    assert!(found.certificates.is_empty());
    assert_eq!(found.problems.len(), 1);
}

/// SECURITY: no returned string may contain any base64 line of a private key, in any format,
/// whether the key decodes or not.
#[test]
fn private_key_material_never_leaves() {
    let mut corrupted = String::new();
    for (_, pem) in PRIVATE_KEYS {
        // The same keys, each with one body line damaged so that decoding fails somewhere.
        let lines: Vec<&str> = pem.lines().collect();
        let n = lines.len();
        for (i, line) in lines.iter().enumerate() {
            corrupted.push_str(line);
            if i == n / 2 {
                corrupted.push('#');
            }
            corrupted.push('\n');
        }
    }
    let all_keys: String = PRIVATE_KEYS
        .iter()
        .map(|(_, pem)| format!("> {pem}\n"))
        .collect();
    let texts = vec![all_keys, corrupted];
    let attachments: Vec<Attachment> = PRIVATE_KEYS
        .iter()
        .map(|(name, pem)| {
            attachment(
                &format!("{name}.key"),
                "application/octet-stream",
                pem.as_bytes(),
            )
        })
        .collect();
    let found = references("key compromise", &texts, &attachments);
    let (commands, bad) = commands(&texts);
    let output = format!("{found:?} {commands:?} {bad:?}");
    assert!(found.keys.len() >= 4, "{output}");
    for (name, pem) in PRIVATE_KEYS {
        for line in pem
            .lines()
            .filter(|l| !l.starts_with("-----") && !l.contains(':') && l.len() >= 16)
        {
            assert!(!output.contains(line), "{name}: key material in output");
            // Not even a 16-character piece of one.
            for piece in line.as_bytes().chunks(16).filter(|c| c.len() == 16) {
                let piece = std::str::from_utf8(piece).expect("ascii");
                assert!(!output.contains(piece), "{name}: key material in output");
            }
        }
    }
}

#[test]
fn canonical_targets() {
    let sha = format!("sha256:{LEAF_SHA256}");
    let spki = format!("spki:{RSA_SPKI}");
    let colons = LEAF_SHA256
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let cases = [
        ("crtsh:1777593900", Some("crtsh:1777593900")),
        ("CRTSH:0042", Some("crtsh:42")),
        ("https://crt.sh/?id=1777593900", Some("crtsh:1777593900")),
        ("http://www.crt.sh/?d=7&opt=ocsp", Some("crtsh:7")),
        (
            &format!("https://crt.sh/?sha256={LEAF_SHA256}") as &str,
            Some(sha.as_str()),
        ),
        (
            &format!("https://crt.sh/?q={}", LEAF_SHA256.to_uppercase()),
            Some(sha.as_str()),
        ),
        (
            &format!("https://crt.sh/?spkisha256={RSA_SPKI}"),
            Some(spki.as_str()),
        ),
        (
            &format!("SHA256:{}", LEAF_SHA256.to_uppercase()),
            Some(sha.as_str()),
        ),
        (&format!("spki:{RSA_SPKI}"), Some(spki.as_str())),
        (LEAF_SHA256, Some(sha.as_str())),
        (&colons, Some(sha.as_str())),
        (&format!("<{LEAF_SHA256}>."), Some(sha.as_str())),
        ("https://crt.sh/?q=example.com", None),
        ("example.com", None),
        (&LEAF_SHA256[..63], None),
        (&format!("{LEAF_SHA256}a"), None),
        ("crtsh:", None),
        ("1777593900", None),
    ];
    for (input, want) in cases {
        assert_eq!(canonical_target(input).as_deref(), want, "{input}");
    }
}
