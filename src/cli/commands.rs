//! The command-line commands, as library functions: `main.rs` only parses arguments and calls
//! these. Each returns what to print and the exit code, so tests can drive them directly.

use std::path::{Path, PathBuf};

use serde::Serialize;
use thiserror::Error;

use crate::cli::{lookup, view};
use crate::config::{self, Config, ConfigError};
use crate::desk::{self, Desk, DeskError};
use crate::domain::model::{FolderRole, Timestamp};
use crate::domain::timefmt;
use crate::escape::text as esc;
use crate::pipeline;

/// Messages per committed batch when ingesting files: big enough to amortise the projection,
/// small enough to keep memory flat.
pub const INGEST_BATCH: usize = 2000;

#[derive(Debug, Error)]
pub enum CommandError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Desk(#[from] DeskError),
    #[error("{0}")]
    Usage(String),
}

/// Output format for commands that print data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// What a command printed and how it exits.
#[derive(Debug)]
pub struct Outcome {
    pub stdout: String,
    /// Notes for the person at the terminal that are not the command's data (an empty
    /// folder, skipped files): kept out of stdout so the data stays clean to pipe.
    pub stderr: String,
    pub code: i32,
}

impl Outcome {
    fn ok(stdout: String) -> Outcome {
        Outcome::exit(stdout, 0)
    }

    pub(crate) fn exit(stdout: String, code: i32) -> Outcome {
        Outcome {
            stdout,
            stderr: String::new(),
            code,
        }
    }
}

/// Pretty JSON for output. `serde_json` escapes quotes and C0 controls; [`crate::escape::json_text`]
/// also writes DEL, C1 and bidirectional controls as `\uXXXX`, so a reporter's string decodes
/// exactly as received while the bytes printed hold nothing a terminal acts on.
pub(crate) fn json<T: Serialize>(v: &T) -> String {
    let s = serde_json::to_string_pretty(v).unwrap_or_default();
    let mut s = crate::escape::json_text(&s).into_owned();
    s.push('\n');
    s
}

/// Parse `--at`: RFC 3339, or `now`.
pub(crate) fn parse_at(s: Option<&str>) -> Result<Timestamp, CommandError> {
    match s {
        None | Some("now") => Ok(timefmt::now()),
        Some(s) => timefmt::parse(s).map_err(|e| {
            CommandError::Usage(format!(
                "--at {s:?} is not an RFC 3339 time ({e}); write it like 2026-03-01T09:30:00Z"
            ))
        }),
    }
}

/// `cprwatch ingest`: add messages to the store. Without paths, the configured Maildirs.
pub fn ingest(
    config_path: &Path,
    role: FolderRole,
    paths: &[PathBuf],
    format: Format,
) -> Result<Outcome, CommandError> {
    let config = config::load(config_path)?;
    let mut desk = Desk::open(&config)?;
    let targets: Vec<(PathBuf, FolderRole)> = if paths.is_empty() {
        config
            .maildir
            .iter()
            .map(|m| (m.path.clone(), FolderRole::Inbox))
            .collect()
    } else {
        paths.iter().map(|p| (p.clone(), role)).collect()
    };
    if targets.is_empty() {
        return Err(CommandError::Usage(
            "nothing to ingest: give PATHs, or configure [[maildir]] sources".into(),
        ));
    }
    let summary = pipeline::ingest_paths(&mut desk, &targets, INGEST_BATCH, timefmt::now)?;
    let out = match format {
        Format::Json => json(&serde_json::json!({
            "read": summary.read,
            "new_messages": summary.new_messages,
            "bytes": summary.bytes,
            "events": summary.events,
            "unreadable": summary.unreadable,
            "notes": summary.notes,
        })),
        Format::Text => {
            let mut s = format!(
                "read {} messages ({} bytes): {} new, {} events appended to {}\n",
                summary.read,
                summary.bytes,
                summary.new_messages,
                summary.events,
                esc(&config.store.describe())
            );
            for u in &summary.unreadable {
                s.push_str(&format!("unreadable: {}\n", esc(u)));
            }
            s
        }
    };
    let notes: String = summary
        .notes
        .iter()
        .map(|n| format!("note: {}\n", esc(n)))
        .collect();
    Ok(Outcome {
        stdout: out,
        stderr: notes,
        code: if summary.unreadable.is_empty() { 0 } else { 2 },
    })
}

/// `cprwatch status`: running clocks, soonest deadline first. Reads the open clocks from the
/// store's tables: its cost is what it shows, not the history.
pub fn status(
    config_path: &Path,
    at: Option<&str>,
    format: Format,
) -> Result<Outcome, CommandError> {
    let (config, at, store, notes) = tables_at(config_path, at)?;
    let parts = StatusParts::read(&config, store.as_ref(), at)?;
    let problems = parts.problems(at);
    let mut out = Outcome::exit(
        match format {
            Format::Json => json(&parts.json(at)),
            Format::Text => {
                view::status_text(&parts.p, at)
                    + &view::sources_text(&parts.sources, at)
                    + &view::outbox_text(&parts.outbox, at)
                    + &view::canaries_text(&parts.canaries)
                    + &view::leader_text(parts.leader.as_ref())
            }
        },
        // A watcher that is not looking, or mail that is not going out, is itself a problem
        // worth a non-zero exit.
        if problems > 0 { 3 } else { 0 },
    );
    out.stderr = notes_text(&notes);
    Ok(out)
}

/// What `status` shows, read from the store at `at`: the open cases with their clocks, the
/// watched folders' health, the outbox and the canaries. The command and the web dashboard
/// (`/`, `/api/status`) both build on it.
pub(crate) struct StatusParts {
    pub p: crate::deciding::cases::Projection,
    pub sources: Vec<view::SourceJson>,
    pub outbox: view::OutboxJson,
    pub canaries: Vec<view::CanaryJson>,
    /// With a PostgreSQL store: who leads.
    pub leader: Option<view::LeaderJson>,
}

impl StatusParts {
    pub(crate) fn read(
        config: &Config,
        store: &dyn crate::store::Tables,
        at: Timestamp,
    ) -> Result<StatusParts, CommandError> {
        let mut parts = StatusParts::health(config, store, at)?;
        parts.p = lookup::open_cases(store, at)?;
        Ok(parts)
    }

    /// Everything but the open cases (`p` left empty): the folders, the outbox, the canaries.
    pub(crate) fn health(
        config: &Config,
        store: &dyn crate::store::Tables,
        at: Timestamp,
    ) -> Result<StatusParts, CommandError> {
        let p = crate::deciding::cases::Projection::default();
        let sources = sources(config, store, at)?;
        // Failed deliveries of the last week are listed; the outbox is current state, not
        // versioned, so `--at` shows it as it is now.
        let outbox = view::OutboxJson::of(
            &store
                .outbox_summary(at - time::Duration::days(7))
                .map_err(DeskError::from)?,
        );
        let canaries = canaries(config, store, at)?;
        let leader = match &config.store.postgres {
            Some(pg) => Some(view::LeaderJson::of(
                pg.instance.as_str(),
                store.leader().map_err(DeskError::from)?.as_ref(),
            )),
            None => None,
        };
        Ok(StatusParts {
            p,
            sources,
            outbox,
            canaries,
            leader,
        })
    }

    /// Folders failing or stale, mail not going out, canaries missing: each a reason for
    /// `status` to exit 3.
    pub(crate) fn problems(&self, at: Timestamp) -> usize {
        self.sources
            .iter()
            .filter(|s| s.stale || s.state.last_error.is_some())
            .count()
            + self.outbox.problems(at)
            + self.canaries.iter().filter(|c| c.is_problem()).count()
            + usize::from(self.leader.as_ref().is_some_and(|l| !l.live))
    }

    /// The `status --format json` document.
    pub(crate) fn json(&self, at: Timestamp) -> view::StatusJson<'_> {
        let r = view::report(&self.p, at, true);
        view::StatusJson {
            at: r.at,
            cases: r.cases,
            sources: &self.sources,
            outbox: &self.outbox,
            canaries: &self.canaries,
            leader: self.leader.as_ref(),
        }
    }
}

/// The `case --format json` document: the case in the replay contract's shape, with every
/// event that concerns it (and its seq).
pub(crate) fn case_document(
    p: &crate::deciding::cases::Projection,
    case: &crate::deciding::cases::Case,
    at: Timestamp,
    events: &[(u64, crate::domain::event::Envelope)],
) -> serde_json::Value {
    let mut v = serde_json::to_value(view::case_json(p, case, at)).unwrap_or_default();
    let evs: Vec<serde_json::Value> = events
        .iter()
        .map(|(seq, e)| {
            let mut ev = serde_json::to_value(e).unwrap_or_default();
            if let Some(o) = ev.as_object_mut() {
                o.insert("seq".into(), (*seq).into());
            }
            ev
        })
        .collect();
    if let Some(o) = v.as_object_mut() {
        o.insert("events".into(), evs.into());
    }
    v
}

/// Every configured canary with its latest sending and arrival (current state: `--at` does
/// not rewind it).
fn canaries(
    config: &Config,
    store: &dyn crate::store::Tables,
    at: Timestamp,
) -> Result<Vec<view::CanaryJson>, CommandError> {
    let latest = store.canaries_latest().map_err(DeskError::from)?;
    let mut out = Vec::new();
    for c in &config.canary {
        let row = latest.iter().find(|r| r.to.eq_ignore_ascii_case(&c.to));
        let arrival = store.canary_last_arrival(&c.to).map_err(DeskError::from)?;
        let state = match row {
            None => "never_sent".to_string(),
            Some(r) => match r.alerted.as_deref() {
                Some("arrived") => "arrived".into(),
                Some(problem) => problem.to_string(),
                None if r.arrived_at.is_some() => "arrived".into(),
                None if r.send_error.is_some() => "bounced".into(),
                None if r.due_by <= at => "missing".into(),
                None => "waiting".into(),
            },
        };
        out.push(view::CanaryJson {
            to: c.to.clone(),
            last_sent_at: row.map(|r| timefmt::format(r.sent_at)),
            last_canary: row.map(|r| r.id.clone()),
            state,
            last_arrived_at: arrival.as_ref().map(|(t, _)| timefmt::format(*t)),
            last_arrival_folder: arrival.map(|(_, f)| f),
        });
    }
    Ok(out)
}

type TablesAt = (
    Config,
    Timestamp,
    Box<dyn crate::store::Tables>,
    Vec<String>,
);

/// What `status`, `case` and `search` start from: the configuration, the moment asked for,
/// and the store with its tables ready to read (with notes for stderr if they had to be
/// rebuilt, or lag the log).
pub(crate) fn tables_at(config_path: &Path, at: Option<&str>) -> Result<TablesAt, CommandError> {
    let config = config::load(config_path)?;
    let at = parse_at(at)?;
    let mut notes = Vec::new();
    let store = lookup::open(&config, &mut notes)?;
    Ok((config, at, store, notes))
}

pub(crate) fn notes_text(notes: &[String]) -> String {
    notes
        .iter()
        .map(|n| format!("note: {}\n", esc(n)))
        .collect()
}

/// Every configured IMAP folder with its recorded health; a folder with no completed sync
/// within its mailbox's `stale_after` (or none ever) is stale.
fn sources(
    config: &Config,
    store: &dyn crate::store::Store,
    at: Timestamp,
) -> Result<Vec<view::SourceJson>, CommandError> {
    let states = store.folder_states().map_err(DeskError::from)?;
    let mut out = Vec::new();
    for m in &config.mailbox {
        for f in &m.folders {
            let mut state = states
                .iter()
                .find(|s| s.mailbox == m.name && s.folder == f.name)
                .cloned()
                .unwrap_or_default();
            state.mailbox.clone_from(&m.name);
            state.folder.clone_from(&f.name);
            state.role = f.role.as_str().to_string();
            let last = state
                .last_sync_at
                .as_deref()
                .and_then(|t| timefmt::parse(t).ok());
            state.last_sync_at = last.map(timefmt::format);
            out.push(view::SourceJson {
                state,
                stale: last.is_none_or(|t| at - t > m.stale_after),
            });
        }
    }
    Ok(out)
}

/// `cprwatch case ID`: one case in full, from the store's tables and the events that name it.
pub fn case(
    config_path: &Path,
    id: &str,
    at: Option<&str>,
    format: Format,
) -> Result<Outcome, CommandError> {
    let (_, at, store, notes) = tables_at(config_path, at)?;
    let wanted = id.trim().to_ascii_uppercase();
    let Some((p, events)) = lookup::case(store.as_ref(), &wanted, at)? else {
        return Err(CommandError::Usage(format!(
            "no case {} at {}; `cprwatch status` lists open cases, `cprwatch search` finds one \
             by certificate, key, Message-Id or address",
            esc(&wanted),
            timefmt::format(at)
        )));
    };
    let case = &p.cases[0];
    let related: Vec<(u64, &crate::domain::event::Envelope)> =
        events.iter().map(|(s, e)| (*s, e)).collect();
    let mut out = Outcome::ok(match format {
        Format::Json => json(&case_document(&p, case, at, &events)),
        Format::Text => view::case_text(&p, case, at, &related),
    });
    out.stderr = notes_text(&notes);
    Ok(out)
}

/// `cprwatch search TERM`: the cases a crt.sh id, SHA-256, `spki:` hash, Message-Id, address
/// or case id names — "did you get my mail of 13 August?" answered with one lookup.
pub fn search(
    config_path: &Path,
    term: &str,
    at: Option<&str>,
    format: Format,
) -> Result<Outcome, CommandError> {
    let (_, at, store, notes) = tables_at(config_path, at)?;
    let p = lookup::search(store.as_ref(), term, at)?;
    let found = !p.cases.is_empty();
    let mut out = Outcome::exit(
        match format {
            Format::Json => json(&view::report(&p, at, false)),
            Format::Text => view::search_text(&p, term, at),
        },
        if found { 0 } else { 1 },
    );
    out.stderr = notes_text(&notes);
    Ok(out)
}

/// `cprwatch rebuild`: derive the cases and clocks tables afresh from the log.
pub fn rebuild(config_path: &Path, reindex: desk::Reindex) -> Result<Outcome, CommandError> {
    let config = config::load(config_path)?;
    let mut store = desk::open_store(&config)?;
    let settings = desk::settings(&config);
    let s = desk::rebuild_tables(store.as_mut(), &settings, reindex)?;
    let indexed = if s.reindexed {
        "indexed the log again and "
    } else {
        ""
    };
    Ok(Outcome::ok(format!(
        "{indexed}rebuilt cases and clocks from {} events ({} messages): {} versions written\n",
        s.events, s.messages, s.versions
    )))
}

/// `cprwatch replay`: stateless — every case as it was at `at`, from the given folders.
pub fn replay(
    config_path: &Path,
    inbox: &[PathBuf],
    sent: &[PathBuf],
    junk: &[PathBuf],
    at: &str,
    format: Format,
) -> Result<Outcome, CommandError> {
    let config = config::load(config_path)?;
    let at = parse_at(Some(at))?;
    let mut desk = Desk::in_memory(&config)?;
    let mut paths: Vec<(PathBuf, FolderRole)> = Vec::new();
    paths.extend(inbox.iter().map(|p| (p.clone(), FolderRole::Inbox)));
    paths.extend(junk.iter().map(|p| (p.clone(), FolderRole::Junk)));
    paths.extend(sent.iter().map(|p| (p.clone(), FolderRole::Sent)));
    // Read everything, then project as of `at`: messages received later do not exist yet.
    // The projection does not depend on ingest order, so batching changes nothing.
    let summary = pipeline::ingest_paths(&mut desk, &paths, INGEST_BATCH, timefmt::now)?;
    let p = desk.projection_at(at);
    let mut out = match format {
        Format::Json => json(&view::report(&p, at, false)),
        Format::Text => {
            let mut s = String::new();
            for c in &p.cases {
                let evs = Vec::new();
                s.push_str(&view::case_text(&p, c, at, &evs));
                s.push('\n');
            }
            s
        }
    };
    if format == Format::Text {
        for u in &summary.unreadable {
            out.push_str(&format!("unreadable: {}\n", esc(u)));
        }
    }
    Ok(Outcome::exit(
        out,
        if summary.unreadable.is_empty() { 0 } else { 2 },
    ))
}

/// `cprwatch verify`: walk the hash chain; exit 1 naming the first bad event. With a public
/// key (`public_keys`, `[audit] public_key_file`, or derived from `[audit] signing_key_file`),
/// also judge every signed checkpoint, stored and in `checkpoint_files` (saved digest mails),
/// and exit 1 when the log does not match them.
pub fn verify(
    config_path: &Path,
    public_keys: &[PathBuf],
    checkpoint_files: &[PathBuf],
) -> Result<Outcome, CommandError> {
    let config = config::load(config_path)?;
    let keys = verify_keys(&config, public_keys)?;
    let mut extra = Vec::new();
    for f in checkpoint_files {
        let text = std::fs::read(f).map_err(|e| {
            CommandError::Usage(format!(
                "cannot read --checkpoints {}: {e} — pass a saved checkpoint digest mail",
                f.display()
            ))
        })?;
        // A saved mail is read through its text part (long lines are encoded in transit);
        // a plain file of lines as it is.
        let mut found = crate::evidence::parse_lines(&String::from_utf8_lossy(&text));
        if let Some(body) = mail_parser::MessageParser::default()
            .parse(text.as_slice())
            .and_then(|m| m.body_text(0).map(|b| b.into_owned()))
        {
            found.extend(crate::evidence::parse_lines(&body));
        }
        if found.is_empty() {
            return Err(CommandError::Usage(format!(
                "--checkpoints {} holds no `cprwatch-checkpoint v1` line — pass a saved \
                 checkpoint digest mail",
                f.display()
            )));
        }
        extra.extend(found);
    }
    let mut store = desk::open_store(&config)?;
    let r = desk::verify_with_evidence(store.as_ref(), &keys, extra)?;
    if let Some(p) = r.problem {
        return Ok(Outcome::exit(format!("FAILED: {}\n", esc(&p)), 1));
    }
    let mut head = format!(
        "ok: {} events, {} messages; hash chain intact; head {}\n",
        r.events, r.messages, r.head
    );
    match &r.evidence {
        None => head.push_str(&format!(
            "checkpoints: {} not checked — no public key: set [audit] public_key_file or \
             signing_key_file, or pass --public-key FILE\n",
            r.checkpoints
        )),
        Some(j) if !j.findings.is_empty() => {
            let expected: Vec<String> = keys.iter().map(crate::evidence::key_id).collect();
            let found: String = j
                .findings
                .iter()
                .map(|f| format!("  {}\n", esc(&crate::evidence::describe(f, &expected))))
                .collect();
            return Ok(Outcome::exit(
                format!(
                    "FAILED: the log does not match its signed checkpoints ({} events, head {}; \
                     the hash chain alone cannot show this):\n{found}",
                    r.events, r.head
                ),
                1,
            ));
        }
        Some(j) => match &j.latest {
            None => head.push_str(&format!(
                "checkpoints: none signed yet — {} events not yet covered; `cprwatch run` signs \
                 one every hour, `cprwatch audit checkpoint` signs one now\n",
                j.uncovered
            )),
            Some(c) => {
                head.push_str(&format!(
                    "checkpoints: {} signed checkpoints hold and match the log; the last, signed \
                     at {}, covers events up to #{}\n",
                    j.signed,
                    esc(&c.at),
                    c.seq
                ));
                if j.uncovered > 0 {
                    head.push_str(&format!(
                        "checkpoints: {} events after the last signed checkpoint at {}: not yet \
                         covered (the next checkpoint covers them)\n",
                        j.uncovered,
                        esc(&c.at)
                    ));
                }
            }
        },
    }
    let settings = desk::settings(&config);
    // Tables of another format or other settings (a new cprwatch) are not damage: with the
    // log intact they are derived afresh first, as every command that reads them does.
    let mut notes = Vec::new();
    if desk::ensure_tables(store.as_mut(), &settings)? {
        notes.push(
            "the cases and clocks tables were built by another cprwatch version or with other \
             settings: rebuilt them from the log before comparing"
                .to_string(),
        );
    }
    let mut out = match desk::verify_tables(store.as_ref(), &settings)? {
        desk::TablesCheck::Match { cases, clocks } => Outcome::ok(format!(
            "{head}tables: {cases} case and {clocks} clock versions equal a re-derivation from the log\n"
        )),
        desk::TablesCheck::Behind(n) => Outcome::ok(format!(
            "{head}tables: {n} events behind the log (a tick is pending), not compared\n"
        )),
        desk::TablesCheck::Differ(d) => Outcome::exit(
            format!(
                "FAILED: the cases and clocks tables differ from a re-derivation from the log \
                 (run `cprwatch rebuild`):\n{}",
                lines(&d)
            ),
            1,
        ),
        desk::TablesCheck::IndexDiffers(d) => Outcome::exit(
            format!(
                "FAILED: the log's index (what each event names, messages in receipt order, \
                 case numbers) differs from the log, so the tables derived through it cannot \
                 be trusted either (run `cprwatch rebuild --reindex`):\n{}",
                lines(&d)
            ),
            1,
        ),
    };
    out.stderr = notes_text(&notes);
    Ok(out)
}

/// The public keys `verify` checks checkpoints with: those given, else `[audit]
/// public_key_file`, else the one of `[audit] signing_key_file`.
fn verify_keys(
    config: &Config,
    given: &[PathBuf],
) -> Result<Vec<ed25519_dalek::VerifyingKey>, CommandError> {
    use crate::evidence::{load_public_key, load_signing_key};
    let mut keys = Vec::new();
    for p in given {
        keys.push(load_public_key(p).map_err(DeskError::from)?);
    }
    if keys.is_empty() {
        if let Some(p) = &config.audit.public_key_file {
            keys.push(load_public_key(p).map_err(DeskError::from)?);
        } else if let Some(p) = &config.audit.signing_key_file {
            keys.push(
                load_signing_key(p)
                    .map_err(DeskError::from)?
                    .verifying_key(),
            );
        }
    }
    Ok(keys)
}

/// The private key `[audit] signing_key_file` names.
fn signing_key(config: &Config) -> Result<ed25519_dalek::SigningKey, CommandError> {
    let path = config.audit.signing_key_file.as_ref().ok_or_else(|| {
        CommandError::Usage(format!(
            "{}: no [audit] signing_key_file — make a key with `openssl genpkey -algorithm \
             ed25519 -out cprwatch-audit.pem && chmod 600 cprwatch-audit.pem` and name it there",
            config.path.display()
        ))
    })?;
    Ok(crate::evidence::load_signing_key(path).map_err(DeskError::from)?)
}

/// `cprwatch audit checkpoint`: sign the log's head now and keep the checkpoint in the store.
pub fn audit_checkpoint(config_path: &Path) -> Result<Outcome, CommandError> {
    let config = config::load(config_path)?;
    let key = signing_key(&config)?;
    let store = desk::open_store(&config)?;
    let c = desk::sign_checkpoint(store.as_ref(), &key, timefmt::now())?;
    Ok(Outcome::ok(format!(
        "checkpoint signed: event #{} head {} at {} by {}\n{}\n",
        c.seq,
        c.head_hash,
        c.at,
        c.key_id,
        crate::evidence::to_line(&c)
    )))
}

/// `cprwatch audit public-key`: the public key of `[audit] signing_key_file` as PEM, for
/// auditors (`verify --public-key`).
pub fn audit_public_key(config_path: &Path) -> Result<Outcome, CommandError> {
    let config = config::load(config_path)?;
    let key = signing_key(&config)?.verifying_key();
    Ok(Outcome::ok(crate::evidence::public_key_pem(&key)))
}

/// Differences, one to a line, indented and escaped: rows hold text from reports.
fn lines(d: &[String]) -> String {
    d.iter().map(|l| format!("  {}\n", esc(l))).collect()
}

/// What is sent, to whom, and when: `[smtp]`, `[alerts]`, `[receipts]`, `[[canary]]`.
/// `[web]` in `check-config`: where it listens and who may use it (never a secret).
fn describe_web(o: &mut String, config: &Config) {
    use std::fmt::Write;
    let Some(w) = &config.web else {
        let _ = writeln!(
            o,
            "web: not configured — no dashboard, API or metrics; add [web] to serve them"
        );
        return;
    };
    let _ = writeln!(
        o,
        "web: listening on {}{}, {} user(s){}, API and metrics {}",
        w.listen,
        w.public_url
            .as_deref()
            .map(|u| format!(" as {}", esc(u)))
            .unwrap_or_default(),
        w.users.len(),
        if w.users.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                esc(&w
                    .users
                    .iter()
                    .map(|u| u.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "))
            )
        },
        if w.api_token.is_some() {
            "with the bearer token"
        } else {
            "with a logged-in session"
        }
    );
    if !w.listen.ip().is_loopback() && !w.secure_cookies() {
        let _ = writeln!(
            o,
            "web: note: {} is reachable from other hosts and public_url is not https — put it behind a TLS proxy and set public_url = \"https://…\"",
            w.listen
        );
    }
}

fn describe_outbound(o: &mut String, config: &Config) {
    use std::fmt::Write;
    let span = |d: time::Duration| timefmt::format_span(d.whole_seconds());
    match &config.smtp {
        None => {
            let _ = writeln!(
                o,
                "smtp: not configured — no alert, receipt or canary is sent; add [smtp] to send them"
            );
        }
        Some(s) => {
            let _ = writeln!(
                o,
                "smtp: {}:{} ({}), from {}{}",
                esc(&s.host),
                s.port,
                match s.tls {
                    crate::source::imap::TlsMode::Implicit => "implicit TLS, verified",
                    crate::source::imap::TlsMode::StartTls => "STARTTLS, verified",
                    crate::source::imap::TlsMode::None => "no TLS, loopback only",
                },
                esc(&s.from),
                match &s.login {
                    Some((user, _)) => format!(", as {}", esc(user)),
                    None => String::new(),
                }
            );
        }
    }
    let p = &config.alerts.policy;
    let _ = writeln!(
        o,
        "alerts: warn at {} left, remind every {} while breached, 5-day advisory after {}, digest above {} per route",
        p.warn_before
            .iter()
            .map(|d| span(*d))
            .collect::<Vec<_>>()
            .join(", "),
        span(p.repeat),
        span(p.advisory_after),
        p.flood
    );
    if config.alerts.routes.is_empty() {
        let _ = writeln!(o, "  no [[alerts.route]]: alerts go to nobody");
    }
    for r in &config.alerts.routes {
        let _ = writeln!(
            o,
            "  route to {}: {}",
            esc(&r.to.join(", ")),
            r.levels
                .iter()
                .map(|l| l.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let rc = &config.receipts;
    let _ = writeln!(
        o,
        "receipts: {}",
        if rc.enabled {
            format!(
                "on, at most {} per sender per hour{}",
                rc.max_per_sender_per_hour,
                if rc.skip_junk { ", none for junk" } else { "" }
            )
        } else {
            "off".into()
        }
    );
    for c in &config.canary {
        let via = match (&c.smtp, &config.smtp) {
            (Some(own), _) => format!("through {}:{}", esc(&own.host), own.port),
            (None, Some(_)) => "through [smtp]".to_string(),
            (None, None) => "NOT SENT: no [smtp] and no smtp of its own".to_string(),
        };
        let _ = writeln!(
            o,
            "canary: to {} every {}, expected back within {}, {via}",
            esc(&c.to),
            span(c.every),
            span(c.max_delay)
        );
    }
}

/// `[revocation]` and `[enrich]` in `check-config`: whether claims count, and where cprwatch
/// will connect.
fn describe_revocation(o: &mut String, config: &Config) {
    use std::fmt::Write;
    let r = &config.revocation;
    if !r.enabled {
        let _ = writeln!(
            o,
            "revocation: checks off; a staff CPR-Revoked stops a clock on its word"
        );
        return;
    }
    let _ = writeln!(
        o,
        "revocation: OCSP and CRL checked for every open certificate clock; {}; claim grace {}; \
         timeout {}; {} issuer bundle(s){}{}",
        if r.require_verified {
            "a clock is met only when OCSP or CRL shows it revoked"
        } else {
            "a staff CPR-Revoked stops a clock on its word (require_verified = false)"
        },
        timefmt::format_span(r.claim_grace.whole_seconds()),
        timefmt::format_span(r.timeout.whole_seconds()),
        r.issuers.len(),
        if r.allow_private_addresses {
            "; private and loopback addresses allowed"
        } else {
            ""
        },
        r.ca_file
            .as_ref()
            .map(|f| format!("; extra root {}", esc(&f.display().to_string())))
            .unwrap_or_default()
    );
    let e = &config.enrich;
    if e.enabled {
        let _ = writeln!(
            o,
            "enrich: certificates named by id fetched from {} (at most {} a minute, timeout {})",
            esc(&e.base_url),
            e.requests_per_minute,
            timefmt::format_span(e.timeout.whole_seconds())
        );
    } else {
        let _ = writeln!(
            o,
            "enrich: off: a certificate named only by id is not fetched (and not checked)"
        );
    }
}

/// `cprwatch check-config`: validate the configuration and rules; print what was loaded.
pub fn check_config(config_path: &Path) -> Result<Outcome, CommandError> {
    let config = config::load(config_path)?;
    let policy = desk::policy(&config)?;
    let mut text = describe(&config, &policy);
    text.push_str(&describe_audit(&config)?);
    let mut out = Outcome::ok(text);
    out.stderr = notes_text(&config.notes);
    Ok(out)
}

/// `[audit]`, with the key read as `run` will read it: a key others can read fails here first.
fn describe_audit(config: &Config) -> Result<String, CommandError> {
    let Some(path) = &config.audit.signing_key_file else {
        return Ok(
            "audit: no signing_key_file: no checkpoints are signed (verify checks the \
                   hash chain alone)\n"
                .to_string(),
        );
    };
    let key = signing_key(config)?;
    Ok(format!(
        "audit: checkpoints signed at start, hourly and at shutdown with {} (key {}), mailed \
         daily to the routes taking digest\n",
        esc(&path.display().to_string()),
        crate::evidence::key_id(&key.verifying_key())
    ))
}

/// What was loaded, for a person. Operator-written, but printed through [`esc`] all the same:
/// a stray control character in a configuration or rule file shows instead of acting.
fn describe(config: &Config, policy: &crate::reading::facts::Policy) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "config: {}", esc(&config.path.display().to_string()));
    let _ = writeln!(
        o,
        "desk: {}",
        esc(config.desk.name.as_deref().unwrap_or("(unnamed)"))
    );
    let _ = writeln!(o, "  staff domains: {:?}", config.desk.staff_domains);
    let _ = writeln!(o, "  staff addresses: {:?}", config.desk.staff_addresses);
    let _ = writeln!(
        o,
        "  trusted authserv-ids: {:?}",
        config.desk.trusted_authserv_ids
    );
    let _ = writeln!(o, "store: {}", esc(&config.store.describe()));
    let _ = writeln!(
        o,
        "clock: tick {}s, thread window {}",
        config.clock.tick_seconds,
        timefmt::format_span(config.clock.thread_window.whole_seconds())
    );
    describe_outbound(&mut o, config);
    describe_web(&mut o, config);
    describe_revocation(&mut o, config);
    for m in &config.maildir {
        let _ = writeln!(
            o,
            "maildir: {} (poll every {}s)",
            esc(&m.path.display().to_string()),
            m.poll_seconds
        );
    }
    let source = match &config.rules.dir {
        Some(d) => d.display().to_string(),
        None => "shipped rule set".into(),
    };
    let rules = policy.rules.rules();
    let _ = writeln!(o, "rules: {} from {}", rules.len(), esc(&source));
    for r in rules {
        let _ = writeln!(
            o,
            "  {:<32} BR 4.9.1.1 item {:>2}  {:<4} {}",
            esc(&r.id),
            r.br_item,
            timefmt::format_span(r.window.whole_seconds()),
            r.crl_reason
        );
    }
    o
}
