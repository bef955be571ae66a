//! The audit log: who changed which setting, rebooted which camera, accepted which camera,
//! added or removed which user or token, from which address, and when. Kept in the auth
//! database, newest [`AuthOptions::max_audit_entries`](crate::AuthOptions) rows. Callers
//! record after the action succeeded. Strings are stored as given, cut to bounded lengths;
//! whoever prints them escapes them ([`crate::escape_for_log`]), the dashboard shows them
//! as text. This module must never record a secret.

use std::net::IpAddr;

use rusqlite::params;

use crate::error::DbError;
use crate::{Actor, Auth, from_db, to_db};

/// Most entries one [`Auth::audit_list`] returns.
pub const MAX_AUDIT_LIMIT: u32 = 500;
/// Longest `target` kept, characters.
const MAX_TARGET: usize = 100;
/// Longest `detail` kept, characters.
const MAX_DETAIL: usize = 1000;

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// A successful dashboard login.
    Login,
    /// A failed login (target: the name tried, cut and escaped).
    LoginFailed,
    /// A logout.
    Logout,
    /// Camera settings changed (detail: the fields).
    Settings,
    /// Camera reboot.
    Reboot,
    /// A saved snapshot deleted.
    SnapshotDelete,
    /// A firmware update started.
    Firmware,
    /// A user added (detail: the role).
    UserAdd,
    /// A user's password changed.
    UserPasswd,
    /// A user removed.
    UserRemove,
    /// A user's role changed (detail: the new role).
    UserRole,
    /// A token added (detail: the role).
    TokenAdd,
    /// A token revoked.
    TokenRevoke,
    /// A pending camera accepted.
    CameraAccept,
    /// A camera forgotten.
    CameraRemove,
}

impl AuditAction {
    /// The stored name: `login`, `user.add`, `camera.accept`, …
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Login => "login",
            AuditAction::LoginFailed => "login.failed",
            AuditAction::Logout => "logout",
            AuditAction::Settings => "camera.settings",
            AuditAction::Reboot => "camera.reboot",
            AuditAction::SnapshotDelete => "snapshot.delete",
            AuditAction::Firmware => "camera.firmware",
            AuditAction::UserAdd => "user.add",
            AuditAction::UserPasswd => "user.passwd",
            AuditAction::UserRemove => "user.remove",
            AuditAction::UserRole => "user.role",
            AuditAction::TokenAdd => "token.add",
            AuditAction::TokenRevoke => "token.revoke",
            AuditAction::CameraAccept => "camera.accept",
            AuditAction::CameraRemove => "camera.remove",
        }
    }
}

/// One entry to record.
#[derive(Debug, Clone, Copy)]
pub struct AuditRecord<'a> {
    /// Who.
    pub actor: &'a Actor,
    /// What.
    pub action: AuditAction,
    /// On what: a camera id, user or token name, snapshot id ("" when none).
    pub target: &'a str,
    /// Particulars, e.g. `quality=10 vflip=1` ("" when none).
    pub detail: &'a str,
    /// The client's address (`None` for the CLI).
    pub addr: Option<IpAddr>,
}

/// One entry as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Increasing id (the paging cursor).
    pub id: i64,
    /// When, µs.
    pub at_us: u64,
    /// `user:alice`, `token:ha`, `cli`, `anonymous`, `mqtt`.
    pub actor: String,
    /// [`AuditAction::as_str`] (or a name from a newer espcam).
    pub action: String,
    /// The target.
    pub target: String,
    /// The detail.
    pub detail: String,
    /// The client's address.
    pub addr: Option<String>,
}

fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

impl Auth {
    /// Appends an entry; returns its id. Every `min(1000, max)`th entry prunes those older
    /// than the newest `max` (configured), so the table holds at most `max + 1000` rows.
    pub fn audit(&self, rec: AuditRecord<'_>, now_us: u64) -> Result<i64, DbError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO audit (at_us, actor, action, target, detail, addr)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                to_db(now_us),
                rec.actor.to_string(),
                rec.action.as_str(),
                cut(rec.target, MAX_TARGET),
                cut(rec.detail, MAX_DETAIL),
                rec.addr.map(|a| a.to_string()),
            ],
        )?;
        let id = conn.last_insert_rowid();
        let max = i64::from(self.options.max_audit_entries.max(1));
        if id % max.min(1000) == 0 {
            conn.execute("DELETE FROM audit WHERE id <= ?1", [id - max])?;
        }
        Ok(id)
    }

    /// Entries newest first: at most `limit` (1..=500, clamped), older than the entry id
    /// `before` when given (pass the last id of the previous page).
    pub fn audit_list(&self, limit: u32, before: Option<i64>) -> Result<Vec<AuditEntry>, DbError> {
        let limit = limit.clamp(1, MAX_AUDIT_LIMIT);
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT id, at_us, actor, action, target, detail, addr FROM audit
             WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = st.query_map(params![before.unwrap_or(i64::MAX), limit], |r| {
            Ok(AuditEntry {
                id: r.get(0)?,
                at_us: from_db(r.get(1)?),
                actor: r.get(2)?,
                action: r.get(3)?,
                target: r.get(4)?,
                detail: r.get(5)?,
                addr: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv6Addr};

    use crate::test_util::*;
    use crate::*;

    #[test]
    fn record_and_page() {
        let (_d, auth) = auth();
        let alice = Actor::User(UserName::new("alice").unwrap());
        let addr = Some(IpAddr::V6(Ipv6Addr::LOCALHOST));
        for i in 0..5u64 {
            auth.audit(
                AuditRecord {
                    actor: &alice,
                    action: AuditAction::Settings,
                    target: "porch",
                    detail: &format!("quality={i}"),
                    addr,
                },
                T0 + i,
            )
            .unwrap();
        }
        auth.audit(
            AuditRecord {
                actor: &Actor::Cli,
                action: AuditAction::UserAdd,
                target: "bob",
                detail: "viewer",
                addr: None,
            },
            T0 + 10,
        )
        .unwrap();
        let page = auth.audit_list(4, None).unwrap();
        assert_eq!(page.len(), 4);
        assert_eq!(page[0].actor, "cli");
        assert_eq!(page[0].action, "user.add");
        assert_eq!(page[0].addr, None);
        assert_eq!(page[1].actor, "user:alice");
        assert_eq!(page[1].detail, "quality=4");
        assert_eq!(page[1].addr.as_deref(), Some("::1"));
        assert_eq!(page[1].at_us, T0 + 4);
        let rest = auth.audit_list(4, Some(page[3].id)).unwrap();
        assert_eq!(
            rest.iter().map(|e| e.detail.as_str()).collect::<Vec<_>>(),
            ["quality=1", "quality=0"]
        );
    }

    #[test]
    fn strings_are_bounded_and_old_entries_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let auth = Auth::open_with(
            dir.path(),
            AuthOptions {
                max_audit_entries: 10,
                ..AuthOptions::for_tests()
            },
        )
        .unwrap();
        let long = "x".repeat(5000);
        for i in 0..25u64 {
            auth.audit(
                AuditRecord {
                    actor: &Actor::Anonymous,
                    action: AuditAction::Reboot,
                    target: &long,
                    detail: &long,
                    addr: None,
                },
                T0 + i,
            )
            .unwrap();
        }
        let all = auth.audit_list(500, None).unwrap();
        // Pruned at entry 20 to ids 11..=20; 21..=25 came after.
        assert_eq!(all.len(), 15);
        assert_eq!((all[0].id, all[14].id), (25, 11));
        assert_eq!(all[0].target.len(), 100);
        assert_eq!(all[0].detail.len(), 1000);
    }
}
