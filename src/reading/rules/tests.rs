use super::*;
use std::path::Path;

fn ids(set: &RuleSet, subject: &str, body: &str) -> Vec<String> {
    set.classify(subject, &[body.to_string()])
        .into_iter()
        .map(|h| h.id)
        .collect()
}

#[test]
fn shipped_rules_load() {
    let set = RuleSet::shipped();
    let items: Vec<u8> = set.rules().iter().map(|r| r.br_item).collect();
    assert_eq!(items, (1..=16).collect::<Vec<u8>>());
    for r in set.rules() {
        assert_eq!(Some(r.crl_reason), CrlReason::for_br_item(r.br_item));
        assert_eq!(Some(r.window), br_max_window(r.br_item), "{}", r.id);
    }
}

/// Sample wording for every BR 4.9.1.1 item: (expected rule, subject, body).
const SAMPLES: &[(&str, &str, &str)] = &[
    // 1 subscriber asks
    (
        "subscriber-request",
        "Revocation request",
        "Hello, this is our certificate for shop.example.com.",
    ),
    (
        "subscriber-request",
        "",
        "Hi,\nplease revoke my certificate for www.example.org, we moved hosting.",
    ),
    (
        "subscriber-request",
        "",
        "We would like our certificates to be revoked as the project has ended.",
    ),
    (
        "subscriber-request",
        "Zertifikat",
        "Bitte widerrufen Sie unser Zertifikat für example.de.",
    ),
    (
        "subscriber-request",
        "",
        "Merci de révoquer mon certificat, il n'est plus utilisé.",
    ),
    (
        "subscriber-request",
        "",
        "Por favor revoquen nuestro certificado de example.es.",
    ),
    // 2 not authorized
    (
        "unauthorized-request",
        "",
        "I did not request this certificate and nobody in our company did.",
    ),
    (
        "unauthorized-request",
        "Unauthorized certificate for example.com",
        "See crt.sh.",
    ),
    (
        "unauthorized-request",
        "",
        "This certificate was issued without our consent.",
    ),
    (
        "unauthorized-request",
        "",
        "Wir haben dieses Zertifikat nicht beantragt.",
    ),
    (
        "unauthorized-request",
        "",
        "Ce certificat a été émis sans notre autorisation.",
    ),
    // 3 key compromise
    (
        "key-compromise",
        "Key compromise report",
        "See attached proof.",
    ),
    (
        "key-compromise",
        "",
        "The private key for this certificate has been\npublished in a public repository.",
    ),
    (
        "key-compromise",
        "",
        "I found the private key for the certificate committed on GitHub:\nhttps://github.com/x/y/blob/main/server.key",
    ),
    (
        "key-compromise",
        "",
        "Attached is a leaked private key matching crt.sh/?id=123.",
    ),
    (
        "key-compromise",
        "",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow...\n",
    ),
    (
        "key-compromise",
        "",
        "Der private Schlüssel wurde veröffentlicht.",
    ),
    (
        "key-compromise",
        "",
        "La clé privée a été divulguée sur un forum.",
    ),
    (
        "key-compromise",
        "",
        "La clave privada fue filtrada en un repositorio público.",
    ),
    // 4 weak key
    (
        "weak-key",
        "",
        "The key in this certificate is a Debian weak key (CVE-2008-0166).",
    ),
    (
        "weak-key",
        "Vulnerable key",
        "This key is vulnerable to ROCA.",
    ),
    (
        "weak-key",
        "",
        "The modulus can be factored with Fermat's factorization method because of close primes.",
    ),
    (
        "weak-key",
        "",
        "The RSA modulus shares a common factor with another key we found.",
    ),
    (
        "weak-key",
        "",
        "The private key can be trivially computed from the public key.",
    ),
    // 5 domain validation / CAA
    (
        "domain-validation",
        "",
        "The CAA record for example.com does not permit your CA to issue.",
    ),
    ("domain-validation", "CAA violation", "See below."),
    (
        "domain-validation",
        "",
        "The applicant did not control the domain at the time of issuance.",
    ),
    (
        "domain-validation",
        "",
        "Your domain validation was bypassed by an HTTP redirect bug.",
    ),
    (
        "domain-validation",
        "",
        "This looks like a subdomain takeover of a dangling CNAME.",
    ),
    // 6 non-compliant key
    (
        "noncompliant-key",
        "",
        "The certificate contains a 1024-bit RSA key.",
    ),
    (
        "noncompliant-key",
        "",
        "The RSA public exponent is 3, which is not allowed.",
    ),
    (
        "noncompliant-key",
        "",
        "The key uses an unsupported curve (brainpoolP256r1).",
    ),
    (
        "noncompliant-key",
        "",
        "The key size is too small for the BRs.",
    ),
    // 7 misuse
    ("misuse", "Phishing site using your certificate", ""),
    (
        "misuse",
        "",
        "This domain hosts malware and acts as a command and control server.",
    ),
    (
        "misuse",
        "",
        "The site impersonates our bank to steal logins.",
    ),
    ("misuse", "", "Die Domain ist eine betrügerische Webseite."),
    ("misuse", "", "Ce site pratique le hameçonnage."),
    // 8 agreement breach
    (
        "agreement-breach",
        "",
        "The subscriber is in breach of the Subscriber Agreement by sharing keys.",
    ),
    (
        "agreement-breach",
        "",
        "This is a violation of your terms of use.",
    ),
    // 9 name no longer permitted
    (
        "name-not-permitted",
        "",
        "A court order transferred the domain to us; see attached judgment.",
    ),
    ("name-not-permitted", "UDRP decision for example.com", ""),
    (
        "name-not-permitted",
        "",
        "The domain was seized by law enforcement last week.",
    ),
    // 10 misleading wildcard
    (
        "misleading-wildcard",
        "",
        "Your wildcard certificate is being used for misleading subdomains like paypal.com.example.net.",
    ),
    (
        "misleading-wildcard",
        "",
        "They serve lookalike subdomains under *.example.net.",
    ),
    // 11 material change
    (
        "material-change",
        "",
        "Our company has been renamed; the certificate shows the old name.",
    ),
    (
        "material-change",
        "",
        "There was a material change in the subscriber information.",
    ),
    (
        "material-change",
        "",
        "The organization listed in the certificate was dissolved in 2025.",
    ),
    // 12 misissuance
    ("misissuance", "Misissued certificate", ""),
    (
        "misissuance",
        "",
        "The CN is not present in the SAN extension.",
    ),
    (
        "misissuance",
        "",
        "The dNSName contains an underscore, which is invalid.",
    ),
    (
        "misissuance",
        "",
        "The certificate has an invalid encoding of the organizationName.",
    ),
    (
        "misissuance",
        "",
        "These serials show low serial number entropy (only 63 bits).",
    ),
    (
        "misissuance",
        "",
        "zlint reports errors for this certificate: e_sub_cert_aia_missing.",
    ),
    (
        "misissuance",
        "",
        "The certificate was not issued in accordance with your CPS.",
    ),
    // 13 inaccurate content
    (
        "inaccurate-content",
        "",
        "The organization name in the certificate is incorrect.",
    ),
    (
        "inaccurate-content",
        "",
        "The certificate contains inaccurate address information.",
    ),
    // 14 CA right to issue ended
    (
        "ca-right-ended",
        "",
        "The issuing CA was removed from the Mozilla root store last month.",
    ),
    (
        "ca-right-ended",
        "",
        "Its WebTrust seal was withdrawn in January.",
    ),
    // 15 CP/CPS requires
    (
        "cp-cps-requires",
        "",
        "Your CPS requires revocation when the subscriber loses the domain.",
    ),
    (
        "cp-cps-requires",
        "",
        "Revocation is required by your CP/CPS section 4.9.1.1.",
    ),
    // 16 flawed key generation or exposure method
    (
        "flawed-key-generation",
        "",
        "The device's key generation uses a predictable RNG seeded with the time.",
    ),
    (
        "flawed-key-generation",
        "",
        "This path traversal exposes the server private key to anyone.",
    ),
    (
        "flawed-key-generation",
        "",
        "The same private key is used on all devices of this model.",
    ),
];

#[test]
fn every_item_has_matching_samples() {
    let set = RuleSet::shipped();
    for (want, subject, body) in SAMPLES {
        let got = ids(&set, subject, body);
        assert!(
            got.iter().any(|g| g == want),
            "{want}: subject {subject:?} body {body:?} → {got:?}"
        );
    }
    for r in set.rules() {
        assert!(
            SAMPLES.iter().any(|(id, _, _)| *id == r.id),
            "no sample for {}",
            r.id
        );
    }
}

#[test]
fn ordinary_mail_does_not_match() {
    let set = RuleSet::shipped();
    for (subject, body) in [
        (
            "Your certificate expires soon",
            "Please renew your certificate before 2026-04-01.",
        ),
        (
            "Invoice 2026-0042",
            "Please find attached our invoice. Kind regards",
        ),
        (
            "Meeting notes",
            "Key takeaways: we fixed the bug in the domain model and the CSV export.",
        ),
        (
            "Order",
            "Our company wants to order a new certificate for example.com.",
        ),
        (
            "Installation help",
            "How do I install the certificate and private key on nginx?",
        ),
        (
            "New CPS version",
            "We published version 3.1 of our CPS today.",
        ),
        (
            "Re: question",
            "Can you check the validity of our order? Thanks, Ana",
        ),
        ("Rocks", "la roca es grande"),
        (
            "crt.sh link",
            "See https://crt.sh/?id=1947655126&opt=zlint,ocsp for details.",
        ),
    ] {
        let got = ids(&set, subject, body);
        assert!(got.is_empty(), "{subject:?} / {body:?} → {got:?}");
    }
}

#[test]
fn classify_reports_rule_order_and_windows_once() {
    let set = RuleSet::shipped();
    let hits = set.classify(
        "Phishing and key compromise",
        &[
            "private key was leaked".to_string(),
            "key compromise again".to_string(),
        ],
    );
    let got: Vec<_> = hits
        .iter()
        .map(|h| (h.id.as_str(), h.br_item, h.window_secs))
        .collect();
    assert_eq!(got, [("key-compromise", 3, 86_400), ("misuse", 7, 432_000)]);
}

/// Commit notices from a real mailing list are not problem reports: almost none should match.
#[test]
fn sakai_corpus_mostly_does_not_match() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/corpus/sakai-mbox.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "corpus {} missing ({e}): it ships in fixtures/corpus (see fixtures/README.md)",
            path.display()
        )
    });
    let set = RuleSet::shipped();
    let mut total = 0;
    let mut matched = Vec::new();
    for msg in text.split("\nFrom ").filter(|m| !m.trim().is_empty()) {
        total += 1;
        let (head, body) = msg.split_once("\n\n").unwrap_or((msg, ""));
        let subject = head
            .lines()
            .find_map(|l| l.strip_prefix("Subject:"))
            .unwrap_or("")
            .trim();
        let hits = set.classify(subject, &[body.to_string()]);
        if !hits.is_empty() {
            matched.push((subject.to_string(), hits));
        }
    }
    assert!(total > 300, "only {total} messages split");
    assert!(
        matched.len() * 100 <= total,
        "{} of {total} matched: {matched:#?}",
        matched.len()
    );
}

fn rule(extra: &str) -> Vec<(String, String)> {
    vec![(
        "test.toml".to_string(),
        format!("[[rule]]\nid = \"r\"\ndescription = \"d\"\n{extra}\n"),
    )]
}

#[test]
fn bad_rules_name_file_rule_and_problem() {
    for (extra, needle) in [
        (
            "br_item = 17\ncrl_reason = \"unspecified\"\nwindow = \"24h\"\nbody = ['xyz']",
            "br_item 17",
        ),
        (
            "br_item = 3\ncrl_reason = \"superseded\"\nwindow = \"24h\"\nbody = ['xyz']",
            "names \"keyCompromise\"",
        ),
        (
            "br_item = 3\ncrl_reason = \"keycompromise\"\nwindow = \"24h\"\nbody = ['xyz']",
            "not one the BRs use",
        ),
        (
            "br_item = 3\ncrl_reason = \"keyCompromise\"\nwindow = \"5d\"\nbody = ['xyz']",
            "exceeds the 24h",
        ),
        (
            "br_item = 12\ncrl_reason = \"superseded\"\nwindow = \"6d\"\nbody = ['xyz']",
            "exceeds the 5d",
        ),
        (
            "br_item = 12\ncrl_reason = \"superseded\"\nwindow = \"soon\"\nbody = ['xyz']",
            "not a span",
        ),
        (
            "br_item = 12\ncrl_reason = \"superseded\"\nwindow = \"5d\"",
            "no patterns",
        ),
        (
            "br_item = 12\ncrl_reason = \"superseded\"\nwindow = \"5d\"\nsubject = ['(unclosed']",
            "subject[0] does not compile",
        ),
        (
            "br_item = 12\ncrl_reason = \"superseded\"\nwindow = \"5d\"\nbody = ['xyz']\nunless = ['(unclosed']",
            "unless[0] does not compile",
        ),
        (
            "br_item = 12\ncrl_reason = \"superseded\"\nwindow = \"5d\"\nbody = ['\\bno\\s+\\w+']",
            "body[0] has no literal word",
        ),
        (
            "br_item = 12\ncrl_reason = \"superseded\"\nwindow = \"5d\"\nbody = ['xyz']\noverrides = ['nobody']",
            "no rule of the set",
        ),
        (
            "br_item = 12\ncrl_reason = \"superseded\"\nwindow = \"5d\"\nbody = ['xyz']\noverrides = ['r']",
            "overrides itself",
        ),
    ] {
        let e = RuleSet::from_sources(&rule(extra)).unwrap_err();
        assert!(matches!(e, RulesError::Invalid { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("test.toml") && text.contains("\"r\"") && text.contains(needle),
            "{text}"
        );
    }
    let e = RuleSet::from_sources(&rule(
        "br_item = 1\ncrl_reason = \"unspecified\"\nwindow = \"1h\"\nbody = ['xyz']\ncolour = 1",
    ))
    .unwrap_err();
    assert!(
        e.to_string().contains("test.toml") && e.to_string().contains("colour"),
        "{e}"
    );
    let ok = rule("br_item = 1\ncrl_reason = \"unspecified\"\nwindow = \"1h\"\nbody = ['xyz']");
    let twice = [ok.clone(), vec![("other.toml".into(), ok[0].1.clone())]].concat();
    let e = RuleSet::from_sources(&twice).unwrap_err().to_string();
    assert!(
        e.contains("other.toml") && e.contains("test.toml") && e.contains("unique"),
        "{e}"
    );
}

#[test]
fn case_insensitive_unless_switched_off() {
    let set = RuleSet::from_sources(&rule(
        "br_item = 7\ncrl_reason = \"privilegeWithdrawn\"\nwindow = \"5d\"\nsubject = ['phish']\nbody = ['(?-i)ABC']",
    ))
    .unwrap();
    assert_eq!(set.classify("PHISH", &[]).len(), 1);
    assert_eq!(set.classify("", &["abc".into()]).len(), 0);
    assert_eq!(set.classify("", &["ABC".into()]).len(), 1);
    assert_eq!(set.get("r").map(|r| r.window), Some(Duration::days(5)));
}

#[test]
fn classify_a_large_ordinary_text_matches_nothing() {
    // Speed is measured by the ingest benchmark, not here.
    let set = RuleSet::shipped();
    let text = "An ordinary line of mail text, nothing to see here.\n".repeat(20_000);
    assert!(set.classify("Re: hello", &[text]).is_empty());
}

#[test]
fn word_classes_are_lean_but_keep_non_ascii_words_whole() {
    assert_eq!(
        super::lean_word_classes(r"a\w+\W\\w[^=,\w]"),
        r"a(?-i:[0-9A-Za-z_\x{80}-\x{10FFFF}])+(?-i:[^0-9A-Za-z_\x{80}-\x{10FFFF}])\\w[^=,0-9A-Za-z_\x{80}-\x{10FFFF}]"
    );
    let set = RuleSet::from_sources(&[(
        "t.toml".into(),
        r#"[[rule]]
id = "t"
description = "t"
br_item = 3
crl_reason = "keyCompromise"
window = "24h"
body = ['\bSchl\w+ssel\b \w+ kompromittiert']
"#
        .into(),
    )])
    .unwrap();
    let hits = set.classify("", &["Der private Schlüssel wurde kompromittiert".into()]);
    assert_eq!(hits.len(), 1);
}

/// A small rule set for precedence: a generic 24-hour rule, a specific 5-day one that wins over
/// it in a sentence both match, and exceptions.
fn precedence_set() -> RuleSet {
    RuleSet::from_sources(&[(
        "p.toml".into(),
        r#"
[[rule]]
id = "compromise"
description = "generic"
br_item = 3
crl_reason = "keyCompromise"
window = "24h"
body = ['\bkey\s+(was\s+)?(exposed|compromised)\b', '\bcompromised\s+key\b']
unless = ['\b(not|never|no)\b\W+(?:\w+\W+){0,6}(exposed|compromised)', '\bunrelated\s+to\s+key\s+compromise']

[[rule]]
id = "short-key"
description = "specific"
br_item = 6
crl_reason = "superseded"
window = "5d"
body = ['\b(1024|768)[\s-]*bit\s+(rsa\s+)?key\b']
overrides = ["compromise"]
"#
        .into(),
    )])
    .unwrap()
}

#[test]
fn an_exception_voids_a_match_only_in_its_own_sentence() {
    let set = precedence_set();
    assert!(ids(&set, "", "We do not claim the key was exposed.").is_empty());
    assert!(ids(&set, "", "Our key was never exposed or compromised.").is_empty());
    assert!(
        ids(
            &set,
            "",
            "The issue is unrelated to key compromise: no compromised key."
        )
        .is_empty()
    );
    // The disclaimer in one sentence does not hide a claim in the next.
    assert_eq!(
        ids(
            &set,
            "",
            "We do not claim the key was exposed. Separately, the key was compromised in March."
        ),
        ["compromise"]
    );
}

#[test]
fn a_specific_rule_wins_only_in_the_sentence_both_match() {
    let set = precedence_set();
    // Same sentence: the specific reading wins.
    assert_eq!(
        ids(
            &set,
            "",
            "The 1024-bit RSA key is a compromised key in our view."
        ),
        ["short-key"]
    );
    // Another sentence: both apply, and the engine picks the shorter window.
    assert_eq!(
        ids(
            &set,
            "",
            "The certificate has a 1024-bit key.\n\nAlso, its key was exposed on a public server."
        ),
        ["compromise", "short-key"]
    );
}

#[test]
fn every_hit_shows_the_phrase_that_matched() {
    let set = precedence_set();
    let hits = set.classify(
        "",
        &["Hello,\nthe   key\nwas exposed yesterday. Regards".to_string()],
    );
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].matched, "key was exposed");
    // Never from an encoded block: a PEM body line is not prose.
    let pem = "-----BEGIN CERTIFICATE-----\nMIIBkey+was/exposedAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n-----END CERTIFICATE-----";
    assert!(set.classify("", &[pem.to_string()]).is_empty());
}

#[test]
fn override_loops_are_refused() {
    let e = RuleSet::from_sources(&[(
        "loop.toml".into(),
        r#"
[[rule]]
id = "a"
description = "a"
br_item = 3
crl_reason = "keyCompromise"
window = "24h"
body = ['alpha']
overrides = ["b"]

[[rule]]
id = "b"
description = "b"
br_item = 6
crl_reason = "superseded"
window = "5d"
body = ['beta']
overrides = ["a"]
"#
        .into(),
    )])
    .unwrap_err()
    .to_string();
    assert!(e.contains("loop.toml") && e.contains("loop"), "{e}");
}

/// Work per message does not depend on what earlier messages said: the same text costs the same
/// after thousands of different ones (the old single-DFA design rebuilt states on every new
/// wording). Checked by counting, not timing: every pattern runs only over windows around its
/// keywords, so text without any keyword runs no pattern at all.
#[test]
fn text_without_keywords_runs_no_pattern() {
    let set = RuleSet::shipped();
    let text = "Lorem ipsum dolor sit amet, adipiscing elit.\n".repeat(2_000);
    let found: Vec<_> = set
        .matcher
        .keywords
        .find_overlapping_iter(&text)
        .map(|m| text[m.range()].to_string())
        .take(3)
        .collect();
    assert!(found.is_empty(), "{found:?}");
    assert!(set.classify("Lorem", &[text]).is_empty());
}

/// The keyword machinery (prefilter, windows, anchoring, gates, ASCII word boundaries) finds
/// what each pattern finds run plainly over the whole text: every shipped pattern, as a rule of
/// its own, on the labelled reports, the Sakai corpus and text dense in every keyword.
#[test]
fn the_keyword_machinery_finds_what_the_plain_regex_finds() {
    let shipped = RuleSet::shipped();
    let mut toml = String::new();
    let mut plain = Vec::new();
    for r in shipped.rules() {
        for (field, list) in [("subject", &r.subject), ("body", &r.body)] {
            for p in list {
                let id = format!("p{}", plain.len());
                toml.push_str(&format!(
                    "[[rule]]\nid = \"{id}\"\ndescription = \"d\"\nbr_item = 3\ncrl_reason = \"keyCompromise\"\nwindow = \"24h\"\n{field} = ['{p}']\n\n"
                ));
                let re = regex::RegexBuilder::new(&lean_word_classes(p))
                    .case_insensitive(true)
                    .size_limit(SIZE_LIMIT)
                    .build()
                    .unwrap();
                plain.push((id, field, re));
            }
        }
    }
    let each = RuleSet::from_sources(&[("each.toml".into(), toml)]).unwrap();

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut texts: Vec<String> = Vec::new();
    let mut labelled: Vec<_> = std::fs::read_dir(root.join("fixtures/labelled"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    labelled.sort();
    for p in labelled {
        texts.push(std::fs::read_to_string(p).unwrap());
    }
    let sakai = std::fs::read_to_string(root.join("fixtures/corpus/sakai-mbox.txt")).unwrap();
    texts.extend(sakai.split("\nFrom ").take(100).map(str::to_string));
    // Every keyword of every rule, shuffled into sentences: the densest text there is.
    let mut words: Vec<String> = each.matcher.keywords_text();
    let mut seed = 0x9e37_79b9_u64;
    for _ in 0..20 {
        let mut t = String::new();
        for i in 0..400 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let w = &words[(seed >> 33) as usize % words.len()];
            t.push_str(w);
            t.push_str(match i % 9 {
                0 => ". ",
                4 => "\n",
                _ => " ",
            });
        }
        texts.push(t);
    }
    words.clear();

    let mut differences = Vec::new();
    for t in &texts {
        let got: std::collections::BTreeSet<String> = each
            .classify(t, std::slice::from_ref(t))
            .into_iter()
            .map(|h| h.id)
            .collect();
        for (id, _, re) in &plain {
            let want = re.is_match(t);
            if want != got.contains(id) {
                differences.push(format!(
                    "{id} {}: plain {want}, machinery {}",
                    re.as_str().chars().take(60).collect::<String>(),
                    !want
                ));
            }
        }
    }
    differences.sort();
    differences.dedup();
    assert!(
        differences.is_empty(),
        "{} differences:\n{}",
        differences.len(),
        differences.join("\n")
    );
}
