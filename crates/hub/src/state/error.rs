//! Errors of the hub's state layer: why a camera was not admitted, why a command did not get
//! a positive ack. Plain data: the `http` layer maps them to status codes, `ingest` to close
//! reasons; nothing here knows either.

use espcam_proto::{CameraId, PROTOCOL_VERSION};

use crate::state::camera::Source;

/// Why a camera's hello was refused. The message is the close reason sent to the camera.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    /// The hello speaks another protocol version.
    #[error("protocol version {0} unsupported, expected {PROTOCOL_VERSION}")]
    ProtocolVersion(u8),
    /// A camera list is configured and this id is not in it.
    #[error("camera {0} is not in this hub's camera list")]
    NotListed(CameraId),
    /// The camera is listed with a token and sent none.
    #[error("missing token for camera {0}")]
    MissingToken(CameraId),
    /// The camera is listed with a token and sent another one.
    #[error("wrong token for camera {0}")]
    WrongToken(CameraId),
    /// The id belongs to a camera of the other kind (a pushing camera claiming a pulled id).
    #[error("camera id {camera} is used by a {} camera", source_name(*.held_by))]
    SourceConflict {
        /// The id.
        camera: CameraId,
        /// How the camera holding the id reaches the hub.
        held_by: Source,
    },
    /// The registry is full and no camera in it can be forgotten.
    #[error("too many cameras: this hub tracks at most {0}")]
    RegistryFull(usize),
    /// Login is required, the camera is not listed, and no admin has accepted it yet.
    #[error(
        "camera {0} is waiting to be accepted by an admin (dashboard, or `espcam camera accept {0}` on the hub)"
    )]
    Pending(CameraId),
    /// Pairing refused the camera (another token holds the id, no token, too many pending).
    #[error("camera {camera} refused: {reason}")]
    PairingRefused {
        /// The id.
        camera: CameraId,
        /// Why, from the pairing table.
        reason: String,
    },
    /// The auth database could not be asked.
    #[error("camera {0} could not be checked (the hub's auth database failed); try again later")]
    Unavailable(CameraId),
}

fn source_name(s: Source) -> &'static str {
    match s {
        Source::Pull => "pulled",
        Source::Push => "pushing",
    }
}

/// Why a command to a camera did not get a positive ack.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommandError {
    /// No camera with that id is known (the id as given, cut to 40 characters).
    #[error("unknown camera {0:?}")]
    UnknownCamera(String),
    /// The camera is known but its control link is down.
    #[error("camera {0} is offline")]
    Offline(CameraId),
    /// The camera did not ack within the timeout.
    #[error("camera {camera} did not acknowledge {command} within {ms} ms")]
    AckTimeout {
        /// Camera id.
        camera: CameraId,
        /// The command, e.g. `quality 10`.
        command: String,
        /// The timeout.
        ms: u128,
    },
    /// The camera's link went away (it disconnected or was replaced by a new connection)
    /// after the command was sent and before it was acknowledged. Answered at once rather
    /// than after the ack timeout, because no ack can come any more.
    #[error("camera {camera} disconnected before acknowledging {command}")]
    Disconnected {
        /// Camera id.
        camera: CameraId,
        /// The command.
        command: String,
    },
    /// The camera has too many commands queued (it stopped reading its socket).
    #[error("camera {0} is not accepting commands (command queue full)")]
    Busy(CameraId),
    /// The camera answered, and refused.
    #[error("camera {camera} refused {command}: {message}")]
    Refused {
        /// Camera id.
        camera: CameraId,
        /// The command.
        command: String,
        /// The camera's reason (cut and escaped by the protocol decoder's limits).
        message: String,
    },
}

/// Why a camera could not be removed from the registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoveError {
    /// No camera with that id is known.
    #[error("unknown camera {0:?}")]
    UnknownCamera(String),
    /// The camera is connected; only a camera that left can be removed.
    #[error("camera {0} is online; it can be removed once it has disconnected")]
    Online(CameraId),
    /// The camera is in the configuration (`[[camera]]` or `--pull`).
    #[error("camera {0} is in the hub's configuration; remove it there")]
    Configured(CameraId),
}
