//! The test CA of `scripts/testca.sh` and tests/support/testca.rs, proved with `openssl` itself
//! as the client: its responders answer good, then revoked (keyCompromise) after a revocation;
//! the delegated responder's answers verify; a rogue responder's do not; the CRL fetched over
//! the loopback HTTP server lists the serial; the precertificate and its final certificate are
//! one serial; the crt.sh-like endpoint serves certificates by id and SHA-256 and the JSON by
//! key; a stopped responder refuses connections; nothing listens beyond 127.0.0.1.

mod support;

use support::listeners;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::testca::{Publish, Signer, TestCa};

/// Run openssl; its success and everything it printed (stdout then stderr).
fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// `openssl ocsp` asking URL about the certificate NAME, verifying against the test root
/// (plus `extra` options); its output.
fn ask(ca: &TestCa, url: &str, name: &str, extra: &[&str]) -> String {
    let cert = ca.cert(name).path.clone();
    let (issuer, root) = (ca.intermediate_pem(), ca.root_pem());
    let mut args = vec![
        "ocsp",
        "-issuer",
        path(&issuer),
        "-cert",
        path(&cert),
        "-url",
        url,
        "-CAfile",
        path(&root),
        "-resp_text",
        "-timeout",
        "20",
    ];
    args.extend_from_slice(extra);
    openssl(&args).1
}

/// A minimal HTTP/1.1 GET on loopback: status and body.
fn get(port: u16, target: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the test CA");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, raw[split + 4..].to_vec())
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

#[test]
fn ocsp_says_good_then_revoked_for_key_compromise() {
    let ca = TestCa::start();
    let good = ca.cert("good").clone();
    // The leaf names this responder in its AIA, and the CRL and issuer URLs of the test server.
    let (_, aia) = openssl(&["x509", "-in", path(&good.path), "-noout", "-ocsp_uri"]);
    assert_eq!(aia.trim(), ca.ocsp_url());
    let (_, text) = openssl(&["x509", "-in", path(&good.path), "-noout", "-text"]);
    assert!(text.contains(&ca.crl_url()), "{text}");
    assert!(text.contains(&ca.ca_issuers_url()), "{text}");

    let before = ask(&ca, &ca.ocsp_url(), "good", &[]);
    assert!(before.contains("Response verify OK"), "{before}");
    assert!(before.contains("good.pem: good"), "{before}");
    // Signed by the intermediate itself.
    assert!(
        before.contains("Responder Id: C = XX, O = cprwatch test, CN = cprwatch Test Issuing CA"),
        "{before}"
    );
    assert!(before.contains("Next Update:"), "{before}");

    ca.revoke(&good.serial, "keyCompromise");
    let after = ask(&ca, &ca.ocsp_url(), "good", &[]);
    assert!(after.contains("Response verify OK"), "{after}");
    assert!(after.contains("good.pem: revoked"), "{after}");
    assert!(after.contains("Reason: keyCompromise"), "{after}");
    // The other certificate of the same key is not revoked with it.
    let mate = ask(&ca, &ca.ocsp_url(), "mate", &[]);
    assert!(mate.contains("mate.pem: good"), "{mate}");
    // A nonce sent is echoed (openssl's client sends one unless told not to).
    assert!(!after.contains("WARNING: no nonce"), "{after}");
}

#[test]
fn ocsp_over_get_is_answered_too() {
    let ca = TestCa::start();
    let req = ca.dir().join("req.der");
    let good = ca.cert("good").path.clone();
    let issuer = ca.intermediate_pem();
    let (ok, out) = openssl(&[
        "ocsp",
        "-issuer",
        path(&issuer),
        "-cert",
        path(&good),
        "-no_nonce",
        "-reqout",
        path(&req),
    ]);
    assert!(ok, "{out}");
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&req).unwrap());
    let target = format!(
        "/{}",
        b64.replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    );
    let (status, body) = get(port_of(&ca.ocsp_url()), &target);
    assert_eq!(status, 200);
    let resp = ca.dir().join("resp.der");
    std::fs::write(&resp, body).unwrap();
    let root = ca.root_pem();
    let (_, text) = openssl(&[
        "ocsp",
        "-respin",
        path(&resp),
        "-issuer",
        path(&issuer),
        "-cert",
        path(&good),
        "-CAfile",
        path(&root),
    ]);
    assert!(text.contains("Response verify OK"), "{text}");
    assert!(text.contains("good.pem: good"), "{text}");
    assert!(
        ca.requests().iter().any(|r| r.starts_with("ocsp GET /")),
        "{:?}",
        ca.requests()
    );
    // Garbage is a malformedRequest answer, and the responder goes on.
    let (status, body) = get(port_of(&ca.ocsp_url()), "/bm90IGFuIE9DU1AgcmVxdWVzdA==");
    assert_eq!((status, body), (200, vec![0x30, 0x03, 0x0a, 0x01, 0x01]));
    let again = ask(&ca, &ca.ocsp_url(), "good", &[]);
    assert!(again.contains("good.pem: good"), "{again}");
}

#[test]
fn delegated_responder_verifies_and_a_rogue_one_does_not() {
    let ca = TestCa::start();
    let va = ca.delegated_responder_pem();
    // With the responder's certificate given as trusted (-VAfile), and by its chain to the
    // root (OCSPSigning, issued by the intermediate).
    let with_va = ask(
        &ca,
        &ca.ocsp_delegated_url(),
        "good",
        &["-VAfile", path(&va)],
    );
    assert!(with_va.contains("Response verify OK"), "{with_va}");
    assert!(with_va.contains("good.pem: good"), "{with_va}");
    assert!(
        with_va
            .contains("Responder Id: C = XX, O = cprwatch test, CN = cprwatch Test OCSP Responder"),
        "{with_va}"
    );
    let by_chain = ask(&ca, &ca.ocsp_delegated_url(), "good", &[]);
    assert!(by_chain.contains("Response verify OK"), "{by_chain}");

    // The rogue responder's signature is valid, but its certificate is from another CA.
    let rogue = ask(&ca, &ca.ocsp_rogue_url(), "good", &[]);
    assert!(rogue.contains("Response Verify Failure"), "{rogue}");
    assert!(rogue.contains("Rogue OCSP Responder"), "{rogue}");

    // The AIA responder can be switched to either signer.
    ca.set_ocsp_signer(Signer::Delegated);
    let switched = ask(&ca, &ca.ocsp_url(), "good", &[]);
    assert!(
        switched.contains("CN = cprwatch Test OCSP Responder"),
        "{switched}"
    );
    assert!(switched.contains("Response verify OK"), "{switched}");
    ca.set_ocsp_signer(Signer::Rogue);
    let switched = ask(&ca, &ca.ocsp_url(), "good", &[]);
    assert!(switched.contains("Response Verify Failure"), "{switched}");
}

/// The CRL at the leaves' distribution point, as `openssl crl -text`, verified against the
/// intermediate.
fn crl_text(ca: &TestCa) -> String {
    let (status, der) = get(ca.http_port(), "/intermediate.crl");
    assert_eq!(status, 200);
    let file = ca.dir().join("fetched.crl");
    std::fs::write(&file, der).unwrap();
    let issuer = ca.intermediate_pem();
    let (ok, text) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        path(&file),
        "-CAfile",
        path(&issuer),
        "-noout",
        "-text",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("verify OK"), "{text}");
    text
}

#[test]
fn crl_over_http_lists_the_serial_after_revoke() {
    let ca = TestCa::start();
    let mate = ca.cert("mate").serial.clone();
    let before = crl_text(&ca);
    assert!(before.contains("No Revoked Certificates"), "{before}");
    assert!(before.contains("Next Update:"), "{before}");

    ca.revoke(&mate, "keyCompromise");
    let after = crl_text(&ca);
    assert!(after.contains(&format!("Serial Number: {mate}")), "{after}");
    assert!(after.contains("Key Compromise"), "{after}");
    // The issuer certificate is at the caIssuers URL, DER.
    let (status, der) = get(ca.http_port(), "/intermediate.crt");
    assert_eq!(status, 200);
    let want = Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(ca.intermediate_pem())
        .output()
        .expect("run openssl")
        .stdout;
    assert_eq!(der, want);
    assert_eq!(get(ca.http_port(), "/../certs.tsv").0, 404);
    assert_eq!(get(ca.http_port(), "/intermediate.key").0, 404);
}

#[test]
fn ocsp_and_crl_can_disagree() {
    let ca = TestCa::start();
    let good = ca.cert("good").serial.clone();
    let mate = ca.cert("mate").serial.clone();
    // The CRL says revoked; the responder, not told, still says good (a cached responder).
    ca.revoke_in(&good, "keyCompromise", Publish::Crl);
    assert!(crl_text(&ca).contains(&format!("Serial Number: {good}")));
    let ocsp = ask(&ca, &ca.ocsp_url(), "good", &[]);
    assert!(ocsp.contains("good.pem: good"), "{ocsp}");
    // The other way round: revoked over OCSP, not yet on the published CRL.
    ca.revoke_in(&mate, "superseded", Publish::Ocsp);
    let ocsp = ask(&ca, &ca.ocsp_url(), "mate", &[]);
    assert!(ocsp.contains("mate.pem: revoked"), "{ocsp}");
    assert!(ocsp.contains("Reason: superseded"), "{ocsp}");
    // good is revoked over OCSP too now (the database is published whole).
    assert!(ask(&ca, &ca.ocsp_url(), "good", &[]).contains("good.pem: revoked"));
    assert!(!crl_text(&ca).contains(&format!("Serial Number: {mate}")));
    ca.publish(Publish::Both);
    assert!(crl_text(&ca).contains(&format!("Serial Number: {mate}")));
}

#[test]
fn precertificate_and_final_certificate_are_one_serial_and_unknown_is_unknown() {
    let ca = TestCa::start();
    let (pre, fin) = (ca.cert("precert").clone(), ca.cert("final").clone());
    assert_eq!(pre.serial, fin.serial);
    assert_ne!(pre.sha256, fin.sha256);
    let (_, text) = openssl(&["x509", "-in", path(&pre.path), "-noout", "-text"]);
    assert!(
        text.contains("CT Precertificate Poison: critical"),
        "{text}"
    );
    let (_, text) = openssl(&["x509", "-in", path(&fin.path), "-noout", "-text"]);
    assert!(!text.contains("Poison"), "{text}");

    ca.revoke(&pre.serial, "keyCompromise");
    for name in ["precert", "final"] {
        let out = ask(&ca, &ca.ocsp_url(), name, &[]);
        assert!(out.contains(&format!("{name}.pem: revoked")), "{out}");
    }
    let unknown = ask(&ca, &ca.ocsp_url(), "unknown", &[]);
    assert!(unknown.contains("unknown.pem: unknown"), "{unknown}");
    // The expired certificate is still in the database, and good.
    let expired = ask(&ca, &ca.ocsp_url(), "expired", &[]);
    assert!(expired.contains("expired.pem: good"), "{expired}");
}

#[test]
fn crtsh_like_endpoint_serves_certificates_by_id_sha256_and_key() {
    let ca = TestCa::start();
    let good = ca.cert("good").clone();
    let (status, by_id) = get(ca.http_port(), &format!("/?d={}", good.crtsh_id));
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8(by_id).unwrap(), good.pem());
    let (status, by_sha) = get(
        ca.http_port(),
        &format!("/?d={}", good.sha256.to_ascii_uppercase()),
    );
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8(by_sha).unwrap(), good.pem());
    // The SHA-256 is the certificate's.
    let (_, fp) = openssl(&[
        "x509",
        "-in",
        path(&good.path),
        "-noout",
        "-fingerprint",
        "-sha256",
    ]);
    assert!(
        fp.replace(':', "")
            .to_ascii_lowercase()
            .contains(&good.sha256),
        "{fp} vs {}",
        good.sha256
    );
    assert_eq!(get(ca.http_port(), "/?d=1").0, 404);

    // Every certificate with key-a: good, mate, expired (the caller skips expired ones).
    let (status, json) = get(
        ca.http_port(),
        &format!("/?spkisha256={}&output=json", good.spki_sha256),
    );
    assert_eq!(status, 200);
    let list: Vec<serde_json::Value> = serde_json::from_slice(&json).unwrap();
    let mut ids: Vec<u64> = list.iter().map(|v| v["id"].as_u64().unwrap()).collect();
    ids.sort();
    let want: Vec<u64> = ["good", "mate", "expired"]
        .iter()
        .map(|n| ca.cert(n).crtsh_id)
        .collect();
    assert_eq!(ids, want, "{list:?}");
    let first = list
        .iter()
        .find(|v| v["id"] == good.crtsh_id)
        .expect("good in the list");
    assert_eq!(first["serial_number"], good.serial);
    assert_eq!(first["not_after"], good.not_after);
    assert_eq!(first["common_name"], "good.example-ca.test");
    // The precertificate and its final certificate: two entries, one serial.
    let pre = ca.cert("precert").clone();
    let (_, json) = get(
        ca.http_port(),
        &format!("/?spkisha256={}&output=json", pre.spki_sha256),
    );
    let list: Vec<serde_json::Value> = serde_json::from_slice(&json).unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list.iter().all(|v| v["serial_number"] == pre.serial));
    let (_, json) = get(
        ca.http_port(),
        &format!("/?spkisha256={}&output=json", "00".repeat(32)),
    );
    assert_eq!(json, b"[]");

    // An overloaded crt.sh.
    ca.fail_crtsh(Some(429));
    assert_eq!(
        get(ca.http_port(), &format!("/?d={}", good.crtsh_id)).0,
        429
    );
    ca.fail_crtsh(None);
    assert_eq!(
        get(ca.http_port(), &format!("/?d={}", good.crtsh_id)).0,
        200
    );
    let asked = ca.requests();
    assert!(
        asked
            .iter()
            .any(|r| r == &format!("http GET /?d={}", good.crtsh_id)),
        "{asked:?}"
    );
}

#[test]
fn a_stopped_responder_refuses_connections() {
    let mut ca = TestCa::start();
    ca.stop_ocsp();
    for url in [ca.ocsp_url(), ca.ocsp_delegated_url(), ca.ocsp_rogue_url()] {
        let err = TcpStream::connect(("127.0.0.1", port_of(&url))).expect_err("responder is down");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{url}: {err}");
    }
    let out = ask(&ca, &ca.ocsp_url(), "good", &[]);
    assert!(!out.contains("good.pem: good"), "{out}");
    // The CRL and crt.sh-like server stay up.
    assert_eq!(get(ca.http_port(), "/intermediate.crl").0, 200);
    ca.start_ocsp();
    let out = ask(&ca, &ca.ocsp_url(), "good", &[]);
    assert!(out.contains("good.pem: good"), "{out}");
}

#[test]
fn the_test_ca_listens_on_loopback_only() {
    let ca = TestCa::start();
    // Answer one request first, so a responder started on demand would be listening too.
    assert!(ask(&ca, &ca.ocsp_url(), "good", &[]).contains("good.pem: good"));
    for port in ca.ports() {
        // 0100007F is 127.0.0.1 in the kernel's byte order.
        assert_eq!(
            listeners(port),
            vec![format!("0100007F:{port:04X}")],
            "listening sockets on port {port}"
        );
    }
}
