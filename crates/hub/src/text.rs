//! Text from peers, made safe to log and to echo. A camera's firmware string, a browser's
//! camera name or a bad message's parse error may contain newlines, control characters or
//! megabytes; in a log line they could forge entries or flood the disk. Every peer-supplied
//! string goes through [`for_log`] before it reaches `tracing`, and through
//! [`espcam_proto::close::echo`] before it is echoed back to the peer.

use std::fmt::Write;

/// Characters of peer text kept in a log line.
pub const LOG_CHARS: usize = 80;

/// `s` cut to [`LOG_CHARS`] characters (with `…` when cut), with control characters,
/// quotes and backslashes escaped as in Rust string literals, so one peer string is always
/// one piece of one log line.
pub fn for_log(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(LOG_CHARS + 8));
    for (i, c) in s.chars().enumerate() {
        if i == LOG_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() || c == '\\' || c == '"' {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_cannot_forge_log_lines() {
        assert_eq!(
            for_log("fw 1.0\nINFO camera admin logged in"),
            "fw 1.0\\nINFO camera admin logged in"
        );
        assert_eq!(for_log("a\u{1b}[31mred"), "a\\u{1b}[31mred");
        let long = "x".repeat(1000);
        assert_eq!(for_log(&long).chars().count(), LOG_CHARS + 1);
    }
}
