//! Thread priority for work that only has to keep ahead of the desk.
//!
//! Every message goes through one thread in order: the desk, which derives and commits each
//! batch. Everything else (preparing batches, copying the WAL back into the database) runs
//! beside it and only has to stay ahead. When cores are short (a first sync of a large
//! mailbox, with the IMAP server on the same machine), the kernel shares them fairly between
//! all busy threads, and the desk, the one that sets the pace, waited for a core about a third
//! of its time. Lowering the helpers' priority gives the desk a core whenever it has work;
//! the helpers use what is left, which is all they need, and nothing is starved: a lower
//! priority is a smaller share, never none.

/// The niceness helpers take: a lower share of a busy core, not an idle one.
pub(crate) const HELPER_NICENESS: i32 = 10;

/// Lower the calling thread's priority to [`HELPER_NICENESS`]. Linux applies
/// `setpriority(PRIO_PROCESS, 0, …)` to the calling thread only, which is what is wanted
/// here: the desk's thread and the async workers keep theirs. Best effort: where it fails
/// (another OS, a sandbox), the thread just keeps its priority.
pub(crate) fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority takes plain integers and touches no memory of ours.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, HELPER_NICENESS);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn lowers_only_the_calling_thread() {
        let nice = || {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
            let fields: Vec<String> = stat
                .rsplit_once(')')
                .unwrap()
                .1
                .split_whitespace()
                .map(str::to_string)
                .collect();
            fields[19 - 3].parse::<i32>().unwrap()
        };
        let before = nice();
        let helper = std::thread::spawn(move || {
            super::lower_this_thread();
            nice()
        })
        .join()
        .unwrap();
        assert_eq!(helper, super::HELPER_NICENESS.max(before));
        assert_eq!(
            nice(),
            before,
            "the calling thread's own priority is unchanged"
        );
    }
}
