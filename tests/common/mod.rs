//! Shared helpers for the end-to-end tests: run the real `cprwatch` binary over the scenario
//! mailboxes in `fixtures/scenarios/` and look into its JSON.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The fixtures' desk. Their mail is history with no responder to ask, so a staff
/// `CPR-Revoked` stands as the desk's word (`require_verified = false`), and nothing is fetched:
/// tests reach only loopback. `tests/revocation.rs` runs the checks on a test CA.
pub const CONFIG: &str = "[revocation]\nenabled = false\nrequire_verified = false\n[enrich]\nenabled = false\n[desk]\nstaff_domains = [\"example-ca.test\"]\ntrusted_authserv_ids = [\"mx.example-ca.test\"]\n";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cprwatch")
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn scenario(name: &str) -> PathBuf {
    root().join("fixtures/scenarios").join(name)
}

pub fn material(name: &str) -> PathBuf {
    root().join("fixtures/scenarios/material").join(name)
}

/// A temporary directory holding `c.toml` with the replay configuration (and, when asked, a
/// store path).
pub struct Desk {
    pub dir: tempfile::TempDir,
}

impl Desk {
    pub fn new() -> Desk {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("c.toml"), CONFIG).expect("write config");
        Desk { dir }
    }

    /// A configuration with `[store] path = "<tmp>/s.sqlite"`.
    pub fn with_store() -> Desk {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("s.sqlite");
        let cfg = format!(
            "{CONFIG}\n[store]\npath = \"{}\"\n",
            store.display().to_string().replace('\\', "\\\\")
        );
        std::fs::write(dir.path().join("c.toml"), cfg).expect("write config");
        Desk { dir }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("c.toml")
    }

    pub fn store(&self) -> PathBuf {
        self.dir.path().join("s.sqlite")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .args(args)
            .env_remove("CPRWATCH_CONFIG")
            .env("RUST_LOG", "warn")
            .output()
            .expect("run cprwatch")
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Replay folders explicitly; returns the raw output.
pub fn replay_dirs(
    inbox: &Path,
    sent: Option<&Path>,
    junk: Option<&Path>,
    at: &str,
    format: &str,
) -> Output {
    let desk = Desk::new();
    let cfg = desk.config();
    let mut args: Vec<String> = vec![
        "replay".into(),
        "--config".into(),
        cfg.display().to_string(),
        "--inbox".into(),
        inbox.display().to_string(),
    ];
    if let Some(s) = sent {
        args.push("--sent".into());
        args.push(s.display().to_string());
    }
    if let Some(j) = junk {
        args.push("--junk".into());
        args.push(j.display().to_string());
    }
    args.extend(["--at".into(), at.into(), "--format".into(), format.into()]);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    desk.run(&a)
}

/// Replay a scenario (its inbox/, and sent/ and junk/ when present) as at `at`; parse the JSON.
pub fn replay(name: &str, at: &str) -> Value {
    let dir = scenario(name);
    let sent = dir.join("sent");
    let junk = dir.join("junk");
    let out = replay_dirs(
        &dir.join("inbox"),
        sent.is_dir().then_some(sent.as_path()),
        junk.is_dir().then_some(junk.as_path()),
        at,
        "json",
    );
    parse_json(&out)
}

pub fn parse_json(out: &Output) -> Value {
    match serde_json::from_slice(&out.stdout) {
        Ok(v) => v,
        Err(e) => panic!("replay output is not JSON ({e}):\n{}", text(out)),
    }
}

pub fn cases(v: &Value) -> &Vec<Value> {
    v["cases"].as_array().expect("cases array")
}

pub fn case_ids(v: &Value) -> Vec<String> {
    cases(v).iter().map(|c| s(&c["id"])).collect()
}

pub fn case<'a>(v: &'a Value, id: &str) -> &'a Value {
    cases(v)
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no case {id}; cases: {:?}", case_ids(v)))
}

/// The case that lists the message `message_id`.
pub fn case_of<'a>(v: &'a Value, message_id: &str) -> &'a Value {
    cases(v)
        .iter()
        .find(|c| message_ids(c).iter().any(|m| m == message_id))
        .unwrap_or_else(|| panic!("no case lists {message_id}"))
}

pub fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
        .to_string()
}

pub fn message_ids(case: &Value) -> Vec<String> {
    case["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| s(&m["message_id"]))
        .collect()
}

pub fn cert_refs(case: &Value) -> Vec<String> {
    case["certificates"]
        .as_array()
        .expect("certificates")
        .iter()
        .map(|c| s(&c["ref"]))
        .collect()
}

pub fn key_refs(case: &Value) -> Vec<(Option<String>, String)> {
    case["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| (k["ref"].as_str().map(str::to_string), s(&k["evidence"])))
        .collect()
}

pub fn clocks(case: &Value) -> &Vec<Value> {
    case["clocks"].as_array().expect("clocks")
}

/// `(kind, certificate)` of every clock, in order.
pub fn clock_targets(case: &Value) -> Vec<(String, Option<String>)> {
    clocks(case)
        .iter()
        .map(|c| (s(&c["kind"]), c["certificate"].as_str().map(str::to_string)))
        .collect()
}

pub fn prelim(case: &Value) -> &Value {
    let c = &clocks(case)[0];
    assert_eq!(
        c["kind"], "preliminary_report",
        "first clock of {}: {c}",
        case["id"]
    );
    c
}

pub fn revocation<'a>(case: &'a Value, target: &str) -> &'a Value {
    clocks(case)
        .iter()
        .find(|c| c["kind"] == "revocation" && c["certificate"] == target)
        .unwrap_or_else(|| {
            panic!(
                "case {} has no revocation clock for {target}; clocks: {:?}",
                case["id"],
                clock_targets(case)
            )
        })
}

pub fn certificate<'a>(case: &'a Value, reference: &str) -> &'a Value {
    case["certificates"]
        .as_array()
        .expect("certificates")
        .iter()
        .find(|c| c["ref"] == reference)
        .unwrap_or_else(|| {
            panic!(
                "case {} has no certificate {reference}: {:?}",
                case["id"],
                cert_refs(case)
            )
        })
}

/// Assert a clock completely: started_at, deadline, state, stopped_at, basis.
#[track_caller]
pub fn assert_clock(
    c: &Value,
    started_at: &str,
    deadline: &str,
    state: &str,
    stopped_at: Option<&str>,
    basis: &str,
) {
    let got = (
        c["started_at"].as_str(),
        c["deadline"].as_str(),
        c["state"].as_str(),
        c["stopped_at"].as_str(),
        c["basis"].as_str(),
    );
    let want = (
        Some(started_at),
        Some(deadline),
        Some(state),
        stopped_at,
        Some(basis),
    );
    assert_eq!(got, want, "clock {c}");
}

/// `(message_id, received_at, from, folder, staff)` of every message of a case.
pub fn messages(case: &Value) -> Vec<(String, String, String, String, bool)> {
    case["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                s(&m["message_id"]),
                s(&m["received_at"]),
                s(&m["from"]),
                s(&m["folder"]),
                m["staff"].as_bool().expect("staff bool"),
            )
        })
        .collect()
}

pub fn m(
    id: &str,
    at: &str,
    from: &str,
    folder: &str,
    staff: bool,
) -> (String, String, String, String, bool) {
    (id.into(), at.into(), from.into(), folder.into(), staff)
}
