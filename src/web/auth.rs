//! Who may use the web server, and proof that a POST came from our own form.
//!
//! - **Login**: `[[web.user]]`s with argon2id hashes; a wrong password and an unknown user cost
//!   the same (an unknown name is checked against a dummy hash). Failures are logged (the name
//!   as a log field, which the logger quotes and escapes) and limited to
//!   [`MAX_FAILURES`] per name and address in [`FAILURE_WINDOW`].
//! - **Sessions**: 32 random bytes in a cookie (`HttpOnly; SameSite=Strict; Path=/`, and
//!   `Secure` when `public_url` is https), kept in the store for [`SESSION_HOURS`] (only the
//!   SHA-256 of the id), so instances sharing a PostgreSQL store know the same sessions.
//! - **CSRF**: each session has its own random token; every form carries it in a hidden field
//!   `csrf`, and [`StaffPost`] refuses a POST without the right one (403). Triage actions take
//!   a `StaffPost<TheirForm>` and get the logged-in [`Staff`] with it.
//! - **API and metrics**: `Authorization: Bearer <token>` when `[web] api_token_*` is set
//!   (compared in constant time), else a session ([`ApiCaller`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use super::{AppState, html};
use crate::config::WebConfig;

pub(crate) const COOKIE: &str = "cprwatch_session";
/// How long a session lasts from login.
pub(crate) const SESSION_HOURS: u64 = 12;
/// Failed logins allowed per user name and client address in [`FAILURE_WINDOW`].
pub(crate) const MAX_FAILURES: usize = 5;
pub(crate) const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Form bodies are small; anything bigger is refused before it is read whole.
const MAX_FORM_BYTES: usize = 1 << 20;

/// `cprwatch hash-password`: the argon2id PHC string for `password`, with a fresh salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut raw = [0u8; 16];
    getrandom::getrandom(&mut raw).map_err(|e| format!("no random salt: {e}"))?;
    let salt = argon2::password_hash::SaltString::encode_b64(&raw)
        .map_err(|e| format!("cannot encode the salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// 32 random bytes, hex: a session id or a CSRF token.
fn random_token() -> String {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).expect("the operating system's random source failed");
    hex::encode(b)
}

/// Equal in time whatever the contents (not the length, which is public).
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Users and failed logins (sessions are in the store).
pub(crate) struct Auth {
    users: HashMap<String, String>,
    /// Checked when the name is unknown, so a guess at a name costs what a guess at a password
    /// does.
    dummy_hash: String,
    api_token: Option<String>,
    secure: bool,
    failures: Mutex<HashMap<(String, IpAddr), Vec<Instant>>>,
    /// Password checks at once: each takes argon2's 19 MiB and a core for a while, so a flood
    /// of logins queues here instead of exhausting memory.
    verifying: tokio::sync::Semaphore,
}

impl Auth {
    pub(crate) fn new(web: &WebConfig, api_token: Option<String>) -> Auth {
        Auth {
            users: web
                .users
                .iter()
                .map(|u| (u.name.clone(), u.password_hash.clone()))
                .collect(),
            dummy_hash: hash_password("not a password anybody has").unwrap_or_default(),
            api_token: api_token.filter(|t| !t.is_empty()),
            secure: web.secure_cookies(),
            failures: Mutex::default(),
            verifying: tokio::sync::Semaphore::new(2),
        }
    }

    /// Whether `password` is `user`'s. Slow on purpose (argon2): call off the async workers.
    fn verify(&self, user: &str, password: &str) -> bool {
        let (hash, known) = match self.users.get(user) {
            Some(h) => (h.as_str(), true),
            None => (self.dummy_hash.as_str(), false),
        };
        let ok = PasswordHash::new(hash).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        });
        ok && known
    }

    /// Too many recent failures for this name from this address.
    fn limited(&self, key: &(String, IpAddr)) -> bool {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        f.retain(|_, v| {
            v.retain(|t| now.duration_since(*t) < FAILURE_WINDOW);
            !v.is_empty()
        });
        f.get(key).is_some_and(|v| v.len() >= MAX_FAILURES)
    }

    fn failed(&self, key: (String, IpAddr)) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.entry(key).or_default().push(Instant::now());
    }

    fn cookie(&self, value: &str, max_age: u64) -> String {
        format!(
            "{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{}",
            if self.secure { "; Secure" } else { "" }
        )
    }
}

impl AppState {
    /// Start a session for `user`; its id, for the cookie.
    async fn start_session(&self, user: &str) -> Result<String, Response> {
        let id = random_token();
        let session = crate::store::WebSession {
            user: user.to_string(),
            csrf: random_token(),
        };
        let now = crate::domain::timefmt::now().unix_timestamp();
        let expires = now + i64::try_from(SESSION_HOURS * 3600).unwrap_or(i64::MAX);
        let key = id.clone();
        self.read(move |s, _| {
            s.session_start(&key, &session, now, expires)
                .map_err(|e| e.to_string())
        })
        .await?;
        Ok(id)
    }

    /// The logged-in person of session `id`, if it is current.
    async fn session(&self, id: Option<String>) -> Result<Option<Staff>, Response> {
        let Some(id) = id else {
            return Ok(None);
        };
        let now = crate::domain::timefmt::now().unix_timestamp();
        let key = id.clone();
        let found = self
            .read(move |s, _| s.session(&key, now).map_err(|e| e.to_string()))
            .await?;
        Ok(found.map(|v| Staff {
            name: v.user,
            csrf: v.csrf,
            session: id,
        }))
    }

    async fn end_session(&self, id: &str) {
        let key = id.to_string();
        let _ = self
            .read(move |s, _| s.session_end(&key).map_err(|e| e.to_string()))
            .await;
    }
}

/// The session id in the request's cookies.
fn session_cookie(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The logged-in person: an extractor for every page but `/login`, `/healthz` and `/r/…`.
/// Without a valid session, a GET is redirected to `/login` (and back after it), anything
/// else gets 401.
#[derive(Clone, Debug)]
pub struct Staff {
    /// The `[[web.user]]` name: what a triage action records as who did it.
    pub name: String,
    /// The session's CSRF token, for the hidden `csrf` field of every form on a page.
    pub csrf: String,
    session: String,
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Staff, Response> {
        if let Some(s) = state.session(session_cookie(parts)).await? {
            return Ok(s);
        }
        if parts.method == axum::http::Method::GET {
            let next = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            Err(Redirect::to(&format!("/login?next={}", url_encode(next))).into_response())
        } else {
            Err(html::error_page(StatusCode::UNAUTHORIZED, "Log in first."))
        }
    }
}

/// A POST from a logged-in person whose form carried the session's CSRF token, with the
/// form's fields as `T` (which may ignore `csrf`). A POST without the token, or with another
/// session's, is refused with 403 before `T` is even read. This is what every state-changing
/// handler takes.
pub struct StaffPost<T> {
    pub staff: Staff,
    pub form: T,
}

#[derive(Deserialize)]
struct CsrfField {
    csrf: Option<String>,
}

/// Whether `token` is `staff`'s CSRF token.
pub fn csrf_ok(staff: &Staff, token: Option<&str>) -> bool {
    token.is_some_and(|t| same(t.as_bytes(), staff.csrf.as_bytes()))
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for StaffPost<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<StaffPost<T>, Response> {
        let (mut parts, body) = req.into_parts();
        let staff = Staff::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| {
                html::error_page(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.")
            })?;
        let again = || {
            let mut r = Request::new(axum::body::Body::from(bytes.clone()));
            *r.method_mut() = parts.method.clone();
            if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
                r.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
            }
            r
        };
        let token = axum::Form::<CsrfField>::from_request(again(), state)
            .await
            .ok()
            .and_then(|f| f.0.csrf);
        if !csrf_ok(&staff, token.as_deref()) {
            warn!(
                user = staff.name.as_str(),
                path = parts.uri.path(),
                "web: POST without a valid CSRF token refused"
            );
            return Err(html::error_page(
                StatusCode::FORBIDDEN,
                "This form is out of date or did not come from this site. Reload the page and try again.",
            ));
        }
        let form = axum::Form::<T>::from_request(again(), state)
            .await
            .map_err(|e| html::error_page(StatusCode::BAD_REQUEST, &e.body_text()))?
            .0;
        Ok(StaffPost { staff, form })
    }
}

/// Who calls `/api/*` or `/metrics`: the bearer token when one is configured, else a session.
pub(crate) struct ApiCaller;

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<ApiCaller, Response> {
        let unauthorized = |why: &str| {
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                axum::Json(serde_json::json!({ "error": why })),
            )
                .into_response()
        };
        if let Some(token) = &state.auth.api_token {
            let given = parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            return match given {
                Some(g) if same(g.as_bytes(), token.as_bytes()) => Ok(ApiCaller),
                Some(_) => Err(unauthorized("wrong bearer token")),
                None => Err(unauthorized("send Authorization: Bearer <token>")),
            };
        }
        match state.session(session_cookie(parts)).await? {
            Some(_) => Ok(ApiCaller),
            None => Err(unauthorized(
                "log in first (no api_token is configured, so the API takes a session)",
            )),
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
}

/// Only a path on this site (never `//host` or a scheme): no open redirect through `next`.
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

pub(crate) async fn login_form(axum::extract::Query(q): axum::extract::Query<Next>) -> Response {
    html::login_page(&local_path(q.next.as_deref()), None, StatusCode::OK)
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    user: String,
    password: String,
    next: Option<String>,
}

/// A browser's POST from another site says so in `Origin`: refused, so no other page can log
/// someone in under an account of its choosing (the login form has no session to hold a CSRF
/// token yet). Clients that send no `Origin` (scripts) are not browsers posting across sites.
/// Behind a proxy that rewrites `Host`, the origin is `public_url`'s.
fn cross_site(headers: &axum::http::HeaderMap, public_url: Option<&str>) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => false,
        Some(origin) => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
            Some(origin_host) != host && Some(origin) != public_url
        }
    }
}

pub(crate) async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    axum::Form(f): axum::Form<LoginForm>,
) -> Response {
    if cross_site(&headers, state.web.public_url.as_deref()) {
        return html::error_page(StatusCode::FORBIDDEN, "Log in from this site's own page.");
    }
    let next = local_path(f.next.as_deref());
    let user: String = f.user.trim().chars().take(64).collect();
    let key = (user.clone(), peer.ip());
    if state.auth.limited(&key) {
        warn!(user = user.as_str(), client = %peer.ip(), "web: login refused, too many failures");
        return html::login_page(
            &next,
            Some("Too many failed logins for this name from here; wait 15 minutes."),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let ok = match state.auth.verifying.acquire().await {
        Ok(_permit) => {
            let auth = state.auth.clone();
            let (u, p) = (user.clone(), f.password);
            tokio::task::spawn_blocking(move || auth.verify(&u, &p))
                .await
                .unwrap_or(false)
        }
        Err(_) => false,
    };
    if !ok {
        state.auth.failed(key);
        warn!(user = user.as_str(), client = %peer.ip(), "web: failed login");
        return html::login_page(
            &next,
            Some("Wrong name or password."),
            StatusCode::UNAUTHORIZED,
        );
    }
    info!(user = user.as_str(), client = %peer.ip(), "web: login");
    let id = match state.start_session(&user).await {
        Ok(id) => id,
        Err(r) => return r,
    };
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                state.auth.cookie(&id, SESSION_HOURS * 3600),
            ),
            (header::LOCATION, next),
        ],
    )
        .into_response()
}

#[derive(Deserialize)]
pub(crate) struct Empty {}

/// POST `/logout` (with the CSRF token, like every POST).
pub(crate) async fn logout(State(state): State<AppState>, post: StaffPost<Empty>) -> Response {
    state.end_session(&post.staff.session).await;
    info!(user = post.staff.name.as_str(), "web: logout");
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, state.auth.cookie("", 0)),
            (header::LOCATION, "/login".to_string()),
        ],
    )
        .into_response()
}

/// Percent-encode everything but unreserved characters (for a query value).
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_by_salt() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert_ne!(h, hash_password("correct horse").unwrap());
        let web = WebConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            public_url: None,
            users: vec![crate::config::WebUser {
                name: "alice".into(),
                password_hash: h,
            }],
            api_token: None,
            secret: None,
        };
        let a = Auth::new(&web, None);
        assert!(a.verify("alice", "correct horse"));
        assert!(!a.verify("alice", "wrong"));
        assert!(!a.verify("bob", "correct horse"));
    }

    #[test]
    fn a_login_posted_from_another_site_is_refused() {
        let h = |origin: Option<&str>| {
            let mut m = axum::http::HeaderMap::new();
            m.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
            if let Some(o) = origin {
                m.insert(header::ORIGIN, o.parse().unwrap());
            }
            cross_site(&m, Some("https://cprwatch.example-ca.test"))
        };
        assert!(!h(None));
        assert!(!h(Some("https://cprwatch.example-ca.test")));
        assert!(!h(Some("http://127.0.0.1:8080")));
        assert!(h(Some("https://evil.test")));
        assert!(h(Some("null")));
    }

    #[test]
    fn a_post_needs_its_own_sessions_csrf_token() {
        let staff = |csrf: &str| Staff {
            name: "alice".into(),
            csrf: csrf.into(),
            session: random_token(),
        };
        let (s1, s2) = (staff(&random_token()), staff(&random_token()));
        assert_eq!(s1.session.len(), 64);
        assert!(csrf_ok(&s1, Some(&s1.csrf)));
        assert!(!csrf_ok(&s1, Some(&s2.csrf)));
        assert!(!csrf_ok(&s1, None));
        assert!(!csrf_ok(&s1, Some("")));
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(
            local_path(Some("/case/CPR-2026-0001")),
            "/case/CPR-2026-0001"
        );
        for bad in ["//evil.test/", "https://evil.test/", "/\\evil.test", ""] {
            assert_eq!(local_path(Some(bad)), "/", "{bad}");
        }
    }

    #[test]
    fn rate_limit_after_five_failures() {
        let web = WebConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            public_url: Some("https://x.test".into()),
            users: Vec::new(),
            api_token: None,
            secret: None,
        };
        let a = Auth::new(&web, Some("t".into()));
        let key = ("alice".to_string(), IpAddr::from([127, 0, 0, 1]));
        for _ in 0..MAX_FAILURES {
            assert!(!a.limited(&key));
            a.failed(key.clone());
        }
        assert!(a.limited(&key));
        assert!(!a.limited(&("bob".to_string(), IpAddr::from([127, 0, 0, 1]))));
        assert!(a.cookie("x", 1).ends_with("; Secure"));
    }
}
