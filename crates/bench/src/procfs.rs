//! What the benchmark reads about the hub process from Linux's `/proc`: CPU time and
//! resident memory. Read-only; never signals or otherwise touches the process.

use anyhow::Context;

/// Clock ticks per second of `/proc/<pid>/stat` times. `USER_HZ` is part of the Linux ABI
/// and 100 on every architecture Linux supports today.
const TICKS_PER_SEC: u64 = 100;

/// CPU time (user + system) the process has used, µs, at tick resolution (10 ms).
pub fn cpu_time_us(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_cpu_ticks(&text)
        .map(|ticks| ticks * (1_000_000 / TICKS_PER_SEC))
        .with_context(|| format!("unexpected format of {path}"))
}

/// CPU time of a process split by thread group: user and system time of the threads whose
/// name starts with a prefix, and of all the others (threads that have exited included,
/// since the rest is the process's total minus the named threads), µs at tick resolution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ThreadSplit {
    /// Named threads, user time.
    pub named_user_us: u64,
    /// Named threads, system time.
    pub named_system_us: u64,
    /// Every other thread, user time.
    pub other_user_us: u64,
    /// Every other thread, system time.
    pub other_system_us: u64,
}

impl ThreadSplit {
    /// `self − earlier`, field by field.
    pub fn since(&self, earlier: &ThreadSplit) -> ThreadSplit {
        ThreadSplit {
            named_user_us: self.named_user_us.saturating_sub(earlier.named_user_us),
            named_system_us: self.named_system_us.saturating_sub(earlier.named_system_us),
            other_user_us: self.other_user_us.saturating_sub(earlier.other_user_us),
            other_system_us: self.other_system_us.saturating_sub(earlier.other_system_us),
        }
    }
}

/// Reads `/proc/<pid>/stat` and every `/proc/<pid>/task/<tid>/stat`, and splits the CPU
/// time into the threads named `prefix…` and the rest.
pub fn thread_split(pid: u32, prefix: &str) -> anyhow::Result<ThreadSplit> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let (_, user, system) =
        parse_stat(&text).with_context(|| format!("unexpected format of {path}"))?;
    let (mut nu, mut ns) = (0, 0);
    let dir = format!("/proc/{pid}/task");
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let Ok(entry) = entry else { continue };
        // A thread may exit between the listing and the read: skip it (its time is in
        // the process's total, so it lands among the others).
        let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some((name, u, s)) = parse_stat(&text)
            && name.starts_with(prefix)
        {
            nu += u;
            ns += s;
        }
    }
    let us = 1_000_000 / TICKS_PER_SEC;
    Ok(ThreadSplit {
        named_user_us: nu * us,
        named_system_us: ns * us,
        other_user_us: user.saturating_sub(nu) * us,
        other_system_us: system.saturating_sub(ns) * us,
    })
}

/// `(name, utime, stime)` from a `stat` line (the name is field 2, in parentheses).
fn parse_stat(stat: &str) -> Option<(&str, u64, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    let mut fields = stat[close + 1..].split_ascii_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((name, utime, stime))
}

/// `utime + stime` from a `/proc/<pid>/stat` line. The command name (field 2) is in
/// parentheses and may itself contain spaces or parentheses, so fields are counted from the
/// last `)`: state is then field 0, utime field 11, stime field 12.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Memory figures from `/proc/<pid>/status`, KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// Resident set size now (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set size (`VmHWM`).
    pub peak_kib: u64,
}

/// Reads the process's resident memory.
pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_status(&text).with_context(|| format!("no VmRSS/VmHWM in {path}"))
}

fn parse_status(text: &str) -> Option<Memory> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        peak_kib: field("VmHWM:")?,
    })
}

/// The machine's 1-minute load average, if `/proc/loadavg` is readable.
pub fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_names() {
        let line = "1234 (tokio (worker) 1) S 1 1234 1234 0 -1 4194304 500 0 0 0 \
                    250 125 0 0 20 0 3 0 100 1000000 300 18446744073709551615";
        assert_eq!(parse_cpu_ticks(line), Some(375));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        assert_eq!(parse_stat(line), Some(("tokio (worker) 1", 250, 125)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn parses_status() {
        let text = "Name:\tespcam\nVmHWM:\t   12000 kB\nVmRSS:\t    8000 kB\nThreads:\t3\n";
        assert_eq!(
            parse_status(text),
            Some(Memory {
                rss_kib: 8000,
                peak_kib: 12000
            })
        );
    }

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        assert!(memory(pid).unwrap().rss_kib > 0);
        cpu_time_us(pid).unwrap();
        let split = thread_split(pid, "no-such-thread-").unwrap();
        assert_eq!((split.named_user_us, split.named_system_us), (0, 0));
        assert!(loadavg().unwrap() >= 0.0);
    }
}
