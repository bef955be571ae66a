//! Password hashing with argon2id, stored as PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$…`).
//!
//! The parameters travel inside each stored string, so verification always uses the ones a
//! hash was made with and the defaults can be raised later without breaking old hashes.
//!
//! Defaults ([`PasswordParams::DEFAULT`]): **m = 19 MiB, t = 2 passes, p = 1 lane**, the
//! OWASP minimum recommendation for argon2id. On a Raspberry Pi 4 class box that is a few
//! tens of milliseconds and 19 MiB per verification; the hub must therefore run
//! verifications on a blocking thread and bound how many run at once (two is plenty), so a
//! login flood costs at most 2 × 19 MiB, and rate-limit failures per address
//! ([`crate::LoginLimiter`]). This module must never log or return a password.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory, KiB.
    pub m_kib: u32,
    /// Passes over the memory.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl PasswordParams {
    /// 19 MiB, 2 passes, 1 lane (OWASP's argon2id minimum).
    pub const DEFAULT: Self = Self {
        m_kib: 19 * 1024,
        t: 2,
        p: 1,
    };

    /// The cheapest parameters argon2 accepts (8 KiB, 1 pass): for tests only, never for
    /// stored passwords anyone relies on.
    pub const INSECURE_FOR_TESTS: Self = Self {
        m_kib: 8,
        t: 1,
        p: 1,
    };

    fn hasher(self) -> Result<Argon2<'static>, HashError> {
        let params = Params::new(self.m_kib, self.t, self.p, None)
            .map_err(|e| HashError(format!("argon2 parameters {self:?} refused: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

impl Default for PasswordParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Hashing failed (bad parameters or no randomness for the salt).
#[derive(Debug, thiserror::Error)]
#[error("could not hash the password: {0}")]
pub struct HashError(String);

/// Hashes `password` with a fresh random salt into a PHC string.
pub(crate) fn hash(password: &str, params: PasswordParams) -> Result<String, HashError> {
    let h = params
        .hasher()?
        .hash_password(password.as_bytes())
        .map_err(|e| HashError(e.to_string()))?;
    Ok(h.to_string())
}

/// Whether `password` matches the PHC string `phc`. A malformed stored string counts as no
/// match (it cannot be verified, and a login must not then succeed).
pub(crate) fn verify(password: &str, phc: &str) -> bool {
    // The instance's own parameters are ignored: the PHC string's are used.
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_cheap_params() {
        let phc = hash("correct horse", PasswordParams::INSECURE_FOR_TESTS).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{phc}");
        assert!(verify("correct horse", &phc));
        assert!(!verify("correct horsE", &phc));
        assert!(!verify("correct horse", "not a phc string"));
        // Salted: the same password hashes differently each time.
        let again = hash("correct horse", PasswordParams::INSECURE_FOR_TESTS).unwrap();
        assert_ne!(phc, again);
    }

    #[test]
    fn default_params_are_recorded_in_the_hash() {
        let phc = hash("pw", PasswordParams::DEFAULT).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("pw", &phc));
    }

    #[test]
    fn bad_params_are_an_error() {
        let e = hash(
            "pw",
            PasswordParams {
                m_kib: 1,
                t: 1,
                p: 1,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("refused"), "{e}");
    }
}
