//! Sockets below both `ingest` and `http`: the TCP listener every connection comes through,
//! and small WebSocket helpers both use.

pub mod listener;
pub(crate) mod liveness;
pub mod serve;
pub mod tls;
pub(crate) mod upgrade;
pub mod ws;

/// The most open files [`raise_fd_limit`] asks for: more than any budget of the hub needs.
const FD_LIMIT_CAP: u64 = 65_536;

/// Raises the process's soft limit on open files to its hard limit (at most
/// [`FD_LIMIT_CAP`]), as servers do at start: the common soft default of 1 024 would cap the
/// HTTP port near 430 connections (WebSockets included), while the hard limit, which only
/// root can raise, is usually far higher. Returns `(before, after)` when it changed; `None`
/// when it was high enough already, unlimited, or could not be changed.
pub fn raise_fd_limit() -> Option<(u64, u64)> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let current = limit.current?;
    let wanted = limit.maximum.unwrap_or(FD_LIMIT_CAP).min(FD_LIMIT_CAP);
    if wanted <= current {
        return None;
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(wanted),
            maximum: limit.maximum,
        },
    )
    .ok()?;
    Some((current, wanted))
}

/// The process's soft limit on open file descriptors; `None` when unlimited.
pub fn fd_soft_limit() -> Option<usize> {
    let current = rustix::process::getrlimit(rustix::process::Resource::Nofile).current?;
    usize::try_from(current).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

    /// A low soft limit is raised to the hard one (capped), and the hub's budget follows.
    #[test]
    fn a_low_soft_fd_limit_is_raised_to_the_hard_limit() {
        let before = getrlimit(Resource::Nofile);
        let hard_or_cap = before.maximum.unwrap_or(FD_LIMIT_CAP).min(FD_LIMIT_CAP);
        if hard_or_cap <= 256 {
            eprintln!("skipped: the hard limit ({hard_or_cap}) leaves nothing to raise");
            return;
        }
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(256),
                maximum: before.maximum,
            },
        )
        .unwrap();
        assert_eq!(fd_soft_limit(), Some(256));
        assert_eq!(raise_fd_limit(), Some((256, hard_or_cap)));
        assert_eq!(fd_soft_limit(), Some(hard_or_cap as usize));
        assert_eq!(raise_fd_limit(), None, "already raised");
    }
}
