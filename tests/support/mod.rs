//! Helpers for integration tests that need real servers. Each test binary that uses them says
//! `mod support;`.
#![allow(dead_code)]

pub mod browser;
pub mod dovecot;
pub mod postfix;
pub mod postgres;
pub mod service;
pub mod testca;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

/// Run `scripts/<script> <command> <dir>` with `env`; when it fails, panic with its output and
/// the server's own log (`log`), which is where the reason usually is.
pub fn server_script(
    script: &str,
    command: &str,
    dir: &Path,
    env: &[(&str, &std::ffi::OsStr)],
    log: impl FnOnce() -> String,
) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    let out = Command::new("bash")
        .arg(&path)
        .arg(command)
        .arg(dir)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("run scripts/{script}: {e}"));
    assert!(
        out.status.success(),
        "scripts/{script} {command} failed ({}):\n{}\n{}\nServer log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        log()
    );
}

/// `scripts/<script> stop <dir>`, quietly: for `Drop`, where a failure can only be ignored.
pub fn stop_quietly(script: &str, dir: &Path) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    let _ = Command::new("bash").arg(path).arg("stop").arg(dir).output();
}

/// A port on 127.0.0.1 that was free a moment ago (the kernel picks it), never one handed out
/// before in this process: tests run side by side, and the kernel may offer a port again
/// between one test picking it and its server binding it (two tests' mail servers on one port
/// deliver each other's mail).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local addr").port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Every listening TCP socket on `port` (IPv4 and IPv6), as the kernel writes its local address
/// (hex): what the harness tests hold to "127.0.0.1 only".
pub fn listeners(port: u16) -> Vec<String> {
    let suffix = format!(":{port:04X}");
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let [_, local, _, state, ..] = fields[..]
                && state == "0A"
                && local.ends_with(&suffix)
            {
                found.push(local.to_string());
            }
        }
    }
    found
}
