//! Revocation checks, measured (issue 16's closing figures):
//!
//! 1. **OCSP checks per second sustained against the local responder**: build the request,
//!    fetch the answer from the test CA's responder over loopback (GET), verify it with
//!    `check_ocsp`, `REVOCATION_PARALLEL` at a time (default 4) for `REVOCATION_SECONDS`
//!    (default 10). Each answer is signed by a fresh `openssl ocsp` process
//!    (`scripts/testca.sh respond`), so this is the responder's ceiling more than cprwatch's.
//! 2. **Verifying alone**: `check_ocsp` over one stored answer, to show what cprwatch itself
//!    costs per check.
//! 3. **Requests per certificate per day** the schedule makes (`deciding::revocation`), for a
//!    24-hour clock from its start, with and without a responder that says its answers keep,
//!    and a day after a breach.
//!
//! Run: `cargo bench --bench revocation`. Under `cargo test --all-targets` (no `--bench` flag)
//! it runs small, as a smoke test: one second against the responder, 20 verifications.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use cprwatch::deciding::revocation::{CheckState, checks_per_day};
use cprwatch::fetch::http::{FetchSettings, HttpClient};
use cprwatch::fetch::responders;
use cprwatch::reading::revocation::{OcspStatus, check_ocsp, ocsp_request};
use support::testca::TestCa;
use time::OffsetDateTime;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn der_of(path: &std::path::Path) -> Vec<u8> {
    let pem = std::fs::read_to_string(path).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let parallel = env("REVOCATION_PARALLEL", 4) as usize;
    let seconds = env("REVOCATION_SECONDS", if benching { 10 } else { 1 });
    let ca = TestCa::start();
    let leaf = der_of(&ca.cert("good").path);
    let issuer = der_of(&ca.intermediate_pem());
    let request = ocsp_request(&leaf, &issuer, None).unwrap();
    let url = ca.ocsp_url();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = HttpClient::new(&FetchSettings {
        timeout: Duration::from_secs(20),
        ca_file: None,
        allow_private: true,
    })
    .unwrap();

    // 1. Sustained, against the responder.
    let (done, secs, last) = rt.block_on(async {
        let started = Instant::now();
        let mut done = 0u64;
        let mut last = Vec::new();
        while started.elapsed() < Duration::from_secs(seconds) {
            let batch = (0..parallel).map(|_| async {
                let fetched = responders::ocsp(&http, &url, &request).await.unwrap();
                let v = check_ocsp(
                    &fetched.body,
                    &leaf,
                    &issuer,
                    None,
                    OffsetDateTime::now_utc(),
                )
                .unwrap();
                assert_eq!(v.status, OcspStatus::Good);
                fetched.body
            });
            for body in futures::future::join_all(batch).await {
                done += 1;
                last = body;
            }
        }
        (done, started.elapsed().as_secs_f64(), last)
    });
    println!(
        "OCSP checks against the local responder ({parallel} at a time, {secs:.1} s): {done} checks, {:.1} per second",
        done as f64 / secs
    );

    // 2. Verifying alone.
    let n = if benching { 2000 } else { 20 };
    let started = Instant::now();
    for _ in 0..n {
        check_ocsp(&last, &leaf, &issuer, None, OffsetDateTime::now_utc()).unwrap();
    }
    let per = started.elapsed().as_secs_f64() / f64::from(n);
    println!(
        "check_ocsp alone (RSA-2048 issuer signature): {:.0} µs per answer, {:.0} per second on one core",
        per * 1e6,
        1.0 / per
    );

    // 3. The schedule's politeness.
    let day = time::Duration::hours(24);
    let plain = checks_per_day(day, &CheckState::default(), time::Duration::ZERO);
    let cached = checks_per_day(
        day,
        &CheckState {
            fresh_until: Some(OffsetDateTime::now_utc() + time::Duration::days(400)),
            ..CheckState::default()
        },
        time::Duration::ZERO,
    );
    let breached = checks_per_day(day, &CheckState::default(), day);
    println!(
        "requests to one responder per certificate per day: {plain} (24-hour clock, no caching headers), {cached} (answers that keep: max-age/nextUpdate), {breached} (the day after a breach)"
    );
}
