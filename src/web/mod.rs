//! The web server `cprwatch run` serves with `[web]`: the desk's dashboard (`/`, `/case/<ID>`,
//! `/search`), a JSON API for scripts (`/api/*`), the reporter's status page (`/r/<token>`),
//! `/metrics` for Prometheus and `/healthz` (README "Web dashboard").
//!
//! An edge like the CLI: it reads what the store's tables and log hold, through the lookups
//! `status`, `case` and `search` use, and decides nothing. It reads through its own SQLite
//! connection (WAL lets it read while the desk writes), one request at a time on a blocking
//! thread, so a page never holds up the loop that commits mail.
//!
//! Safety: every string from a report is HTML-escaped ([`crate::escape::html`]); report HTML
//! is never rendered; pages carry a Content-Security-Policy that allows no script but the
//! server's own file and no other origin. Logins are argon2id-verified, rate-limited and
//! logged; sessions live in memory (a restart logs everyone out); every POST carries the
//! session's CSRF token ([`auth::StaffPost`]).

pub mod auth;
mod html;
mod metrics;
mod pages;
pub mod reporter;
mod sla;
mod triage;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tracing::{error, info};

use crate::config::{Config, WebConfig};
use crate::domain::model::Timestamp;
use crate::service::folder_sync::Request;
use crate::service::shutdown::Shutdown;
use crate::store::Tables;

/// Why the web server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(
        "cannot listen on {addr} ([web] listen): {source} — is another cprwatch or server using it? pick another port"
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("[web]: {0}")]
    Secret(String),
    #[error("the web server cannot open the store: {0}")]
    Store(String),
}

/// What the service tells the web server about itself.
#[derive(Debug, Default)]
pub struct Health {
    /// Unix seconds of the last completed clock evaluation (0: none yet).
    last_tick: AtomicI64,
}

impl Health {
    pub fn ticked(&self, at: Timestamp) {
        self.last_tick.store(at.unix_timestamp(), Ordering::Relaxed);
    }

    pub(crate) fn last_tick(&self) -> Option<Timestamp> {
        match self.last_tick.load(Ordering::Relaxed) {
            0 => None,
            t => Timestamp::from_unix_timestamp(t).ok(),
        }
    }
}

/// Everything a handler needs, shared.
#[derive(Clone)]
pub(crate) struct AppState {
    pub config: Arc<Config>,
    pub web: Arc<WebConfig>,
    pub store: Arc<Mutex<Box<dyn Tables>>>,
    pub auth: Arc<auth::Auth>,
    pub health: Arc<Health>,
    /// The key reporter links are made with.
    pub link_key: Arc<Vec<u8>>,
    /// The service loop that owns the desk: what changes state goes through it, as every
    /// source's mail does (`/healthz` asks it whether it answers).
    pub desk: tokio::sync::mpsc::Sender<Request>,
}

impl AppState {
    /// Ask the service loop, waiting at most `within`; `None` when it did not answer in time
    /// (busy deriving a large batch, or stopping).
    pub(crate) async fn ask_desk<T>(
        &self,
        within: std::time::Duration,
        request: impl FnOnce(tokio::sync::oneshot::Sender<Result<T, String>>) -> Request,
    ) -> Option<Result<T, String>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        tokio::time::timeout(within, async {
            self.desk.send(request(reply)).await.ok()?;
            answer.await.ok()
        })
        .await
        .ok()
        .flatten()
    }
}

impl AppState {
    /// Run `f` with the store on a blocking thread (SQLite and argon2 do not belong on the
    /// async workers).
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Tables, &Config) -> Result<T, String> + Send + 'static,
    ) -> Result<T, Response> {
        let store = self.store.clone();
        let config = self.config.clone();
        let r = tokio::task::spawn_blocking(move || {
            let s = store.lock().unwrap_or_else(|p| p.into_inner());
            f(s.as_ref(), &config)
        })
        .await;
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                error!(error = %e, "web: cannot read the store");
                Err(html::error_page(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "The store could not be read; the service log says why.",
                ))
            }
            Err(_) => Err(html::error_page(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "The request failed; the service log says why.",
            )),
        }
    }
}

/// A bound, ready server: binding happens at start so a port in use stops `cprwatch run`
/// with a clear error instead of a silent dashboard-less service.
pub struct Server {
    listener: tokio::net::TcpListener,
    state: AppState,
}

impl Server {
    /// Bind `[web] listen`, open a reading connection to the store, and load the reporter-link
    /// key. `health` is updated by the service loop; `desk` is the loop's request channel.
    pub(crate) async fn bind(
        config: Arc<Config>,
        health: Arc<Health>,
        desk: tokio::sync::mpsc::Sender<Request>,
    ) -> Result<Option<Server>, WebError> {
        let Some(web) = config.web.clone() else {
            return Ok(None);
        };
        let store = tokio::task::block_in_place(|| crate::desk::open_store(&config))
            .map_err(|e| WebError::Store(e.to_string()))?;
        let link_key = tokio::task::block_in_place(|| reporter::key(&config, &web))
            .map_err(WebError::Secret)?;
        let api_token = match &web.api_token {
            Some(src) => Some(src.read().map_err(WebError::Secret)?),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(web.listen)
            .await
            .map_err(|source| WebError::Bind {
                addr: web.listen,
                source,
            })?;
        let auth = Arc::new(auth::Auth::new(&web, api_token));
        Ok(Some(Server {
            listener,
            state: AppState {
                config,
                web: Arc::new(web),
                store: Arc::new(Mutex::new(store)),
                auth,
                health,
                link_key: Arc::new(link_key),
                desk,
            },
        }))
    }

    /// The address actually bound (the port, when `listen` asked for port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serve until `shutdown` fires.
    pub async fn run(self, mut shutdown: Shutdown) {
        let addr = self.local_addr();
        info!(
            listen = %addr.map(|a| a.to_string()).unwrap_or_default(),
            users = self.state.web.users.len(),
            "web server listening"
        );
        if addr.is_some_and(|a| !a.ip().is_loopback()) && !self.state.web.secure_cookies() {
            tracing::warn!(
                listen = %addr.map(|a| a.to_string()).unwrap_or_default(),
                "web server reachable from other hosts over plain HTTP: put a TLS proxy in front and set [web] public_url to its https:// address"
            );
        }
        let app = router(self.state);
        let r = axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { shutdown.recv().await })
        .await;
        if let Err(e) = r {
            error!(error = %e, "web server stopped");
        }
    }
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::dashboard))
        .route("/case/{id}", get(pages::case))
        .route("/search", get(pages::search))
        .route("/case/{id}/action", post(triage::case_action))
        .route("/triage/dismiss", post(triage::bulk_dismiss))
        .route("/sla", get(sla::sla))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/static/app.js", get(static_js))
        .route("/static/app.css", get(static_css))
        .route("/api/status", get(pages::api_status))
        .route("/api/case/{id}", get(pages::api_case))
        .route("/api/search", get(pages::api_search))
        .route("/healthz", get(pages::healthz))
        .route("/metrics", get(metrics::metrics))
        .route("/r/{token}", get(reporter::status_page))
        .fallback(|| async { html::error_page(axum::http::StatusCode::NOT_FOUND, "No such page.") })
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Headers on every answer: no framing, no sniffing, no referrer (a reporter's link must not
/// leak to the sites it links to), nothing cached, and a policy that lets a page load only the
/// server's own script and style.
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: header::HeaderName, v: &'static str| {
        h.entry(k).or_insert(HeaderValue::from_static(v));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    // same-origin, not no-referrer: under no-referrer a browser sends `Origin: null` with the
    // site's own form posts, which the login's cross-site check must refuse. Links to crt.sh
    // and other sites still carry no referrer.
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::CACHE_CONTROL, "no-store");
    r
}

async fn static_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        html::APP_JS,
    )
}

async fn static_css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        html::app_css(),
    )
}
