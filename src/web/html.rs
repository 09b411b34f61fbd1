//! The pages' frame, and small pieces every page uses. Every string that is not a literal of
//! this file goes through [`e`] ([`crate::escape::html`]).

use std::fmt::Write;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::auth::Staff;

/// Escape for HTML text and attribute values.
pub(crate) fn e(s: &str) -> std::borrow::Cow<'_, str> {
    crate::escape::html(s)
}

/// A whole page: the bar (search, who is logged in, logout with its CSRF token) and `body`.
pub(crate) fn page(title: &str, staff: Option<&Staff>, body: &str) -> Html<String> {
    let mut o = String::with_capacity(body.len() + 2048);
    let _ = write!(
        o,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · cprwatch</title><link rel=\"stylesheet\" href=\"/static/app.css\">\
         <script src=\"/static/app.js\" defer></script></head><body>",
        e(title)
    );
    if let Some(s) = staff {
        let _ = write!(
            o,
            "<nav><a href=\"/\" class=\"brand\">cprwatch</a> <a href=\"/sla\">SLA</a>\
             <form method=\"get\" action=\"/search\" class=\"search\"><input name=\"q\" \
             placeholder=\"crt.sh id, sha256, spki:, Message-Id, address, case\" size=\"44\">\
             <button>Search</button></form>\
             <form method=\"post\" action=\"/logout\" class=\"logout\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\"><span>{}</span> \
             <button>Log out</button></form></nav>",
            e(&s.csrf),
            e(&s.name)
        );
    }
    o.push_str("<main>");
    o.push_str(body);
    o.push_str("</main></body></html>");
    Html(o)
}

pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    (
        status,
        page(
            status.canonical_reason().unwrap_or("Error"),
            None,
            &format!(
                "<h1>{} {}</h1><p>{}</p><p><a href=\"/\">Back to the dashboard</a></p>",
                status.as_u16(),
                e(status.canonical_reason().unwrap_or("")),
                e(message)
            ),
        ),
    )
        .into_response()
}

pub(crate) fn login_page(next: &str, problem: Option<&str>, status: StatusCode) -> Response {
    let body = format!(
        "<h1>cprwatch</h1>{}<form method=\"post\" action=\"/login\" class=\"login\">\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\
         <label>Name <input name=\"user\" autocomplete=\"username\" required autofocus></label>\
         <label>Password <input name=\"password\" type=\"password\" \
         autocomplete=\"current-password\" required></label>\
         <button>Log in</button></form>",
        problem
            .map(|p| format!("<p class=\"problem\">{}</p>", e(p)))
            .unwrap_or_default(),
        e(next)
    );
    (status, page("Log in", None, &body)).into_response()
}

/// A certificate's or key's reference, linked to crt.sh when it is one crt.sh can look up.
pub(crate) fn reference_link(r: &str) -> String {
    let hex = |h: &str| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
    let url = if let Some(id) = r
        .strip_prefix("crtsh:")
        .filter(|i| i.parse::<u64>().is_ok())
    {
        Some(format!("https://crt.sh/?id={id}"))
    } else if let Some(h) = r.strip_prefix("sha256:").filter(|h| hex(h)) {
        Some(format!("https://crt.sh/?q={h}"))
    } else {
        r.strip_prefix("spki:")
            .filter(|h| hex(h))
            .map(|h| format!("https://crt.sh/?spkisha256={h}"))
    };
    match url {
        Some(u) => format!(
            "<a href=\"{}\" rel=\"noreferrer noopener\">{}</a>",
            e(&u),
            e(r)
        ),
        None => e(r).into_owned(),
    }
}

/// The served script: live countdowns. The pages work without it (the server writes the time
/// left as of the page's rendering).
pub(crate) const APP_JS: &str = r#""use strict";
(function () {
  function span(s) {
    var neg = s < 0; s = Math.abs(s);
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    var t = d > 0 ? d + "d " + h + "h " + m + "m" : h > 0 ? h + "h " + m + "m" : m + "m " + (s % 60) + "s";
    return neg ? "BREACHED " + t + " ago" : t + " left";
  }
  function tick() {
    var now = Math.floor(Date.now() / 1000);
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      el.textContent = span(parseInt(el.getAttribute("data-deadline"), 10) - now);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { tick(); setInterval(tick, 1000); });
})();
"#;

/// The served style sheet (no external fonts, no inline styles: the policy forbids them).
pub(crate) fn app_css() -> String {
    let mut css = String::from(
        "body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1a1a1a;background:#fafafa}\
         nav{display:flex;gap:1em;align-items:center;padding:.5em 1em;background:#233;color:#fff}\
         nav a{color:#fff;text-decoration:none;font-weight:bold}nav .search{flex:1}\
         nav .logout span{margin-right:.5em}main{padding:1em}\
         table{border-collapse:collapse;width:100%;background:#fff}\
         th,td{text-align:left;padding:.25em .5em;border-bottom:1px solid #ddd;vertical-align:top}\
         th{background:#eee;position:sticky;top:0}\
         .strip{display:flex;flex-wrap:wrap;gap:.5em;margin-bottom:1em}\
         .strip div{background:#fff;border:1px solid #ccc;padding:.3em .6em;border-radius:4px}\
         .strip .bad{border-color:#b00;color:#b00;font-weight:bold}\
         .filters{margin-bottom:.5em}.filters *{margin-right:.3em}\
         .bar{width:12em;height:.9em;background:#e4e4e4;border-radius:3px;overflow:hidden}\
         .bar span{display:block;height:100%}\
         .g span{background:#2a8a3a}.a span{background:#d89a00}.r span{background:#d2451e}\
         .b span{background:#9b0000}tr.breached td{background:#fde8e8}\
         .mono{font-family:ui-monospace,monospace;word-break:break-all}.nw{white-space:nowrap}\
         .problem{color:#b00;font-weight:bold}.muted{color:#666}\
         .login{display:flex;flex-direction:column;gap:.6em;max-width:20em}\
         pre{white-space:pre-wrap;background:#fff;border:1px solid #ddd;padding:.5em}\
         section{margin-bottom:1.5em}",
    );
    for i in 0..=20 {
        let _ = write!(css, ".w{i}{{width:{}%}}", i * 5);
    }
    css
}

/// The width class of a bar `fraction` full (0..=1), in 5 % steps.
pub(crate) fn width_class(fraction: f64) -> String {
    format!("w{}", (fraction.clamp(0.0, 1.0) * 20.0).round() as u32)
}
