//! The `cprwatch` command line. Parses arguments and calls the library; nothing else.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use cprwatch::cli::audit;
use cprwatch::cli::commands::{self, Format, Outcome};
use cprwatch::domain::model::FolderRole;

/// Watches a CA's certificate-problem-report mailbox and keeps the Baseline Requirements'
/// response clocks.
#[derive(Parser)]
#[command(name = "cprwatch", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

impl From<OutputFormat> for Format {
    fn from(f: OutputFormat) -> Format {
        match f {
            OutputFormat::Text => Format::Text,
            OutputFormat::Json => Format::Json,
        }
    }
}

/// How `run` writes its log on stderr.
#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    /// One line per event, `key=value` fields, reporter text quoted and escaped.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl From<LogFormat> for cprwatch::service::logging::Format {
    fn from(f: LogFormat) -> Self {
        match f {
            LogFormat::Text => cprwatch::service::logging::Format::Text,
            LogFormat::Json => cprwatch::service::logging::Format::Json,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Role {
    Inbox,
    Junk,
    Sent,
}

impl From<Role> for FolderRole {
    fn from(r: Role) -> FolderRole {
        match r {
            Role::Inbox => FolderRole::Inbox,
            Role::Junk => FolderRole::Junk,
            Role::Sent => FolderRole::Sent,
        }
    }
}

/// `audit export --format`.
#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    /// An incident-report timeline per case (CCADB style), Markdown.
    Md,
    /// One row per clock with all its times (RFC 4180).
    Csv,
    /// The events of the log that concern the cases, with their seq and hash.
    Json,
}

impl From<ExportFormat> for audit::ExportFormat {
    fn from(f: ExportFormat) -> Self {
        match f {
            ExportFormat::Md => audit::ExportFormat::Md,
            ExportFormat::Csv => audit::ExportFormat::Csv,
            ExportFormat::Json => audit::ExportFormat::Json,
        }
    }
}

/// `audit report --format`.
#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Text,
    Md,
    Json,
}

impl From<ReportFormat> for audit::ReportFormat {
    fn from(f: ReportFormat) -> Self {
        match f {
            ReportFormat::Text => audit::ReportFormat::Text,
            ReportFormat::Md => audit::ReportFormat::Md,
            ReportFormat::Json => audit::ReportFormat::Json,
        }
    }
}

/// The auditor's commands. A period is `--from` (included) to `--to` (excluded), each a date
/// (`2026-01-01`, midnight UTC) or an RFC 3339 time: a year is `--from 2026-01-01 --to
/// 2027-01-01`.
#[derive(Subcommand)]
enum AuditCmd {
    /// Every case opened in the period: a timeline per case (md), one row per clock (csv), or
    /// the log's events (json).
    Export {
        #[arg(long, env = "CPRWATCH_CONFIG")]
        config: PathBuf,
        /// First moment of the period (included): 2026-01-01 or an RFC 3339 time.
        #[arg(long)]
        from: String,
        /// End of the period (excluded): 2027-01-01 or an RFC 3339 time.
        #[arg(long)]
        to: String,
        /// Evaluate the clocks' states as at this RFC 3339 time (default: now).
        #[arg(long)]
        at: Option<String>,
        #[arg(long, value_enum, default_value = "md")]
        format: ExportFormat,
    },
    /// The SLA report of the cases opened in the period: reports, cases, certificates; per
    /// clock kind how many were met, late, breached, open, dismissed, not required, and the
    /// median, p90 and max time to stop; every late or breached clock.
    Report {
        #[arg(long, env = "CPRWATCH_CONFIG")]
        config: PathBuf,
        /// First moment of the period (included): 2026-01-01 or an RFC 3339 time.
        #[arg(long)]
        from: String,
        /// End of the period (excluded): 2027-01-01 or an RFC 3339 time.
        #[arg(long)]
        to: String,
        /// Evaluate the clocks' states as at this RFC 3339 time (default: now).
        #[arg(long)]
        at: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: ReportFormat,
    },
    /// Sign a checkpoint of the event log's head now with [audit] signing_key_file and keep
    /// it in the store (`run` signs one every hour and at shutdown; this is for cron and
    /// tests).
    Checkpoint {
        #[arg(long, env = "CPRWATCH_CONFIG")]
        config: PathBuf,
    },
    /// Print the public key of [audit] signing_key_file (PEM), for auditors' `verify
    /// --public-key`.
    PublicKey {
        #[arg(long, env = "CPRWATCH_CONFIG")]
        config: PathBuf,
    },
}

/// The store's own commands.
#[derive(Subcommand)]
enum StoreCmd {
    /// Copy a desk's whole history (the event log, its messages and positions, the IMAP
    /// checkpoints, the outbox, alert, canary and revocation-check state, the signed
    /// checkpoints) from the store of one configuration into the empty store of another —
    /// SQLite to PostgreSQL, back, or file to file — then derive the tables there and verify
    /// both sides: the same head hash, or exit 1.
    Copy {
        /// The configuration whose [store] is read.
        #[arg(long)]
        from: PathBuf,
        /// The configuration whose [store] is written: it must hold no events.
        #[arg(long)]
        to: PathBuf,
    },
}

#[derive(Subcommand)]
enum Cmd {
    /// Add messages to the store: .eml files, directories of them, Maildirs, mbox files.
    /// Without PATHs, the configured [[maildir]] sources.
    Ingest {
        #[arg(long, env = "CPRWATCH_CONFIG")]
        config: PathBuf,
        /// Role of the given paths (a Maildir's .Junk and .Sent subfolders get theirs by name).
        #[arg(long, value_enum, default_value = "inbox")]
        role: Role,
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
        paths: Vec<PathBuf>,
    },
    /// Open clocks, soonest deadline first, with the time left.
    Status {
        #[arg(long, env = "CPRWATCH_CONFIG")]
        config: PathBuf,
        /// Evaluate as at this RFC 3339 time (messages received later do not count).
        #[arg(long)]
        at: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
    },
    /// One case with its messages, certificates, keys, clocks and events.
    Case {
        #[arg(long, env = "CPRWATCH_CONFIG")]
        config: PathBuf,
        /// Case id, e.g. CPR-2026-0001.
        id: String,
        #[arg(long)]
        at: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
    },
    /// The cases a crt.sh id, SHA-256, spki: hash, Message-Id, address or case id names.
    Search {
        #[arg(long, env = "CPRWATCH_CONFIG")]
        config: PathBuf,
        /// e.g. 12345, crtsh:12345, sha256:…, spki:…, <id@example.test>, rita@example.test,
        /// CPR-2026-0001.
        term: String,
        #[arg(long)]
        at: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        format: OutputFormat,
    },
    /// Derive the cases and clocks tables afresh from the event log (after a change of rules
    /// or settings, or when `verify` finds them different).
    Rebuild {
        #[arg(long, env = "CPRWATCH_CONFIG")]
        config: PathBuf,
        /// Index the log again too (what each event names, messages in receipt order, case
        /// numbers), when `verify` finds the index differs from the log. Without it the index
        /// is made again only when this version writes it in another format.
        #[arg(long)]
        reindex: bool,
    },
    /// Stateless: the state of every case as it was at --at, from the given folders.
    Replay {
        #[arg(long, env = "CPRWATCH_CONFIG")]
        config: PathBuf,
        #[arg(long, num_args = 1.., required = true)]
        inbox: Vec<PathBuf>,
        #[arg(long, num_args = 1..)]
        sent: Vec<PathBuf>,
        #[arg(long, num_args = 1..)]
        junk: Vec<PathBuf>,
        /// RFC 3339 time, e.g. 2026-03-01T09:30:00Z.
        #[arg(long)]
        at: String,
        #[arg(long, value_enum, default_value = "json")]
        format: OutputFormat,
    },
    /// Check the hash chain and every stored message, and that the cases and clocks tables
    /// equal a re-derivation from the log; exit 1 naming the first problem.
    Verify {
        #[arg(long, env = "CPRWATCH_CONFIG")]
        config: PathBuf,
        /// Check the signed checkpoints with this public key (PEM; `cprwatch audit
        /// public-key` prints it). Repeat for a key the desk used before. Default: [audit]
        /// public_key_file, or the public half of [audit] signing_key_file.
        #[arg(long = "public-key")]
        public_key: Vec<PathBuf>,
        /// A saved checkpoint digest mail (or any file of `cprwatch-checkpoint v1` lines):
        /// checked too, a copy from outside the store.
        #[arg(long)]
        checkpoints: Vec<PathBuf>,
    },
    /// For auditors: export every case of a period or its SLA report, and the signed
    /// checkpoints of the event log.
    Audit {
        #[command(subcommand)]
        command: AuditCmd,
    },
    /// The store: copy a desk from one store to another (`store copy --from A --to B`).
    Store {
        #[command(subcommand)]
        command: StoreCmd,
    },
    /// Validate the configuration and rules, and print what was loaded.
    CheckConfig {
        #[arg(long, env = "CPRWATCH_CONFIG")]
        config: PathBuf,
    },
    /// Read a password on stdin (its first line) and print its argon2id hash, for a
    /// [[web.user]] password_hash.
    HashPassword,
    /// The service: watch the configured sources, ingest, re-evaluate clocks every minute.
    Run {
        #[arg(long, env = "CPRWATCH_CONFIG")]
        config: PathBuf,
        /// Log format on stderr: `text` lines, or `json` (one object per line).
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
    },
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            // An error may quote a path or other outside text: shown, never acted on.
            let e = format!("{e:#}");
            eprintln!("cprwatch: error: {}", cprwatch::escape::text_lines(&e));
            ExitCode::from(2)
        }
    }
}

fn real_main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let outcome: Outcome = match cli.command {
        Cmd::Ingest {
            config,
            role,
            format,
            paths,
        } => commands::ingest(&config, role.into(), &paths, format.into())?,
        Cmd::Status { config, at, format } => {
            commands::status(&config, at.as_deref(), format.into())?
        }
        Cmd::Case {
            config,
            id,
            at,
            format,
        } => commands::case(&config, &id, at.as_deref(), format.into())?,
        Cmd::Search {
            config,
            term,
            at,
            format,
        } => commands::search(&config, &term, at.as_deref(), format.into())?,
        Cmd::Rebuild { config, reindex } => commands::rebuild(
            &config,
            if reindex {
                cprwatch::desk::Reindex::Always
            } else {
                cprwatch::desk::Reindex::IfStale
            },
        )?,
        Cmd::Replay {
            config,
            inbox,
            sent,
            junk,
            at,
            format,
        } => commands::replay(&config, &inbox, &sent, &junk, &at, format.into())?,
        Cmd::Verify {
            config,
            public_key,
            checkpoints,
        } => commands::verify(&config, &public_key, &checkpoints)?,
        Cmd::Audit {
            command: AuditCmd::Checkpoint { config },
        } => commands::audit_checkpoint(&config)?,
        Cmd::Audit {
            command: AuditCmd::PublicKey { config },
        } => commands::audit_public_key(&config)?,
        Cmd::Audit {
            command:
                AuditCmd::Export {
                    config,
                    from,
                    to,
                    at,
                    format,
                },
        } => audit::export(&config, &from, &to, at.as_deref(), format.into())?,
        Cmd::Audit {
            command:
                AuditCmd::Report {
                    config,
                    from,
                    to,
                    at,
                    format,
                },
        } => audit::report(&config, &from, &to, at.as_deref(), format.into())?,
        Cmd::Store {
            command: StoreCmd::Copy { from, to },
        } => cprwatch::cli::store_copy::store_copy(&from, &to)?,
        Cmd::CheckConfig { config } => commands::check_config(&config)?,
        Cmd::HashPassword => {
            let line = read_password().context("cannot read the password from stdin")?;
            let password = line.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                anyhow::bail!(
                    "no password on stdin; type it and press Enter, or pipe it in (printf '%s\\n' \"$PW\" | cprwatch hash-password)"
                );
            }
            let hash = cprwatch::web::auth::hash_password(password).map_err(anyhow::Error::msg)?;
            println!("{hash}");
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Run { config, log_format } => {
            cprwatch::service::logging::init(log_format.into());
            let config = cprwatch::config::load(&config)?;
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(async {
                let (trigger, shutdown) = cprwatch::service::shutdown::Shutdown::new();
                tokio::spawn(async move {
                    cprwatch::service::shutdown::signal().await;
                    trigger.fire();
                });
                cprwatch::service::run(config, shutdown).await
            })?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    eprint!("{}", outcome.stderr);
    print!("{}", outcome.stdout);
    Ok(ExitCode::from(outcome.code.clamp(0, 255) as u8))
}

/// The first line of stdin; at a terminal, asked for on stderr and not echoed.
fn read_password() -> std::io::Result<String> {
    use std::io::{IsTerminal, Write};
    let mut line = String::new();
    if !std::io::stdin().is_terminal() {
        std::io::stdin().read_line(&mut line)?;
        return Ok(line);
    }
    eprint!("Password: ");
    let _ = std::io::stderr().flush();
    // SAFETY: termios is plain data, filled by tcgetattr for fd 0 before any use, and restored
    // as it was after the read.
    let saved = unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        (libc::tcgetattr(0, &mut t) == 0).then(|| {
            let mut quiet = t;
            quiet.c_lflag &= !libc::ECHO;
            libc::tcsetattr(0, libc::TCSANOW, &quiet);
            t
        })
    };
    let r = std::io::stdin().read_line(&mut line);
    if let Some(t) = saved {
        // SAFETY: restores the settings read above.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &t);
        }
    }
    eprintln!();
    r.map(|_| line)
}
