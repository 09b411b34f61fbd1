//! Peak resident memory of a process, as Linux reports it (`VmHWM` in /proc/<pid>/status).

/// Peak RSS in MiB of `pid` (`"self"` for this process); 0 when /proc cannot tell.
pub fn peak_rss_mib(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}
