//! Text from peers, made safe to log and to echo. A camera's firmware string, a browser's
//! camera name or a bad message's parse error may contain newlines, control characters or
//! megabytes; in a log line they could forge entries or flood the disk. Every peer-supplied
//! string goes through [`for_log`] before it reaches `tracing`, and through
//! [`espcam_proto::close::echo`] before it is echoed back to the peer.
//!
//! The escaping itself is `espcam_auth::escape_for_log` (one implementation for the whole
//! workspace, tested there); this module only fixes the hub's length.

/// Characters of peer text kept in a log line (the `…` that marks a cut included).
pub const LOG_CHARS: usize = 80;

/// `s` cut to [`LOG_CHARS`] characters (ending with `…` when cut), with control characters,
/// line separators, bidirectional overrides and backslashes escaped, so one peer string is
/// always one piece of one log line.
pub fn for_log(s: &str) -> String {
    espcam_auth::escape_for_log(s, LOG_CHARS)
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
        assert_eq!(for_log("a\u{202e}b"), "a\\u{202e}b");
        let long = "x".repeat(1000);
        let cut = for_log(&long);
        assert_eq!(cut.chars().count(), LOG_CHARS);
        assert!(cut.ends_with('…'));
    }
}
