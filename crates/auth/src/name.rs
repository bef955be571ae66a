//! Validated names and passwords. A [`UserName`] or [`TokenName`] is always 1–32 characters
//! of `A-Z a-z 0-9 _ - .` starting with a letter or digit, so it can be printed in a table,
//! a log line or a URL without escaping; a [`Password`] is always within the length bounds.
//! Errors name the rule that was broken. This module must never echo more than 40 characters
//! of what it was given.

use std::fmt;
use std::str::FromStr;

/// Longest user or token name.
pub const MAX_NAME_LEN: usize = 32;
/// Shortest password accepted for a user.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted (bytes): bounds the work a login request can ask for.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Why a user or token name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing given.
    #[error("{kind} name is empty: expected 1-32 characters of A-Z a-z 0-9 _ - .")]
    Empty {
        /// `user` or `token`.
        kind: &'static str,
    },
    /// Over [`MAX_NAME_LEN`] characters.
    #[error("{kind} name {shown:?} is {len} characters long: at most 32 are allowed")]
    TooLong {
        /// `user` or `token`.
        kind: &'static str,
        /// The first 40 characters.
        shown: String,
        /// Its length in characters.
        len: usize,
    },
    /// A character outside the allowed set.
    #[error(
        "{kind} name {shown:?} contains {ch:?} at position {pos}: only A-Z a-z 0-9 _ - . are allowed"
    )]
    BadChar {
        /// `user` or `token`.
        kind: &'static str,
        /// The first 40 characters.
        shown: String,
        /// The offending character.
        ch: char,
        /// Its position, counting from 1.
        pos: usize,
    },
    /// Starts with `_`, `-` or `.`.
    #[error("{kind} name {shown:?} must start with a letter or a digit")]
    BadStart {
        /// `user` or `token`.
        kind: &'static str,
        /// The first 40 characters.
        shown: String,
    },
}

fn shown(s: &str) -> String {
    s.chars().take(40).collect()
}

fn validate(kind: &'static str, s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty { kind });
    }
    for (i, ch) in s.chars().enumerate() {
        if !(ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.')) {
            return Err(NameError::BadChar {
                kind,
                shown: shown(s),
                ch,
                pos: i + 1,
            });
        }
    }
    // All ASCII from here on, so bytes = characters.
    if s.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            kind,
            shown: shown(s),
            len: s.len(),
        });
    }
    if !s.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(NameError::BadStart {
            kind,
            shown: shown(s),
        });
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $t:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $t(String);

        impl $t {
            /// Validates `s`.
            pub fn new(s: &str) -> Result<Self, NameError> {
                validate($kind, s)?;
                Ok(Self(s.to_string()))
            }

            /// A name this crate itself made (a literal), skipping validation.
            #[allow(dead_code)]
            pub(crate) fn trusted(s: &str) -> Self {
                debug_assert!(validate($kind, s).is_ok());
                Self(s.to_string())
            }

            /// The name.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $t {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A user's login name. Unique regardless of case (`Alice` and `alice` cannot both
    /// exist), compared case-insensitively at login.
    UserName,
    "user"
);
name_type!(
    /// An API token's name (`home-assistant`), unique regardless of case.
    TokenName,
    "token"
);

/// Why a password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Too short.
    #[error("password is {0} characters long: at least 8 are required")]
    TooShort(usize),
    /// Too long.
    #[error("password is {0} bytes long: at most 1024 are allowed")]
    TooLong(usize),
    /// Contains a control character (a newline pasted by mistake, a terminal escape).
    #[error("password contains a control character: use printable characters only")]
    Control,
}

/// A password that meets the rules for setting it. Its `Debug` form never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Validates a new password (8 characters to 1024 bytes, no control characters).
    pub fn new(s: &str) -> Result<Self, PasswordError> {
        if s.len() > MAX_PASSWORD_LEN {
            return Err(PasswordError::TooLong(s.len()));
        }
        let chars = s.chars().count();
        if chars < MIN_PASSWORD_LEN {
            return Err(PasswordError::TooShort(chars));
        }
        if s.chars().any(char::is_control) {
            return Err(PasswordError::Control);
        }
        Ok(Self(s.to_string()))
    }

    /// A password this crate generated.
    pub(crate) fn trusted(s: String) -> Self {
        debug_assert!(Self::new(&s).is_ok());
        Self(s)
    }

    /// The password itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<hidden>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rules_and_errors_name_them() {
        for ok in ["a", "alice", "Bob.Smith", "ha-1", "x_y", &"a".repeat(32)] {
            assert_eq!(UserName::new(ok).unwrap().as_str(), ok);
        }
        let e = |s: &str| UserName::new(s).unwrap_err().to_string();
        assert_eq!(
            e(""),
            "user name is empty: expected 1-32 characters of A-Z a-z 0-9 _ - ."
        );
        assert_eq!(
            e(&"a".repeat(33)),
            format!(
                "user name {:?} is 33 characters long: at most 32 are allowed",
                "a".repeat(33)
            )
        );
        assert_eq!(
            e("a b"),
            "user name \"a b\" contains ' ' at position 2: only A-Z a-z 0-9 _ - . are allowed"
        );
        assert_eq!(
            e("al\nice"),
            "user name \"al\\nice\" contains '\\n' at position 3: only A-Z a-z 0-9 _ - . are allowed"
        );
        assert!(e("jöe").contains("'ö' at position 2"));
        assert_eq!(
            e("-x"),
            "user name \"-x\" must start with a letter or a digit"
        );
        assert_eq!(
            e(".."),
            "user name \"..\" must start with a letter or a digit"
        );
        let t = TokenName::new("ha token").unwrap_err().to_string();
        assert!(t.starts_with("token name"), "{t}");
        // A long hostile name is echoed cut to 40 characters.
        let long = format!("{}\u{1b}[31m", "x".repeat(100));
        assert!(e(&long).len() < 150);
    }

    #[test]
    fn passwords_have_bounds_and_stay_hidden() {
        assert_eq!(
            Password::new("short").unwrap_err().to_string(),
            "password is 5 characters long: at least 8 are required"
        );
        assert_eq!(
            Password::new(&"p".repeat(1025)).unwrap_err(),
            PasswordError::TooLong(1025)
        );
        assert_eq!(
            Password::new("tab\there!").unwrap_err(),
            PasswordError::Control
        );
        // Eight characters, more than eight bytes.
        let p = Password::new("pässwörd").unwrap();
        assert_eq!(p.expose(), "pässwörd");
        assert_eq!(format!("{p:?}"), "Password(<hidden>)");
    }
}
