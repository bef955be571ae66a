//! `espcam camera list|accept|remove`: cameras not in the configuration that asked to pair
//! (trust on first use, see `espcam-auth`'s pairing module). Works beside a running hub, like
//! `espcam user`: an accepted camera is admitted at its next connection.

use espcam_auth::{AuditAction, PairingState};
use espcam_proto::CameraId;

use crate::users::{DataDirArgs, audit, fmt_time, now_us};

/// `espcam camera …`
#[derive(Debug, clap::Args)]
pub struct CameraArgs {
    #[command(subcommand)]
    cmd: CameraCmd,
    #[command(flatten)]
    dir: DataDirArgs,
}

#[derive(Debug, clap::Subcommand)]
enum CameraCmd {
    /// List cameras that asked to pair (pending) or were accepted.
    List,
    /// Accept a pending camera: its token is trusted from now on.
    Accept {
        /// The camera id.
        #[arg(value_parser = camera_id)]
        id: CameraId,
    },
    /// Forget a camera (pending or accepted); its next connection asks to pair again.
    Remove {
        /// The camera id.
        #[arg(value_parser = camera_id)]
        id: CameraId,
    },
}

fn camera_id(s: &str) -> Result<CameraId, String> {
    CameraId::new(s).map_err(|e| e.to_string())
}

/// Runs `espcam camera …`.
pub fn run(args: CameraArgs) -> anyhow::Result<()> {
    let auth = args.dir.open(false)?;
    match args.cmd {
        CameraCmd::List => {
            let cams = auth.list_paired()?;
            if cams.is_empty() {
                println!("no cameras have asked to pair");
                return Ok(());
            }
            let w = cams.iter().map(|c| c.id.len()).max().unwrap_or(2).max(2);
            println!("{:<w$}  {:<8}  {:<20}  FROM", "ID", "STATE", "LAST SEEN");
            for c in cams {
                let state = match c.state {
                    PairingState::Pending => "pending",
                    PairingState::Accepted => "accepted",
                };
                println!(
                    "{:<w$}  {state:<8}  {:<20}  {}",
                    c.id,
                    fmt_time(c.last_seen_us),
                    c.addr.as_deref().unwrap_or("-")
                );
            }
        }
        CameraCmd::Accept { id } => {
            auth.accept_camera(&id, now_us())?;
            audit(&auth, AuditAction::CameraAccept, id.as_str(), "")?;
            println!("accepted camera {id}");
        }
        CameraCmd::Remove { id } => {
            auth.remove_camera(&id)?;
            audit(&auth, AuditAction::CameraRemove, id.as_str(), "")?;
            println!("removed camera {id}; it must pair again");
        }
    }
    Ok(())
}
