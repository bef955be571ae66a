//! Random secrets and their digests: session ids, API tokens, generated passwords, and the
//! SHA-256 under which every high-entropy secret is stored. SHA-256 (not argon2) is right for
//! these: they carry 256 bits from the OS generator, so there is nothing to brute-force, and
//! a fast hash lets every request be checked with one indexed lookup. This module must never
//! store or log a secret, only its digest.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The OS random generator failed (no entropy source): nothing secret can be made.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(String);

/// `N` bytes from the operating system's generator.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| RandomError(e.to_string()))?;
    Ok(b)
}

/// 32 random bytes as 43 characters of base64url without padding.
pub(crate) fn random_b64url_32() -> Result<String, RandomError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// SHA-256 of a secret as stored in the database.
pub(crate) fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Compares two digests in constant time. Rows are found by their digest (an indexed
/// equality lookup, whose timing reveals at most which *digests* share a prefix, useless
/// without a preimage); this second comparison keeps the final yes/no free of timing too.
pub(crate) fn digests_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Whether `s` is exactly 43 characters of the base64url alphabet, the shape of every
/// secret [`random_b64url_32`] makes. Checked before any database work, so garbage costs
/// nothing.
pub(crate) fn is_b64url_32(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_well_formed() {
        let a = random_b64url_32().unwrap();
        let b = random_b64url_32().unwrap();
        assert_ne!(a, b);
        assert!(is_b64url_32(&a), "{a}");
        assert!(!is_b64url_32(&a[1..]));
        assert!(!is_b64url_32(&format!("{}=", &a[1..])));
    }

    #[test]
    fn digest_is_sha256() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            digest("abc")[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "first bytes of the known digest"
        );
        assert!(digests_equal(&digest("x"), &digest("x")));
        assert!(!digests_equal(&digest("x"), &digest("y")));
        assert!(!digests_equal(&digest("x")[..31], &digest("x")));
    }
}
