//! `[store]`: where the log and its tables live — a SQLite file (`path`, the default, one
//! machine), or a PostgreSQL database (`url`) that several `cprwatch run` instances share, one
//! of them leading ([`crate::store::lease`]).
//!
//! As for IMAP, the database password never sits in the file: `password_env` or
//! `password_file`. TLS to the server is required and verified unless the host is loopback
//! ([`crate::store::postgres_connect`]), with `ca_file` for a private CA.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::mailbox::{PasswordSource, password};
use crate::domain::timefmt::parse_span;
use crate::store::InstanceId;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// The SQLite file (resolved); with `url`, where files kept beside the store go.
    pub path: PathBuf,
    /// The PostgreSQL database instead of the file.
    pub postgres: Option<PostgresConfig>,
}

impl StoreConfig {
    /// Where the store is, for messages and `check-config` (the URL holds no password).
    pub fn describe(&self) -> String {
        match &self.postgres {
            None => self.path.display().to_string(),
            Some(pg) => format!(
                "{} (PostgreSQL; instance {}, lease {}s)",
                pg.url,
                pg.instance,
                pg.lease_ttl.as_secs()
            ),
        }
    }
}

/// A PostgreSQL store shared by the instances of one desk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostgresConfig {
    /// `postgres://USER@HOST[:PORT]/DATABASE`, no password in it.
    pub url: String,
    pub password: PasswordSource,
    /// Extra trust anchors for the server's certificate (PEM).
    pub ca_file: Option<PathBuf>,
    /// This instance's name in the leader lease: unique per instance (default: the host name).
    pub instance: InstanceId,
    /// How long the lease lasts without renewal: a follower takes over within this of the
    /// leader stopping.
    pub lease_ttl: Duration,
}

/// The default lease: renewed every few seconds, taken over 15 s after the leader stops.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(15);

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    path: Option<PathBuf>,
    url: Option<String>,
    password: Option<toml::Value>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    instance: Option<String>,
    lease_ttl: Option<String>,
}

fn default_store_path() -> PathBuf {
    PathBuf::from("cprwatch.sqlite")
}

/// This host's name, for the lease when `instance` is not given.
fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// Validate `[store]`; an error is `(key, problem)`.
pub(super) fn store(
    raw: RawStore,
    resolve: impl Fn(&Path) -> PathBuf,
) -> Result<StoreConfig, (String, String)> {
    let key = |k: &str| format!("store.{k}");
    let Some(url) = raw.url else {
        for (k, given) in [
            ("password_env", raw.password_env.is_some()),
            ("password_file", raw.password_file.is_some()),
            ("password", raw.password.is_some()),
            ("ca_file", raw.ca_file.is_some()),
            ("instance", raw.instance.is_some()),
            ("lease_ttl", raw.lease_ttl.is_some()),
        ] {
            if given {
                return Err((
                    key(k),
                    "is for a PostgreSQL store: give [store] url too, or remove it".into(),
                ));
            }
        }
        return Ok(StoreConfig {
            path: resolve(&raw.path.unwrap_or_else(default_store_path)),
            postgres: None,
        });
    };
    if raw.path.is_some() {
        return Err((
            key("path"),
            "give path (a SQLite file) or url (PostgreSQL), not both".into(),
        ));
    }
    let url = url.trim().to_string();
    if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
        return Err((
            key("url"),
            "must start with postgres:// (postgres://USER@HOST:PORT/DATABASE)".into(),
        ));
    }
    let password = password(
        &key,
        raw.password.is_some(),
        raw.password_env,
        raw.password_file,
        &resolve,
    )?;
    let instance = match raw.instance.or_else(host_name) {
        Some(i) => InstanceId::new(i.trim()).map_err(|e| (key("instance"), e.to_string()))?,
        None => {
            return Err((
                key("instance"),
                "missing, and the host name could not be read: name this instance \
                 (unique among the instances sharing the database)"
                    .into(),
            ));
        }
    };
    let lease_ttl = match raw.lease_ttl {
        Some(t) => {
            let span = parse_span(&t)
                .filter(|d| d.whole_seconds() >= 2 && d.whole_seconds() <= 600)
                .ok_or_else(|| {
                    (
                        key("lease_ttl"),
                        format!("{t:?} is not a span from 2s to 10m (e.g. \"15s\")"),
                    )
                })?;
            Duration::from_secs(u64::try_from(span.whole_seconds()).unwrap_or(15))
        }
        None => DEFAULT_LEASE_TTL,
    };
    Ok(StoreConfig {
        // Files kept beside the store (none needed with url, but a path keeps their names).
        path: resolve(&default_store_path()),
        postgres: Some(PostgresConfig {
            url,
            password,
            ca_file: raw.ca_file.as_deref().map(&resolve),
            instance,
            lease_ttl,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<StoreConfig, (String, String)> {
        let raw: RawStore =
            toml::from_str(toml_text).map_err(|e| ("toml".into(), e.to_string()))?;
        store(raw, |p| Path::new("/etc/cprwatch").join(p))
    }

    #[test]
    fn sqlite_by_default_postgres_with_url() {
        let s = parse("").unwrap();
        assert_eq!(s.path, Path::new("/etc/cprwatch/cprwatch.sqlite"));
        assert!(s.postgres.is_none());
        let s = parse(
            "url = \"postgres://cprwatch@db.example:5432/cprwatch\"\npassword_env = \"PGPASS\"\n\
             instance = \"host-a\"\nlease_ttl = \"20s\"\n",
        )
        .unwrap();
        let pg = s.postgres.unwrap();
        assert_eq!(pg.url, "postgres://cprwatch@db.example:5432/cprwatch");
        assert_eq!(pg.password, PasswordSource::Env("PGPASS".into()));
        assert_eq!(pg.instance.as_str(), "host-a");
        assert_eq!(pg.lease_ttl, Duration::from_secs(20));
    }

    #[test]
    fn mistakes_name_their_key() {
        let e = |t: &str| parse(t).unwrap_err();
        assert_eq!(e("password_env = \"P\"").0, "store.password_env");
        assert_eq!(
            e("url = \"postgres://u@h/d\"\npath = \"x.sqlite\"\npassword_env = \"P\"").0,
            "store.path"
        );
        assert_eq!(e("url = \"postgres://u@h/d\"").0, "store.password_env");
        assert_eq!(
            e("url = \"postgres://u@h/d\"\npassword = \"hunter2\"").0,
            "store.password"
        );
        assert_eq!(
            e("url = \"mysql://u@h/d\"\npassword_env = \"P\"").0,
            "store.url"
        );
        assert_eq!(
            e("url = \"postgres://u@h/d\"\npassword_env = \"P\"\nlease_ttl = \"1s\"").0,
            "store.lease_ttl"
        );
        assert_eq!(
            e("url = \"postgres://u@h/d\"\npassword_env = \"P\"\ninstance = \"a b\"").0,
            "store.instance"
        );
    }
}
