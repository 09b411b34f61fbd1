//! The configuration file (TOML): which desk, where the store lives, which rules, how the
//! clocks tick, which folders to watch.
//!
//! Strict on purpose: an unknown key is an error naming the key and the file (with toml's line
//! and column), because a misspelt key silently falling back to a default is how a watched Junk
//! folder quietly stops being watched. Everything except `[desk]` has a default. Relative paths
//! resolve against the config file's directory, so a config works from whatever directory the
//! service is started in.
//!
//! Secrets never live in this file: it is read by people, copied and committed. IMAP accounts
//! (`[[mailbox]]`) name their password through `password_env` (an environment variable) or
//! `password_file` (a file path), never the password itself.

mod mailbox;
mod outbound;
mod revocation;
mod rules_dir;
mod store;
mod web;

pub use rules_dir::load_rules_dir;

pub use mailbox::{MailboxConfig, PasswordSource};
pub use outbound::{AlertsConfig, CanaryConfig, ReceiptsConfig, SmtpConfig};
pub use revocation::{EnrichConfig, RevocationConfig};
pub use store::{DEFAULT_LEASE_TTL, PostgresConfig, StoreConfig};
pub use web::{WebConfig, WebUser};

use crate::domain::model::FolderRole;
use crate::domain::timefmt::parse_span;
use crate::reading::limits::Limits;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use time::Duration;

/// The whole configuration, validated, with paths resolved and spans parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub desk: DeskConfig,
    pub store: StoreConfig,
    pub rules: RulesConfig,
    pub clock: ClockConfig,
    /// How much of one message is searched (`[limits]`).
    pub limits: Limits,
    pub maildir: Vec<MaildirConfig>,
    /// IMAP accounts watched by `cprwatch run`.
    pub mailbox: Vec<MailboxConfig>,
    /// Where alerts, receipts and canaries are sent through; `None`: nothing is sent.
    pub smtp: Option<SmtpConfig>,
    pub alerts: AlertsConfig,
    pub receipts: ReceiptsConfig,
    pub canary: Vec<CanaryConfig>,
    /// The keys that sign and check checkpoints of the log (`[audit]`).
    pub audit: AuditConfig,
    /// The dashboard, API and metrics server; `None`: no server.
    pub web: Option<WebConfig>,
    /// OCSP and CRL checks of reported certificates (`[revocation]`).
    pub revocation: RevocationConfig,
    /// Fetching certificates named only by id (`[enrich]`).
    pub enrich: EnrichConfig,
    /// What the reader of this file should change (a deprecated key), for stderr.
    pub notes: Vec<String>,
    /// The file this configuration was read from (as given).
    pub path: PathBuf,
}

/// Who the desk is: decides which mail counts as staff-authored (README "Configuration",
/// **Staff**).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeskConfig {
    /// Shown in outputs.
    pub name: Option<String>,
    /// Lowercase, without a leading `@`.
    pub staff_domains: Vec<String>,
    /// Lowercase bare addresses.
    pub staff_addresses: Vec<String>,
    /// `Authentication-Results` authserv-ids of the CA's own MX, lowercase. Only headers with
    /// these ids are believed; empty means no DKIM result is believed and only a watched Sent
    /// folder proves staff authorship.
    pub trusted_authserv_ids: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesConfig {
    /// A directory of rule files (resolved); `None`: the rule set shipped in the binary.
    pub dir: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClockConfig {
    /// How often the service re-evaluates clocks.
    pub tick_seconds: u64,
    /// Same reporter + same normalized subject joins an existing case within this span.
    pub thread_window: Duration,
}

impl Default for ClockConfig {
    fn default() -> Self {
        ClockConfig {
            tick_seconds: 60,
            thread_window: Duration::days(30),
        }
    }
}

/// One Maildir watched by `cprwatch run`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaildirConfig {
    /// The Maildir root (resolved).
    pub path: PathBuf,
    pub poll_seconds: u64,
    /// `None`: discover folders (root → inbox, `.Junk`/`.Spam` → junk, `.Sent` → sent).
    pub folders: Option<Vec<FolderConfig>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderConfig {
    /// `INBOX` for the Maildir root, else the sub-folder's directory name (`.Junk`).
    pub name: String,
    pub role: FolderRole,
}

/// `[audit]`: the evidence beyond the hash chain (README "For auditors"). The files are read
/// when used (`run`, `audit checkpoint`, `verify`), not here: this module touches no key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditConfig {
    /// The Ed25519 private key (PKCS#8 PEM, mode 0600) that signs checkpoints (resolved).
    /// `None`: no checkpoints are signed.
    pub signing_key_file: Option<PathBuf>,
    /// The public key `verify` checks checkpoints with (resolved); `None`: the one derived
    /// from `signing_key_file`, if set.
    pub public_key_file: Option<PathBuf>,
}

/// Why the configuration could not be used, naming the file (and key) to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source} — pass an existing file with --config", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Syntax errors, unknown keys, missing required keys, wrong types: toml's message says
    /// where (line, column) and which key.
    #[error("config file {}: {message}", .path.display())]
    Parse { path: PathBuf, message: String },
    #[error("config file {}: {key}: {problem}", .path.display())]
    Invalid {
        path: PathBuf,
        key: String,
        problem: String,
    },
}

/// Read and validate the configuration at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    from_str(&text, path)
}

/// Parse and validate configuration text as if read from `origin` (which decides how relative
/// paths resolve and what errors call the file). Pure: touches no file.
pub(crate) fn from_str(text: &str, origin: &Path) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: origin.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let invalid = |key: &str, problem: String| ConfigError::Invalid {
        path: origin.to_path_buf(),
        key: key.to_string(),
        problem,
    };
    let base = origin.parent().unwrap_or(Path::new(""));
    let resolve = |p: &Path| base.join(p);

    let desk = DeskConfig {
        name: raw
            .desk
            .name
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty()),
        staff_domains: normalize_list(&raw.desk.staff_domains, "desk.staff_domains", domain)
            .map_err(|(k, p)| invalid(&k, p))?,
        staff_addresses: normalize_list(&raw.desk.staff_addresses, "desk.staff_addresses", address)
            .map_err(|(k, p)| invalid(&k, p))?,
        trusted_authserv_ids: normalize_list(
            &raw.desk.trusted_authserv_ids,
            "desk.trusted_authserv_ids",
            authserv_id,
        )
        .map_err(|(k, p)| invalid(&k, p))?,
    };

    let span = |key: &str, text: &str| -> Result<Duration, ConfigError> {
        match parse_span(text) {
            Some(d) if d.is_positive() => Ok(d),
            _ => Err(invalid(
                key,
                format!(
                    "{text:?} is not a span; write a whole number with s, m, h or d, like \"4h\" or \"30d\""
                ),
            )),
        }
    };
    let positive = |key: &str, n: u64| {
        if n == 0 {
            Err(invalid(key, "must be at least 1".into()))
        } else {
            Ok(n)
        }
    };
    let positive_usize = |key: &str, n: u64| {
        usize::try_from(positive(key, n)?)
            .map_err(|_| invalid(key, format!("{n} is too large for this machine")))
    };
    let clock = ClockConfig {
        tick_seconds: positive("clock.tick_seconds", raw.clock.tick_seconds)?,
        thread_window: span("clock.thread_window", &raw.clock.thread_window)?,
    };

    let l = &raw.limits;
    let limits = Limits {
        text_bytes: positive_usize("limits.text_bytes", l.text_bytes)?,
        classify_bytes: positive_usize("limits.classify_bytes", l.classify_bytes)?,
        parts: positive_usize("limits.parts", l.parts)?,
        depth: positive_usize("limits.depth", l.depth)?,
        header_bytes: positive_usize("limits.header_bytes", l.header_bytes)?,
        attachment_bytes: positive_usize("limits.attachment_bytes", l.attachment_bytes)?,
        references: positive_usize("limits.references", l.references)?,
    };

    let mut maildir = Vec::with_capacity(raw.maildir.len());
    for (i, m) in raw.maildir.into_iter().enumerate() {
        let folders = match m.folders {
            None => None,
            Some(list) => {
                let mut out = Vec::with_capacity(list.len());
                for (j, f) in list.into_iter().enumerate() {
                    let role = FolderRole::parse(&f.role).ok_or_else(|| {
                        invalid(
                            &format!("maildir[{i}].folders[{j}].role"),
                            format!(
                                "{:?} is not a folder role; use \"inbox\", \"junk\" or \"sent\"",
                                f.role
                            ),
                        )
                    })?;
                    if f.name.trim().is_empty() {
                        return Err(invalid(
                            &format!("maildir[{i}].folders[{j}].name"),
                            "is empty; use \"INBOX\" for the Maildir root or a sub-folder like \".Junk\"".into(),
                        ));
                    }
                    out.push(FolderConfig { name: f.name, role });
                }
                Some(out)
            }
        };
        maildir.push(MaildirConfig {
            path: resolve(&m.path),
            poll_seconds: positive(&format!("maildir[{i}].poll_seconds"), m.poll_seconds)?,
            folders,
        });
    }

    let mut mailbox = Vec::with_capacity(raw.mailbox.len());
    for (i, m) in raw.mailbox.into_iter().enumerate() {
        let m = mailbox::validate(i, m, resolve).map_err(|(k, p)| invalid(&k, p))?;
        if mailbox.iter().any(|o: &MailboxConfig| o.name == m.name) {
            return Err(invalid(
                &format!("mailbox[{i}].name"),
                format!(
                    "{:?} names two mailboxes; give each a distinct name",
                    m.name
                ),
            ));
        }
        mailbox.push(m);
    }

    let mut notes = Vec::new();
    let old_warn_before = match &raw.clock.warn_before {
        Some(t) => {
            notes.push(format!(
                "{}: [clock] warn_before is deprecated; write it as [alerts] warn_before = [\"{t}\"]{}",
                origin.display(),
                if raw.alerts.has_warn_before() {
                    " (ignored: [alerts] warn_before is set)"
                } else {
                    ""
                }
            ));
            Some(span("clock.warn_before", t)?)
        }
        None => None,
    };
    let alerts = outbound::alerts(raw.alerts, old_warn_before).map_err(|(k, p)| invalid(&k, p))?;
    let receipts = outbound::receipts(raw.receipts).map_err(|(k, p)| invalid(&k, p))?;
    let smtp = match raw.smtp {
        Some(s) => {
            Some(outbound::smtp("smtp", s, None, &resolve).map_err(|(k, p)| invalid(&k, p))?)
        }
        None => None,
    };
    let from = smtp.as_ref().map(|s| s.from.clone());
    let mut canary = Vec::with_capacity(raw.canary.len());
    for (i, c) in raw.canary.into_iter().enumerate() {
        canary.push(
            outbound::canary(i, c, from.as_deref(), &resolve).map_err(|(k, p)| invalid(&k, p))?,
        );
    }

    let web = match raw.web {
        Some(w) => Some(web::web(w, resolve).map_err(|(k, p)| invalid(&k, p))?),
        None => None,
    };

    let revocation =
        revocation::revocation(raw.revocation, resolve).map_err(|(k, p)| invalid(&k, p))?;
    let enrich = revocation::enrich(raw.enrich).map_err(|(k, p)| invalid(&k, p))?;

    Ok(Config {
        desk,
        store: store::store(raw.store, resolve).map_err(|(k, p)| invalid(&k, p))?,
        rules: RulesConfig {
            dir: raw.rules.dir.as_deref().map(resolve),
        },
        clock,
        limits,
        maildir,
        mailbox,
        smtp,
        alerts,
        receipts,
        canary,
        audit: AuditConfig {
            signing_key_file: raw.audit.signing_key_file.as_deref().map(resolve),
            public_key_file: raw.audit.public_key_file.as_deref().map(resolve),
        },
        web,
        revocation,
        enrich,
        notes,
        path: origin.to_path_buf(),
    })
}

/// Trim, lowercase, check and de-duplicate a list; an error names the offending entry's key.
fn normalize_list(
    items: &[String],
    key: &str,
    check: fn(&str) -> Result<String, String>,
) -> Result<Vec<String>, (String, String)> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let v = check(&item.trim().to_lowercase())
            .map_err(|p| (format!("{key}[{i}]"), format!("{item:?} {p}")))?;
        if !out.contains(&v) {
            out.push(v);
        }
    }
    Ok(out)
}

fn domain(s: &str) -> Result<String, String> {
    let s = s.strip_prefix('@').unwrap_or(s).trim_end_matches('.');
    if s.is_empty() || !s.contains('.') || s.contains(|c: char| c == '@' || c.is_whitespace()) {
        return Err("is not a domain name; write it like \"example-ca.test\"".into());
    }
    Ok(s.to_string())
}

fn address(s: &str) -> Result<String, String> {
    match s.split_once('@') {
        Some((local, dom))
            if !local.is_empty() && domain(dom).is_ok() && !s.contains(char::is_whitespace) =>
        {
            Ok(s.to_string())
        }
        _ => Err("is not a bare mail address; write it like \"cpr@example-ca.test\"".into()),
    }
}

fn authserv_id(s: &str) -> Result<String, String> {
    if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == ';') {
        return Err("is not an authserv-id; copy the first token of your MX's Authentication-Results header".into());
    }
    Ok(s.to_string())
}

// The file's shape. Kept apart from the public types so defaults, spans and paths are resolved
// once, in `from_str`, and the rest of the program never sees unvalidated values.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    desk: RawDesk,
    #[serde(default)]
    store: store::RawStore,
    #[serde(default)]
    rules: RawRules,
    #[serde(default)]
    clock: RawClock,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    maildir: Vec<RawMaildir>,
    #[serde(default)]
    mailbox: Vec<mailbox::RawMailbox>,
    smtp: Option<outbound::RawSmtp>,
    #[serde(default)]
    alerts: outbound::RawAlerts,
    #[serde(default)]
    receipts: outbound::RawReceipts,
    #[serde(default)]
    canary: Vec<outbound::RawCanary>,
    #[serde(default)]
    audit: RawAudit,
    web: Option<web::RawWeb>,
    revocation: Option<revocation::RawRevocation>,
    enrich: Option<revocation::RawEnrich>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    signing_key_file: Option<PathBuf>,
    public_key_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDesk {
    name: Option<String>,
    staff_domains: Vec<String>,
    #[serde(default)]
    staff_addresses: Vec<String>,
    #[serde(default)]
    trusted_authserv_ids: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRules {
    dir: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawClock {
    tick_seconds: u64,
    /// Deprecated: `[alerts] warn_before`.
    warn_before: Option<String>,
    thread_window: String,
}

impl Default for RawClock {
    fn default() -> Self {
        RawClock {
            tick_seconds: 60,
            warn_before: None,
            thread_window: "30d".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    text_bytes: u64,
    classify_bytes: u64,
    parts: u64,
    depth: u64,
    header_bytes: u64,
    attachment_bytes: u64,
    references: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        let d = Limits::default();
        RawLimits {
            text_bytes: d.text_bytes as u64,
            classify_bytes: d.classify_bytes as u64,
            parts: d.parts as u64,
            depth: d.depth as u64,
            header_bytes: d.header_bytes as u64,
            attachment_bytes: d.attachment_bytes as u64,
            references: d.references as u64,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMaildir {
    path: PathBuf,
    #[serde(default = "default_poll_seconds")]
    poll_seconds: u64,
    folders: Option<Vec<RawFolder>>,
}

fn default_poll_seconds() -> u64 {
    5
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFolder {
    name: String,
    role: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "/etc/cprwatch/cprwatch.toml";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        from_str(text, Path::new(ORIGIN))
    }

    #[test]
    fn minimal_config_takes_every_default() {
        let c = parse("[desk]\nstaff_domains = [\"Example-CA.test\"]\n").unwrap();
        assert_eq!(c.desk.staff_domains, ["example-ca.test"]);
        assert!(c.desk.trusted_authserv_ids.is_empty());
        assert_eq!(c.desk.name, None);
        assert_eq!(c.store.path, Path::new("/etc/cprwatch/cprwatch.sqlite"));
        assert_eq!(c.rules.dir, None);
        assert_eq!(c.clock, ClockConfig::default());
        assert_eq!(c.limits, Limits::default());
        assert!(c.maildir.is_empty());
        assert_eq!(c.path, Path::new(ORIGIN));
    }

    #[test]
    fn full_config_resolves_paths_and_spans() {
        let c = parse(
            r#"
            [desk]
            name = "Example CA"
            staff_domains = ["@example-ca.test", "EXAMPLE-CA.test"]
            staff_addresses = ["CPR@Example-CA.test"]
            trusted_authserv_ids = ["MX.example-ca.test"]
            [store]
            path = "/var/lib/cprwatch/log.sqlite"
            [rules]
            dir = "rules"
            [clock]
            tick_seconds = 30
            warn_before = "90m"
            thread_window = "14d"
            [[maildir]]
            path = "mail"
            [[maildir]]
            path = "/srv/other"
            poll_seconds = 10
            folders = [{ name = "INBOX", role = "inbox" }, { name = ".Spam", role = "spam" }, { name = ".Sent", role = "Sent" }]
            "#,
        )
        .unwrap();
        assert_eq!(c.desk.name.as_deref(), Some("Example CA"));
        assert_eq!(c.desk.staff_domains, ["example-ca.test"]);
        assert_eq!(c.desk.staff_addresses, ["cpr@example-ca.test"]);
        assert_eq!(c.desk.trusted_authserv_ids, ["mx.example-ca.test"]);
        assert_eq!(c.store.path, Path::new("/var/lib/cprwatch/log.sqlite"));
        assert_eq!(
            c.rules.dir.as_deref(),
            Some(Path::new("/etc/cprwatch/rules"))
        );
        assert_eq!(c.clock.tick_seconds, 30);
        assert_eq!(c.alerts.policy.warn_before, [Duration::minutes(90)]);
        assert_eq!(c.notes.len(), 1, "{:?}", c.notes);
        assert_eq!(c.clock.thread_window, Duration::days(14));
        assert_eq!(c.maildir[0].path, Path::new("/etc/cprwatch/mail"));
        assert_eq!(c.maildir[0].poll_seconds, 5);
        assert_eq!(c.maildir[0].folders, None);
        let roles: Vec<_> = c.maildir[1]
            .folders
            .as_ref()
            .unwrap()
            .iter()
            .map(|f| f.role)
            .collect();
        assert_eq!(
            roles,
            [FolderRole::Inbox, FolderRole::Junk, FolderRole::Sent]
        );
    }

    #[test]
    fn audit_key_files_resolve_against_the_config_file() {
        let c =
            parse("[desk]\nstaff_domains = []\n[audit]\nsigning_key_file = \"keys/sign.pem\"\n")
                .unwrap();
        assert_eq!(
            c.audit.signing_key_file.as_deref(),
            Some(Path::new("/etc/cprwatch/keys/sign.pem"))
        );
        assert_eq!(c.audit.public_key_file, None);
        assert_eq!(
            parse("[desk]\nstaff_domains = []\n").unwrap().audit,
            AuditConfig::default()
        );
    }

    #[test]
    fn unknown_keys_are_errors_naming_key_file_and_line() {
        for (text, key) in [
            (
                "[desk]\nstaff_domains = []\nstaf_addresses = []\n",
                "staf_addresses",
            ),
            (
                "[desk]\nstaff_domains = []\n[clock]\nwarn = \"1h\"\n",
                "warn",
            ),
            ("[desk]\nstaff_domains = []\n[stores]\n", "stores"),
            (
                "[desk]\nstaff_domains = []\n[limits]\ntext_byte = 5\n",
                "text_byte",
            ),
            (
                "[desk]\nstaff_domains = []\n[[maildir]]\npath = \"m\"\nfolders = [{ name = \"x\", role = \"inbox\", watch = true }]\n",
                "watch",
            ),
            (
                "[desk]\nstaff_domains = []\n[audit]\nsigning_key = \"k.pem\"\n",
                "signing_key",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(
                e.contains(key) && e.contains(ORIGIN) && e.contains("line"),
                "{e}"
            );
        }
    }

    #[test]
    fn bad_values_name_their_key() {
        for (text, key) in [
            (
                "[desk]\nstaff_domains = []\n[clock]\nwarn_before = \"4 hours\"\n",
                "clock.warn_before",
            ),
            (
                "[desk]\nstaff_domains = []\n[clock]\nthread_window = \"0d\"\n",
                "clock.thread_window",
            ),
            (
                "[desk]\nstaff_domains = []\n[clock]\ntick_seconds = 0\n",
                "clock.tick_seconds",
            ),
            (
                "[desk]\nstaff_domains = [\"ok.test\", \"not a domain\"]\n",
                "desk.staff_domains[1]",
            ),
            (
                "[desk]\nstaff_domains = []\nstaff_addresses = [\"nobody\"]\n",
                "desk.staff_addresses[0]",
            ),
            (
                "[desk]\nstaff_domains = []\n[[maildir]]\npath = \"m\"\nfolders = [{ name = \"x\", role = \"outbox\" }]\n",
                "maildir[0].folders[0].role",
            ),
            (
                "[desk]\nstaff_domains = []\n[[maildir]]\npath = \"m\"\npoll_seconds = 0\n",
                "maildir[0].poll_seconds",
            ),
            (
                "[desk]\nstaff_domains = []\n[limits]\nparts = 0\n",
                "limits.parts",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(
                matches!(&e, ConfigError::Invalid { key: k, .. } if k == key),
                "{key}: {e}"
            );
            assert!(e.to_string().contains(ORIGIN));
        }
    }

    #[test]
    fn limits_are_read_each_key_its_own() {
        let c = parse(
            "[desk]\nstaff_domains = []\n[limits]\ntext_bytes = 1\nclassify_bytes = 7\nparts = 2\ndepth = 3\nheader_bytes = 4\nattachment_bytes = 5\nreferences = 6\n",
        )
        .unwrap();
        assert_eq!(
            c.limits,
            Limits {
                text_bytes: 1,
                classify_bytes: 7,
                parts: 2,
                depth: 3,
                header_bytes: 4,
                attachment_bytes: 5,
                references: 6,
            }
        );
    }

    #[test]
    fn desk_is_required_and_missing_file_is_explained() {
        let e = parse("[store]\npath = \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("desk"), "{e}");
        let e = load(Path::new("/nonexistent/cprwatch.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/nonexistent/cprwatch.toml") && e.contains("--config"),
            "{e}"
        );
    }

    #[test]
    fn example_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
        let c = load(&path).unwrap();
        assert_eq!(
            c.store.path,
            Path::new(env!("CARGO_MANIFEST_DIR")).join("cprwatch.sqlite")
        );
        assert_eq!(
            c.maildir[0].path,
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/maildir")
        );
        assert_eq!(c.rules.dir, None);
    }
}
