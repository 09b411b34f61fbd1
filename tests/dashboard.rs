//! The dashboard in a real browser: Debian's chromium, headless, through chromedriver
//! (`tests/support/browser.rs`), against `cprwatch run` with `[web]` on a loopback port. The
//! desk logs in, sees the open clocks, opens a case, searches by crt.sh id and by Message-Id,
//! dismisses three junk cases in one go, reads the SLA page; a forged POST without the CSRF
//! token is refused. Screenshots of each page are saved (to `SCREENSHOTS_DIR` when set, as
//! for the README's pictures under `docs/screenshots/`; else a temporary directory).

mod support;

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::Locator;
use support::browser::Browser;
use support::service::{Cprwatch, hash_password, report};

fn case_ids(w: &Cprwatch) -> Vec<(String, String)> {
    let v = w.status_json();
    v["cases"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    (
                        c["id"].as_str().unwrap_or("").to_string(),
                        c["subject"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Wait until the browser has navigated to `path` (a click that submits a form returns before
/// the next page is there; reading it too early reads the old one).
async fn at_path(c: &fantoccini::Client, path: &str) {
    let start = std::time::Instant::now();
    loop {
        let url = c.current_url().await.unwrap();
        if url.path() == path {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "still at {url}, not {path}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Click the element `css` finds.
async fn click(c: &fantoccini::Client, css: &str) {
    let el = c.find(Locator::Css(css)).await;
    el.unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Type `text` into the field `css` finds.
async fn fill(c: &fantoccini::Client, css: &str, text: &str) {
    let el = c.find(Locator::Css(css)).await;
    el.unwrap_or_else(|e| panic!("{css}: {e}"))
        .send_keys(text)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_works_the_dashboard_in_a_real_browser() {
    let port = support::free_port();
    let hash = hash_password("correct horse battery");
    let mut w = Cprwatch::new(&format!(
        "[desk]\nstaff_domains = [\"example-ca.test\"]\n[clock]\ntick_seconds = 1\n\
         [web]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
         [[web.user]]\nname = \"alice\"\npassword_hash = \"{hash}\"\n"
    ));
    let now = time::OffsetDateTime::now_utc();
    let h = time::Duration::hours;
    w.deliver(
        "real",
        &report(
            "real-1@reporter.test",
            "Rita <rita@reporter.test>",
            "Key compromise of the shop certificate",
            "The private key of https://crt.sh/?id=4242 was published on a paste site.",
            now - h(3),
        ),
    );
    w.deliver(
        "late",
        &report(
            "late-1@reporter.test",
            "Lars <lars@reporter.test>",
            "Misissued certificate",
            "https://crt.sh/?id=5151 is misissued: the CN is not in the SAN.",
            now - h(26),
        ),
    );
    // The desk answered Rita within two hours: a preliminary report met, for the SLA page.
    let answered = (now - h(1))
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap();
    w.deliver_to(
        ".Sent",
        "answer",
        format!(
            "Received: from mx.example-ca.test by mx.example-ca.test; {answered}\r\n\
             From: cpr@example-ca.test\r\nTo: rita@reporter.test\r\n\
             Subject: Re: Key compromise of the shop certificate\r\n\
             Message-ID: <answer-1@example-ca.test>\r\nIn-Reply-To: <real-1@reporter.test>\r\n\r\n\
             Thank you, we are revoking it.\r\n"
        )
        .as_bytes(),
    );
    for i in 1..=4 {
        w.deliver(
            &format!("junk{i}"),
            &report(
                &format!("junk-{i}@spam.test"),
                &format!("Shop {i} <deals{i}@spam.test>"),
                &format!("Cheap watches {i}"),
                "Best prices on watches, reply now.",
                now - h(1),
            ),
        );
    }
    w.start();
    w.wait_status(Duration::from_secs(60), "five cases", |v| {
        v["cases"].as_array().is_some_and(|c| c.len() == 6)
    });
    let ids = case_ids(&w);
    let id_of = |subject: &str| {
        ids.iter()
            .find(|(_, s)| s.starts_with(subject))
            .map(|(id, _)| id.clone())
            .unwrap()
    };
    let real = id_of("Key compromise");
    let junk: Vec<String> = (1..=4)
        .map(|i| id_of(&format!("Cheap watches {i}")))
        .collect();

    let shots: PathBuf = std::env::var_os("SCREENSHOTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| w.dir.path().join("screenshots"));
    std::fs::create_dir_all(&shots).unwrap();
    let b = Browser::start().await;
    let c = &b.client;
    let base = format!("http://127.0.0.1:{port}");
    let shot = |name: &'static str| {
        let shots = shots.clone();
        async move {
            let png = c.screenshot().await.unwrap();
            std::fs::write(shots.join(name), png).unwrap();
        }
    };

    // Not logged in: the login page.
    c.goto(&format!("{base}/")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().starts_with("/login"));
    fill(c, "input[name=user]", "alice").await;
    fill(c, "input[name=password]", "correct horse battery").await;
    click(c, "form button").await;
    at_path(c, "/").await;
    let h1 = c
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(h1.starts_with("Open clocks"), "{h1}");
    let body = c.source().await.unwrap();
    assert!(body.contains(&real) && body.contains("BREACHED"), "{body}");
    shot("dashboard.png").await;

    // A case page: its certificate as a crt.sh link.
    c.find(Locator::LinkText(&real))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    at_path(c, &format!("/case/{real}")).await;
    let page = c.source().await.unwrap();
    assert!(page.contains("https://crt.sh/?id=4242"), "{page}");
    assert!(page.contains("&lt;real-1@reporter.test&gt;"), "{page}");
    shot("case.png").await;

    // Search by crt.sh id, then by Message-Id, from the search box every page has.
    for q in ["4242", "<real-1@reporter.test>"] {
        let input = c.find(Locator::Css("nav input[name=q]")).await.unwrap();
        input.send_keys(q).await.unwrap();
        click(c, "nav form.search button").await;
        at_path(c, "/search").await;
        let found = c.source().await.unwrap();
        assert!(found.contains(&format!("/case/{real}")), "{q}: {found}");
        assert!(!found.contains(&junk[0]), "{q}: {found}");
    }
    shot("search.png").await;

    // A forged POST (a form without the CSRF token, as another page would make) from the
    // logged-in browser is refused, and changes nothing.
    c.execute(
        "const f = document.createElement('form'); f.method = 'POST'; \
         f.action = '/triage/dismiss'; \
         for (const [k, v] of [['reason', 'forged'], ['pick_' + arguments[0], 'on']]) { \
           const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i); } \
         document.body.appendChild(f); f.submit();",
        vec![serde_json::json!(junk[0])],
    )
    .await
    .unwrap();
    let refused = c
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(refused, "403 Forbidden");

    // One junk case ticked on the filtered list, then the other three, all shown, at once.
    let recorded = |n: usize| {
        let want = format!("recorded={n}");
        async move {
            let start = std::time::Instant::now();
            loop {
                let url = c.current_url().await.unwrap();
                if url.query().unwrap_or("").contains(&want) {
                    return;
                }
                assert!(start.elapsed() < Duration::from_secs(20), "still at {url}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    c.goto(&format!("{base}/?q=Cheap")).await.unwrap();
    click(c, &format!("input[name=pick_{}]", junk[3])).await;
    fill(c, "#bulk input[name=reason]", "spam").await;
    click(c, "#bulk button").await;
    recorded(1).await;
    c.goto(&format!("{base}/?q=Cheap")).await.unwrap();
    let listed = c.source().await.unwrap();
    assert!(listed.contains("all 3 cases shown"), "{listed}");
    click(c, "#bulk input[name=all_shown]").await;
    fill(c, "#bulk input[name=reason]", "spam wave").await;
    click(c, "#bulk button").await;
    recorded(3).await;
    let v = w.wait_status(Duration::from_secs(30), "junk dismissed", |v| {
        v["cases"].as_array().is_some_and(|c| c.len() == 2)
    });
    let left: Vec<&str> = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert!(left.contains(&real.as_str()), "{v}");
    let (_, case_text) = w.command(&["case", &junk[0]]);
    assert!(
        case_text.contains("alice@dashboard.cprwatch.invalid"),
        "{case_text}"
    );
    assert!(case_text.contains("spam wave"), "{case_text}");

    // The breached case acknowledged from its page (CPR-Delayed): it stays breached.
    let late = id_of("Misissued");
    c.goto(&format!("{base}/case/{late}")).await.unwrap();
    c.find(Locator::Css("form.triage select[name=action]"))
        .await
        .unwrap()
        .select_by_value("delayed")
        .await
        .unwrap();
    fill(
        c,
        "form.triage input[name=text]",
        "https://bugzilla.mozilla.org/show_bug.cgi?id=1999998",
    )
    .await;
    click(c, "form.triage button").await;
    recorded(1).await;
    let v = w.wait_status(Duration::from_secs(30), "acknowledged", |v| {
        v["cases"].as_array().is_some_and(|cs| {
            cs.iter().any(|c| {
                c["id"] == late.as_str()
                    && c["clocks"][0]["acknowledged"]["reason"]
                        .as_str()
                        .is_some_and(|r| r.contains("1999998"))
            })
        })
    });
    let lc = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == late.as_str())
        .unwrap();
    assert_eq!(lc["clocks"][0]["state"], "breached", "{lc}");

    // The SLA page, with its charts.
    c.goto(&format!("{base}/sla")).await.unwrap();
    let sla = c.source().await.unwrap();
    assert!(sla.contains("<svg") && sla.contains("SLA report"), "{sla}");
    shot("sla.png").await;
    b.stop().await;
    w.stop();
    for name in ["dashboard.png", "case.png", "search.png", "sla.png"] {
        let len = std::fs::metadata(shots.join(name)).unwrap().len();
        assert!(len > 10_000, "{name}: {len} bytes");
    }
}
