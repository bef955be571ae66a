//! One segment file on disk: appending frames, group commit, closing with a trailer,
//! loading a closed segment's index, reading one frame, and recovering a file that was open
//! when the process died.
//!
//! The durability rule lives here: a frame counts as durable only after an `fdatasync` that
//! began after its bytes were written. This module must never report a frame as durable
//! before that, and never hand out bytes that fail their checksum.

use std::fs::{File, OpenOptions};
use std::io::IoSlice;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{IoError, ReadError};
use crate::fault::{self, Faults};
use crate::format::{
    self, ENTRY_LEN, FILE_HEADER_LEN, FOOTER_LEN, FRAME_HEADER_LEN, FileHeader, FrameMeta,
};

/// A segment being written. Owned by one [`Writer`](crate::Writer).
#[derive(Debug)]
pub(crate) struct SegmentFile {
    pub path: PathBuf,
    file: File,
    /// End of the last whole frame written: where the next one goes.
    len: u64,
    /// Every frame written, durable or not.
    pub entries: Vec<FrameMeta>,
    /// How many of `entries` a completed sync covers.
    pub durable: usize,
    /// Whether the directory entry of the file has been synced.
    dir_synced: bool,
    /// Write system calls made and not yet taken by [`take_writes`](Self::take_writes).
    writes: u64,
    /// The frame headers of the batch being written (kept to reuse its allocation).
    headers: Vec<[u8; FRAME_HEADER_LEN as usize]>,
    sync: bool,
    /// The test hook in force when the file was created (`None` in production).
    faults: Faults,
}

impl SegmentFile {
    /// Creates the file (which must not exist) and writes its header.
    pub fn create(
        path: PathBuf,
        header: FileHeader,
        sync: bool,
        faults: Faults,
    ) -> Result<Self, IoError> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| IoError::new("create segment file", &path, e))?;
        let h = header.encode();
        let writes = fault::write_all_vectored(&faults, &path, &mut file, &mut [IoSlice::new(&h)])
            .map_err(|e| IoError::new("write segment header", &path, e))?;
        Ok(Self {
            path,
            file,
            len: FILE_HEADER_LEN,
            entries: Vec::with_capacity(2048),
            durable: 0,
            dir_synced: false,
            writes,
            headers: Vec::new(),
            sync,
            faults,
        })
    }

    /// Bytes in the file so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Write system calls made since the last call (for the metrics).
    pub fn take_writes(&mut self) -> u64 {
        std::mem::take(&mut self.writes)
    }

    /// Appends one frame (header + JPEG in one `writev`). `meta.offset` is filled in here.
    /// On error the file is cut back to the previous frame's end (best effort; [`finish`]
    /// and recovery cut it again), so a failed append never leaves a frame half-indexed.
    ///
    /// [`finish`]: SegmentFile::finish
    pub fn append(&mut self, meta: FrameMeta, jpeg: &[u8]) -> Result<FrameMeta, IoError> {
        self.append_many(&[(meta, jpeg)])?;
        self.entries
            .last()
            .copied()
            .ok_or_else(|| IoError::new("append to segment file", &self.path, no_entry()))
    }

    /// Appends frames one after the other, every header and JPEG in one `writev` (the
    /// kernel's limit of 1 024 slices splits a larger batch). Each `offset` is filled in
    /// here. All or nothing: on error the file is cut back to where the batch began (best
    /// effort, as in [`append`](SegmentFile::append)) and none of the frames is indexed.
    pub fn append_many(&mut self, frames: &[(FrameMeta, &[u8])]) -> Result<(), IoError> {
        if frames.is_empty() {
            return Ok(());
        }
        let durable = self.durable as u32;
        let first = self.entries.len();
        let mut end = self.len;
        self.headers.clear();
        for (meta, _) in frames {
            let mut m = *meta;
            m.offset = end + FRAME_HEADER_LEN;
            end = m.end();
            self.headers.push(format::encode_frame_header(&m, durable));
            self.entries.push(m);
        }
        // The slices live on the stack (no allocation per batch), `CHUNK` frames per
        // `writev`.
        const CHUNK: usize = 64;
        let mut result = Ok(());
        for (headers, frames) in self.headers.chunks(CHUNK).zip(frames.chunks(CHUNK)) {
            let mut slices = [IoSlice::new(&[]); 2 * CHUNK];
            for (i, (h, (_, jpeg))) in headers.iter().zip(frames).enumerate() {
                slices[2 * i] = IoSlice::new(h);
                slices[2 * i + 1] = IoSlice::new(jpeg);
            }
            let bufs = &mut slices[..2 * frames.len()];
            match fault::write_all_vectored(&self.faults, &self.path, &mut self.file, bufs) {
                Ok(calls) => self.writes += calls,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        match result {
            Ok(()) => {
                self.len = end;
                Ok(())
            }
            Err(e) => {
                self.entries.truncate(first);
                let _ = self.file.set_len(self.len);
                Err(IoError::new("append to segment file", &self.path, e))
            }
        }
    }

    /// Group commit: makes every frame written so far durable. Returns how long the sync
    /// took, or `None` if there was nothing to sync.
    pub fn sync(&mut self) -> Result<Option<Duration>, IoError> {
        if self.durable == self.entries.len() {
            return Ok(None);
        }
        let t0 = Instant::now();
        if self.sync {
            fault::sync(&self.faults, &self.path, &self.file, false)
                .map_err(|e| IoError::new("sync segment file", &self.path, e))?;
            if !self.dir_synced {
                if let Some(dir) = self.path.parent() {
                    sync_dir(dir)?;
                }
                self.dir_synced = true;
            }
        }
        self.durable = self.entries.len();
        Ok(Some(t0.elapsed()))
    }

    /// Closes the segment: cuts the file after the last whole frame, appends the trailer
    /// and syncs. Every frame in `entries` is durable afterwards. Returns the entries, the
    /// file's length and the write system calls not yet taken (the trailer's included).
    pub fn finish(self) -> Result<(Vec<FrameMeta>, u64, u64), IoError> {
        let io = |action| {
            let path = self.path.clone();
            move |e| IoError::new(action, path, e)
        };
        self.file
            .set_len(self.len)
            .map_err(io("truncate segment file"))?;
        let trailer = format::encode_trailer(&self.entries, self.len);
        fault::write_all_at(&self.faults, &self.path, &self.file, &trailer, self.len)
            .map_err(io("write segment index"))?;
        if self.sync {
            fault::sync(&self.faults, &self.path, &self.file, false)
                .map_err(io("sync segment file"))?;
            if !self.dir_synced
                && let Some(dir) = self.path.parent()
            {
                sync_dir(dir)?;
            }
        }
        let len = self.len + trailer.len() as u64;
        Ok((self.entries, len, self.writes + 1))
    }
}

/// The error of an append that indexed nothing (cannot happen: `append_many` of one frame
/// indexes it or fails).
fn no_entry() -> std::io::Error {
    std::io::Error::other("frame not indexed")
}

/// `fsync` a directory so that entries created or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), IoError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| IoError::new("sync directory", dir, e))
}

fn corrupt(path: &Path, what: &'static str) -> ReadError {
    ReadError::Corrupt {
        path: path.to_path_buf(),
        what,
    }
}

/// Asks the kernel to start reading a closed segment's index trailer (`frames` entries and
/// the footer at the end of its `bytes`) into the page cache, without waiting: a caller
/// about to load many indexes issues this for all of them first, so the reads from disk
/// overlap instead of queueing one after the other. Best effort: errors are ignored (the
/// load that follows reports them).
pub(crate) fn prefetch_index(path: &Path, bytes: u64, frames: u32) {
    let len = u64::from(frames) * ENTRY_LEN + FOOTER_LEN;
    let (Some(offset), Ok(file)) = (bytes.checked_sub(len), File::open(path)) else {
        return;
    };
    let _ = rustix::fs::fadvise(
        &file,
        offset,
        std::num::NonZeroU64::new(len),
        rustix::fs::Advice::WillNeed,
    );
}

/// Loads the index of a closed segment from its trailer.
pub(crate) fn load_index(path: &Path) -> Result<Vec<FrameMeta>, ReadError> {
    let file = File::open(path).map_err(|e| IoError::new("open segment file", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| IoError::new("stat segment file", path, e))?
        .len();
    read_trailer(&file, len, path)?.ok_or_else(|| corrupt(path, "no valid index trailer"))
}

/// The trailer's entries, `None` if there is no valid trailer.
fn read_trailer(file: &File, len: u64, path: &Path) -> Result<Option<Vec<FrameMeta>>, ReadError> {
    if len < FILE_HEADER_LEN + FOOTER_LEN {
        return Ok(None);
    }
    let mut fb = [0u8; FOOTER_LEN as usize];
    file.read_exact_at(&mut fb, len - FOOTER_LEN)
        .map_err(|e| IoError::new("read segment footer", path, e))?;
    let Some(footer) = format::decode_footer(&fb, len) else {
        return Ok(None);
    };
    let mut eb = vec![0u8; (u64::from(footer.frames) * ENTRY_LEN) as usize];
    file.read_exact_at(&mut eb, footer.trailer_offset)
        .map_err(|e| IoError::new("read segment index", path, e))?;
    Ok(format::decode_entries(&eb, &footer))
}

/// Reads one frame's JPEG bytes and checks them against the index's checksum.
pub(crate) fn read_frame(file: &File, m: &FrameMeta, path: &Path) -> Result<Vec<u8>, ReadError> {
    let mut buf = vec![0u8; m.len as usize];
    file.read_exact_at(&mut buf, m.offset)
        .map_err(|e| IoError::new("read frame", path, e))?;
    if format::data_crc(&buf) != m.crc {
        return Err(corrupt(path, "frame bytes fail their checksum"));
    }
    Ok(buf)
}

/// Reads JPEG bytes at `offset` into `out` and checks them against `crc`.
pub(crate) fn read_into(
    file: &File,
    offset: u64,
    out: &mut [u8],
    crc: u32,
    path: &Path,
) -> Result<(), ReadError> {
    file.read_exact_at(out, offset)
        .map_err(|e| IoError::new("read frame", path, e))?;
    if format::data_crc(out) != crc {
        return Err(corrupt(path, "frame bytes fail their checksum"));
    }
    Ok(())
}

/// What recovery made of a segment file.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub header: FileHeader,
    pub entries: Vec<FrameMeta>,
    /// File size after recovery.
    pub len: u64,
    /// Bytes cut off the end (a torn frame, a partial trailer).
    pub truncated: u64,
}

/// Recovers a segment that may have been open at a crash: keeps every whole frame, cuts
/// whatever follows the last one, and writes a fresh trailer. A file that already has a
/// valid trailer is left as it is. `Ok(None)`: not a segment file (no valid header).
pub(crate) fn recover(
    path: &Path,
    sync: bool,
    faults: &Faults,
) -> Result<Option<Recovered>, IoError> {
    let io = |action| move |e| IoError::new(action, path, e);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io("open segment file"))?;
    let len = file.metadata().map_err(io("stat segment file"))?.len();
    let mut hb = [0u8; FILE_HEADER_LEN as usize];
    if len < FILE_HEADER_LEN {
        return Ok(None);
    }
    file.read_exact_at(&mut hb, 0)
        .map_err(io("read segment header"))?;
    let Some(header) = FileHeader::decode(&hb) else {
        return Ok(None);
    };
    match read_trailer(&file, len, path) {
        Ok(Some(entries)) => {
            // A trailer written by an earlier attempt whose sync failed is not durable yet.
            if sync {
                fault::sync(faults, path, &file, true).map_err(io("sync segment file"))?;
            }
            return Ok(Some(Recovered {
                header,
                entries,
                len,
                truncated: 0,
            }));
        }
        Ok(None) => {}
        Err(ReadError::Io(e)) => return Err(e),
        Err(_) => {}
    }

    // Walk the frame headers until the first one that is torn or missing.
    let mut entries: Vec<(FrameMeta, u32)> = Vec::new();
    let mut pos = FILE_HEADER_LEN;
    let mut prev_t = 0u64;
    let mut fh = [0u8; FRAME_HEADER_LEN as usize];
    while pos + FRAME_HEADER_LEN <= len {
        file.read_exact_at(&mut fh, pos)
            .map_err(io("read frame header"))?;
        let Some((m, durable_before)) = format::decode_frame_header(&fh, pos) else {
            break;
        };
        if m.end() > len || m.received_us < prev_t || durable_before as usize > entries.len() {
            break;
        }
        prev_t = m.received_us;
        pos = m.end();
        entries.push((m, durable_before));
    }
    // Frames below the last header's `durable_before` were covered by a completed sync;
    // the ones after it are checked byte by byte and the list ends at the first bad one.
    let trusted = entries.last().map_or(0, |(_, d)| *d as usize);
    let mut keep = trusted;
    for (m, _) in &entries[trusted..] {
        let mut buf = vec![0u8; m.len as usize];
        file.read_exact_at(&mut buf, m.offset)
            .map_err(io("read frame"))?;
        if format::data_crc(&buf) != m.crc {
            break;
        }
        keep += 1;
    }
    let entries: Vec<FrameMeta> = entries[..keep].iter().map(|(m, _)| *m).collect();
    let end = entries.last().map_or(FILE_HEADER_LEN, FrameMeta::end);
    file.set_len(end).map_err(io("truncate segment file"))?;
    let trailer = format::encode_trailer(&entries, end);
    fault::write_all_at(faults, path, &file, &trailer, end).map_err(io("write segment index"))?;
    if sync {
        fault::sync(faults, path, &file, true).map_err(io("sync segment file"))?;
    }
    Ok(Some(Recovered {
        header,
        entries,
        len: end + trailer.len() as u64,
        truncated: len.saturating_sub(end),
    }))
}
