//! What Linux reports about processes in /proc: peak resident memory and CPU time.
#![allow(dead_code)] // each benchmark uses part of it

/// Peak RSS in MiB of `pid` (`"self"` for this process); 0 when /proc cannot tell.
pub fn peak_rss_mib(pid: &str) -> f64 {
    status_mib(pid, "VmHWM:")
}

/// Resident memory in MiB of `pid` now; 0 when /proc cannot tell.
pub fn rss_mib(pid: &str) -> f64 {
    status_mib(pid, "VmRSS:")
}

/// A size field (in kB) of `/proc/<pid>/status`, in MiB.
fn status_mib(pid: &str, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// User plus system CPU seconds used so far by `pid`, all threads; 0 when /proc cannot tell.
pub fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces, so split after its ')'):
    // state is field 3, utime 14, stime 15, in clock ticks (USER_HZ, 100 on Linux).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(14) + ticks(15)) / 100.0
}

/// CPU seconds used so far by every process whose command name is `comm`.
pub fn cpu_secs_of(comm: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == comm))
        .map(|e| cpu_secs(&e.file_name().to_string_lossy()))
        .sum()
}

/// CPU seconds used so far by each thread name of `pid` (threads of one name summed), sorted
/// by name. Thread names are the kernel's `comm`: at most 15 bytes.
pub fn cpu_secs_by_thread(pid: &str) -> Vec<(String, f64)> {
    let mut by_name: std::collections::BTreeMap<String, f64> = Default::default();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    for task in dir.filter_map(Result::ok) {
        let tid = task.file_name().to_string_lossy().into_owned();
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        *by_name.entry(name.trim().to_string()).or_default() +=
            cpu_secs(&format!("{pid}/task/{tid}"));
    }
    by_name.into_iter().collect()
}
