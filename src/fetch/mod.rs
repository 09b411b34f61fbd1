//! The revocation fetch edge (issue 16): HTTP(S) for OCSP responders, CRLs, caIssuers and a
//! crt.sh-style endpoint.
//!
//! I/O only, no policy: these functions fetch the bytes a check needs and report what the
//! server said about freshness (`max-age`, `Retry-After`); whether an answer is believed is
//! [`crate::reading::revocation`]'s decision, and when to ask (and how often, politely) is the
//! scheduler's. The API is `pub` because the end-to-end tests in `tests/fetch.rs` call it.

pub mod crtsh;
mod guard;
pub mod http;
pub mod responders;

pub use crtsh::{CrtshEntry, RateLimit};
pub use http::{FetchError, FetchSettings, Fetched, HttpClient};
