//! Pure request-policy decisions the hub makes at every door, with no HTTP types: is this
//! browser request from the hub's own page ([`origin_allowed`]), is this `Host` one of ours
//! ([`host_allowed`], against DNS rebinding), is login required at all ([`decide_mode`]),
//! and how to put a peer's string into a log line ([`escape_for_log`]). Header values come
//! in as `&str`; decisions go out as `Result`s whose errors say what was refused and why.
//! This module must never read a clock, a socket or the configuration itself.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Longest header value echoed in an error.
const SHOWN: usize = 80;

/// Why a browser request was refused as cross-site.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// `Sec-Fetch-Site: cross-site`, from an origin not in the allow-list.
    #[error(
        "cross-site request from {origin} refused (Sec-Fetch-Site: cross-site); add the origin to allowed_origins to permit it"
    )]
    CrossSite {
        /// The `Origin` header (escaped), or `(none)`.
        origin: String,
    },
    /// `Origin: null`: a sandboxed frame, a `file:` page or a cross-origin redirect.
    #[error("Origin: null refused: expected this hub's own origin")]
    Null,
    /// An origin other than the hub's own and not in the allow-list.
    #[error("origin {origin} refused: expected {expected} (this hub) or one in allowed_origins")]
    Mismatch {
        /// The `Origin` header.
        origin: String,
        /// The hub's own origin, from `Host`.
        expected: String,
    },
    /// The `Origin` header (or an allow-list entry) is not `scheme://host[:port]`.
    #[error("malformed origin {0}: expected scheme://host[:port], e.g. https://ha.example:8123")]
    Malformed(String),
    /// A browser request with `Origin` but no `Host`: the hub's own origin is unknown.
    #[error("request has an Origin but no Host header: expected both")]
    MissingHost,
    /// No `Origin`, and `Sec-Fetch-Site` is neither `same-origin` nor `none`.
    #[error(
        "request without an Origin header and Sec-Fetch-Site: {0} refused: expected same-origin"
    )]
    NoOrigin(String),
}

/// `scheme://host:port` with lowercase scheme and host and the default port made explicit,
/// so `http://Hub` and `http://hub:80` compare equal.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let default = if self.scheme == "https" { 443 } else { 80 };
        if self.port == default {
            write!(f, "{}://{}", self.scheme, self.host)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

/// Splits `host[:port]` / `[v6][:port]` into a lowercase host (IPv6 kept in brackets, a
/// trailing dot removed) and an optional port.
fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    let s = s.trim();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let ip = Ipv6Addr::from_str(v6).ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{ip}]"), port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (s.to_string(), None),
        }
    };
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    let host = host.strip_suffix('.').unwrap_or(&host).to_ascii_lowercase();
    let valid = !host.is_empty()
        && (host.starts_with('[')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'));
    valid.then_some((host, port))
}

fn parse_origin(s: &str) -> Option<Origin> {
    let (scheme, rest) = s.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    if rest.contains(['/', '@', '?', '#']) {
        return None;
    }
    let (host, port) = split_host_port(rest)?;
    Some(Origin {
        scheme,
        host,
        port: port.unwrap_or(default),
    })
}

/// Checks an allow-list entry for the hub's configuration and returns its canonical form
/// (`HTTPS://HA.example:443` → `https://ha.example`).
pub fn normalize_origin(entry: &str) -> Result<String, OriginError> {
    parse_origin(entry)
        .map(|o| o.to_string())
        .ok_or_else(|| OriginError::Malformed(crate::escape_for_log(entry, SHOWN)))
}

/// Whether a browser-reachable request (every browser socket upgrade and every
/// state-changing request) may proceed, from its `Host`, `Origin` and `Sec-Fetch-Site`
/// headers. Call [`host_allowed`] first: the hub's own origin is taken from `Host`.
///
/// - `Origin` in `allow_list` (exact origins, compared after normalising case and default
///   ports): allowed, even when `Sec-Fetch-Site` says cross-site — that is what the list is
///   for.
/// - `Sec-Fetch-Site: cross-site`: refused.
/// - `Origin: null`: refused.
/// - `Origin` equal to `http(s)://<Host>` (scheme from `tls`): allowed; any other: refused.
/// - No `Origin`: browsers send one on every WebSocket handshake and every cross-origin
///   request, so a request without one is a same-origin navigation or not from a browser
///   (curl, VLC, Home Assistant): allowed, unless `Sec-Fetch-Site` is present and neither
///   `same-origin` nor `none`.
pub fn origin_allowed(
    host_header: Option<&str>,
    origin_header: Option<&str>,
    sec_fetch_site: Option<&str>,
    allow_list: &[String],
    tls: bool,
) -> Result<(), OriginError> {
    let fetch = sec_fetch_site.map(|s| s.trim().to_ascii_lowercase());
    let Some(origin) = origin_header else {
        return match fetch.as_deref() {
            None | Some("same-origin") | Some("none") => Ok(()),
            Some("cross-site") => Err(OriginError::CrossSite {
                origin: "(none)".into(),
            }),
            Some(other) => Err(OriginError::NoOrigin(crate::escape_for_log(other, SHOWN))),
        };
    };
    let shown = || crate::escape_for_log(origin, SHOWN);
    if origin.trim() == "null" {
        return Err(OriginError::Null);
    }
    let o = parse_origin(origin).ok_or_else(|| OriginError::Malformed(shown()))?;
    if allow_list
        .iter()
        .filter_map(|a| parse_origin(a))
        .any(|a| a == o)
    {
        return Ok(());
    }
    if fetch.as_deref() == Some("cross-site") {
        return Err(OriginError::CrossSite { origin: shown() });
    }
    let host = host_header.ok_or(OriginError::MissingHost)?;
    let scheme = if tls { "https" } else { "http" };
    let own = split_host_port(host).map(|(h, p)| Origin {
        scheme: scheme.into(),
        host: h,
        port: p.unwrap_or(if tls { 443 } else { 80 }),
    });
    match own {
        Some(own) if own == o => Ok(()),
        Some(own) => Err(OriginError::Mismatch {
            origin: shown(),
            expected: own.to_string(),
        }),
        None => Err(OriginError::Mismatch {
            origin: shown(),
            expected: format!("{scheme}://{}", crate::escape_for_log(host, SHOWN)),
        }),
    }
}

/// Why a `Host` header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// No `Host` header, or an empty one.
    #[error("request has no Host header: expected the name or address of this hub")]
    Missing,
    /// Not `name[:port]` or `[v6][:port]`.
    #[error("malformed Host header {0}: expected name[:port] or [IPv6][:port]")]
    Malformed(String),
    /// A name that is not loopback and not configured: possibly DNS rebinding.
    #[error(
        "host name {0} is not one of this hub's names: add it to hostnames in espcam.toml to serve it"
    )]
    UnknownName(String),
    /// An IP address the hub does not listen on.
    #[error("address {0} is not one this hub listens on")]
    NotBound(IpAddr),
}

/// Whether `host` (the `Host` header) names this hub, against DNS rebinding: a page on
/// `evil.example` whose name the attacker later points at the hub's address would
/// otherwise be same-origin with it. Allowed:
///
/// - `localhost` and `*.localhost` (browsers resolve these to loopback themselves);
/// - IP literals that are loopback, one of `bound`, or any address when the hub is bound
///   to `0.0.0.0` / `::` (an IP literal cannot be rebound);
/// - the configured `names`, ignoring case and a trailing dot.
///
/// The port is ignored (rebinding does not depend on it).
pub fn host_allowed(host: &str, names: &[String], bound: &[IpAddr]) -> Result<(), HostError> {
    if host.trim().is_empty() {
        return Err(HostError::Missing);
    }
    let (h, _port) = split_host_port(host)
        .ok_or_else(|| HostError::Malformed(crate::escape_for_log(host, SHOWN)))?;
    let ip = match h.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
        Some(v6) => v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        None => h.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
    };
    if let Some(ip) = ip {
        let canon = |a: IpAddr| match a {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
            v4 => v4,
        };
        let ip = canon(ip);
        return if ip.is_loopback() || bound.iter().any(|b| b.is_unspecified() || canon(*b) == ip) {
            Ok(())
        } else {
            Err(HostError::NotBound(ip))
        };
    }
    if h == "localhost" || h.ends_with(".localhost") {
        return Ok(());
    }
    let known = names.iter().any(|n| {
        let n = n.trim();
        n.strip_suffix('.').unwrap_or(n).eq_ignore_ascii_case(&h)
    });
    if known {
        Ok(())
    } else {
        Err(HostError::UnknownName(crate::escape_for_log(&h, SHOWN)))
    }
}

/// The `auth` setting: `auto` (the default), `on`, `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// Login required unless every listener is on loopback.
    #[default]
    Auto,
    /// Login always required.
    On,
    /// No login anywhere (logged as a warning at every start, shown in the dashboard).
    Off,
}

/// An `auth` value other than `auto`, `on`, `off`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("auth = {0:?} is not a mode: expected \"auto\", \"on\" or \"off\"")]
pub struct AuthModeError(pub String);

impl FromStr for AuthMode {
    type Err = AuthModeError;
    fn from_str(s: &str) -> Result<Self, AuthModeError> {
        match s {
            "auto" => Ok(Self::Auto),
            "on" => Ok(Self::On),
            "off" => Ok(Self::Off),
            o => Err(AuthModeError(o.chars().take(40).collect())),
        }
    }
}

/// What [`decide_mode`] concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeDecision {
    /// Login on every door, pairing for unlisted cameras; create the first admin
    /// ([`crate::Auth::ensure_initial_admin`]) when no user exists.
    Required,
    /// `auto` and every listener on loopback: no login, cameras admitted as before (the
    /// `serve --demo` case). Log once that the hub is local-only.
    LoopbackOnly,
    /// `auth = "off"`: no login anywhere. Warn at every start, show a dashboard banner.
    Disabled,
}

impl ModeDecision {
    /// Whether requests need a credential and unlisted cameras need pairing.
    pub fn login_required(self) -> bool {
        self == ModeDecision::Required
    }
}

/// Decides whether login is on, from the `auth` setting and the addresses the hub listens
/// on (an unspecified address, `0.0.0.0` or `::`, counts as non-loopback).
pub fn decide_mode(mode: AuthMode, bound: &[IpAddr]) -> ModeDecision {
    match mode {
        AuthMode::On => ModeDecision::Required,
        AuthMode::Off => ModeDecision::Disabled,
        AuthMode::Auto if !bound.is_empty() && bound.iter().all(IpAddr::is_loopback) => {
            ModeDecision::LoopbackOnly
        }
        AuthMode::Auto => ModeDecision::Required,
    }
}

/// `s` made safe for one log line (`max_chars` ≥ 1): control characters (newlines,
/// terminal escapes), Unicode line/paragraph separators and bidirectional overrides are
/// written as `\n`, `\r`, `\t`, `\u{…}`, a backslash as `\\` (so an escape in the output
/// always means an escaped character in the input), and the result is cut to at
/// most `max_chars` characters, ending with `…` when cut (an escape is never split). A
/// peer-supplied string can then neither forge a log line nor hide text.
pub fn escape_for_log(s: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_chars.saturating_mul(4)) + 3);
    let mut count = 0usize;
    let mut chars = s.chars().peekable();
    let mut piece = String::new();
    while let Some(c) = chars.next() {
        piece.clear();
        match c {
            '\n' => piece.push_str("\\n"),
            '\r' => piece.push_str("\\r"),
            '\t' => piece.push_str("\\t"),
            '\\' => piece.push_str("\\\\"),
            c if c.is_control() || is_invisible_format(c) => {
                let _ = write!(piece, "\\u{{{:x}}}", c as u32);
            }
            c => piece.push(c),
        }
        let n = piece.chars().count();
        // Room for the ellipsis whenever more input follows.
        let reserve = usize::from(chars.peek().is_some());
        if count + n + reserve > max_chars {
            out.push('…');
            return out;
        }
        out.push_str(&piece);
        count += n;
    }
    out
}

/// Characters that change how a line reads without being control characters: line and
/// paragraph separators, bidirectional marks, embeddings, overrides and isolates, and the
/// byte-order mark / zero-width no-break space.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
        | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow() -> Vec<String> {
        vec!["https://ha.example:8123".into()]
    }

    #[test]
    fn origin_decisions() {
        use OriginError as E;
        type Case = (
            Option<&'static str>, // Host
            Option<&'static str>, // Origin
            Option<&'static str>, // Sec-Fetch-Site
            bool,                 // tls
            Result<(), fn(&OriginError) -> bool>,
        );
        let cases: Vec<Case> = vec![
            // Same origin, with and without the fetch metadata.
            (
                Some("hub:6971"),
                Some("http://hub:6971"),
                None,
                false,
                Ok(()),
            ),
            (
                Some("hub:6971"),
                Some("http://hub:6971"),
                Some("same-origin"),
                false,
                Ok(()),
            ),
            (
                Some("HUB:6971"),
                Some("http://hub:6971"),
                None,
                false,
                Ok(()),
            ),
            (Some("hub"), Some("http://hub:80"), None, false, Ok(())),
            (Some("hub:443"), Some("https://hub"), None, true, Ok(())),
            (
                Some("127.0.0.1:6971"),
                Some("http://127.0.0.1:6971"),
                None,
                false,
                Ok(()),
            ),
            (
                Some("[::1]:6971"),
                Some("http://[::1]:6971"),
                None,
                false,
                Ok(()),
            ),
            (
                Some("[0:0::1]:6971"),
                Some("http://[::1]:6971"),
                None,
                false,
                Ok(()),
            ),
            // The attacker's page.
            (
                Some("hub:6971"),
                Some("http://evil.example"),
                None,
                false,
                Err(|e| matches!(e, E::Mismatch { .. })),
            ),
            (
                Some("hub:6971"),
                Some("http://evil.example"),
                Some("cross-site"),
                false,
                Err(|e| matches!(e, E::CrossSite { .. })),
            ),
            (
                Some("hub:6971"),
                Some("null"),
                None,
                false,
                Err(|e| *e == E::Null),
            ),
            // Same host, another port: another origin.
            (
                Some("hub:6971"),
                Some("http://hub:8080"),
                Some("same-site"),
                false,
                Err(|e| matches!(e, E::Mismatch { .. })),
            ),
            (
                Some("[::1]:6971"),
                Some("http://[::1]:6972"),
                None,
                false,
                Err(|e| matches!(e, E::Mismatch { .. })),
            ),
            // Scheme matters: an http page is not the https hub.
            (
                Some("hub"),
                Some("http://hub:443"),
                None,
                true,
                Err(|e| matches!(e, E::Mismatch { .. })),
            ),
            // No Origin: navigations and non-browser clients.
            (Some("hub:6971"), None, None, false, Ok(())),
            (Some("hub:6971"), None, Some("same-origin"), false, Ok(())),
            (Some("hub:6971"), None, Some("none"), false, Ok(())),
            (
                Some("hub:6971"),
                None,
                Some("cross-site"),
                false,
                Err(|e| matches!(e, E::CrossSite { .. })),
            ),
            (
                Some("hub:6971"),
                None,
                Some("same-site"),
                false,
                Err(|e| matches!(e, E::NoOrigin(_))),
            ),
            // The allow-list, exact after normalisation, even cross-site.
            (
                Some("hub:6971"),
                Some("https://HA.example:8123"),
                Some("cross-site"),
                false,
                Ok(()),
            ),
            (
                Some("hub:6971"),
                Some("https://ha.example"),
                None,
                false,
                Err(|e| matches!(e, E::Mismatch { .. })),
            ),
            (
                Some("hub:6971"),
                Some("http://ha.example:8123"),
                None,
                false,
                Err(|e| matches!(e, E::Mismatch { .. })),
            ),
            // Garbage.
            (
                Some("hub:6971"),
                Some("hub:6971"),
                None,
                false,
                Err(|e| matches!(e, E::Malformed(_))),
            ),
            (
                Some("hub:6971"),
                Some("http://hub:6971/x"),
                None,
                false,
                Err(|e| matches!(e, E::Malformed(_))),
            ),
            (
                Some("hub:6971"),
                Some("http://user@hub:6971"),
                None,
                false,
                Err(|e| matches!(e, E::Malformed(_))),
            ),
            (
                Some("hub:6971"),
                Some("ftp://hub:6971"),
                None,
                false,
                Err(|e| matches!(e, E::Malformed(_))),
            ),
            (
                None,
                Some("http://hub:6971"),
                None,
                false,
                Err(|e| *e == E::MissingHost),
            ),
        ];
        for (host, origin, fetch, tls, want) in cases {
            let got = origin_allowed(host, origin, fetch, &allow(), tls);
            match (&got, want) {
                (Ok(()), Ok(())) => {}
                (Err(e), Err(pred)) => assert!(pred(e), "{host:?} {origin:?} {fetch:?}: {e:?}"),
                _ => panic!("{host:?} {origin:?} {fetch:?} tls={tls}: got {got:?}"),
            }
        }
    }

    #[test]
    fn origin_errors_read_well_and_are_escaped() {
        let e = origin_allowed(
            Some("hub:6971"),
            Some("http://evil.example"),
            None,
            &[],
            false,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "origin http://evil.example refused: expected http://hub:6971 (this hub) or one in allowed_origins"
        );
        let e = origin_allowed(Some("hub"), Some("http://a\nINFO forged"), None, &[], false)
            .unwrap_err();
        assert!(!e.to_string().contains('\n'), "{e}");
        assert_eq!(
            normalize_origin("HTTPS://HA.example:443").unwrap(),
            "https://ha.example"
        );
        assert!(normalize_origin("ha.example").is_err());
    }

    #[test]
    fn host_decisions() {
        let names = vec!["espcam.lan".to_string(), "Cams.Example.".to_string()];
        let any = [IpAddr::V4(Ipv4Addr::UNSPECIFIED)];
        let one: [IpAddr; 1] = ["192.168.1.10".parse().unwrap()];
        let ok = |h: &str, b: &[IpAddr]| host_allowed(h, &names, b);
        for h in [
            "localhost",
            "localhost:6971",
            "LOCALHOST.",
            "app.localhost:1",
            "127.0.0.1",
            "127.0.0.5:6971",
            "[::1]:6971",
            "[::ffff:127.0.0.1]",
            "espcam.lan",
            "ESPCAM.LAN:6971",
            "cams.example",
            "cams.example.:80",
        ] {
            assert_eq!(ok(h, &one), Ok(()), "{h}");
        }
        assert_eq!(ok("192.168.1.10:6971", &one), Ok(()));
        assert_eq!(ok("[::ffff:192.168.1.10]:6971", &one), Ok(()));
        assert_eq!(ok("10.0.0.9", &any), Ok(()));
        assert_eq!(
            ok("[fe80::1]:6971", &[IpAddr::V6(Ipv6Addr::UNSPECIFIED)]),
            Ok(())
        );
        assert_eq!(
            ok("10.0.0.9", &one),
            Err(HostError::NotBound("10.0.0.9".parse().unwrap()))
        );
        // DNS rebinding: the attacker's name resolving to us.
        let e = ok("evil.example:6971", &any).unwrap_err();
        assert_eq!(e, HostError::UnknownName("evil.example".into()));
        assert!(e.to_string().contains("hostnames in espcam.toml"), "{e}");
        assert_eq!(
            ok("localhost.evil.example", &any),
            Err(HostError::UnknownName("localhost.evil.example".into()))
        );
        assert_eq!(ok("", &any), Err(HostError::Missing));
        for bad in [
            "::1",
            "[::1",
            "[zz::1]:80",
            "hub:port",
            "hub:",
            "a b",
            "hub:99999",
        ] {
            assert!(
                matches!(ok(bad, &any), Err(HostError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn modes() {
        let lo: [IpAddr; 2] = ["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
        let all = [IpAddr::V4(Ipv4Addr::UNSPECIFIED)];
        let lan: [IpAddr; 1] = ["192.168.1.10".parse().unwrap()];
        assert_eq!(decide_mode(AuthMode::Auto, &lo), ModeDecision::LoopbackOnly);
        assert_eq!(decide_mode(AuthMode::Auto, &all), ModeDecision::Required);
        assert_eq!(decide_mode(AuthMode::Auto, &lan), ModeDecision::Required);
        assert_eq!(decide_mode(AuthMode::Auto, &[]), ModeDecision::Required);
        assert_eq!(decide_mode(AuthMode::On, &lo), ModeDecision::Required);
        assert_eq!(decide_mode(AuthMode::Off, &all), ModeDecision::Disabled);
        assert!(!ModeDecision::Disabled.login_required());
        assert_eq!("off".parse::<AuthMode>(), Ok(AuthMode::Off));
        assert_eq!(
            "Off".parse::<AuthMode>().unwrap_err().to_string(),
            "auth = \"Off\" is not a mode: expected \"auto\", \"on\" or \"off\""
        );
    }

    #[test]
    fn log_escaping() {
        assert_eq!(escape_for_log("plain text", 80), "plain text");
        assert_eq!(
            escape_for_log("fw 1.0\nINFO camera admin logged in", 80),
            "fw 1.0\\nINFO camera admin logged in"
        );
        assert_eq!(escape_for_log("a\r\tb\\n", 80), "a\\r\\tb\\\\n");
        assert_eq!(escape_for_log("\u{1b}[31mred", 80), "\\u{1b}[31mred");
        assert_eq!(escape_for_log("abc\u{202e}fed", 80), "abc\\u{202e}fed");
        assert_eq!(escape_for_log("x\u{2028}y", 80), "x\\u{2028}y");
        assert_eq!(escape_for_log("\0", 80), "\\u{0}");
        // Cut with an ellipsis, never inside an escape, never over the bound.
        assert_eq!(escape_for_log("abcdef", 4), "abc…");
        assert_eq!(escape_for_log("abcd", 4), "abcd");
        assert_eq!(escape_for_log("ab\ncd", 4), "ab…");
        assert_eq!(escape_for_log("日本語のテキスト", 5), "日本語の…");
        let long = "\n".repeat(10_000);
        let out = escape_for_log(&long, 100);
        assert!(out.chars().count() <= 100, "{}", out.chars().count());
        assert!(out.ends_with('…'));
        assert_eq!(escape_for_log("", 10), "");
        assert_eq!(escape_for_log("abc", 0), "…");
    }
}
