//! What a process used, from `/proc/<pid>/…`: CPU time (user + system, all its threads:
//! how busy the broker's and the relay's cores were during a run) and peak resident set.

use std::time::Duration;

/// CPU time `pid` has used so far, or `None` when it cannot be read.
pub fn used(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime) of the line are the 12th and 13th after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = u64::try_from(ticks).ok().filter(|&t| t > 0)?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / ticks as f64,
    ))
}

/// Peak resident set size of `pid` so far, in kB (`VmHWM` of `/proc/<pid>/status`).
pub fn peak_rss_kb(pid: u32) -> Option<u64> {
    field(pid, "status", "VmHWM:", "kB")
}

/// The number after `key` (and before `unit`) on its line of `/proc/<pid>/<file>`.
fn field(pid: u32, file: &str, key: &str, unit: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .trim()
        .strip_suffix(unit)?
        .trim()
        .parse()
        .ok()
}
