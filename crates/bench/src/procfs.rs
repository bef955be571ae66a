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
        assert!(loadavg().unwrap() >= 0.0);
    }
}
