//! WebSocket close codes espcam uses (RFC 6455 §7.4.1) and the two text rules every side
//! applies to what it echoes: a close reason fits in 123 bytes (§5.5: a control frame's
//! payload is at most 125 bytes, two of them the code), and peer input echoed back in an
//! error is cut to a few characters. Defined once here so the hub, the camera core and the
//! firmware agree.

/// Normal closure.
pub const NORMAL: u16 = 1000;
/// The endpoint is going away (hub shutting down, viewer leaving).
pub const AWAY: u16 = 1001;
/// The hub closing a browser socket from which nothing arrived — no pong to its pings, no
/// message — within its idle timeout (`idle_timeout_ms`). The same code as [`AWAY`]: as
/// far as the hub can tell, the peer has gone away.
pub const IDLE: u16 = AWAY;
/// The peer broke the WebSocket protocol.
pub const PROTOCOL: u16 = 1002;
/// A message of a type the endpoint does not accept.
pub const UNSUPPORTED: u16 = 1003;
/// A text message that is not valid UTF-8 (or otherwise inconsistent data).
pub const INVALID_DATA: u16 = 1007;
/// The peer broke espcam's rules (refused hello: wrong token, unknown id, bad version).
pub const POLICY: u16 = 1008;
/// A message over the endpoint's size limit.
pub const TOO_BIG: u16 = 1009;
/// The endpoint hit an internal error (camera: network watchdog).
pub const INTERNAL_ERROR: u16 = 1011;
/// The endpoint is restarting (camera reboot).
pub const RESTART: u16 = 1012;
/// Try again later (standalone camera: too many clients).
pub const TRY_AGAIN: u16 = 1013;

/// Longest close reason, bytes: a close frame's payload is at most 125 bytes, two of which
/// are the code.
pub const MAX_REASON: usize = 123;

/// Cuts `reason` to at most [`MAX_REASON`] bytes, on a character boundary.
pub fn close_reason(reason: &str) -> &str {
    cut_bytes(reason, MAX_REASON)
}

/// Cuts `s` to at most `max` bytes, on a character boundary.
pub fn cut_bytes(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// How many characters of peer input an error message echoes.
pub const ECHO_CHARS: usize = 40;

/// At most `max` characters of `s`, for echoing peer input in an error message without
/// sending a megabyte back. Returns a borrowed prefix (no allocation).
pub fn echo(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_and_echoes_are_cut_on_char_boundaries() {
        let long = "é".repeat(100); // 200 bytes
        let r = close_reason(&long);
        assert_eq!(r.len(), 122);
        assert!(r.chars().all(|c| c == 'é'));
        assert_eq!(close_reason("short"), "short");
        assert_eq!(echo(&long, 3), "ééé");
        assert_eq!(echo("ab", 40), "ab");
    }
}
