//! The revocation fetch edge (`cprwatch::fetch`) end to end: against the test CA of
//! tests/support/testca.rs (real `openssl ocsp` answers, a CRL and caIssuers over HTTP, a
//! crt.sh-like endpoint), each fetched answer judged by `check_ocsp`/`check_crl`; and against a
//! small loopback server of its own for what the test CA does not do (Retry-After, redirects,
//! a body streamed past the cap, a slow server, a wrong Content-Type).

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cprwatch::fetch::crtsh::{self, RateLimit};
use cprwatch::fetch::responders;
use cprwatch::fetch::{FetchError, FetchSettings, HttpClient};
use cprwatch::reading::revocation::{
    CrlStatus, OcspStatus, certificate_facts, check_crl, check_ocsp, ocsp_request,
};
use std::time::Duration;
use support::testca::TestCa;
use time::OffsetDateTime;

fn client() -> HttpClient {
    HttpClient::new(&FetchSettings {
        timeout: Duration::from_secs(20),
        ca_file: None,
        allow_private: true,
    })
    .expect("HTTP client")
}

/// The DER of a PEM file of the test CA.
fn der_of(path: &std::path::Path) -> Vec<u8> {
    certificate_facts(&std::fs::read(path).expect("read PEM"))
        .expect("a certificate")
        .der
}

/// The leaf NAME and its issuer, DER.
fn leaf_and_issuer(ca: &TestCa, name: &str) -> (Vec<u8>, Vec<u8>) {
    (der_of(&ca.cert(name).path), der_of(&ca.intermediate_pem()))
}

/// Fetch an OCSP answer for NAME from the AIA responder with `nonce` and judge it.
async fn ocsp_status(ca: &TestCa, http: &HttpClient, name: &str, nonce: &[u8]) -> OcspStatus {
    let (leaf, issuer) = leaf_and_issuer(ca, name);
    let facts = certificate_facts(&leaf).expect("facts");
    assert_eq!(facts.ocsp_urls, vec![ca.ocsp_url()], "the AIA responder");
    let request = ocsp_request(&leaf, &issuer, Some(nonce)).expect("request");
    let fetched = responders::ocsp(http, &facts.ocsp_urls[0], &request)
        .await
        .expect("OCSP answer");
    assert_eq!(
        fetched.media_type().as_deref(),
        Some("application/ocsp-response")
    );
    check_ocsp(
        &fetched.body,
        &leaf,
        &issuer,
        Some(nonce),
        OffsetDateTime::now_utc(),
    )
    .expect("a verified answer")
    .status
}

fn ocsp_methods(ca: &TestCa) -> Vec<String> {
    ca.requests()
        .into_iter()
        .filter(|r| r.starts_with("ocsp "))
        .map(|r| r.split(' ').nth(1).unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn ocsp_over_get_says_good_then_revoked() {
    let ca = TestCa::start();
    let http = client();
    let nonce = b"sixteen byte non";
    assert_eq!(
        ocsp_status(&ca, &http, "good", nonce).await,
        OcspStatus::Good
    );
    ca.revoke(&ca.cert("good").serial, "keyCompromise");
    match ocsp_status(&ca, &http, "good", nonce).await {
        OcspStatus::Revoked { reason, .. } => assert_eq!(reason, Some("keyCompromise")),
        other => panic!("expected revoked, got {other:?}"),
    }
    // A small request goes by GET (RFC 6960 A.1), cacheable by a responder's CDN.
    assert_eq!(ocsp_methods(&ca), vec!["GET", "GET"]);
}

#[tokio::test]
async fn ocsp_over_post_when_the_request_is_too_long_for_get() {
    let ca = TestCa::start();
    let http = client();
    // A 120-byte nonce makes the request too long for a GET URL.
    let nonce = [0x5a; 120];
    assert_eq!(
        ocsp_status(&ca, &http, "mate", &nonce).await,
        OcspStatus::Good
    );
    ca.revoke(&ca.cert("mate").serial, "superseded");
    match ocsp_status(&ca, &http, "mate", &nonce).await {
        OcspStatus::Revoked { reason, .. } => assert_eq!(reason, Some("superseded")),
        other => panic!("expected revoked, got {other:?}"),
    }
    assert_eq!(ocsp_methods(&ca), vec!["POST", "POST"]);
}

#[tokio::test]
async fn the_crl_is_fetched_and_lists_the_serial_after_revocation() {
    let ca = TestCa::start();
    let http = client();
    let (leaf, issuer) = leaf_and_issuer(&ca, "good");
    let facts = certificate_facts(&leaf).expect("facts");
    assert_eq!(facts.crl_urls, vec![ca.crl_url()]);
    let now = OffsetDateTime::now_utc();
    let crl = responders::crl(&http, &facts.crl_urls[0], responders::CRL_MAX_BYTES)
        .await
        .expect("CRL");
    let verdict = check_crl(&crl.body, &facts.serial, &issuer, now).expect("verified CRL");
    assert_eq!(verdict.status, CrlStatus::NotListed);

    ca.revoke(&ca.cert("good").serial, "keyCompromise");
    let crl = responders::crl(&http, &facts.crl_urls[0], responders::CRL_MAX_BYTES)
        .await
        .expect("CRL");
    match check_crl(&crl.body, &facts.serial, &issuer, now)
        .expect("verified CRL")
        .status
    {
        CrlStatus::Revoked { reason, .. } => assert_eq!(reason, Some("keyCompromise")),
        other => panic!("expected revoked, got {other:?}"),
    }
}

#[tokio::test]
async fn the_issuer_comes_from_the_ca_issuers_url() {
    let ca = TestCa::start();
    let http = client();
    let (leaf, issuer) = leaf_and_issuer(&ca, "good");
    let facts = certificate_facts(&leaf).expect("facts");
    assert_eq!(facts.ca_issuers_urls, vec![ca.ca_issuers_url()]);
    let fetched = responders::issuer(&http, &facts.ca_issuers_urls[0])
        .await
        .expect("issuer");
    assert_eq!(fetched, issuer);
    // A URL that serves something else is refused by name.
    let crl_as_issuer = responders::issuer(&http, &ca.crl_url())
        .await
        .expect_err("a CRL is not a certificate");
    assert!(
        matches!(crl_as_issuer, FetchError::BadBody { .. }),
        "{crl_as_issuer:?}"
    );
}

#[tokio::test]
async fn crtsh_serves_certificates_by_id_and_sha256() {
    let ca = TestCa::start();
    let http = client();
    let good = ca.cert("good").clone();
    let want = der_of(&good.path);
    let base = ca.crtsh_url();
    let by_id = crtsh::certificate(&http, &base, &good.crtsh_id.to_string())
        .await
        .expect("by id");
    assert_eq!(by_id, Some(want.clone()));
    let by_sha = crtsh::certificate(&http, &base, &good.sha256.to_ascii_uppercase())
        .await
        .expect("by sha256");
    assert_eq!(by_sha, Some(want));
    // Unknown: None, not an error.
    assert_eq!(
        crtsh::certificate(&http, &base, "1").await.expect("answer"),
        None
    );
    assert_eq!(
        crtsh::certificate(&http, &base, &"ab".repeat(32))
            .await
            .expect("answer"),
        None
    );
    let asked = ca.requests();
    assert!(
        asked.contains(&format!("http GET /?d={}", good.crtsh_id)),
        "{asked:?}"
    );
    assert!(
        asked.contains(&format!("http GET /?d={}", good.sha256)),
        "{asked:?}"
    );
    // Garbage is refused before anything is sent.
    let err = crtsh::certificate(&http, &base, "1&spkisha256=x")
        .await
        .expect_err("not an id");
    assert!(matches!(err, FetchError::BadQuery(_)), "{err:?}");
    assert_eq!(ca.requests().len(), asked.len());
}

#[tokio::test]
async fn crtsh_lists_every_certificate_of_a_key() {
    let ca = TestCa::start();
    let http = client();
    let base = ca.crtsh_url();
    let good = ca.cert("good").clone();
    let mut list = crtsh::by_key(&http, &base, &good.spki_sha256)
        .await
        .expect("list");
    list.sort_by_key(|e| e.id);
    let ids: Vec<u64> = list.iter().map(|e| e.id).collect();
    let want: Vec<u64> = ["good", "mate", "expired"]
        .iter()
        .map(|n| ca.cert(n).crtsh_id)
        .collect();
    assert_eq!(ids, want);
    let entry = &list[0];
    assert_eq!(entry.serial, good.serial);
    assert_eq!(entry.issuer_name, good.issuer_name);
    assert_eq!(entry.common_name.as_deref(), Some("good.example-ca.test"));
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    assert_eq!(entry.not_after.format(fmt).unwrap(), good.not_after);
    assert_eq!(entry.not_before.format(fmt).unwrap(), good.not_before);
    // The expired one is listed with its notAfter in the past: the caller skips it.
    let expired = list
        .iter()
        .find(|e| e.id == ca.cert("expired").crtsh_id)
        .expect("expired listed");
    assert!(expired.not_after < OffsetDateTime::now_utc());

    // The precertificate and its final certificate: two entries, one serial.
    let pre = ca.cert("precert").clone();
    let list = crtsh::by_key(&http, &base, &pre.spki_sha256)
        .await
        .expect("list");
    let mut ids: Vec<u64> = list.iter().map(|e| e.id).collect();
    ids.sort();
    assert_eq!(ids, vec![pre.crtsh_id, ca.cert("final").crtsh_id]);
    assert!(list.iter().all(|e| e.serial == pre.serial));
    assert_eq!(
        crtsh::by_key(&http, &base, &"00".repeat(32))
            .await
            .expect("empty"),
        vec![]
    );
}

#[tokio::test]
async fn an_overloaded_crtsh_is_a_status_error_and_a_missing_responder_is_unreachable() {
    let mut ca = TestCa::start();
    let http = client();
    let good = ca.cert("good").clone();
    ca.fail_crtsh(Some(429));
    let err = crtsh::certificate(&http, &ca.crtsh_url(), &good.crtsh_id.to_string())
        .await
        .expect_err("rate limited");
    assert_eq!(err.status(), Some(429), "{err:?}");
    ca.fail_crtsh(Some(503));
    let err = crtsh::by_key(&http, &ca.crtsh_url(), &good.spki_sha256)
        .await
        .expect_err("unavailable");
    assert_eq!(err.status(), Some(503), "{err:?}");
    ca.fail_crtsh(None);

    ca.stop_ocsp();
    let (leaf, issuer) = leaf_and_issuer(&ca, "good");
    let request = ocsp_request(&leaf, &issuer, None).expect("request");
    let err = responders::ocsp(&http, &ca.ocsp_url(), &request)
        .await
        .expect_err("responder down");
    match &err {
        FetchError::Unreachable { cause, .. } => {
            assert!(cause.to_lowercase().contains("refused"), "{cause}")
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
    assert!(err.to_string().contains(&ca.ocsp_url()), "{err}");
}

#[tokio::test]
async fn a_crl_over_the_cap_is_refused() {
    let ca = TestCa::start();
    let http = client();
    let full = responders::crl(&http, &ca.crl_url(), responders::CRL_MAX_BYTES)
        .await
        .expect("CRL");
    let cap = full.body.len() - 1;
    let err = responders::crl(&http, &ca.crl_url(), cap)
        .await
        .expect_err("over the cap");
    assert!(
        matches!(err, FetchError::TooLarge { limit, .. } if limit == cap),
        "{err:?}"
    );
    // Exactly at the cap is fine.
    let exact = responders::crl(&http, &ca.crl_url(), full.body.len())
        .await
        .expect("at the cap");
    assert_eq!(exact.body, full.body);
}

/// A loopback server for what the test CA does not do; its base URL.
async fn odd_server() -> String {
    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_secs(10)).await;
        "late"
    }
    async fn hop(axum::extract::Path(n): axum::extract::Path<u32>) -> Response {
        let to = if n == 0 {
            "/target".to_string()
        } else {
            format!("/hop/{}", n - 1)
        };
        (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
    }
    async fn stream() -> Response {
        // 64 chunks of 1 KiB, no Content-Length: the cap must stop it while reading.
        let chunks = futures::stream::iter(
            (0..64).map(|_| Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b'x'; 1024]))),
        );
        Response::new(Body::from_stream(chunks))
    }
    let app = Router::new()
        .route(
            "/limited",
            get(|| async {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, "120")],
                    "slow down\n",
                )
            }),
        )
        .route(
            "/fresh",
            get(|headers: HeaderMap| async move {
                let agent = headers
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                (
                    [
                        (header::CACHE_CONTROL, "public, max-age=600".to_string()),
                        (header::CONTENT_TYPE, "text/plain".to_string()),
                    ],
                    agent,
                )
            }),
        )
        .route("/target", get(|| async { "arrived" }))
        .route("/hop/{n}", get(hop))
        .route("/slow", get(slow))
        .route("/stream", get(stream))
        .route(
            "/html",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                    "<html>\u{1b}[31mnot OCSP</html>",
                )
            })
            .post(|| async {
                (
                    [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                    "<html>not OCSP</html>",
                )
            }),
        )
        .route(
            "/ocsp/{*rest}",
            get(|| async {
                // A bidirectional override in the header: bytes a header may carry.
                let evil = axum::http::HeaderValue::from_bytes("text/\u{202e}lmth".as_bytes())
                    .expect("header value");
                ([(header::CONTENT_TYPE, evil)], "<html>not OCSP</html>")
            }),
        )
        .route(
            "/to-ftp",
            get(|| async {
                (
                    StatusCode::MOVED_PERMANENTLY,
                    [(header::LOCATION, "ftp://127.0.0.1/x")],
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn retry_after_freshness_and_user_agent_are_passed_on() {
    let base = odd_server().await;
    let http = client();
    let err = http
        .get(&format!("{base}/limited"), "*/*", 1024)
        .await
        .expect_err("429");
    assert_eq!(err.status(), Some(429));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
    assert!(err.to_string().contains("retry after 120s"), "{err}");
    // The caller's rate limit honours it.
    let t0 = std::time::Instant::now();
    let mut limit = RateLimit::new(60);
    assert_eq!(limit.wait(t0), None);
    limit.back_off(t0, err.retry_after().expect("Retry-After"));
    assert_eq!(limit.wait(t0), Some(Duration::from_secs(120)));

    let fresh = http
        .get(&format!("{base}/fresh"), "*/*", 1024)
        .await
        .expect("200");
    assert_eq!(fresh.max_age, Some(Duration::from_secs(600)));
    assert_eq!(fresh.media_type().as_deref(), Some("text/plain"));
    assert_eq!(
        String::from_utf8(fresh.body).unwrap(),
        format!("cprwatch/{}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn three_redirects_are_followed_and_a_fourth_is_not() {
    let base = odd_server().await;
    let http = client();
    // /hop/2 → /hop/1 → /hop/0 → /target: three redirects.
    let ok = http
        .get(&format!("{base}/hop/2"), "*/*", 1024)
        .await
        .expect("three redirects");
    assert_eq!(ok.body, b"arrived");
    assert!(ok.url.ends_with("/target"), "{}", ok.url);
    let err = http
        .get(&format!("{base}/hop/3"), "*/*", 1024)
        .await
        .expect_err("four redirects");
    assert!(matches!(err, FetchError::Redirect { .. }), "{err:?}");
    assert!(err.to_string().contains("more than 3 redirects"), "{err}");
    let err = http
        .get(&format!("{base}/to-ftp"), "*/*", 1024)
        .await
        .expect_err("not http");
    assert!(matches!(err, FetchError::Redirect { .. }), "{err:?}");
}

#[tokio::test]
async fn a_streamed_body_past_the_cap_is_cut_and_a_slow_server_times_out() {
    let base = odd_server().await;
    let http = client();
    let all = http
        .get(&format!("{base}/stream"), "*/*", 64 * 1024)
        .await
        .expect("64 KiB");
    assert_eq!(all.body.len(), 64 * 1024);
    let err = http
        .get(&format!("{base}/stream"), "*/*", 10 * 1024)
        .await
        .expect_err("over the cap");
    assert!(matches!(err, FetchError::TooLarge { .. }), "{err:?}");

    let quick = HttpClient::new(&FetchSettings {
        timeout: Duration::from_millis(300),
        ca_file: None,
        allow_private: true,
    })
    .expect("client");
    let started = std::time::Instant::now();
    let err = quick
        .get(&format!("{base}/slow"), "*/*", 1024)
        .await
        .expect_err("too slow");
    assert!(matches!(err, FetchError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn an_ocsp_url_answering_html_is_refused_and_its_text_is_not_logged_raw() {
    let base = odd_server().await;
    let http = client();
    // Any bytes do for the request: the server answers HTML whatever it is asked.
    for request in [vec![0x30, 0x00], vec![0x30; 400]] {
        let err = responders::ocsp(&http, &format!("{base}/html"), &request)
            .await
            .expect_err("HTML");
        match &err {
            FetchError::WrongType { content_type, .. } => assert_eq!(content_type, "text/html"),
            other => panic!("expected the wrong type, got {other:?}"),
        }
    }
    // What the server sent is escaped in the error, and so in any log line made of it.
    let err = responders::ocsp(&http, &format!("{base}/ocsp"), &[0x30, 0x00])
        .await
        .expect_err("HTML");
    match &err {
        FetchError::WrongType { content_type, .. } => {
            assert_eq!(content_type, "text/\\u{202e}lmth")
        }
        other => panic!("expected the wrong type, got {other:?}"),
    }
    assert!(!err.to_string().contains('\u{202e}'), "{err}");
    let err = responders::ocsp(&http, "ldap://ocsp.example.test/\u{1b}[2J", &[0x30, 0x00])
        .await
        .expect_err("not http");
    assert!(matches!(err, FetchError::BadUrl { .. }), "{err:?}");
    assert!(!err.to_string().contains('\u{1b}'), "{err}");
}

#[tokio::test]
async fn an_unusable_ca_file_is_refused_at_setup() {
    let err = HttpClient::new(&FetchSettings {
        timeout: Duration::from_secs(1),
        ca_file: Some("/nonexistent/ca.pem".into()),
        allow_private: true,
    })
    .expect_err("no such file");
    assert!(matches!(err, FetchError::Setup(_)), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}

/// A TLS server on 127.0.0.1 with a certificate (SAN IP:127.0.0.1) from a CA made here with
/// openssl; its port and the CA's PEM file. It answers `/hello` with "hello" and `/down` with a
/// redirect to plain http.
async fn tls_server(dir: &std::path::Path) -> (u16, std::path::PathBuf) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=fetch test CA",
        "-days",
        "2",
    ]);
    run(&ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&csr);
    std::fs::write(
        dir.join("srv.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write srv.ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "srv.ext",
    ]);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("srv.pem"))
        .expect("srv.pem")
        .collect::<Result<_, _>>()
        .expect("PEM");
    let key = PrivateKeyDer::from_pem_file(dir.join("srv.key")).expect("srv.key");
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = if head.starts_with(b"GET /hello ") {
                    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
                        .to_string()
                } else {
                    format!(
                        "HTTP/1.1 301 Moved\r\nLocation: http://127.0.0.1:{port}/hello\r\n\
                         Content-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                };
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, dir.join("ca.pem"))
}

#[tokio::test]
async fn https_is_verified_against_the_system_roots_plus_ca_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, ca_pem) = tls_server(dir.path()).await;
    let url = format!("https://127.0.0.1:{port}/hello");

    // Not trusted without the CA file: refused at the handshake, and the error says why.
    let err = client()
        .get(&url, "*/*", 1024)
        .await
        .expect_err("untrusted server");
    match &err {
        FetchError::Unreachable { cause, .. } => {
            assert!(cause.contains("TLS failed"), "{cause}");
            assert!(cause.contains("set ca_file"), "{cause}");
        }
        other => panic!("expected unreachable (TLS), got {other:?}"),
    }

    let trusting = HttpClient::new(&FetchSettings {
        timeout: Duration::from_secs(20),
        ca_file: Some(ca_pem),
        allow_private: true,
    })
    .expect("client with ca_file");
    let ok = trusting.get(&url, "*/*", 1024).await.expect("trusted");
    assert_eq!(ok.body, b"hello");
    // A redirect from https to http is not followed.
    let err = trusting
        .get(&format!("https://127.0.0.1:{port}/down"), "*/*", 1024)
        .await
        .expect_err("downgrade");
    assert!(matches!(err, FetchError::Redirect { .. }), "{err:?}");
    assert!(err.to_string().contains("from https to http"), "{err}");
}
