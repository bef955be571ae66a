//! Roles and what each may do. One table, [`Role::allows`], decides every permission in the
//! hub, so a route can never forget a check that another route makes: the hub maps each
//! route and socket message to one [`Action`] and asks. This module must never grow a third
//! place where permissions are decided.

use std::fmt;
use std::str::FromStr;

/// What a principal may do. `admin` may do everything; `viewer` may watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything, including settings, reboot, deletion, users, tokens, firmware.
    Admin,
    /// Live view, snapshots (taking and viewing), recordings, events; nothing that changes a
    /// camera or the hub.
    Viewer,
}

/// Everything the hub lets a client do, one variant per kind of door.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Camera list and details, live video (`/ws/view`, `stream.mjpg`, `snapshot.jpg`), the
    /// dashboard's read-only `/ws/ui` events.
    View,
    /// Save a snapshot (`POST /api/cameras/{camera}/snapshots`) and read saved ones.
    Snapshot,
    /// Delete a saved snapshot.
    SnapshotDelete,
    /// Change camera settings.
    Settings,
    /// Reboot a camera.
    Reboot,
    /// Add, remove or change users.
    Users,
    /// Add, list or revoke API tokens.
    Tokens,
    /// Update a camera's firmware.
    Firmware,
    /// Accept a camera waiting for pairing.
    CameraAccept,
    /// Forget a paired or pending camera.
    CameraRemove,
    /// Watch recordings.
    Recordings,
    /// Read motion and camera events.
    Events,
    /// Read `/metrics`.
    Metrics,
    /// Read the audit log.
    Audit,
}

impl Action {
    /// Every action, for tables and tests.
    pub const ALL: [Action; 14] = [
        Action::View,
        Action::Snapshot,
        Action::SnapshotDelete,
        Action::Settings,
        Action::Reboot,
        Action::Users,
        Action::Tokens,
        Action::Firmware,
        Action::CameraAccept,
        Action::CameraRemove,
        Action::Recordings,
        Action::Events,
        Action::Metrics,
        Action::Audit,
    ];
}

impl Role {
    /// Whether this role may perform `action`.
    ///
    /// `Metrics` is admin-only: per-camera counters reveal camera ids and activity, which a
    /// viewer sees anyway, but the scrape endpoint is an operator tool and Prometheus should
    /// get its own admin token rather than borrow a viewer's.
    pub fn allows(self, action: Action) -> bool {
        match self {
            Role::Admin => true,
            Role::Viewer => match action {
                Action::View | Action::Snapshot | Action::Recordings | Action::Events => true,
                Action::SnapshotDelete
                | Action::Settings
                | Action::Reboot
                | Action::Users
                | Action::Tokens
                | Action::Firmware
                | Action::CameraAccept
                | Action::CameraRemove
                | Action::Metrics
                | Action::Audit => false,
            },
        }
    }

    /// `"admin"` or `"viewer"`, as stored and as typed on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is neither `admin` nor `viewer`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: expected admin or viewer")]
pub struct RoleError(pub String);

impl FromStr for Role {
    type Err = RoleError;

    fn from_str(s: &str) -> Result<Self, RoleError> {
        match s {
            "admin" => Ok(Role::Admin),
            "viewer" => Ok(Role::Viewer),
            other => Err(RoleError(other.chars().take(40).collect())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_table() {
        use Action::*;
        let viewer_may = [View, Snapshot, Recordings, Events];
        for a in Action::ALL {
            assert!(Role::Admin.allows(a), "admin may {a:?}");
            assert_eq!(
                Role::Viewer.allows(a),
                viewer_may.contains(&a),
                "viewer and {a:?}"
            );
        }
        // The list, by name: no settings, reboot, delete, users or firmware.
        for a in [Settings, Reboot, SnapshotDelete, Users, Firmware, Tokens] {
            assert!(!Role::Viewer.allows(a));
        }
    }

    #[test]
    fn roles_parse_and_print() {
        for r in [Role::Admin, Role::Viewer] {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        let e = "root".parse::<Role>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown role \"root\": expected admin or viewer"
        );
    }
}
