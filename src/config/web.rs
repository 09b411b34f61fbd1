//! `[web]`: the dashboard, API and metrics `cprwatch run` serves (README "Web dashboard").
//!
//! Without `[web]` there is no server. With it, someone must be able to get in: at least one
//! `[[web.user]]` (an argon2id hash from `cprwatch hash-password`) or an API token. As for
//! IMAP and SMTP, secrets (the API token, the reporter-link key) are named by `_env` or
//! `_file`, never written in the file; a password hash is not a secret in that sense, but a
//! plain password in its place is refused.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::PasswordSource;
use super::mailbox::secret;

/// The web server's settings, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebConfig {
    pub listen: SocketAddr,
    /// Where people reach the server (`https://…`, no trailing `/`); links to it (the
    /// reporter's status page) are built on it. `None`: no links are made.
    pub public_url: Option<String>,
    pub users: Vec<WebUser>,
    /// The bearer token for `/api/*` and `/metrics`; `None`: a logged-in session instead.
    pub api_token: Option<PasswordSource>,
    /// The key reporter links are made with; `None`: a random key kept beside the store
    /// (`<store>.web-key`), made on first start.
    pub secret: Option<PasswordSource>,
}

impl WebConfig {
    /// Cookies get `Secure` when people reach the server over TLS (directly or through a
    /// proxy): what `public_url` says.
    pub fn secure_cookies(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }
}

/// One person who may log in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebUser {
    pub name: String,
    /// An argon2id PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
    pub password_hash: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeb {
    #[serde(default = "default_listen")]
    listen: String,
    public_url: Option<String>,
    #[serde(default)]
    user: Vec<RawUser>,
    api_token_env: Option<String>,
    api_token_file: Option<PathBuf>,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: String,
    password_hash: String,
}

/// Validate `[web]`; an error is `(key, problem)`.
pub(super) fn web(
    raw: RawWeb,
    resolve: impl Fn(&Path) -> PathBuf + Copy,
) -> Result<WebConfig, (String, String)> {
    let listen: SocketAddr = raw.listen.trim().parse().map_err(|_| {
        (
            "web.listen".to_string(),
            format!(
                "{:?} is not an address and port; write it like \"127.0.0.1:8080\"",
                raw.listen
            ),
        )
    })?;
    let public_url = match raw.public_url.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
            Some(u.trim_end_matches('/').to_string())
        }
        Some(u) => {
            return Err((
                "web.public_url".into(),
                format!("{u:?} is not a URL; write it like \"https://cprwatch.example-ca.test\""),
            ));
        }
    };
    let mut users: Vec<WebUser> = Vec::with_capacity(raw.user.len());
    for (i, u) in raw.user.into_iter().enumerate() {
        let name = u.name.trim().to_string();
        if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
            return Err((
                format!("web.user[{i}].name"),
                "must be 1 to 64 printable characters".into(),
            ));
        }
        if users.iter().any(|o| o.name == name) {
            return Err((
                format!("web.user[{i}].name"),
                format!("{name:?} names two users; give each a distinct name"),
            ));
        }
        let hash = u.password_hash.trim().to_string();
        match argon2::PasswordHash::new(&hash) {
            Ok(h) if h.algorithm.as_str() == "argon2id" && h.hash.is_some() => {}
            _ => {
                return Err((
                    format!("web.user[{i}].password_hash"),
                    "is not an argon2id hash; make one with `cprwatch hash-password` (it reads \
                     the password on stdin) and paste what it prints"
                        .into(),
                ));
            }
        }
        users.push(WebUser {
            name,
            password_hash: hash,
        });
    }
    let api_token = secret(
        "web.api_token_env",
        "api_token",
        raw.api_token_env,
        raw.api_token_file,
        resolve,
    )?;
    let key = secret(
        "web.secret_env",
        "secret",
        raw.secret_env,
        raw.secret_file,
        resolve,
    )?;
    if users.is_empty() && api_token.is_none() {
        return Err((
            "web.user".into(),
            "[web] has no [[web.user]] and no api_token_env/api_token_file, so nobody could use \
             it: add a user (`cprwatch hash-password` makes its password_hash), or remove [web]"
                .into(),
        ));
    }
    Ok(WebConfig {
        listen,
        public_url,
        users,
        api_token,
        secret: key,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{ConfigError, from_str};
    use std::path::Path;

    const ORIGIN: &str = "/etc/cprwatch/c.toml";
    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$3Wa4b5C6Jp0F4YkQjB3mRfwq8Q2mZQ0m8a8b3s7Z1xE";

    fn parse(web: &str) -> Result<crate::config::Config, ConfigError> {
        from_str(
            &format!("[desk]\nstaff_domains = []\n{web}"),
            Path::new(ORIGIN),
        )
    }

    #[test]
    fn no_web_section_no_server_and_defaults_otherwise() {
        assert!(parse("").unwrap().web.is_none());
        let c = parse(&format!(
            "[web]\n[[web.user]]\nname = \"alice\"\npassword_hash = \"{HASH}\"\n"
        ))
        .unwrap();
        let w = c.web.unwrap();
        assert_eq!(w.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(w.users[0].name, "alice");
        assert!(!w.secure_cookies());
        let c = parse(
            "[web]\nlisten = \"127.0.0.1:0\"\npublic_url = \"https://x.test/\"\napi_token_file = \"tok\"\n",
        )
        .unwrap();
        let w = c.web.unwrap();
        assert_eq!(w.public_url.as_deref(), Some("https://x.test"));
        assert!(w.secure_cookies());
        assert_eq!(
            w.api_token,
            Some(crate::config::PasswordSource::File(
                "/etc/cprwatch/tok".into()
            ))
        );
    }

    #[test]
    fn bad_web_settings_name_their_key() {
        for (text, key) in [
            (
                "[web]\napi_token_env = \"T\"\nlisten = \"localhost\"\n",
                "web.listen",
            ),
            (
                "[web]\napi_token_env = \"T\"\npublic_url = \"x.test\"\n",
                "web.public_url",
            ),
            ("[web]\n", "web.user"),
            (
                "[web]\n[[web.user]]\nname = \"a\"\npassword_hash = \"hunter2\"\n",
                "web.user[0].password_hash",
            ),
            (
                "[web]\napi_token_env = \"T\"\napi_token_file = \"f\"\n",
                "web.api_token_env",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(
                matches!(&e, ConfigError::Invalid { key: k, .. } if k == key),
                "{key}: {e}"
            );
        }
        let e = parse("[web]\napi_token_env = \"T\"\nport = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("port") && e.contains(ORIGIN), "{e}");
        let e =
            parse("[web]\n[[web.user]]\nname = \"a\"\npassword = \"x\"\npassword_hash = \"y\"\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("password") && e.contains(ORIGIN), "{e}");
    }
}
