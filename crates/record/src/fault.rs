//! A seam through which tests make the disk fail: a full filesystem (`ENOSPC` part-way
//! through a write), a sync that reports an error. Real full disks cannot be made without
//! root here, and the failure paths are the ones that must never lose a durable frame or
//! leave a torn one, so they are exercised through this hook.
//!
//! Every segment write and sync asks the installed [`IoFaults`] first; with none installed
//! (production) the cost is one branch per call. This module must never change what is
//! written when no hook is installed.

use std::fmt;
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// What a test's fake disk answers before each segment write and sync.
pub trait IoFaults: Send + Sync + fmt::Debug {
    /// `len` bytes are about to be written to `path` (a segment header, a frame, an index
    /// trailer): how many of them the disk takes. Fewer than `len` writes that many, then
    /// fails with `ENOSPC`, as a filesystem that fills up mid-write does.
    fn write(&self, path: &Path, len: usize) -> usize {
        let _ = path;
        len
    }

    /// `path` is about to be synced: an error makes the sync fail with it (nothing synced).
    fn sync(&self, path: &Path) -> io::Result<()> {
        let _ = path;
        Ok(())
    }
}

/// The hook a segment file was created with.
pub(crate) type Faults = Option<Arc<dyn IoFaults>>;

/// The error a full filesystem gives.
pub fn no_space() -> io::Error {
    io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error())
}

/// How many of `len` bytes may be written, and whether the rest fails.
fn budget(faults: &Faults, path: &Path, len: usize) -> usize {
    faults.as_ref().map_or(len, |f| f.write(path, len).min(len))
}

/// `write_all` for a vector of slices (std's `write_all_vectored` is unstable), through the
/// hook. Returns the number of write system calls it made (one, unless the kernel took
/// fewer bytes than offered), for the metrics.
pub(crate) fn write_all_vectored(
    faults: &Faults,
    path: &Path,
    file: &mut std::fs::File,
    bufs: &mut [IoSlice<'_>],
) -> io::Result<u64> {
    let total: usize = bufs.iter().map(|b| b.len()).sum();
    let allowed = budget(faults, path, total);
    if allowed < total {
        // Write exactly `allowed` bytes of the concatenation, then fail.
        let mut left = allowed;
        for b in bufs.iter() {
            let n = left.min(b.len());
            file.write_all(&b[..n])?;
            left -= n;
        }
        return Err(no_space());
    }
    let mut bufs = bufs;
    let mut calls = 0;
    while !bufs.is_empty() {
        calls += 1;
        match file.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(calls)
}

/// `write_all_at` through the hook.
pub(crate) fn write_all_at(
    faults: &Faults,
    path: &Path,
    file: &std::fs::File,
    buf: &[u8],
    offset: u64,
) -> io::Result<()> {
    let allowed = budget(faults, path, buf.len());
    file.write_all_at(&buf[..allowed], offset)?;
    if allowed < buf.len() {
        return Err(no_space());
    }
    Ok(())
}

/// `sync_data` (or `sync_all`) through the hook.
pub(crate) fn sync(
    faults: &Faults,
    path: &Path,
    file: &std::fs::File,
    all: bool,
) -> io::Result<()> {
    if let Some(f) = faults {
        f.sync(path)?;
    }
    if all {
        file.sync_all()
    } else {
        file.sync_data()
    }
}
