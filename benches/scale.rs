//! Scale benchmark: `cargo bench --bench scale` (env `SCALE_SIZES`, default `1000,100000,1000000`).
//!
//! Does cprwatch's cost follow what it shows, or the whole history? For each size N, in one run:
//! 1. generates (once, cached under `target/scale-corpus-<N>`) the mailbox of a CA problem-report
//!    desk that does its work (`support/scale_corpus.rs`): reports, answers, revocations,
//!    follow-ups, far more spam (dismissed), backscatter; only the last day's work is open;
//! 2. runs the release binary as a user does, each command its own process in a fresh
//!    directory, measuring its wall time and peak RSS (`wait4`'s `ru_maxrss` for that child):
//!    `ingest` of the history, `status`, `case` of a case from the middle of the history,
//!    `search` by that case's crt.sh id, `verify`, `rebuild` (and `rebuild --reindex`, which
//!    indexes the log again too), and the service (`run`): time until
//!    it logs `cprwatch running`, and its resident memory once it has ingested `SCALE_LIVE`
//!    (default 500) new messages dropped into its Maildir;
//! 3. prints one table, then the targets as ratios between the sizes of this run, each
//!    PASS or FAIL (a FAIL is a result, not a panic).
//!
//! Queries run at `--at` = the history's last message + 1 h. `status`, `case` and `search` run
//! `SCALE_REPEAT` times (default 3; the median wall, the highest peak). A command the binary does
//! not have (yet) prints `n/a`. `SCALE_KEEP=1` keeps each size's store, config and outputs. Under `cargo test --all-targets` (no `--bench`), sizes 200 and
//! 400 with 50 live messages and one repeat: a smoke run of a few seconds.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

#[path = "support/corpus.rs"]
mod corpus;
#[path = "support/procfs.rs"]
mod procfs;
#[path = "support/scale_corpus.rs"]
mod scale_corpus;

use scale_corpus::{Corpus, FOLDERS};

/// `rebuild` of 100 000 messages must be at least as fast as bulk `ingest` is before the
/// issue's work (messages/s, release build, this machine).
const REBUILD_TARGET_MSGS_PER_S: f64 = 6000.0;
/// How much slower a query may be at a larger size than at the smallest.
const QUERY_RATIO: f64 = 2.0;
/// How much more memory the service, `verify` and `rebuild` may hold at a larger size.
const RSS_RATIO: f64 = 1.5;
/// Store bytes per byte of mail.
const STORE_RATIO: f64 = 1.0;

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it.
    let benching = std::env::args().any(|a| a == "--bench");
    let sizes: Vec<usize> = match std::env::var("SCALE_SIZES") {
        Ok(s) => s
            .split(',')
            .map(|v| {
                v.trim()
                    .replace('_', "")
                    .parse()
                    .expect("SCALE_SIZES: comma-separated message counts, e.g. 1000,20000")
            })
            .collect(),
        Err(_) if benching => vec![1_000, 100_000, 1_000_000],
        Err(_) => vec![200, 400],
    };
    let live = env_num("SCALE_LIVE", if benching { 500 } else { 50 });
    let repeat = env_num("SCALE_REPEAT", if benching { 3 } else { 1 }).max(1);
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_cprwatch"));
    let target = target_dir();
    eprintln!(
        "scale: sizes {sizes:?}, {live} live messages, binary {}",
        bin.display()
    );

    let mut rows = Vec::new();
    for &n in &sizes {
        let corpus = scale_corpus::ensure(&target.join(format!("scale-corpus-{n}")), n, live);
        eprintln!(
            "scale: N={n}: {} reports, {} spam, {} cases; mid case {} (crt.sh {}); --at {}",
            corpus.reports,
            corpus.spam,
            corpus.cases,
            corpus.mid_case,
            corpus.mid_crtsh,
            rfc3339(corpus.t_end + 3_600)
        );
        let row = measure(&bin, &target, &corpus, repeat);
        eprintln!("scale: N={n} done: {row:?}");
        rows.push(row);
    }
    print_table(&rows, &bin);
    print_checks(&rows);
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The target directory this benchmark was built in (`target/release/deps/scale-…`), where the
/// corpora are cached.
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .expect("time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

/// One process's wall time and peak RSS; `None` for a command the binary lacks.
#[derive(Debug, Clone, Copy)]
struct Cost {
    wall: f64,
    peak_mib: f64,
}

/// What one child process did.
struct Outcome {
    cost: Cost,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Outcome {
    /// Whether clap refused the subcommand: the binary predates it.
    fn missing_command(&self) -> bool {
        self.code == 2 && self.stderr.contains("unrecognized subcommand")
    }
}

#[derive(Debug, Default)]
struct Row {
    n: usize,
    ingest: Option<Cost>,
    ingest_msgs_per_s: f64,
    store_bytes_per_msg: f64,
    store_per_mail: f64,
    status: Option<Cost>,
    case: Option<Cost>,
    search: Option<Cost>,
    verify: Option<Cost>,
    rebuild: Option<Cost>,
    rebuild_msgs_per_s: Option<f64>,
    /// `rebuild --reindex`: the log indexed again too.
    reindex: Option<Cost>,
    /// Spawn until `cprwatch running`.
    service_start: Option<f64>,
    /// `VmRSS` once the live messages are in, and the service's peak over its life.
    service_rss_mib: Option<f64>,
    service_peak_mib: Option<f64>,
}

/// Run `cmd` to completion with its output in files under `dir`, measuring it alone: its wall
/// time from spawn to exit and its own peak RSS (`wait4` on its pid; `RUSAGE_CHILDREN` would be
/// the largest of every child so far). A long command prints a line every 30 s.
fn run_measured(mut cmd: Command, label: &str, dir: &Path, watch: Option<&Path>) -> Outcome {
    let out_path = dir.join(format!("{label}.stdout"));
    let err_path = dir.join(format!("{label}.stderr"));
    cmd.stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).expect("stdout file"))
        .stderr(fs::File::create(&err_path).expect("stderr file"))
        .env_remove("RUST_LOG");
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {label}: {e}"));
    let pid = child.id() as libc::pid_t;
    let ticker = {
        let done = done.clone();
        let label = label.to_string();
        let watch = watch.map(Path::to_path_buf);
        std::thread::spawn(move || {
            let mut next = Duration::from_secs(30);
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if started.elapsed() >= next {
                    let size = watch
                        .as_deref()
                        .map(|p| format!(", store {:.0} MiB", store_bytes(p) as f64 / 1048576.0))
                        .unwrap_or_default();
                    eprintln!(
                        "scale:   {label} running for {:.0}s{size}",
                        started.elapsed().as_secs_f64()
                    );
                    next += Duration::from_secs(30);
                }
            }
        })
    };
    let (status, rusage) = wait4(pid);
    let wall = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let _ = ticker.join();
    drop(child); // reaped by wait4 above
    Outcome {
        cost: Cost {
            wall,
            peak_mib: rusage.ru_maxrss as f64 / 1024.0, // kilobytes on Linux
        },
        code: exit_code(status),
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

/// Wait for `pid` and take its resource usage (that child's alone).
fn wait4(pid: libc::pid_t) -> (libc::c_int, libc::rusage) {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data, for which all zeroes is a valid value.
    let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `rusage` are valid for writes for the duration of the call.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut rusage) };
        if r == pid {
            return (status, rusage);
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            panic!("wait4({pid}): {err}");
        }
    }
}

fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        -1
    }
}

/// Bytes of the SQLite store and its write-ahead log.
fn store_bytes(store: &Path) -> u64 {
    let wal = PathBuf::from(format!("{}-wal", store.display()));
    [store, wal.as_path()]
        .iter()
        .filter_map(|p| fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// A command that must succeed: its failure is a broken benchmark or binary, not a figure.
fn must(o: Outcome, what: &str) -> Outcome {
    if o.code != 0 {
        panic!(
            "{what} failed (exit {}):\n{}\n{}",
            o.code,
            tail(&o.stdout),
            tail(&o.stderr)
        );
    }
    o
}

/// A command the lead may not have added yet: `None` (printed `n/a`) when the binary lacks it.
fn optional(o: Outcome, what: &str) -> Option<Outcome> {
    if o.missing_command() {
        eprintln!("scale:   {what}: not in this binary (n/a)");
        return None;
    }
    Some(must(o, what))
}

fn tail(s: &str) -> &str {
    let start = s.len().saturating_sub(2_000);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    &s[start..]
}

/// `repeat` runs of one query: the median wall and the highest peak.
fn query(
    bin: &Path,
    dir: &Path,
    label: &str,
    args: &[&str],
    repeat: usize,
) -> Option<(Cost, String)> {
    let mut costs = Vec::new();
    let mut stdout = String::new();
    for r in 0..repeat {
        let mut cmd = Command::new(bin);
        cmd.args(args);
        let o = optional(run_measured(cmd, &format!("{label}-{r}"), dir, None), label)?;
        costs.push(o.cost);
        stdout = o.stdout;
    }
    costs.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    let peak = costs.iter().map(|c| c.peak_mib).fold(0.0, f64::max);
    Some((
        Cost {
            wall: costs[costs.len() / 2].wall,
            peak_mib: peak,
        },
        stdout,
    ))
}

fn measure(bin: &Path, target: &Path, corpus: &Corpus, repeat: usize) -> Row {
    let n = corpus.n;
    let work = tempfile::Builder::new()
        .prefix("scale-run-")
        .tempdir_in(target)
        .expect("temp dir");
    let dir = work.path();
    let drop_dir = dir.join("drop");
    for folder in FOLDERS {
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(drop_dir.join(folder).join(sub)).expect("mkdir drop");
        }
    }
    let config = dir.join("c.toml");
    fs::write(
        &config,
        "[revocation]\nenabled = false\nrequire_verified = false\n[enrich]\nenabled = false\n[desk]\nstaff_domains = [\"example-ca.test\"]\ntrusted_authserv_ids = [\"mx.example-ca.test\"]\n\
         [store]\npath = \"store.sqlite\"\n\
         [[maildir]]\npath = \"drop\"\npoll_seconds = 1\n",
    )
    .expect("config");
    let store = dir.join("store.sqlite");
    let c = config.to_str().expect("utf-8 path");
    let at = rfc3339(corpus.t_end + 3_600);
    let mut row = Row {
        n,
        ..Row::default()
    };

    // Ingest the history.
    eprintln!("scale: N={n}: ingest");
    let mut cmd = Command::new(bin);
    cmd.args(["ingest", "--config", c, "--format", "json"])
        .arg(corpus.main());
    let o = must(
        run_measured(cmd, "ingest", dir, Some(&store)),
        "cprwatch ingest",
    );
    let new_messages = serde_json::from_str::<serde_json::Value>(&o.stdout)
        .ok()
        .and_then(|v| v["new_messages"].as_u64());
    if new_messages != Some(n as u64) {
        eprintln!("scale:   WARNING ingest reports {new_messages:?} new messages, expected {n}");
    }
    row.ingest = Some(o.cost);
    row.ingest_msgs_per_s = n as f64 / o.cost.wall;
    let bytes = store_bytes(&store);
    row.store_bytes_per_msg = bytes as f64 / n as f64;
    row.store_per_mail = bytes as f64 / corpus.mail_bytes as f64;

    // Queries.
    eprintln!("scale: N={n}: status, case, search");
    row.status = query(
        bin,
        dir,
        "status",
        &["status", "--config", c, "--at", &at],
        repeat,
    )
    .map(|(cost, out)| {
        eprintln!("scale:   status lists {} lines", out.lines().count());
        cost
    });
    // The case is the one the search by the mid-history report's crt.sh id finds: case numbers
    // follow the order folders are read in, which the generator cannot know.
    let term = corpus.mid_crtsh.to_string();
    let mut mid_case = corpus.mid_case.clone();
    row.search = query(
        bin,
        dir,
        "search",
        &["search", "--config", c, &term, "--at", &at],
        repeat,
    )
    .map(|(cost, out)| {
        match out
            .lines()
            .nth(1)
            .and_then(|l| l.split_whitespace().next())
            .filter(|id| id.starts_with("CPR-"))
        {
            Some(id) => mid_case = id.to_string(),
            None => eprintln!("scale:   WARNING search {term} names no case:\n{out}"),
        }
        cost
    });
    row.case = query(
        bin,
        dir,
        "case",
        &["case", "--config", c, &mid_case, "--at", &at],
        repeat,
    )
    .map(|(cost, out)| {
        let id = format!("crtsh:{}", corpus.mid_crtsh);
        if !out.contains(&id) {
            eprintln!("scale:   WARNING case {mid_case} does not show {id}");
        }
        cost
    });

    // Whole-store commands.
    eprintln!("scale: N={n}: verify");
    let mut cmd = Command::new(bin);
    cmd.args(["verify", "--config", c]);
    row.verify = Some(must(run_measured(cmd, "verify", dir, None), "cprwatch verify").cost);
    eprintln!("scale: N={n}: rebuild");
    let mut cmd = Command::new(bin);
    cmd.args(["rebuild", "--config", c]);
    row.rebuild =
        optional(run_measured(cmd, "rebuild", dir, None), "cprwatch rebuild").map(|o| o.cost);
    row.rebuild_msgs_per_s = row.rebuild.map(|r| n as f64 / r.wall);
    eprintln!("scale: N={n}: rebuild --reindex");
    let mut cmd = Command::new(bin);
    cmd.args(["rebuild", "--config", c, "--reindex"]);
    row.reindex = optional(
        run_measured(cmd, "reindex", dir, None),
        "cprwatch rebuild --reindex",
    )
    .map(|o| o.cost);

    // The service, last: its clock ticks at today's time and records what has breached since.
    eprintln!("scale: N={n}: run (service)");
    let (start, rss, peak) = service(bin, &config, &drop_dir, corpus);
    row.service_start = start;
    row.service_rss_mib = rss;
    row.service_peak_mib = peak;
    if std::env::var_os("SCALE_KEEP").is_some() {
        eprintln!("scale:   kept {} (SCALE_KEEP)", work.keep().display());
    }
    row
}

/// `cprwatch run` on the store: seconds from spawn until it logs `cprwatch running`, its `VmRSS`
/// once it has ingested the live messages dropped into its Maildir, and its peak RSS.
#[expect(
    clippy::zombie_processes,
    reason = "reaped by wait4, which also gives its own peak RSS"
)]
fn service(
    bin: &Path,
    config: &Path,
    drop_dir: &Path,
    corpus: &Corpus,
) -> (Option<f64>, Option<f64>, Option<f64>) {
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(["run", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cprwatch run");
    let pid = child.id() as libc::pid_t;
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log_tail: Vec<String> = Vec::new();
    let keep = |log_tail: &mut Vec<String>, line: &str| {
        log_tail.push(line.to_string());
        if log_tail.len() > 20 {
            log_tail.remove(0);
        }
    };

    // Serving: the line it logs once the store is open and the sources are started.
    let mut serving = None;
    let mut next_note = Duration::from_secs(30);
    while serving.is_none() {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(line) => {
                if line.contains("cprwatch running") {
                    serving = Some(started.elapsed().as_secs_f64());
                }
                keep(&mut log_tail, &line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if started.elapsed() > next_note {
                    eprintln!(
                        "scale:   run: not serving yet after {:.0}s, RSS {:.0} MiB",
                        started.elapsed().as_secs_f64(),
                        vm_rss_mib(pid)
                    );
                    next_note += Duration::from_secs(30);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if serving.is_none() {
        let (status, _) = wait4(pid);
        let _ = reader.join();
        eprintln!(
            "scale:   run exited ({}) before serving:\n{}",
            exit_code(status),
            log_tail.join("\n")
        );
        panic!("cprwatch run did not start");
    }

    // Deliver the live mail as an MDA does (tmp/, then renamed into new/), all at once.
    let mut delivered = 0usize;
    for folder in FOLDERS {
        let from = corpus.live_dir().join(folder).join("cur");
        let mut names: Vec<_> = fs::read_dir(&from)
            .expect("live maildir")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let bare = name.split(':').next().unwrap_or(&name).to_string();
            let tmp = drop_dir.join(folder).join("tmp").join(&bare);
            fs::copy(from.join(&name), &tmp).expect("copy live message");
            fs::rename(&tmp, drop_dir.join(folder).join("new").join(&bare)).expect("deliver");
            delivered += 1;
        }
    }

    // Ingested: every message is logged one by one (`message received`), or, in a commit of
    // many events, counted in the `batch committed` line (`message_received=N`).
    let delivered_at = Instant::now();
    let mut received = 0usize;
    let mut last_line = Instant::now();
    let limit = Duration::from_secs(120 + delivered as u64 / 10);
    while received < delivered {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                last_line = Instant::now();
                if line.contains("message received") {
                    received += 1;
                } else if line.contains("batch committed") {
                    received += line
                        .split("message_received=")
                        .nth(1)
                        .and_then(|s| {
                            s.split(|c: char| !c.is_ascii_digit())
                                .next()
                                .and_then(|d| d.parse::<usize>().ok())
                        })
                        .unwrap_or(0);
                }
                keep(&mut log_tail, &line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if delivered_at.elapsed() > limit {
                    eprintln!(
                        "scale:   WARNING run: {received} of {delivered} live messages logged \
                         after {:.0}s; reading its memory anyway. Log tail:\n{}",
                        delivered_at.elapsed().as_secs_f64(),
                        log_tail.join("\n")
                    );
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    // Steady: after the batch, once the log has been quiet for a second.
    while last_line.elapsed() < Duration::from_secs(1) {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            last_line = Instant::now();
            keep(&mut log_tail, &line);
        }
    }
    eprintln!(
        "scale:   run: {received} of {delivered} live messages ingested in {:.1}s",
        delivered_at.elapsed().as_secs_f64()
    );
    let rss = vm_rss_mib(pid);

    // SAFETY: signalling our own child, not yet reaped.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let (status, rusage) = wait4(pid);
    drop(rx);
    let _ = reader.join();
    let code = exit_code(status);
    if code != 0 {
        eprintln!(
            "scale:   WARNING run exited {code} on SIGTERM. Log tail:\n{}",
            log_tail.join("\n")
        );
    }
    (serving, Some(rss), Some(rusage.ru_maxrss as f64 / 1024.0))
}

fn vm_rss_mib(pid: libc::pid_t) -> f64 {
    procfs::rss_mib(&pid.to_string())
}

fn cost_cells(c: Option<Cost>) -> [String; 2] {
    match c {
        Some(c) => [format!("{:.2}", c.wall), format!("{:.0}", c.peak_mib)],
        None => ["n/a".into(), "n/a".into()],
    }
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map(|v| format!("{v:.decimals$}"))
        .unwrap_or_else(|| "n/a".into())
}

fn print_table(rows: &[Row], bin: &Path) {
    println!();
    println!(
        "scale: wall in seconds / peak RSS in MiB of each command, as its own process ({})",
        bin.display()
    );
    let header = [
        "N",
        "ingest s",
        "MiB",
        "msgs/s",
        "store B/msg",
        "store/mail",
        "status s",
        "MiB",
        "case s",
        "MiB",
        "search s",
        "MiB",
        "verify s",
        "MiB",
        "rebuild s",
        "MiB",
        "rebuild msgs/s",
        "--reindex s",
        "MiB",
        "run start s",
        "run RSS MiB",
        "run peak MiB",
    ];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        let mut l = vec![r.n.to_string()];
        l.extend(cost_cells(r.ingest));
        l.push(format!("{:.0}", r.ingest_msgs_per_s));
        l.push(format!("{:.0}", r.store_bytes_per_msg));
        l.push(format!("{:.2}", r.store_per_mail));
        for c in [r.status, r.case, r.search, r.verify, r.rebuild] {
            l.extend(cost_cells(c));
        }
        l.push(opt(r.rebuild_msgs_per_s, 0));
        l.extend(cost_cells(r.reindex));
        l.push(opt(r.service_start, 2));
        l.push(opt(r.service_rss_mib, 0));
        l.push(opt(r.service_peak_mib, 0));
        lines.push(l);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or(0))
        .collect();
    for (k, l) in lines.iter().enumerate() {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect();
        println!("| {} |", cells.join(" | "));
        if k == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            println!("|-{}-|", rule.join("-|-"));
        }
    }
}

/// One target: PASS or FAIL with the figures, or n/a when this run cannot tell.
fn check(name: &str, value: Option<f64>, limit: f64, at_most: bool, unit: &str) {
    let Some(v) = value else {
        println!("  n/a   {name}");
        return;
    };
    let ok = if at_most { v <= limit } else { v >= limit };
    let rel = if at_most { "<=" } else { ">=" };
    println!(
        "  {}  {name}: {v:.2}{unit} ({rel} {limit}{unit})",
        if ok { "PASS" } else { "FAIL" }
    );
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn print_checks(rows: &[Row]) {
    println!();
    let Some(base) = rows.iter().min_by_key(|r| r.n) else {
        return;
    };
    println!(
        "scale: targets (issue 18), as ratios to N={} of this run",
        base.n
    );
    for r in rows.iter().filter(|r| r.n != base.n) {
        let n = r.n;
        let b = base.n;
        for (what, c, cb) in [
            ("status", r.status, base.status),
            ("case", r.case, base.case),
            ("search by crt.sh id", r.search, base.search),
        ] {
            check(
                &format!("{what} wall at {n} / at {b}"),
                ratio(c.map(|c| c.wall), cb.map(|c| c.wall)),
                QUERY_RATIO,
                true,
                "x",
            );
        }
        check(
            &format!("service steady RSS at {n} / at {b}"),
            ratio(r.service_rss_mib, base.service_rss_mib),
            RSS_RATIO,
            true,
            "x",
        );
        for (what, c, cb) in [
            ("verify", r.verify, base.verify),
            ("rebuild", r.rebuild, base.rebuild),
            ("rebuild --reindex", r.reindex, base.reindex),
        ] {
            check(
                &format!("{what} peak RSS at {n} / at {b}"),
                ratio(c.map(|c| c.peak_mib), cb.map(|c| c.peak_mib)),
                RSS_RATIO,
                true,
                "x",
            );
        }
    }
    match rows.iter().find(|r| r.n == 100_000) {
        Some(r) => check(
            "rebuild of 100000 messages/s",
            r.rebuild_msgs_per_s,
            REBUILD_TARGET_MSGS_PER_S,
            false,
            "",
        ),
        None => println!("  n/a   rebuild of 100000 messages/s (no N=100000 in this run)"),
    }
    for r in rows {
        check(
            &format!("store / mail at {}", r.n),
            Some(r.store_per_mail),
            STORE_RATIO,
            true,
            "x",
        );
    }
}
