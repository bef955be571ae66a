//! Camera pairing, trust on first use: a camera that is not in the hub's configuration and
//! presents a token is held as *pending* (no frames accepted, nothing shown to viewers) until
//! an admin accepts it; from then on the hub remembers the SHA-256 of that token and refuses
//! the same id with any other token. Configured `[[camera]]` tokens bypass this table; a hub
//! running without auth does not consult it. This module must never store a camera token,
//! only its digest, and never let the pending list grow without bound.

use std::net::IpAddr;

use espcam_proto::CameraId;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use crate::error::{DbError, PairingError};
use crate::secret::{digest, digests_equal};
use crate::{Auth, from_db, to_db};

/// Longest camera token accepted for pairing, bytes.
const MAX_TOKEN_LEN: usize = 256;

/// How often a known camera's `last_seen` is written (reconnect storms must not write on
/// every attempt).
const TOUCH_EVERY_US: u64 = 60_000_000;

/// Where a camera stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairingState {
    /// Seen, waiting for an admin.
    Pending,
    /// Accepted: its token is trusted.
    Accepted,
}

impl PairingState {
    fn as_str(self) -> &'static str {
        match self {
            PairingState::Pending => "pending",
            PairingState::Accepted => "accepted",
        }
    }
}

/// What the hub does with a camera's hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairingDecision {
    /// Paired with this token: admit it.
    Accepted,
    /// Waiting for an admin: keep the link open (or close it politely), accept no frames,
    /// show nothing to viewers. `new` is true the first time this id is seen, the moment
    /// to tell admins.
    Pending {
        /// First time seen.
        new: bool,
    },
    /// Refuse the connection (close code 1008 with the refusal's message).
    Refused(PairingRefusal),
}

/// Why a camera was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PairingRefusal {
    /// The id is paired (or pending) with another token: an impostor, or a camera whose
    /// token changed (an admin removes the old entry to re-pair it).
    #[error("camera id is paired with another token")]
    OtherToken,
    /// No token, or one over 256 bytes: trust on first use needs a secret to remember.
    #[error("pairing needs a camera token of 1-256 bytes")]
    BadToken,
    /// Too many cameras are already waiting.
    #[error("too many cameras are waiting for pairing ({0}): accept or remove some first")]
    TooManyPending(u32),
}

/// A camera in the pairing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairedCamera {
    /// Its id.
    pub id: String,
    /// Pending or accepted.
    pub state: PairingState,
    /// First hello, µs.
    pub first_seen_us: u64,
    /// Latest hello (to within a minute), µs.
    pub last_seen_us: u64,
    /// Address of the latest hello, if known.
    pub addr: Option<String>,
}

impl Auth {
    /// Decides on a camera's hello (`id`, `token`) from `addr`, recording a new camera as
    /// pending.
    pub fn pairing_check(
        &self,
        id: &CameraId,
        token: &str,
        addr: Option<IpAddr>,
        now_us: u64,
    ) -> Result<PairingDecision, DbError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Ok(PairingDecision::Refused(PairingRefusal::BadToken));
        }
        let hash = digest(token);
        let addr = addr.map(|a| a.to_string());
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row: Option<(Vec<u8>, String, i64)> = tx
            .query_row(
                "SELECT token_hash, state, last_seen_us FROM cameras WHERE id = ?1",
                [id.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let decision = match row {
            Some((stored, state, last_seen)) => {
                if !digests_equal(&stored, &hash) {
                    return Ok(PairingDecision::Refused(PairingRefusal::OtherToken));
                }
                if now_us.saturating_sub(from_db(last_seen)) >= TOUCH_EVERY_US {
                    tx.execute(
                        "UPDATE cameras SET last_seen_us = ?1, addr = ?2 WHERE id = ?3",
                        params![to_db(now_us), addr, id.as_str()],
                    )?;
                }
                if state == PairingState::Accepted.as_str() {
                    PairingDecision::Accepted
                } else {
                    PairingDecision::Pending { new: false }
                }
            }
            None => {
                let pending: i64 = tx.query_row(
                    "SELECT count(*) FROM cameras WHERE state = 'pending'",
                    [],
                    |r| r.get(0),
                )?;
                let max = self.options.max_pending_cameras;
                if pending >= i64::from(max) {
                    return Ok(PairingDecision::Refused(PairingRefusal::TooManyPending(
                        max,
                    )));
                }
                tx.execute(
                    "INSERT INTO cameras (id, token_hash, state, first_seen_us, last_seen_us, addr)
                     VALUES (?1, ?2, 'pending', ?3, ?3, ?4)",
                    params![id.as_str(), hash.as_slice(), to_db(now_us), addr],
                )?;
                PairingDecision::Pending { new: true }
            }
        };
        tx.commit()?;
        Ok(decision)
    }

    /// Accepts a pending camera (accepting an accepted one is a no-op).
    pub fn accept_camera(&self, id: &CameraId, now_us: u64) -> Result<(), PairingError> {
        let conn = self.conn();
        let n = conn.execute(
            "UPDATE cameras SET state = 'accepted', accepted_us = ?1
             WHERE id = ?2 AND state = 'pending'",
            params![to_db(now_us), id.as_str()],
        )?;
        if n == 0 {
            let exists: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM cameras WHERE id = ?1)",
                [id.as_str()],
                |r| r.get(0),
            )?;
            if !exists {
                return Err(PairingError::NotFound(id.to_string()));
            }
        }
        Ok(())
    }

    /// Forgets a camera, pending or accepted: its next hello starts pairing afresh (the way
    /// to re-pair a camera whose token changed, or to drop an impostor's pending claim).
    pub fn remove_camera(&self, id: &CameraId) -> Result<(), PairingError> {
        let n = self
            .conn()
            .execute("DELETE FROM cameras WHERE id = ?1", [id.as_str()])?;
        if n == 0 {
            return Err(PairingError::NotFound(id.to_string()));
        }
        Ok(())
    }

    /// Cameras waiting for an admin, oldest first.
    pub fn list_pending(&self) -> Result<Vec<PairedCamera>, DbError> {
        self.list_cameras_where("WHERE state = 'pending'")
    }

    /// Every camera in the pairing table, by id.
    pub fn list_paired(&self) -> Result<Vec<PairedCamera>, DbError> {
        self.list_cameras_where("")
    }

    fn list_cameras_where(&self, filter: &str) -> Result<Vec<PairedCamera>, DbError> {
        let conn = self.conn();
        let order = if filter.is_empty() {
            "id"
        } else {
            "first_seen_us, id"
        };
        let mut st = conn.prepare(&format!(
            "SELECT id, state, first_seen_us, last_seen_us, addr FROM cameras {filter} ORDER BY {order}"
        ))?;
        let rows = st.query_map([], |r| {
            let state: String = r.get(1)?;
            Ok(PairedCamera {
                id: r.get(0)?,
                state: if state == "accepted" {
                    PairingState::Accepted
                } else {
                    PairingState::Pending
                },
                first_seen_us: from_db(r.get(2)?),
                last_seen_us: from_db(r.get(3)?),
                addr: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use crate::test_util::*;
    use crate::*;
    use espcam_proto::CameraId;

    fn cam(s: &str) -> CameraId {
        CameraId::new(s).unwrap()
    }
    const ADDR: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)));

    #[test]
    fn trust_on_first_use() {
        let (_d, auth) = auth();
        let porch = cam("porch");
        assert_eq!(
            auth.pairing_check(&porch, "porch-secret", ADDR, T0)
                .unwrap(),
            PairingDecision::Pending { new: true }
        );
        assert_eq!(
            auth.pairing_check(&porch, "porch-secret", ADDR, T0 + SEC)
                .unwrap(),
            PairingDecision::Pending { new: false }
        );
        // Someone else claiming the pending id is refused: the first claim holds.
        assert_eq!(
            auth.pairing_check(&porch, "impostor", None, T0).unwrap(),
            PairingDecision::Refused(PairingRefusal::OtherToken)
        );
        let pending = auth.list_pending().unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].id, "porch");
        assert_eq!(pending[0].addr.as_deref(), Some("10.0.0.7"));

        auth.accept_camera(&porch, T0 + 2 * SEC).unwrap();
        auth.accept_camera(&porch, T0 + 3 * SEC).unwrap(); // idempotent
        assert!(auth.list_pending().unwrap().is_empty());
        assert_eq!(
            auth.pairing_check(&porch, "porch-secret", ADDR, T0 + 4 * SEC)
                .unwrap(),
            PairingDecision::Accepted
        );
        assert_eq!(
            auth.pairing_check(&porch, "porch-secreT", ADDR, T0)
                .unwrap(),
            PairingDecision::Refused(PairingRefusal::OtherToken)
        );
        assert_eq!(auth.list_paired().unwrap()[0].state, PairingState::Accepted);

        // Re-pairing: remove, and the next hello is new again.
        auth.remove_camera(&porch).unwrap();
        assert_eq!(
            auth.pairing_check(&porch, "new-token", ADDR, T0).unwrap(),
            PairingDecision::Pending { new: true }
        );
        let e = auth.accept_camera(&cam("ghost"), T0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "camera ghost is not waiting for pairing and is not paired"
        );
        assert!(matches!(
            auth.remove_camera(&cam("ghost")),
            Err(PairingError::NotFound(_))
        ));
    }

    #[test]
    fn tokens_are_required_and_pending_is_bounded() {
        let (_d, auth) = auth();
        assert_eq!(
            auth.pairing_check(&cam("a"), "", ADDR, T0).unwrap(),
            PairingDecision::Refused(PairingRefusal::BadToken)
        );
        assert_eq!(
            auth.pairing_check(&cam("a"), &"x".repeat(257), ADDR, T0)
                .unwrap(),
            PairingDecision::Refused(PairingRefusal::BadToken)
        );
        for i in 0..32 {
            let d = auth
                .pairing_check(&cam(&format!("c{i}")), "tok", ADDR, T0)
                .unwrap();
            assert_eq!(d, PairingDecision::Pending { new: true });
        }
        assert_eq!(
            auth.pairing_check(&cam("one-more"), "tok", ADDR, T0)
                .unwrap(),
            PairingDecision::Refused(PairingRefusal::TooManyPending(32))
        );
        // A known pending one still gets its answer, and accepting makes room.
        assert_eq!(
            auth.pairing_check(&cam("c0"), "tok", ADDR, T0).unwrap(),
            PairingDecision::Pending { new: false }
        );
        auth.accept_camera(&cam("c0"), T0).unwrap();
        assert_eq!(
            auth.pairing_check(&cam("one-more"), "tok", ADDR, T0)
                .unwrap(),
            PairingDecision::Pending { new: true }
        );
        assert_eq!(auth.list_pending().unwrap().len(), 32);
    }
}
