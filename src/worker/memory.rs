//! Resident memory of worker processes, read from `/proc` (Linux; `None` elsewhere).

/// Resident set size of `pid` in bytes.
#[must_use]
pub(crate) fn rss_bytes(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

/// Total resident set size of the processes in process group `pgid` other than `pgid` itself
/// (a worker's `localharness` processes), in bytes. `None` where `/proc` is unavailable.
#[must_use]
pub(crate) fn group_rss_bytes_excluding_leader(pgid: u32) -> Option<u64> {
    let entries = std::fs::read_dir("/proc").ok()?;
    let mut total = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != pgid && process_group(pid) == Some(pgid) {
            total += rss_bytes(pid).unwrap_or(0);
        }
    }
    Some(total)
}

/// The process group of `pid`, from the fifth field of `/proc/<pid>/stat` (after the
/// parenthesised command name, which may itself contain spaces and parentheses).
pub(crate) fn process_group(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(2)?.parse().ok()
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let rss = rss_bytes(std::process::id()).unwrap();
        assert!(rss > 0);
        // SAFETY: getpgrp cannot fail.
        let pgid = u32::try_from(unsafe { libc::getpgrp() }).unwrap();
        assert_eq!(process_group(std::process::id()), Some(pgid));
    }

    #[test]
    fn unknown_pids_have_no_rss() {
        assert_eq!(rss_bytes(u32::MAX), None);
    }
}
