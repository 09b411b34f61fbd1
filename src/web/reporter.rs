//! The reporter's status page, `/r/<token>`, reached without a login from the link in their
//! receipt.
//!
//! The token is `<case id>.<tag>`, the tag the first 20 bytes (base64url) of an HMAC-SHA-256,
//! under the server's link key, of the case id and the content hash of the report that opened
//! it. So it needs no table (a link keeps working across restarts and rebuilds), names one case
//! only, and cannot be made or guessed without the key: the case id in it is already in the
//! receipt's subject, the tag is 160 bits. The key comes from `[web] secret_env`/`secret_file`,
//! or else is 32 random bytes kept beside the store in `<store>.web-key` (0600), made on first
//! start; changing it invalidates every link.
//!
//! The page shows only what the reporter sent us or is owed: when their report was received,
//! the certificate and key references recognised in the case, and whether the preliminary
//! report and each revocation are still due, done or overdue. Nothing internal (rules, phrases,
//! other messages, staff or their addresses, other cases) is on it.

use std::fmt::Write;
use std::path::PathBuf;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::AppState;
use super::html::{e, error_page, page};
use crate::config::{Config, WebConfig};
use crate::deciding::cases::Case;
use crate::domain::event::{ClockKind, ClockState};
use crate::domain::timefmt;

const TAG_BYTES: usize = 20;
const KEY_BYTES: usize = 32;

/// Where the generated link key lives when `[web]` names none.
fn key_path(config: &Config) -> PathBuf {
    let mut p = config.store.path.clone().into_os_string();
    p.push(".web-key");
    PathBuf::from(p)
}

/// The link key: `[web] secret_*`, or the one kept beside the store (made now if there is
/// none). An error says which file or variable to fix.
pub fn key(config: &Config, web: &WebConfig) -> Result<Vec<u8>, String> {
    if let Some(src) = &web.secret {
        let k = src.read()?;
        if k.len() < 16 {
            return Err(
                "the reporter-link secret (secret_env/secret_file) is shorter than 16 \
                        characters; use a long random value"
                    .into(),
            );
        }
        return Ok(k.into_bytes());
    }
    let path = key_path(config);
    match std::fs::read_to_string(&path) {
        Ok(text) => hex::decode(text.trim()).map_err(|_| {
            format!(
                "{} is not the hex key cprwatch wrote there; delete it to make a new one (old \
                 reporter links stop working)",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut k = [0u8; KEY_BYTES];
            getrandom::getrandom(&mut k).map_err(|e| format!("no random source: {e}"))?;
            write_private(&path, hex::encode(k).as_bytes()).map_err(|e| {
                format!("cannot write the reporter-link key {}: {e}", path.display())
            })?;
            Ok(k.to_vec())
        }
        Err(e) => Err(format!(
            "cannot read the reporter-link key {}: {e}; check its permissions",
            path.display()
        )),
    }
}

/// Create `path` readable by its owner only, failing if it exists.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn tag(key: &[u8], case_id: &str, founder: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(b"cprwatch reporter link\0");
    mac.update(case_id.as_bytes());
    mac.update(b"\0");
    mac.update(founder.as_bytes());
    mac.finalize().into_bytes()[..TAG_BYTES].to_vec()
}

/// The reporter page's address for case `case_id` opened by the report `founder` (its content
/// hash), under `base` (`[web] public_url`): what a receipt carries.
pub fn link(base: &str, key: &[u8], case_id: &str, founder: &str) -> String {
    format!(
        "{}/r/{case_id}.{}",
        base.trim_end_matches('/'),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag(key, case_id, founder))
    )
}

/// The token of `case`'s reporter page.
pub fn token(key: &[u8], case: &Case) -> String {
    format!(
        "{}.{}",
        case.id,
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag(
            key,
            case.id.as_str(),
            &case.founder
        ))
    )
}

/// The link for a receipt to `case`'s reporter: `<public_url>/r/<token>`; `None` without
/// `[web]` or its `public_url`, when there is no page to link to.
pub fn reporter_link(config: &Config, key: &[u8], case: &Case) -> Option<String> {
    let base = config.web.as_ref()?.public_url.as_deref()?;
    Some(format!("{base}/r/{}", token(key, case)))
}

/// The case id a token names, if its tag is right for that case's founding report.
fn check(key: &[u8], token: &str, case: &Case) -> bool {
    let Some((id, t)) = token.split_once('.') else {
        return false;
    };
    let Ok(given) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t) else {
        return false;
    };
    id == case.id.as_str() && super::auth::same(&given, &tag(key, id, &case.founder))
}

/// `2026-03-02 07:12:40` (UTC), for people.
fn plain_time(t: crate::domain::model::Timestamp) -> String {
    timefmt::format(t)
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_string()
}

/// What the reporter may read of a clock's state.
fn plain(state: ClockState, kind: ClockKind) -> &'static str {
    match (state, kind) {
        (ClockState::Pending, _) => "open: we are working on it",
        (ClockState::Met, ClockKind::PreliminaryReport) => "sent",
        (ClockState::Met, ClockKind::Revocation) => "done",
        (ClockState::Late, _) => "done, after the deadline",
        (ClockState::Breached, _) => "open, past its deadline",
        (ClockState::Dismissed, _) => "closed",
        (ClockState::NotRequired, _) => "not required",
    }
}

/// `GET /r/<token>`.
pub(crate) async fn page_handler(state: AppState, token: String) -> Response {
    let not_found = || {
        error_page(
            StatusCode::NOT_FOUND,
            "This link is not valid. Reply to your receipt mail if you need an answer.",
        )
    };
    let Some((id, _)) = token.split_once('.') else {
        return not_found();
    };
    if id.len() > 32 {
        return not_found();
    }
    let id = id.to_string();
    let at = timefmt::now();
    let found = match state
        .read(move |s, _| crate::cli::lookup::case(s, &id, at).map_err(|e| e.to_string()))
        .await
    {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Some((p, _)) = found else {
        return not_found();
    };
    let case = &p.cases[0];
    if !check(&state.link_key, &token, case) {
        return not_found();
    }
    let received = case
        .messages
        .iter()
        .find(|m| m.content_hash == case.founder)
        .map(|m| m.received_at)
        .unwrap_or(case.opened_at);
    let mut o = format!(
        "<h1>Your report {}</h1><p>We received your report on <strong>{} UTC</strong>.</p>",
        e(case.id.as_str()),
        timefmt::format(received)
            .replace('T', " ")
            .trim_end_matches('Z'),
    );
    let refs: Vec<&str> = case
        .certificates
        .iter()
        .map(|c| c.reference.as_str())
        .chain(case.keys.iter().filter_map(|k| k.reference.as_deref()))
        .collect();
    if refs.is_empty() {
        o.push_str(
            "<p>We recognised no certificate or key reference in it. Please reply to your \
             receipt with crt.sh links or the certificate.</p>",
        );
    } else {
        let _ = write!(o, "<p>References we recognised ({}):</p><ul>", refs.len());
        for r in refs {
            let _ = write!(o, "<li class=\"mono\">{}</li>", e(r));
        }
        o.push_str("</ul>");
    }
    o.push_str("<table><thead><tr><th>what we owe you</th><th>for</th><th>due by (UTC)</th><th>state</th></tr></thead><tbody>");
    for id in &case.clocks {
        let Some(c) = p.clocks.get(id) else { continue };
        let s = c.status(at);
        let what = match c.kind {
            ClockKind::PreliminaryReport => "preliminary report",
            ClockKind::Revocation => "revocation",
        };
        let _ = write!(
            o,
            "<tr><td>{what}</td><td class=\"mono\">{}</td><td class=\"nw\">{}</td><td>{}</td></tr>",
            e(c.target.as_deref().unwrap_or("")),
            plain_time(c.deadline),
            plain(s.state, c.kind)
        );
    }
    o.push_str("</tbody></table>");
    page(&format!("Report {}", case.id), None, &o).into_response()
}

pub(crate) async fn status_page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Response {
    page_handler(state, token).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::CaseId;

    fn case(founder: &str) -> Case {
        Case {
            id: CaseId::new(2026, 7),
            founder: founder.into(),
            reporter: String::new(),
            reporter_addresses: Vec::new(),
            subject: String::new(),
            opened_at: timefmt::parse("2026-03-01T00:00:00Z").unwrap(),
            messages: Vec::new(),
            certificates: Vec::new(),
            keys: Vec::new(),
            clocks: Vec::new(),
            dismissed: None,
        }
    }

    #[test]
    fn a_token_opens_its_case_only_and_needs_the_key() {
        let c = case("aa");
        let t = token(b"k1", &c);
        assert!(t.starts_with("CPR-2026-0007."), "{t}");
        assert!(check(b"k1", &t, &c));
        assert!(!check(b"k2", &t, &c));
        assert!(!check(b"k1", &t, &case("bb")));
        let mut forged = t.clone();
        forged.pop();
        forged.push(if t.ends_with('A') { 'B' } else { 'A' });
        assert!(!check(b"k1", &forged, &c));
        assert!(!check(b"k1", "CPR-2026-0007", &c));
    }
}
