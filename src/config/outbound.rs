//! What cprwatch sends, and where: `[smtp]`, `[alerts]` with its `[[alerts.route]]`s,
//! `[receipts]` and `[[canary]]` (README "Alerts and receipts").
//!
//! Without `[smtp]` nothing is sent (and `check-config` says so); `[alerts]` and `[receipts]`
//! have defaults. As for IMAP, a password or the canary's key never sits in the file, and TLS
//! is always verified: `tls = "none"` is refused for anything but a loopback host.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use time::Duration;

use super::PasswordSource;
use super::mailbox::{secret, tls_mode};
use crate::deciding::alerts::{AlertLevel, AlertPolicy};
use crate::deciding::dispatch::Route;
use crate::domain::timefmt::parse_span;
use crate::source::imap::TlsMode;

/// The SMTP server alerts, receipts and canaries go through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// An extra trusted root (a private CA) on top of the system's.
    pub ca_file: Option<PathBuf>,
    /// The login, with where its password comes from; `None`: no authentication.
    pub login: Option<(String, PasswordSource)>,
    /// The envelope sender and `From:` of everything cprwatch sends (a bare address).
    pub from: String,
    /// Every SMTP step must finish within this.
    pub timeout: Duration,
}

/// When and to whom alerts go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertsConfig {
    pub policy: AlertPolicy,
    /// The base of links in alerts (the dashboard); `None`: no links.
    pub dashboard_url: Option<String>,
    pub routes: Vec<Route>,
}

/// Receipts to reporters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptsConfig {
    pub enabled: bool,
    pub max_per_sender_per_hour: u32,
    /// No receipt for reports found in a junk folder.
    pub skip_junk: bool,
}

impl Default for ReceiptsConfig {
    fn default() -> Self {
        ReceiptsConfig {
            enabled: true,
            max_per_sender_per_hour: 5,
            skip_junk: false,
        }
    }
}

/// `[[canary]]`: a synthetic report mailed on a schedule to a published CPR address, expected
/// back in a watched folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanaryConfig {
    /// The published CPR address.
    pub to: String,
    pub every: Duration,
    pub max_delay: Duration,
    /// The HMAC key for the canary's token.
    pub secret: PasswordSource,
    /// A separate account for the canary, so it travels the public path; `None`: `[smtp]`.
    pub smtp: Option<SmtpConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSmtp {
    host: String,
    port: Option<u16>,
    #[serde(default = "default_smtp_tls")]
    tls: String,
    ca_file: Option<PathBuf>,
    username: Option<String>,
    /// Accepted only to refuse it with a useful message.
    password: Option<toml::Value>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    /// Required for `[smtp]`; a canary's own account uses `[smtp]`'s when it has none.
    from: Option<String>,
    #[serde(default = "default_timeout")]
    timeout: String,
}

fn default_smtp_tls() -> String {
    "starttls".into()
}
fn default_timeout() -> String {
    "30s".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAlerts {
    warn_before: Option<Vec<String>>,
    repeat: String,
    advisory_after: String,
    flood: u64,
    dashboard_url: String,
    route: Vec<RawRoute>,
}

impl RawAlerts {
    pub(super) fn has_warn_before(&self) -> bool {
        self.warn_before.is_some()
    }
}

impl Default for RawAlerts {
    fn default() -> Self {
        RawAlerts {
            warn_before: None,
            repeat: "4h".into(),
            advisory_after: "24h".into(),
            flood: 20,
            dashboard_url: String::new(),
            route: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    to: Vec<String>,
    #[serde(default = "all_levels")]
    levels: Vec<String>,
}

fn all_levels() -> Vec<String> {
    AlertLevel::ALL
        .iter()
        .map(|l| l.as_str().to_string())
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawReceipts {
    enabled: bool,
    max_per_sender_per_hour: u32,
    skip_junk: bool,
}

impl Default for RawReceipts {
    fn default() -> Self {
        let d = ReceiptsConfig::default();
        RawReceipts {
            enabled: d.enabled,
            max_per_sender_per_hour: d.max_per_sender_per_hour,
            skip_junk: d.skip_junk,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCanary {
    to: String,
    #[serde(default = "default_every")]
    every: String,
    #[serde(default = "default_max_delay")]
    max_delay: String,
    secret: Option<toml::Value>,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
    smtp: Option<RawSmtp>,
}

fn default_every() -> String {
    "1h".into()
}
fn default_max_delay() -> String {
    "15m".into()
}

/// An error: `(key, problem)`.
type Invalid = (String, String);

fn span(key: &str, text: &str) -> Result<Duration, Invalid> {
    match parse_span(text) {
        Some(d) if d.is_positive() => Ok(d),
        _ => Err((
            key.to_string(),
            format!("{text:?} is not a span; write a whole number with s, m, h or d, like \"4h\""),
        )),
    }
}

/// A bare mail address, lowercased; `what` says what it is for in the error.
fn bare_address(key: &str, s: &str) -> Result<String, Invalid> {
    super::address(&s.trim().to_lowercase()).map_err(|p| (key.to_string(), format!("{s:?} {p}")))
}

/// Validate `[smtp]` (or a canary's own `smtp`, at `key`), with `from` from `[smtp]` when
/// the table has none.
pub(super) fn smtp(
    key: &str,
    raw: RawSmtp,
    from: Option<&str>,
    resolve: &impl Fn(&Path) -> PathBuf,
) -> Result<SmtpConfig, Invalid> {
    let k = |name: &str| format!("{key}.{name}");
    if raw.password.is_some() {
        return Err((
            k("password"),
            "a password never goes in the config file; use password_env = \"VAR\" or password_file = \"/path\"".into(),
        ));
    }
    let host = raw.host.trim().to_string();
    if host.is_empty() {
        return Err((k("host"), "is empty".into()));
    }
    let tls = tls_mode(&k("tls"), &raw.tls, &host, "mail and the password")?;
    let password = secret(
        &k("password_env"),
        "password",
        raw.password_env,
        raw.password_file,
        resolve,
    )?;
    let login = match (raw.username.map(|u| u.trim().to_string()), password) {
        (None, None) => None,
        (Some(u), Some(p)) if !u.is_empty() => Some((u, p)),
        (Some(_), None) => {
            return Err((
                k("password_env"),
                "missing: a username needs its password's environment variable (password_env) or file (password_file)".into(),
            ));
        }
        (_, Some(_)) => {
            return Err((
                k("username"),
                "missing: a password is given, but no username to log in with".into(),
            ));
        }
    };
    let from = match raw.from.as_deref().or(from) {
        Some(f) => bare_address(&k("from"), f)?,
        None => {
            return Err((
                k("from"),
                "missing: the address cprwatch sends from, like \"cprwatch@example-ca.test\""
                    .into(),
            ));
        }
    };
    Ok(SmtpConfig {
        port: raw.port.unwrap_or(match tls {
            TlsMode::Implicit => 465,
            _ => 587,
        }),
        host,
        tls,
        ca_file: raw.ca_file.as_deref().map(resolve),
        login,
        from,
        timeout: span(&k("timeout"), &raw.timeout)?,
    })
}

/// Validate `[alerts]`. `old_warn_before` is `[clock] warn_before`, read when `[alerts]` has
/// none.
pub(super) fn alerts(
    raw: RawAlerts,
    old_warn_before: Option<Duration>,
) -> Result<AlertsConfig, Invalid> {
    let warn_before = match (raw.warn_before, old_warn_before) {
        (Some(list), _) => {
            let mut out = Vec::with_capacity(list.len());
            for (i, t) in list.iter().enumerate() {
                out.push(span(&format!("alerts.warn_before[{i}]"), t)?);
            }
            out
        }
        (None, Some(old)) => vec![old],
        (None, None) => AlertPolicy::default().warn_before,
    };
    if raw.flood == 0 {
        return Err(("alerts.flood".into(), "must be at least 1".into()));
    }
    let flood = usize::try_from(raw.flood)
        .map_err(|_| ("alerts.flood".to_string(), "is too large".to_string()))?;
    let dashboard_url = match raw.dashboard_url.trim() {
        "" => None,
        u if u.starts_with("https://") || u.starts_with("http://") => {
            Some(u.trim_end_matches('/').to_string())
        }
        u => {
            return Err((
                "alerts.dashboard_url".into(),
                format!(
                    "{u:?} is not an http(s) URL; write it like \"https://cprwatch.example-ca.test\""
                ),
            ));
        }
    };
    let mut routes = Vec::with_capacity(raw.route.len());
    for (i, r) in raw.route.into_iter().enumerate() {
        if r.to.is_empty() {
            return Err((
                format!("alerts.route[{i}].to"),
                "is empty: name at least one address".into(),
            ));
        }
        let mut to = Vec::with_capacity(r.to.len());
        for (j, a) in r.to.iter().enumerate() {
            to.push(bare_address(&format!("alerts.route[{i}].to[{j}]"), a)?);
        }
        let mut levels = Vec::with_capacity(r.levels.len());
        for (j, l) in r.levels.iter().enumerate() {
            let level = AlertLevel::parse(&l.trim().to_lowercase()).ok_or_else(|| {
                (
                    format!("alerts.route[{i}].levels[{j}]"),
                    format!(
                        "{l:?} is not an alert level; use any of {}",
                        all_levels().join(", ")
                    ),
                )
            })?;
            if !levels.contains(&level) {
                levels.push(level);
            }
        }
        routes.push(Route { to, levels });
    }
    Ok(AlertsConfig {
        policy: AlertPolicy::new(
            warn_before,
            span("alerts.repeat", &raw.repeat)?,
            span("alerts.advisory_after", &raw.advisory_after)?,
            flood,
        ),
        dashboard_url,
        routes,
    })
}

pub(super) fn receipts(raw: RawReceipts) -> Result<ReceiptsConfig, Invalid> {
    if raw.max_per_sender_per_hour == 0 && raw.enabled {
        return Err((
            "receipts.max_per_sender_per_hour".into(),
            "must be at least 1 (to send no receipts, set enabled = false)".into(),
        ));
    }
    Ok(ReceiptsConfig {
        enabled: raw.enabled,
        max_per_sender_per_hour: raw.max_per_sender_per_hour,
        skip_junk: raw.skip_junk,
    })
}

pub(super) fn canary(
    i: usize,
    raw: RawCanary,
    from: Option<&str>,
    resolve: &impl Fn(&Path) -> PathBuf,
) -> Result<CanaryConfig, Invalid> {
    let key = |k: &str| format!("canary[{i}].{k}");
    if raw.secret.is_some() {
        return Err((
            key("secret"),
            "a key never goes in the config file; use secret_env = \"VAR\" or secret_file = \"/path\"".into(),
        ));
    }
    let secret = secret(
        &key("secret_env"),
        "secret",
        raw.secret_env,
        raw.secret_file,
        resolve,
    )?
    .ok_or_else(|| {
        (
            key("secret_env"),
            "missing: name the HMAC key's environment variable (secret_env) or file (secret_file)"
                .into(),
        )
    })?;
    let smtp = match raw.smtp {
        Some(s) => Some(smtp(&key("smtp"), s, from, resolve)?),
        None => None,
    };
    Ok(CanaryConfig {
        to: bare_address(&key("to"), &raw.to)?,
        every: span(&key("every"), &raw.every)?,
        max_delay: span(&key("max_delay"), &raw.max_delay)?,
        secret,
        smtp,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Config, from_str};
    use super::*;

    fn parse(extra: &str) -> Result<Config, String> {
        let text = format!("[desk]\nstaff_domains = [\"example-ca.test\"]\n{extra}\n");
        from_str(&text, Path::new("/etc/cprwatch/c.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn without_smtp_nothing_is_sent_and_alerts_and_receipts_take_their_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.smtp, None);
        assert_eq!(c.alerts.policy, AlertPolicy::default());
        assert_eq!(
            c.alerts.policy.warn_before,
            [Duration::hours(12), Duration::hours(4), Duration::hours(1)]
        );
        assert!(c.alerts.routes.is_empty());
        assert_eq!(c.receipts, ReceiptsConfig::default());
        assert!(c.canary.is_empty());
        assert!(c.notes.is_empty());
    }

    #[test]
    fn the_issue_example_reads_as_written() {
        let c = parse(
            r#"
            [smtp]
            host = "smtp.example-ca.test"
            port = 587
            tls = "starttls"
            ca_file = "private-ca.pem"
            username = "cprwatch"
            password_env = "CPRWATCH_SMTP_PASSWORD"
            from = "cprwatch@example-ca.test"
            timeout = "30s"

            [alerts]
            warn_before = ["1h", "12h", "4h"]
            repeat = "4h"
            advisory_after = "24h"
            flood = 20
            dashboard_url = "https://cprwatch.example-ca.test/"

            [[alerts.route]]
            to = ["desk@example-ca.test"]
            levels = ["warning", "breach", "reminder", "advisory", "canary", "digest", "delivery"]

            [[alerts.route]]
            to = ["Oncall@Example-CA.test"]
            levels = ["breach"]

            [receipts]
            enabled = true
            max_per_sender_per_hour = 5
            skip_junk = true

            [[canary]]
            to = "cpr@example-ca.test"
            every = "1h"
            max_delay = "15m"
            secret_env = "CPRWATCH_CANARY_KEY"
            smtp = { host = "smtp.elsewhere.test", port = 465, tls = "implicit", username = "c", password_file = "canary-pass" }
            "#,
        )
        .unwrap();
        let s = c.smtp.unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.tls),
            ("smtp.example-ca.test", 587, TlsMode::StartTls)
        );
        assert_eq!(
            s.ca_file.as_deref(),
            Some(Path::new("/etc/cprwatch/private-ca.pem"))
        );
        assert_eq!(
            s.login,
            Some((
                "cprwatch".into(),
                PasswordSource::Env("CPRWATCH_SMTP_PASSWORD".into())
            ))
        );
        assert_eq!(s.from, "cprwatch@example-ca.test");
        // Thresholds in the order a clock crosses them.
        assert_eq!(
            c.alerts.policy.warn_before,
            [Duration::hours(12), Duration::hours(4), Duration::hours(1)]
        );
        assert_eq!(
            c.alerts.dashboard_url.as_deref(),
            Some("https://cprwatch.example-ca.test")
        );
        assert_eq!(c.alerts.routes.len(), 2);
        // The seven levels the example names (issue 14); `revocation` came later.
        assert_eq!(c.alerts.routes[0].levels, AlertLevel::ALL[..7]);
        assert_eq!(c.alerts.routes[1].to, ["oncall@example-ca.test"]);
        assert_eq!(c.alerts.routes[1].levels, [AlertLevel::Breach]);
        assert!(c.receipts.skip_junk);
        let k = &c.canary[0];
        assert_eq!(
            (k.every, k.max_delay),
            (Duration::hours(1), Duration::minutes(15))
        );
        let own = k.smtp.as_ref().unwrap();
        // The canary's own account sends from [smtp]'s address unless it names one.
        assert_eq!(
            (own.port, own.from.as_str()),
            (465, "cprwatch@example-ca.test")
        );
        assert_eq!(
            own.login,
            Some((
                "c".into(),
                PasswordSource::File("/etc/cprwatch/canary-pass".into())
            ))
        );
    }

    #[test]
    fn the_old_clock_warn_before_is_read_with_a_note() {
        let c = parse("[clock]\nwarn_before = \"90m\"\n").unwrap();
        assert_eq!(c.alerts.policy.warn_before, [Duration::minutes(90)]);
        assert!(
            c.notes
                .iter()
                .any(|n| n.contains("[clock] warn_before") && n.contains("[alerts] warn_before")),
            "{:?}",
            c.notes
        );
        // [alerts] wins when both are given.
        let c =
            parse("[clock]\nwarn_before = \"90m\"\n[alerts]\nwarn_before = [\"2h\"]\n").unwrap();
        assert_eq!(c.alerts.policy.warn_before, [Duration::hours(2)]);
    }

    #[test]
    fn mistakes_name_their_key() {
        for (extra, key) in [
            (
                "[smtp]\nhost = \"mx.example.test\"\ntls = \"none\"\nfrom = \"a@example-ca.test\"",
                "smtp.tls",
            ),
            ("[smtp]\nhost = \"127.0.0.1\"\ntls = \"none\"", "smtp.from"),
            (
                "[smtp]\nhost = \"h.test\"\nfrom = \"a@b.test\"\npassword = \"hunter2\"",
                "smtp.password",
            ),
            (
                "[smtp]\nhost = \"h.test\"\nfrom = \"a@b.test\"\nusername = \"u\"",
                "smtp.password_env",
            ),
            (
                "[smtp]\nhost = \"h.test\"\nfrom = \"a@b.test\"\npassword_env = \"P\"",
                "smtp.username",
            ),
            (
                "[smtp]\nhost = \"h.test\"\nfrom = \"not an address\"",
                "smtp.from",
            ),
            (
                "[smtp]\nhost = \"h.test\"\nfrom = \"a@b.test\"\nhelo = \"x\"",
                "helo",
            ),
            (
                "[alerts]\nwarn_before = [\"4 hours\"]",
                "alerts.warn_before[0]",
            ),
            ("[alerts]\nflood = 0", "alerts.flood"),
            (
                "[alerts]\ndashboard_url = \"cprwatch.example-ca.test\"",
                "alerts.dashboard_url",
            ),
            ("[[alerts.route]]\nto = []", "alerts.route[0].to"),
            (
                "[[alerts.route]]\nto = [\"d@example-ca.test\"]\nlevels = [\"page\"]",
                "alerts.route[0].levels[0]",
            ),
            (
                "[receipts]\nmax_per_sender_per_hour = 0",
                "receipts.max_per_sender_per_hour",
            ),
            (
                "[[canary]]\nto = \"cpr@example-ca.test\"",
                "canary[0].secret_env",
            ),
            (
                "[[canary]]\nto = \"cpr@example-ca.test\"\nsecret = \"k\"",
                "canary[0].secret",
            ),
            (
                "[[canary]]\nto = \"cpr\"\nsecret_env = \"K\"",
                "canary[0].to",
            ),
        ] {
            let e = parse(extra).expect_err(extra);
            assert!(
                e.contains(key) && e.contains("/etc/cprwatch/c.toml"),
                "{extra}: {e}"
            );
            assert!(!e.contains("hunter2"), "{e}");
        }
        // A loopback host may go without TLS (the tests' Postfix).
        let c = parse("[smtp]\nhost = \"127.0.0.1\"\nport = 2525\ntls = \"none\"\nfrom = \"a@example-ca.test\"")
            .unwrap();
        assert_eq!(c.smtp.unwrap().tls, TlsMode::None);
    }
}
