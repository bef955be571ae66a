//! `GET /api/snapshots/{id}/thumb.jpg`: a small JPEG of a saved snapshot for the dashboard's
//! gallery, so a page of 24 thumbnails costs a few hundred KiB instead of 24 full frames.
//!
//! The stored JPEG is decoded already scaled down by the decoder's IDCT scaling (1/2, 1/4 or
//! 1/8 — far cheaper than decoding at full size), box-filtered to at most [`MAX_WIDTH`] pixels
//! wide when that is still too wide, and encoded again. Decoding runs on the blocking pool,
//! never on the async workers. Thumbnails are not stored: the bytes of a snapshot never change
//! (ids are never reused), so browsers keep them for a year (`immutable`).
//!
//! This module must never decode a picture whose header announces more than
//! [`MAX_SOURCE_PIXELS`] (a corrupt or hostile file must not cost gigabytes), and never lets a
//! request string near the filesystem: the id is parsed into a [`SnapshotId`] and the store
//! builds the path.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use espcam_proto::close::echo;
use espcam_store::SnapshotId;
use jpeg_decoder::PixelFormat;

use crate::http::error::ApiError;
use crate::state::Hub;

/// Widest thumbnail, in pixels.
pub const MAX_WIDTH: u16 = 160;
/// Largest source picture decoded (width × height): well above QXGA (2048×1536).
const MAX_SOURCE_PIXELS: u32 = 4096 * 4096;
/// JPEG quality of thumbnails (1..=100): small files, artefacts invisible at 160 px.
const QUALITY: u8 = 75;

/// Why a thumbnail could not be made from a stored snapshot.
#[derive(Debug, thiserror::Error)]
pub enum ThumbError {
    /// The stored file does not decode.
    #[error("snapshot {id} is not a readable JPEG: {source}")]
    Decode {
        /// The snapshot.
        id: SnapshotId,
        /// The decoder's error.
        source: jpeg_decoder::Error,
    },
    /// Its header announces a picture larger than we decode.
    #[error("snapshot {id} is {width}×{height}; thumbnails are made of pictures up to 4096×4096")]
    TooLarge {
        /// The snapshot.
        id: SnapshotId,
        /// Announced width.
        width: u16,
        /// Announced height.
        height: u16,
    },
    /// A pixel format cameras do not send (16-bit grey, CMYK).
    #[error("snapshot {id} has pixel format {format:?}; expected 8-bit RGB or greyscale")]
    PixelFormat {
        /// The snapshot.
        id: SnapshotId,
        /// What the decoder found.
        format: PixelFormat,
    },
    /// Re-encoding failed.
    #[error("snapshot {id}: encoding its thumbnail failed: {source}")]
    Encode {
        /// The snapshot.
        id: SnapshotId,
        /// The encoder's error.
        source: jpeg_encoder::EncodingError,
    },
}

/// A thumbnail: JPEG bytes and their size.
#[derive(Debug, Clone)]
pub struct Thumbnail {
    /// The JPEG.
    pub jpeg: Vec<u8>,
    /// Width in pixels (≤ [`MAX_WIDTH`]).
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
}

/// Makes a thumbnail at most [`MAX_WIDTH`] wide of the JPEG `jpeg` (snapshot `id`, for error
/// messages), keeping its aspect ratio. Blocks: call it on the blocking pool.
pub fn make(id: SnapshotId, jpeg: &[u8]) -> Result<Thumbnail, ThumbError> {
    let decode = |source| ThumbError::Decode { id, source };
    let mut dec = jpeg_decoder::Decoder::new(jpeg);
    dec.read_info().map_err(decode)?;
    let Some(info) = dec.info() else {
        return Err(decode(jpeg_decoder::Error::Format(
            "no frame header".to_owned(),
        )));
    };
    let (w0, h0) = (info.width, info.height);
    if u32::from(w0) * u32::from(h0) > MAX_SOURCE_PIXELS || w0 == 0 || h0 == 0 {
        return Err(ThumbError::TooLarge {
            id,
            width: w0,
            height: h0,
        });
    }
    // The target size; the decoder picks the smallest IDCT scale at least this big.
    let (tw, th) = fit(w0, h0);
    let (sw, sh) = dec.scale(tw, th).map_err(decode)?;
    let pixels = dec.decode().map_err(decode)?;
    let format = dec.info().map_or(info.pixel_format, |i| i.pixel_format);
    let rgb = match format {
        PixelFormat::RGB24 => pixels,
        PixelFormat::L8 => pixels.iter().flat_map(|&l| [l, l, l]).collect(),
        other => return Err(ThumbError::PixelFormat { id, format: other }),
    };
    if rgb.len() < usize::from(sw) * usize::from(sh) * 3 {
        return Err(decode(jpeg_decoder::Error::Format(
            "decoded fewer pixels than announced".to_owned(),
        )));
    }
    // Still too wide: box-filter to the size computed from the original (rounding once).
    let (rgb, width, height) = if sw > MAX_WIDTH {
        (box_resize(&rgb, sw, sh, tw, th), tw, th)
    } else {
        (rgb, sw, sh)
    };
    let mut out = Vec::with_capacity(8 * 1024);
    jpeg_encoder::Encoder::new(&mut out, QUALITY)
        .encode(&rgb, width, height, jpeg_encoder::ColorType::Rgb)
        .map_err(|source| ThumbError::Encode { id, source })?;
    Ok(Thumbnail {
        jpeg: out,
        width,
        height,
    })
}

/// `w`×`h` scaled to at most [`MAX_WIDTH`] wide, aspect ratio kept, at least 1×1.
fn fit(w: u16, h: u16) -> (u16, u16) {
    if w <= MAX_WIDTH {
        return (w, h);
    }
    let th = (u32::from(h) * u32::from(MAX_WIDTH) + u32::from(w) / 2) / u32::from(w);
    (MAX_WIDTH, u16::try_from(th.max(1)).unwrap_or(u16::MAX))
}

/// Area-average resize of packed RGB from `sw`×`sh` down to `dw`×`dh` (both smaller or equal).
fn box_resize(src: &[u8], sw: u16, sh: u16, dw: u16, dh: u16) -> Vec<u8> {
    let (sw, sh, dw, dh) = (
        usize::from(sw),
        usize::from(sh),
        usize::from(dw),
        usize::from(dh),
    );
    let mut out = Vec::with_capacity(dw * dh * 3);
    for y in 0..dh {
        let (y0, y1) = (y * sh / dh, ((y + 1) * sh / dh).max(y * sh / dh + 1));
        for x in 0..dw {
            let (x0, x1) = (x * sw / dw, ((x + 1) * sw / dw).max(x * sw / dw + 1));
            let mut sum = [0u32; 3];
            for row in y0..y1 {
                for col in x0..x1 {
                    let i = (row * sw + col) * 3;
                    for (c, s) in sum.iter_mut().enumerate() {
                        *s += u32::from(src.get(i + c).copied().unwrap_or(0));
                    }
                }
            }
            let n = u32::try_from((y1 - y0) * (x1 - x0))
                .unwrap_or(u32::MAX)
                .max(1);
            // Each mean is at most 255.
            out.extend(sum.map(|s| u8::try_from(s / n).unwrap_or(u8::MAX)));
        }
    }
    out
}

/// Parses the `{id}` of `/api/snapshots/{id}/thumb.jpg` in its one canonical form: plain
/// decimal without leading zeros.
fn parse_id(raw: &str) -> Result<SnapshotId, ApiError> {
    Some(raw)
        .filter(|d| !d.starts_with('0'))
        .and_then(|d| d.parse::<SnapshotId>().ok())
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no snapshot {:?}: expected /api/snapshots/{{id}}/thumb.jpg with the snapshot's id, such as 12",
                echo(raw, 40)
            ))
        })
}

/// `GET /api/snapshots/{id}/thumb.jpg`.
pub(crate) async fn get_thumb(
    State(hub): State<Hub>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let store = hub
        .store()
        .ok_or_else(|| ApiError::Unavailable("snapshots are unavailable on this hub".into()))?;
    let thumb = tokio::task::spawn_blocking(move || {
        let jpeg = store
            .read_jpeg(id)
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .ok_or_else(|| ApiError::NotFound(format!("no snapshot {id}")))?;
        make(id, &jpeg).map_err(|e| ApiError::Internal(e.to_string()))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("thumbnail task failed: {e}")))??;
    let mut r = Body::from(thumb.jpeg).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    h.insert("x-espcam-width", HeaderValue::from(thumb.width));
    h.insert("x-espcam-height", HeaderValue::from(thumb.height));
    // A snapshot id is never reused, so its thumbnail never changes either.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u16, h: u16) -> Vec<u8> {
        let rgb: Vec<u8> = (0..usize::from(w) * usize::from(h))
            .flat_map(|i| {
                let x = i % usize::from(w);
                [(x % 256) as u8, 128, 64]
            })
            .collect();
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, 80)
            .encode(&rgb, w, h, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        out
    }

    fn decoded_size(jpeg: &[u8]) -> (u16, u16) {
        let mut d = jpeg_decoder::Decoder::new(jpeg);
        d.decode().unwrap();
        let i = d.info().unwrap();
        (i.width, i.height)
    }

    #[test]
    fn thumbnails_fit_160_wide_and_keep_the_aspect_ratio() {
        let id = SnapshotId::new(1).unwrap();
        // VGA: 1/4 scale is exact; UXGA: 1/8 gives 200×150, then the box filter; QQVGA: as is;
        // a tall picture; a size that is no multiple of 8.
        for (w, h, want) in [
            (640, 480, (160, 120)),
            (1600, 1200, (160, 120)),
            (160, 120, (160, 120)),
            (96, 96, (96, 96)),
            (240, 320, (160, 213)),
            (1000, 333, (160, 53)),
        ] {
            let t = make(id, &jpeg(w, h)).unwrap();
            assert_eq!((t.width, t.height), want, "{w}×{h}");
            assert_eq!(decoded_size(&t.jpeg), want, "{w}×{h} decoded");
        }
    }

    #[test]
    fn broken_jpeg_is_an_error_that_names_the_snapshot() {
        let id = SnapshotId::new(7).unwrap();
        let err = make(id, b"\xff\xd8 not a jpeg").unwrap_err().to_string();
        assert!(
            err.starts_with("snapshot 7 is not a readable JPEG"),
            "{err}"
        );
    }

    #[test]
    fn only_the_canonical_id_is_accepted() {
        assert_eq!(parse_id("12").unwrap().get(), 12);
        for bad in ["01", "0", "abc", "12.jpg", "", "-1", "+1"] {
            assert!(parse_id(bad).is_err(), "{bad:?}");
        }
    }
}
