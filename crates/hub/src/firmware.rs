//! The hub's firmware library: images kept under `DATA_DIR/firmware/` (one file per image,
//! named by its SHA-256, and `index.json` with version, board, size and SHA-256), and the
//! per-update grants that let one camera download one image.
//!
//! A service beside `recorder`: `espcam firmware add` and `POST /api/firmware` add images,
//! `http::firmware` serves them to cameras and starts updates through
//! [`crate::state::Hub::send_ota`]. Images are written like snapshots: a temporary file,
//! fsync, rename, then the index (itself replaced by rename), so a crash leaves either the
//! old library or the new one. The index is re-read on every use, so `espcam firmware add`
//! beside a running hub is seen at once. This module must never turn a request string into a
//! path (files are named by their hash), and never hands an image out without a grant.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Largest image the library takes: an ESP32-S3 OTA slot on 16 MB flash is at most ~8 MB.
pub const MAX_IMAGE: u64 = 16 * 1024 * 1024;
/// How long a camera may take to download its image after the update was started.
pub const GRANT_TTL: Duration = Duration::from_secs(3600);

/// One image in the library (`GET /api/firmware`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareImage {
    /// The first 16 hex digits of the SHA-256: stable, and the same image added twice is
    /// one entry.
    pub id: String,
    /// Firmware version, as the camera reports it in its hello after the update.
    pub version: String,
    /// The board it was built for.
    pub board: String,
    /// Bytes.
    pub size: u32,
    /// SHA-256, 64 lowercase hex digits.
    pub sha256: String,
    /// When it was added, ms since the Unix epoch.
    pub added_ms: u64,
}

/// Why the library could not do something.
#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    /// A file or directory operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The image is over [`MAX_IMAGE`].
    #[error("image of {size} bytes or more is over the limit of {MAX_IMAGE} bytes")]
    TooLarge {
        /// Bytes seen so far.
        size: u64,
    },
    /// The image is empty.
    #[error("image is empty")]
    Empty,
    /// No version given and none found in the image.
    #[error("no version: give one (--version / ?version=), or add an image whose header names it")]
    NoVersion,
    /// No board given and none found in the image.
    #[error("no board: give one (--board / ?board=), e.g. esp32s3-eye")]
    NoBoard,
    /// A version or board that is not acceptable.
    #[error("{field} {value:?} is invalid: expected {expected}")]
    Invalid {
        /// `version` or `board`.
        field: &'static str,
        /// The value, cut.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// The index could not be read.
    #[error("firmware index {path} is corrupt: {message}")]
    Index {
        /// The index file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// No randomness for a grant key.
    #[error("no randomness for an update key: {0}")]
    Random(String),
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FirmwareError + use<> {
    let path = path.to_path_buf();
    move |source| FirmwareError::Io { what, path, source }
}

#[derive(Debug, Clone)]
struct Grant {
    image: String,
    camera: String,
    expires: std::time::Instant,
}

/// The firmware library of one data directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Firmware(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    /// Serialises index rewrites within this process.
    index_lock: Mutex<()>,
    /// Per-update download keys, by key. In memory only: a hub restart ends them, and the
    /// camera's download then fails with a clear HTTP 404.
    grants: Mutex<HashMap<String, Grant>>,
}

impl Firmware {
    /// Opens (creating) `data_dir/firmware`.
    pub fn open(data_dir: &Path) -> Result<Self, FirmwareError> {
        let dir = data_dir.join("firmware");
        fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        Ok(Self(Arc::new(Inner {
            dir,
            index_lock: Mutex::new(()),
            grants: Mutex::new(HashMap::new()),
        })))
    }

    fn index_path(&self) -> PathBuf {
        self.0.dir.join("index.json")
    }

    /// Every image, oldest first.
    pub fn list(&self) -> Result<Vec<FirmwareImage>, FirmwareError> {
        let path = self.index_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| FirmwareError::Index {
                path,
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io("reading", &path)(e)),
        }
    }

    /// The image with this id.
    pub fn get(&self, id: &str) -> Result<Option<FirmwareImage>, FirmwareError> {
        Ok(self.list()?.into_iter().find(|i| i.id == id))
    }

    /// Where an image's bytes are.
    pub fn image_path(&self, image: &FirmwareImage) -> PathBuf {
        // `sha256` came from our own hasher (checked hex when read back), never a request.
        self.0.dir.join(format!("{}.bin", image.sha256))
    }

    /// Starts receiving an image.
    pub fn stage(&self) -> Result<Staging, FirmwareError> {
        let n: u64 = fastrand::u64(..);
        let path = self.0.dir.join(format!(".incoming-{n:016x}"));
        let file = File::create(&path).map_err(io("creating", &path))?;
        Ok(Staging {
            store: self.clone(),
            file: Some(file),
            path,
            hasher: Sha256::new(),
            size: 0,
            head: Vec::new(),
        })
    }

    /// Adds the image in file `src` (`espcam firmware add`).
    pub fn add_file(
        &self,
        src: &Path,
        version: Option<String>,
        board: Option<String>,
    ) -> Result<FirmwareImage, FirmwareError> {
        let mut f = File::open(src).map_err(io("opening", src))?;
        let mut staging = self.stage()?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf).map_err(io("reading", src))?;
            if n == 0 {
                break;
            }
            staging.write(&buf[..n])?;
        }
        staging.finish(version, board)
    }

    /// Lets `camera` download `image` for [`GRANT_TTL`]; returns the key for its URL.
    pub fn grant(&self, image: &FirmwareImage, camera: &str) -> Result<String, FirmwareError> {
        let mut key = [0u8; 16];
        getrandom::fill(&mut key).map_err(|e| FirmwareError::Random(e.to_string()))?;
        let key: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let now = std::time::Instant::now();
        let mut grants = self.0.grants.lock().unwrap_or_else(|e| e.into_inner());
        grants.retain(|_, g| g.expires > now);
        grants.insert(
            key.clone(),
            Grant {
                image: image.id.clone(),
                camera: camera.to_string(),
                expires: now + GRANT_TTL,
            },
        );
        Ok(key)
    }

    /// The image `id` if `key` is a live grant for it, and the camera it was granted to.
    pub fn check_grant(&self, id: &str, key: &str) -> Option<(FirmwareImage, String)> {
        let grant = {
            let grants = self.0.grants.lock().unwrap_or_else(|e| e.into_inner());
            let g = grants.get(key)?;
            // Compared as hashes would be over-engineering for a 128-bit random key looked
            // up in a map: the lookup itself is by the whole key.
            (g.image == id && g.expires > std::time::Instant::now()).then(|| g.clone())?
        };
        let image = self.get(id).ok().flatten()?;
        Some((image, grant.camera))
    }

    fn insert(&self, image: FirmwareImage, staged: &Path) -> Result<FirmwareImage, FirmwareError> {
        let _guard = self.0.index_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut all = self.list()?;
        if let Some(existing) = all.iter().find(|i| i.sha256 == image.sha256) {
            let _ = fs::remove_file(staged);
            return Ok(existing.clone());
        }
        let dest = self.image_path(&image);
        fs::rename(staged, &dest).map_err(io("renaming into", &dest))?;
        all.push(image.clone());
        let path = self.index_path();
        let tmp = self.0.dir.join(".index.json.tmp");
        let text = serde_json::to_vec_pretty(&all).map_err(|e| FirmwareError::Index {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut f = File::create(&tmp).map_err(io("creating", &tmp))?;
        f.write_all(&text).map_err(io("writing", &tmp))?;
        f.sync_all().map_err(io("syncing", &tmp))?;
        fs::rename(&tmp, &path).map_err(io("renaming into", &path))?;
        if let Ok(d) = File::open(&self.0.dir) {
            let _ = d.sync_all();
        }
        Ok(image)
    }
}

/// An image being received: hashed and written to a temporary file as it comes, checked
/// against [`MAX_IMAGE`] before each write. Dropped without [`Staging::finish`], the file
/// is removed.
#[derive(Debug)]
pub struct Staging {
    store: Firmware,
    file: Option<File>,
    path: PathBuf,
    hasher: Sha256,
    size: u64,
    /// The first bytes, where the version may be found.
    head: Vec<u8>,
}

impl Staging {
    /// Appends `chunk`.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), FirmwareError> {
        self.size += chunk.len() as u64;
        if self.size > MAX_IMAGE {
            return Err(FirmwareError::TooLarge { size: self.size });
        }
        if self.head.len() < 256 {
            let take = (256 - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.hasher.update(chunk);
        if let Some(f) = &mut self.file {
            f.write_all(chunk).map_err(io("writing", &self.path))?;
        }
        Ok(())
    }

    /// Bytes so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Checks the version and board (given, or read from the image) and adds the image.
    pub fn finish(
        mut self,
        version: Option<String>,
        board: Option<String>,
    ) -> Result<FirmwareImage, FirmwareError> {
        if self.size == 0 {
            return Err(FirmwareError::Empty);
        }
        let (found_board, found_version) = detect(&self.head);
        let version = version.or(found_version).ok_or(FirmwareError::NoVersion)?;
        let board = board.or(found_board).ok_or(FirmwareError::NoBoard)?;
        check_version(&version)?;
        check_board(&board)?;
        if let Some(f) = self.file.take() {
            f.sync_all().map_err(io("syncing", &self.path))?;
        }
        let digest = std::mem::take(&mut self.hasher).finalize();
        let sha256: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let image = FirmwareImage {
            id: sha256[..16].to_string(),
            version,
            board,
            size: u32::try_from(self.size)
                .map_err(|_| FirmwareError::TooLarge { size: self.size })?,
            sha256,
            added_ms: crate::state::clock::now_us() / 1000,
        };
        let path = std::mem::take(&mut self.path);
        self.store.insert(image, &path)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn check_version(v: &str) -> Result<(), FirmwareError> {
    let ok = !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| (0x20..0x7f).contains(&b));
    ok.then_some(()).ok_or_else(|| FirmwareError::Invalid {
        field: "version",
        value: v.chars().take(70).collect(),
        expected: "1..=64 printable ASCII characters",
    })
}

fn check_board(b: &str) -> Result<(), FirmwareError> {
    let ok = !b.is_empty()
        && b.len() <= 32
        && b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    ok.then_some(()).ok_or_else(|| FirmwareError::Invalid {
        field: "board",
        value: b.chars().take(40).collect(),
        expected: "1..=32 characters of A-Z a-z 0-9 _ -",
    })
}

/// `(board, version)` found in an image's first bytes: the virtual camera's first line
/// `espcam-image board=B version=V`, or an ESP-IDF app image's `esp_app_desc_t` (magic
/// `0xABCD5432` at byte 32, version at byte 48; it names no board).
pub fn detect(head: &[u8]) -> (Option<String>, Option<String>) {
    if let Some(rest) = head.strip_prefix(b"espcam-image board=") {
        let line = rest.split(|b| *b == b'\n').next().unwrap_or(rest);
        if let Ok(line) = std::str::from_utf8(line)
            && let Some((board, version)) = line.split_once(" version=")
        {
            return (
                Some(board.to_string()),
                Some(version.trim_end().to_string()),
            );
        }
    }
    if head.first() == Some(&0xE9)
        && head.get(32..36) == Some(&0xABCD_5432u32.to_le_bytes()[..])
        && let Some(v) = head.get(48..80)
    {
        let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
        if let Ok(s) = std::str::from_utf8(&v[..end])
            && !s.is_empty()
        {
            return (None, Some(s.to_string()));
        }
    }
    (None, None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn add_list_dedupe_and_grants() {
        let dir = tempfile::tempdir().unwrap();
        let fw = Firmware::open(dir.path()).unwrap();
        let src = dir.path().join("img");
        fs::write(&src, b"espcam-image board=virtual version=v2\npayload").unwrap();
        let img = fw.add_file(&src, None, None).unwrap();
        assert_eq!(
            (img.board.as_str(), img.version.as_str()),
            ("virtual", "v2")
        );
        assert_eq!(img.size, 45);
        assert_eq!(
            fs::read(fw.image_path(&img)).unwrap(),
            fs::read(&src).unwrap()
        );
        // Same bytes again: one entry.
        assert_eq!(fw.add_file(&src, None, None).unwrap(), img);
        assert_eq!(fw.list().unwrap(), vec![img.clone()]);
        // Seen by another handle on the same directory (the CLI beside the hub).
        assert_eq!(Firmware::open(dir.path()).unwrap().list().unwrap().len(), 1);
        let key = fw.grant(&img, "cam-1").unwrap();
        assert_eq!(key.len(), 32);
        assert_eq!(fw.check_grant(&img.id, &key).unwrap().1, "cam-1");
        assert!(fw.check_grant(&img.id, "0000").is_none());
        assert!(fw.check_grant("other", &key).is_none());
        // No stray temporary files.
        let names: Vec<_> = fs::read_dir(dir.path().join("firmware"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[test]
    fn refusals_say_what_was_expected() {
        let dir = tempfile::tempdir().unwrap();
        let fw = Firmware::open(dir.path()).unwrap();
        let src = dir.path().join("img");
        fs::write(&src, b"\x00raw bytes").unwrap();
        let e = fw
            .add_file(&src, None, Some("esp32s3-eye".into()))
            .unwrap_err();
        assert!(e.to_string().starts_with("no version"), "{e}");
        let e = fw.add_file(&src, Some("v1".into()), None).unwrap_err();
        assert!(e.to_string().starts_with("no board"), "{e}");
        let e = fw
            .add_file(&src, Some("v1".into()), Some("../x".into()))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "board \"../x\" is invalid: expected 1..=32 characters of A-Z a-z 0-9 _ -"
        );
        let mut s = fw.stage().unwrap();
        let big = vec![0u8; 1 << 20];
        let mut err = None;
        for _ in 0..17 {
            if let Err(e) = s.write(&big) {
                err = Some(e);
                break;
            }
        }
        assert!(matches!(err, Some(FirmwareError::TooLarge { .. })));
        drop(s);
        assert!(fw.list().unwrap().is_empty());
    }

    #[test]
    fn esp_app_descriptor_version_is_found() {
        let mut head = vec![0u8; 256];
        head[0] = 0xE9;
        head[32..36].copy_from_slice(&0xABCD_5432u32.to_le_bytes());
        head[48..56].copy_from_slice(b"fw 0.3.1");
        assert_eq!(detect(&head), (None, Some("fw 0.3.1".to_string())));
    }
}
