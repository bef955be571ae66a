//! `espcam firmware add|list`: the hub's firmware library (`DATA_DIR/firmware/`, see
//! `espcam_hub::firmware`). Works beside a running hub: the hub re-reads the library's index
//! on every request, so an added image can be offered at once from the dashboard or with
//! `POST /api/cameras/{id}/update`.

use std::path::PathBuf;

use espcam_hub::firmware::Firmware;

use crate::users::{DataDirArgs, fmt_time};

/// `espcam firmware …`
#[derive(Debug, clap::Args)]
pub struct FirmwareArgs {
    #[command(subcommand)]
    cmd: FirmwareCmd,
    #[command(flatten)]
    dir: DataDirArgs,
}

#[derive(Debug, clap::Subcommand)]
enum FirmwareCmd {
    /// Add an image (an esp-idf app `.bin`, or a virtual camera's image). Its SHA-256 and
    /// size are computed; the version is read from the image when not given.
    Add {
        /// The image file.
        file: PathBuf,
        /// Firmware version as the camera reports it (default: from the image's header).
        #[arg(long)]
        version: Option<String>,
        /// Board it was built for, e.g. `esp32s3-eye`, `virtual` (default: from a virtual
        /// image's header; required for esp-idf images).
        #[arg(long)]
        board: Option<String>,
    },
    /// List the images.
    List,
}

/// Runs `espcam firmware …`.
pub fn run(args: FirmwareArgs) -> anyhow::Result<()> {
    let dir = args.dir.resolve()?;
    let lib = Firmware::open(&dir)?;
    match args.cmd {
        FirmwareCmd::Add {
            file,
            version,
            board,
        } => {
            let img = lib.add_file(&file, version, board)?;
            println!(
                "added firmware {}: version {:?} for board {}, {} bytes, sha256 {}",
                img.id, img.version, img.board, img.size, img.sha256
            );
        }
        FirmwareCmd::List => {
            let all = lib.list()?;
            if all.is_empty() {
                println!("no firmware images; add one with `espcam firmware add FILE`");
                return Ok(());
            }
            println!(
                "{:<16}  {:<24}  {:<14}  {:>9}  ADDED",
                "ID", "VERSION", "BOARD", "BYTES"
            );
            for i in all {
                println!(
                    "{:<16}  {:<24}  {:<14}  {:>9}  {}",
                    i.id,
                    i.version,
                    i.board,
                    i.size,
                    fmt_time(i.added_ms.saturating_mul(1000))
                );
            }
        }
    }
    Ok(())
}
