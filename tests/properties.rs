//! Property: the cases and clocks `replay` derives do not depend on the order the messages are
//! read in, nor on reading the same message twice (again in the inbox, or a copy in Junk).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use proptest::prelude::*;
use serde_json::Value;

const AT: &str = "2026-04-20T00:00:00Z";

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    v.sort();
    v
}

/// Cases with their ids replaced by the message id of their first message, so two runs that
/// number cases differently still compare; everything else (messages, certificates, keys,
/// clocks) compared as is.
fn normalized(v: &Value) -> Vec<Value> {
    cases(v)
        .iter()
        .map(|c| {
            let mut c = c.clone();
            let first = c["messages"][0]["message_id"].clone();
            c["id"] = first;
            c
        })
        .collect()
}

fn run(inbox: &[PathBuf], junk: &[PathBuf], sent: &[PathBuf]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let place = |name: &str, list: &[PathBuf]| -> PathBuf {
        let d = dir.path().join(name);
        std::fs::create_dir(&d).unwrap();
        for (n, f) in list.iter().enumerate() {
            // The reader goes by file name: the prefix sets the reading order.
            let target = d.join(format!(
                "{n:03}-{}",
                f.file_name().unwrap().to_string_lossy()
            ));
            std::fs::copy(f, target).unwrap();
        }
        d
    };
    let i = place("inbox", inbox);
    let s = place("sent", sent);
    let j = (!junk.is_empty()).then(|| place("junk", junk));
    let out = replay_dirs(&i, Some(&s), j.as_deref(), AT, "json");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    parse_json(&out)
}

fn scenario_files() -> (Vec<PathBuf>, Vec<PathBuf>) {
    let dir = scenario("revocation");
    (files(&dir.join("inbox")), files(&dir.join("sent")))
}

fn baseline() -> &'static Vec<Value> {
    static BASE: std::sync::OnceLock<Vec<Value>> = std::sync::OnceLock::new();
    BASE.get_or_init(|| {
        let (inbox, sent) = scenario_files();
        normalized(&run(&inbox, &[], &sent))
    })
}

#[test]
fn baseline_is_the_revocation_scenario() {
    let b = baseline();
    assert_eq!(b.len(), 10);
    assert_eq!(b[0]["id"], "<rv01@shortcerts.example>");
    assert_eq!(
        b[1]["messages"].as_array().unwrap().len(),
        2,
        "a threaded reply"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn order_and_duplicates_change_nothing(
        order in Just((0..11usize).collect::<Vec<_>>()).prop_shuffle(),
        dups in proptest::collection::vec(any::<bool>(), 11),
        junk in proptest::collection::vec(any::<bool>(), 11),
        sent_twice in any::<bool>(),
    ) {
        let (inbox, sent) = scenario_files();
        prop_assert_eq!(inbox.len(), 11);
        let mut inbox_files: Vec<PathBuf> = order.iter().map(|&k| inbox[k].clone()).collect();
        for (k, d) in dups.iter().enumerate() {
            if *d {
                inbox_files.push(inbox[order[(k * 7) % 11]].clone());
            }
        }
        let junk_files: Vec<PathBuf> =
            junk.iter().enumerate().filter(|(_, j)| **j).map(|(k, _)| inbox[k].clone()).collect();
        let mut sent_files = sent.clone();
        if sent_twice {
            sent_files.push(sent[0].clone());
        }
        let got = normalized(&run(&inbox_files, &junk_files, &sent_files));
        let base = baseline();
        prop_assert_eq!(got.len(), base.len());
        for (g, b) in got.iter().zip(base.iter()) {
            prop_assert_eq!(g, b);
        }
    }
}
